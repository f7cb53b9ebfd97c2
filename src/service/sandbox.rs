//! Sandbox conveniences for test accounts (`T…` only): resetting an account, and webhooks
//! when you want them.

use serde_json::{json, Map, Value};

use super::{test_accounts_only, ServiceError, ServiceResult, Vault};
use crate::domain::card_token::{CardToken, CardTokenDeletion, CardTokenStatus, DeleteRequestor};
use crate::domain::webhook::{CARD_TOKEN_ADD, CARD_TOKEN_DELETE, CARD_TOKEN_UPDATE, EVENTS};
use crate::domain::{AccountId, FieldError, Timestamp, ValidationError};
pub use crate::store::{ResetCounts, ResetParts};

/// What a trigger did: the event, the card token it is about, whether that token was made for
/// it, and how many subscriptions listen for the event (each gets a delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triggered {
    pub event: String,
    pub token_id: String,
    pub created: bool,
    pub deliveries: u64,
}

impl Triggered {
    /// The `POST …/sandbox/webhooks/trigger` answer.
    pub fn to_json(&self, account: &AccountId) -> Value {
        json!({
            "account_id": account,
            "event": self.event,
            "token_id": self.token_id,
            "created": self.created,
            "deliveries": self.deliveries,
        })
    }
}

impl Vault {
    /// Wipes the `parts` of a test account's data (see [`ResetParts`]); production accounts are
    /// refused.
    pub async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
    ) -> ServiceResult<ResetCounts> {
        test_accounts_only(account, "sandbox operations")?;
        let counts = self.store.reset_account(account, parts, actor, Timestamp::now()).await?;
        self.forget_fault_rules(account);
        self.clocks.forget(account);
        Ok(counts)
    }

    /// Emits a card-token event through the outbox, signed and delivered as any other, from a
    /// `{"event", "token_id"?}` body. With `token_id`, the token is announced as it is stored,
    /// unchanged. Without, a test card token is made for the purpose through the real use cases,
    /// so every delivery tells the truth: created (`checkout_token_add`), then suspended
    /// (`checkout_token_update`) or deleted (`checkout_token_delete`) when that event is asked
    /// for; its own `checkout_token_add` is then queued too, just before (deliveries are sent
    /// side by side, so they may arrive in either order).
    pub async fn trigger_webhook(
        &self,
        account: &AccountId,
        body: &Map<String, Value>,
        actor: &str,
    ) -> ServiceResult<Triggered> {
        test_accounts_only(account, "sandbox operations")?;
        let mut errors = ValidationError::default();
        if let Some(unknown) = body.keys().find(|key| !["event", "token_id"].contains(&key.as_str())) {
            errors.push(FieldError::new(unknown.clone(), "is not a field of a trigger"));
        }
        let event = match body.get("event") {
            Some(Value::String(event)) if EVENTS.contains(&event.as_str()) => event.clone(),
            None | Some(Value::Null) => {
                errors.push(FieldError::new("event", "is required"));
                String::new()
            }
            Some(_) => {
                errors.push(FieldError::new("event", format!("must be one of {}", EVENTS.join(", "))));
                String::new()
            }
        };
        let token_id = match body.get("token_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => {
                errors.check(crate::domain::validation::identifier("token_id", id)).map(|()| id.clone())
            }
            Some(_) => {
                errors.push(FieldError::new("token_id", "must be a string"));
                None
            }
        };
        errors.finish(|| ())?;
        match token_id {
            Some(token_id) => {
                let deliveries = self
                    .store
                    .trigger_card_token_event(account, &token_id, &event, actor, self.now(account).await?)
                    .await?;
                self.announce();
                Ok(Triggered { event, token_id, created: false, deliveries })
            }
            None => {
                let deliveries = self.listeners_of(account, &event).await?;
                let token_id = self.made_for_trigger(account, &event, actor).await?;
                Ok(Triggered { event, token_id, created: true, deliveries })
            }
        }
    }

    /// Active subscriptions of the account that listen for `event`.
    async fn listeners_of(&self, account: &AccountId, event: &str) -> ServiceResult<u64> {
        let subscriptions = self.store.list_hook_subscriptions(account).await?;
        Ok(subscriptions.iter().filter(|s| s.active && s.events.iter().any(|e| e == event)).count() as u64)
    }

    /// A test card token, created and then brought to the state `event` announces.
    async fn made_for_trigger(&self, account: &AccountId, event: &str, actor: &str) -> ServiceResult<String> {
        let body = json!({
            "card_brand": "visa",
            "payment_product_type": "dintero_psp.creditcard",
            "masked_pan": "411111******1111",
            "pan_expiry_date": "12/2030",
        });
        let body = body.as_object().cloned().unwrap_or_default();
        let card = CardToken::from_create_body(&body, account, actor, self.now(account).await?)?;
        let card = self.create_card_token(card).await?;
        match event {
            CARD_TOKEN_UPDATE => {
                self.set_card_token_status(account, &card.id, CardTokenStatus::Suspended, actor).await?;
            }
            CARD_TOKEN_DELETE => {
                let deletion = CardTokenDeletion {
                    actor: actor.to_owned(),
                    reason: Some("sandbox webhook trigger".to_owned()),
                    requestor: DeleteRequestor::Merchant,
                    at: self.now(account).await?,
                };
                self.delete_card_token(account, &card.id, &deletion).await?;
            }
            CARD_TOKEN_ADD => {}
            other => return Err(ServiceError::Internal(format!("no trigger for {other}"))),
        }
        Ok(card.id)
    }
}
