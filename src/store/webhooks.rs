//! Webhook subscriptions and the durable outbox of their deliveries.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::webhook::{DeliveryResult, HookSubscription, WebhookDelivery};
use crate::domain::{AccountId, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a webhook subscription with its sealed signing secret. Card-token mutations then
    /// write one outbox row per interested subscription in their own transaction:
    /// `checkout_token_add` for a create and each imported token, `checkout_token_update` for a
    /// status that actually changes, `checkout_token_delete` for a delete that actually deletes.
    async fn create_hook_subscription(&self, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()>;

    /// The account's subscriptions, oldest first.
    async fn list_hook_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<HookSubscription>>;

    async fn get_hook_subscription(&self, account: &AccountId, id: uuid::Uuid)
        -> StoreResult<Option<HookSubscription>>;

    /// NotFound("subscription") when absent; its pending deliveries are dropped with it.
    async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<HookSubscription>;

    /// Takes up to `limit` deliveries due at `now` (pending, `next_attempt_at <= now`), oldest
    /// first, and leases them until `lease_until`, so that no other worker (or instance) sends
    /// them meanwhile; a crashed worker's lease runs out and the delivery is retried. Each
    /// delivery's `attempts` counts the attempts made before this one.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;

    /// Records an attempt's result: delivered rows leave the outbox, failed ones are rescheduled
    /// or given up. A delivery no longer pending (its subscription deleted meanwhile) is left
    /// alone.
    async fn complete_webhook_delivery(&self, id: uuid::Uuid, result: &DeliveryResult) -> StoreResult<()>;

    /// Deletes up to `limit` deliveries delivered or given up before `finished_before`, oldest
    /// first, and returns how many; pending ones are never touched. Keeps the outbox from
    /// growing with every card-token change ever announced.
    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64>;
}
