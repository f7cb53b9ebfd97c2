//! Webhook subscriptions (Dintero's hooks API): where card-token events are delivered, each
//! with a signing secret kept sealed and shown only once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use uuid::Uuid;

use super::{ServiceError, ServiceResult, Vault};
use crate::domain::webhook::{DeliveryRecord, HookDelivery, HookSubscription};
use crate::domain::{AccountId, Page, PageRequest, ValidationError};

impl Vault {
    /// Stores a subscription whose target the policy allows, with the secret the client gave or
    /// a generated one; returns the secret for the one time it is shown.
    pub async fn create_hook_subscription(
        &self,
        subscription: &HookSubscription,
        secret: Option<String>,
    ) -> ServiceResult<String> {
        self.targets
            .check_destination(&subscription.config.url)
            .await
            .map_err(|error| ValidationError::single("config.url", error.to_string()))?;
        let secret = secret.unwrap_or_else(|| {
            let mut bytes = [0u8; 24];
            rand::rngs::OsRng.fill_bytes(&mut bytes);
            URL_SAFE_NO_PAD.encode(bytes)
        });
        let sealed = self.cipher.seal(&subscription.account_id, &subscription.id.to_string(), &secret);
        self.store.create_hook_subscription(subscription, &sealed.ciphertext).await?;
        // Its ping is in the outbox.
        self.announce();
        Ok(secret)
    }

    /// The account's subscriptions, oldest first.
    pub async fn hook_subscriptions(&self, account: &AccountId) -> ServiceResult<Vec<HookSubscription>> {
        Ok(self.store.list_hook_subscriptions(account).await?)
    }

    /// `id` is the path's text: one that is not a UUID names no subscription.
    pub async fn hook_subscription(&self, account: &AccountId, id: &str) -> ServiceResult<HookSubscription> {
        let id = subscription_id(id)?;
        self.store.get_hook_subscription(account, id).await?.ok_or(ServiceError::NotFound("subscription"))
    }

    /// Deletes the subscription and drops its pending deliveries.
    pub async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: &str,
        actor: &str,
    ) -> ServiceResult<HookSubscription> {
        let id = subscription_id(id)?;
        Ok(self.store.delete_hook_subscription(account, id, actor, self.now(account).await?).await?)
    }
}

impl Vault {
    /// The subscription's recent deliveries, newest first (`aid_source_hooks_hid_deliveries_get`).
    pub async fn hook_deliveries(
        &self,
        account: &AccountId,
        subscription: &str,
        page: &PageRequest,
    ) -> ServiceResult<Page<HookDelivery>> {
        let subscription = subscription_id(subscription)?;
        Ok(self.store.list_webhook_deliveries(account, subscription, page).await?)
    }

    /// One delivery with every attempt (`aid_source_hooks_hid_deliveries_did_get`). Ids that are
    /// not UUIDs name nothing: the subscription is still checked first, so its absence wins.
    pub async fn hook_delivery(
        &self,
        account: &AccountId,
        subscription: &str,
        delivery: &str,
    ) -> ServiceResult<DeliveryRecord> {
        let subscription = subscription_id(subscription)?;
        Ok(self.store.get_webhook_delivery(account, subscription, delivery_id(delivery)).await?)
    }

    /// Queues a `ping` to the subscription and wakes the worker, which sends it at once
    /// (`aid_source_hooks_hid_ping_post`).
    pub async fn ping_hook_subscription(
        &self,
        account: &AccountId,
        subscription: &str,
        actor: &str,
    ) -> ServiceResult<DeliveryRecord> {
        let subscription = subscription_id(subscription)?;
        let queued = self.store.ping_hook_subscription(account, subscription, actor, self.now(account).await?).await?;
        self.announce();
        Ok(queued)
    }

    /// Sends a delivery's event again through the outbox, as a new delivery under the original's
    /// `event-delivery` (extension).
    pub async fn resend_hook_delivery(
        &self,
        account: &AccountId,
        subscription: &str,
        delivery: &str,
        actor: &str,
    ) -> ServiceResult<DeliveryRecord> {
        let subscription = subscription_id(subscription)?;
        let queued = self
            .store
            .resend_webhook_delivery(account, subscription, delivery_id(delivery), actor, self.now(account).await?)
            .await?;
        self.announce();
        Ok(queued)
    }
}

/// A path's delivery id; one that is not a UUID becomes the nil UUID, which names no delivery.
fn delivery_id(raw: &str) -> Uuid {
    Uuid::parse_str(raw).unwrap_or(Uuid::nil())
}

fn subscription_id(raw: &str) -> ServiceResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ServiceError::NotFound("subscription"))
}
