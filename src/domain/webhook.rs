//! Webhooks for card tokens: subscriptions (Dintero's hooks API) and the events tokenvault
//! emits. Deliveries go through a durable outbox written in the same transaction as the change
//! they announce, so no acknowledged change goes unannounced, even across restarts.

use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::card_token::CardToken;
use super::validation::{FieldError, ValidationError};
use super::webhook_target::{check_url_form, TargetError};
use super::{AccountId, Timestamp};

/// A card token was stored (Dintero's documented event).
pub const CARD_TOKEN_ADD: &str = "checkout_token_add";
/// A card token's status changed (tokenvault extension).
pub const CARD_TOKEN_UPDATE: &str = "checkout_token_update";
/// A card token was deleted (tokenvault extension).
pub const CARD_TOKEN_DELETE: &str = "checkout_token_delete";
pub const EVENTS: [&str; 3] = [CARD_TOKEN_ADD, CARD_TOKEN_UPDATE, CARD_TOKEN_DELETE];

/// Attempts before a delivery is given up.
pub const MAX_ATTEMPTS: u32 = 8;

/// A subscription to webhook events, as stored and shown (its secret is kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A webhook subscription (its signing secret is never shown again after creation).")]
pub struct HookSubscription {
    pub id: Uuid,
    pub account_id: AccountId,
    /// The events delivered: `checkout_token_add` (Dintero's), `checkout_token_update` and
    /// `checkout_token_delete` (tokenvault extensions).
    #[schema(example = json!(["checkout_token_add"]))]
    pub events: Vec<String>,
    pub config: HookConfig,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub created_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HookConfig {
    /// Where deliveries are POSTed.
    #[schema(example = "https://example.com/hooks/dintero")]
    pub url: String,
    #[schema(example = "application/json")]
    pub content_type: String,
}

impl HookSubscription {
    /// Validates `{"config": {"url", "content_type"?, "secret"?}, "events": [...]}`; returns
    /// the subscription and the secret the client gave, if any. The URL's form is checked here
    /// (`https` outside test accounts); where it points is the caller's to check, with
    /// `service::webhook_targets::TargetPolicy::check_destination`.
    pub fn from_body(
        body: &Map<String, Value>,
        account: &AccountId,
        created_by: &str,
        now: Timestamp,
    ) -> Result<(Self, Option<String>), ValidationError> {
        let mut errors = ValidationError::default();
        let mut url = String::new();
        let mut secret = None;
        match body.get("config") {
            Some(Value::Object(config)) => {
                match config.get("url") {
                    Some(Value::String(u)) if u.len() <= 2048 => match check_url_form(u, account) {
                        Ok(_) => url = u.clone(),
                        Err(error) => errors.push(FieldError::new("config.url", error.to_string())),
                    },
                    None | Some(Value::Null) => errors.push(FieldError::new("config.url", "is required")),
                    Some(_) => errors.push(FieldError::new("config.url", TargetError::NotHttp.to_string())),
                }
                match config.get("content_type") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(t)) if t == "application/json" => {}
                    Some(_) => errors.push(FieldError::new("config.content_type", "must be application/json")),
                }
                match config.get("secret") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(s)) if (8..=256).contains(&s.len()) => secret = Some(s.clone()),
                    Some(_) => errors.push(FieldError::new("config.secret", "must be a string of 8 to 256 characters")),
                }
            }
            None | Some(Value::Null) => errors.push(FieldError::new("config", "is required")),
            Some(_) => errors.push(FieldError::new("config", "must be an object")),
        }
        let mut events = Vec::new();
        match body.get("events") {
            Some(Value::Array(items)) if !items.is_empty() => {
                for (index, item) in items.iter().enumerate() {
                    match item.as_str() {
                        Some(event) if EVENTS.contains(&event) => {
                            if !events.iter().any(|e| e == event) {
                                events.push(event.to_owned());
                            }
                        }
                        _ => errors.push(FieldError::new(
                            format!("events[{index}]"),
                            format!("must be one of {}", EVENTS.join(", ")),
                        )),
                    }
                }
            }
            None | Some(Value::Null) => errors.push(FieldError::new("events", "is required")),
            Some(_) => errors.push(FieldError::new("events", "must be a non-empty array of event names")),
        }
        errors.finish(|| {
            let subscription = HookSubscription {
                id: Uuid::new_v4(),
                account_id: account.clone(),
                events,
                config: HookConfig { url, content_type: "application/json".to_owned() },
                active: true,
                created_at: now,
                created_by: created_by.to_owned(),
                updated_at: now,
            };
            (subscription, secret)
        })
    }

    pub fn wants(&self, event: &str) -> bool {
        self.active && self.events.iter().any(|e| e == event)
    }
}

/// The body of a card-token webhook (§5.8): `{account_id, event_delivery, event, token}`. The
/// card's secret `token` is left out: it never leaves the vault unencrypted except to an
/// authenticated API call.
pub fn card_token_event_body(event: &str, delivery: Uuid, card: &CardToken) -> String {
    let mut token = serde_json::to_value(card).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut token {
        fields.remove("token");
    }
    json!({"account_id": card.account_id, "event_delivery": delivery, "event": event, "token": token}).to_string()
}

/// One outbox row ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// Also the `event-delivery` header and the body's `event_delivery`.
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub account_id: AccountId,
    pub url: String,
    pub sealed_secret: Vec<u8>,
    pub event: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: u32,
}

/// What happened to a delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryResult {
    Delivered { at: Timestamp },
    Retry { at: Timestamp, error: String },
    GiveUp { error: String },
}

/// Exponential back-off after the `attempts`-th failure: base, 2×base, 4×base… capped at an hour.
pub fn retry_delay_millis(base_millis: i64, attempts: u32) -> i64 {
    base_millis.saturating_mul(1i64 << attempts.min(20)).min(3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_subscriptions() {
        let account = AccountId::parse("aid", "T12345678").unwrap();
        let body = json!({"config": {"url": "http://127.0.0.1:9/hook", "secret": "s3cr3t-value"}, "events": ["checkout_token_add", "checkout_token_add"]});
        let (sub, secret) =
            HookSubscription::from_body(body.as_object().unwrap(), &account, "c", Timestamp::from_millis(0)).unwrap();
        assert_eq!(sub.events, ["checkout_token_add"]);
        assert_eq!(secret.as_deref(), Some("s3cr3t-value"));
        let bad = json!({"config": {"url": "ftp://x"}, "events": ["checkout_transaction"]});
        let err = HookSubscription::from_body(bad.as_object().unwrap(), &account, "c", Timestamp::from_millis(0))
            .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["config.url", "events[0]"]);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(retry_delay_millis(100, 0), 100);
        assert_eq!(retry_delay_millis(100, 3), 800);
        assert_eq!(retry_delay_millis(10_000, 30), 3_600_000);
    }
}
