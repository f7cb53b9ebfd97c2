//! Webhook subscriptions and the durable outbox of their deliveries.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::webhook::{
    DeliveryAttempt, DeliveryRecord, DeliveryResult, HookDelivery, HookSubscription, WebhookDelivery,
};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Stores a webhook subscription with its sealed signing secret. Card-token mutations then
    /// write one outbox row per interested subscription in their own transaction:
    /// `checkout_token_add` for a create and each imported token, `checkout_token_update` for a
    /// status that actually changes, `checkout_token_delete` for a delete that actually deletes.
    /// The subscription's first delivery, a `ping` (Dintero pings every new subscription), is
    /// written in the same transaction.
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
    /// delivery's `attempts` counts the attempts made before this one. `now` and `lease_until`
    /// are real time; a delivery's moments are its account's (a test account's clock, see
    /// [`ClockStore`](super::ClockStore)), so both are shifted by that account's offset.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;

    /// Records an attempt and its result in one transaction: the attempt joins the delivery's
    /// history, and the delivery is marked delivered, rescheduled or given up. A delivery no
    /// longer pending (finished by another worker after this one's lease ran out) keeps its state
    /// but still gets the attempt; one whose row is gone (its subscription deleted) is left alone.
    /// A delivery given up counts against its subscription, one delivered clears the count; once
    /// `delete_after_failures` (0: never) deliveries in a row are given up, the subscription is
    /// deleted as `aid_source_hooks_hid_delete` would (audited as the worker's doing), and its
    /// id is returned.
    async fn complete_webhook_delivery(
        &self,
        id: uuid::Uuid,
        result: &DeliveryResult,
        attempt: &DeliveryAttempt,
        delete_after_failures: u32,
    ) -> StoreResult<Option<uuid::Uuid>>;

    /// A subscription's deliveries, newest first (Dintero's "recent deliveries"), each with its
    /// attempts' latest status only; `starting_after` names a delivery of this list.
    /// NotFound("subscription") when the account has no such subscription.
    async fn list_webhook_deliveries(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        page: &PageRequest,
    ) -> StoreResult<Page<HookDelivery>>;

    /// One delivery of the account's subscription with every attempt. NotFound("subscription")
    /// or NotFound("delivery").
    async fn get_webhook_delivery(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        delivery: uuid::Uuid,
    ) -> StoreResult<DeliveryRecord>;

    /// Queues a `ping` to the subscription, due at once, and audits it; returns the new delivery.
    async fn ping_hook_subscription(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<DeliveryRecord>;

    /// Queues the event of one of the subscription's deliveries again as a new delivery (its
    /// own id, the original's `event-delivery` and body), due at once, and audits it.
    async fn resend_webhook_delivery(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        delivery: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<DeliveryRecord>;

    /// Announces a card token as it is stored with `event` (a `checkout_token_*` event), without
    /// changing it: one outbox row per active subscription of the account that listens for the
    /// event, due at once, exactly as a change would write them, and a `sandbox.webhook.trigger`
    /// audit record. Returns how many deliveries were queued. NotFound("card token").
    async fn trigger_card_token_event(
        &self,
        account: &AccountId,
        token_id: &str,
        event: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<u64>;

    /// Deletes up to `limit` deliveries delivered or given up before `finished_before` (real
    /// time, shifted by each account's clock offset like `now` above), oldest first, with their
    /// attempts, and returns how many; pending ones are never touched. Keeps the outbox from
    /// growing with every card-token change ever announced.
    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64>;
}
