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
/// Dintero's ping event: sent when a subscription is created and on
/// `aid_source_hooks_hid_ping_post`, so an integrator sees at once that the hook works.
pub const PING: &str = "ping";

/// Dintero's attempts per delivery ("we retry the connection to a total of 5 times"); the
/// default of the `webhook_max_attempts` setting.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Deliveries given up in a row after which the worker deletes the subscription. Dintero deletes
/// a hook "if there are consecutive failures" without saying how many; this is tokenvault's
/// choice, the default of the `webhook_delete_after_failures` setting.
pub const DEFAULT_DELETE_AFTER_FAILURES: u32 = 10;
/// The actor of the audit record when the worker deletes a failing subscription.
pub const WORKER_ACTOR: &str = "tokenvault:webhook-worker";
/// Bounds of what an attempt record keeps of an error and of the receiver's answer, so that a
/// chatty receiver cannot grow the history without bound: characters of an error,
pub const MAX_ERROR_CHARS: usize = 500;
/// bytes of the receiver's body (the rest is not even read),
pub const MAX_RESPONSE_BODY_BYTES: usize = 4096;
/// headers of the receiver's answer,
pub const MAX_RESPONSE_HEADERS: usize = 50;
/// and characters of each header value.
pub const MAX_HEADER_VALUE_CHARS: usize = 512;

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

/// The body of Dintero's `ping` event: the subscription as `aid_source_hooks_hid_get` shows it
/// (Dintero's ping payload is the `Hook`), without its secret.
pub fn ping_event_body(subscription: &HookSubscription) -> String {
    serde_json::to_string(subscription).unwrap_or_default()
}

/// Why a delivery was queued outside a card-token change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueuedBy {
    /// `aid_source_hooks_hid_ping_post`.
    Ping,
    /// The resend extension: the same event again, under the original's `event-delivery`.
    Resend,
}

/// One outbox row ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The delivery's own id (one event to one subscription; a resend is a new delivery).
    pub id: Uuid,
    /// The `event-delivery` header and a card-token body's `event_delivery`: the delivery's `id`,
    /// or for a resend the original delivery's.
    pub event_delivery: Uuid,
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
    Delivered {
        at: Timestamp,
    },
    Retry {
        at: Timestamp,
        error: String,
    },
    /// No more attempts; the delivery is given up when the attempt ended.
    GiveUp {
        error: String,
    },
}

/// One attempt to deliver, as the worker records it in the transaction that records its outcome,
/// so the deliveries API can show what was sent and what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub attempted_at: Timestamp,
    /// From sending the request to the end of reading the (bounded) answer.
    pub duration_millis: i64,
    /// The receiver's HTTP status; `None` when no answer came (refused target, connection error,
    /// timeout).
    pub status: Option<u16>,
    /// Why the attempt failed, at most [`MAX_ERROR_CHARS`]; never a secret or the URL.
    pub error: Option<String>,
    /// The headers sent, in order; empty when nothing was sent.
    pub request_headers: Vec<(String, String)>,
    /// The receiver's headers, at most [`MAX_RESPONSE_HEADERS`], `set-cookie` left out.
    pub response_headers: Vec<(String, String)>,
    /// The first [`MAX_RESPONSE_BODY_BYTES`] of the receiver's answer.
    pub response_body: Option<String>,
}

impl DeliveryAttempt {
    /// Whether the receiver took it (any 2xx).
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status)) && self.error.is_none()
    }
}

/// `text` cut to at most `max` characters, marked with `…` when cut.
pub fn bounded(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Where a delivery stands, so the detail can say whether more attempts follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// More attempts follow; the next is due then.
    Pending { next_attempt_at: Timestamp },
    /// A receiver answered 2xx.
    Delivered { at: Timestamp },
    /// Every attempt failed.
    GaveUp { at: Timestamp },
}

/// A delivery with its history, as the store keeps it: what `aid_source_hooks_hid_deliveries_did_get`
/// shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// The delivery's own id.
    pub id: Uuid,
    /// The `event-delivery` GUID sent (a resend carries the original's).
    pub event_delivery: Uuid,
    pub subscription_id: Uuid,
    pub account_id: AccountId,
    /// The subscription's `config.url`, where every attempt went.
    pub url: String,
    pub event: String,
    /// The exact JSON sent (and signed).
    pub body: String,
    pub created_at: Timestamp,
    pub state: DeliveryState,
    /// Oldest first.
    pub attempts: Vec<DeliveryAttempt>,
}

impl DeliveryRecord {
    /// The list entry: the latest attempt's status.
    pub fn summary(&self) -> HookDelivery {
        HookDelivery {
            id: self.id,
            event_delivery: self.event_delivery,
            created_at: self.created_at,
            status: self.attempts.last().and_then(|attempt| attempt.status),
        }
    }

    /// Dintero's `HookDeliveryDetail` (`url`, `request`, `response`, `details` of the latest
    /// attempt) with tokenvault's additions: `event`, `state`, `next_attempt_at` while pending, and
    /// every attempt in `attempts`.
    pub fn detail(&self) -> Value {
        let mut detail = Map::new();
        detail.insert("id".into(), json!(self.id));
        detail.insert("event_delivery".into(), json!(self.event_delivery));
        detail.insert("created_at".into(), json!(self.created_at));
        let last = self.attempts.last();
        if let Some(status) = last.and_then(|attempt| attempt.status) {
            detail.insert("status".into(), json!(status));
        }
        detail.insert("url".into(), json!(self.url));
        let mut request = Map::new();
        if let Some(sent) = self.attempts.iter().rev().find(|attempt| !attempt.request_headers.is_empty()) {
            request.insert("headers".into(), headers_object(&sent.request_headers));
        }
        request.insert("body".into(), serde_json::from_str(&self.body).unwrap_or(Value::String(self.body.clone())));
        detail.insert("request".into(), Value::Object(request));
        if let Some(answered) = last.filter(|attempt| attempt.status.is_some()) {
            detail.insert(
                "response".into(),
                json!({
                    "headers": headers_object(&answered.response_headers),
                    "body": answered.response_body.clone().unwrap_or_default(),
                }),
            );
        }
        if let Some(attempt) = last {
            detail.insert(
                "details".into(),
                json!({
                    "delivery_at": attempt.attempted_at,
                    "delivery_duration": attempt.duration_millis,
                    "delivery_success": attempt.succeeded(),
                }),
            );
        }
        detail.insert("event".into(), json!(self.event));
        let state = match self.state {
            DeliveryState::Pending { .. } => "PENDING",
            DeliveryState::Delivered { .. } => "DELIVERED",
            DeliveryState::GaveUp { .. } => "FAILED",
        };
        detail.insert("state".into(), json!(state));
        if let DeliveryState::Pending { next_attempt_at } = self.state {
            detail.insert("next_attempt_at".into(), json!(next_attempt_at));
        }
        let attempts: Vec<Value> = self
            .attempts
            .iter()
            .map(|attempt| {
                let mut shown = Map::new();
                shown.insert("attempted_at".into(), json!(attempt.attempted_at));
                shown.insert("duration".into(), json!(attempt.duration_millis));
                if let Some(status) = attempt.status {
                    shown.insert("status".into(), json!(status));
                }
                if let Some(error) = &attempt.error {
                    shown.insert("error".into(), json!(error));
                }
                shown.insert("success".into(), json!(attempt.succeeded()));
                Value::Object(shown)
            })
            .collect();
        detail.insert("attempts".into(), Value::Array(attempts));
        Value::Object(detail)
    }
}

/// Headers as a JSON object; a repeated name keeps its values joined with `, ` (RFC 9110).
pub fn headers_object(headers: &[(String, String)]) -> Value {
    let mut object = Map::new();
    for (name, value) in headers {
        match object.get_mut(name) {
            Some(Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                object.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    Value::Object(object)
}

/// Headers from a JSON object as [`headers_object`] writes it (stores keep them so).
pub fn headers_from_json(text: Option<&str>) -> Vec<(String, String)> {
    let Some(Ok(Value::Object(object))) = text.map(serde_json::from_str::<Value>) else { return Vec::new() };
    object.into_iter().map(|(name, value)| (name, value.as_str().unwrap_or_default().to_owned())).collect()
}

/// A delivery as Dintero's `HookDelivery` lists it (`aid_source_hooks_hid_deliveries_get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A delivery of one event to the subscription (Dintero's `HookDelivery`).")]
pub struct HookDelivery {
    /// The delivery's id (`delivery_id` in the detail's path).
    pub id: Uuid,
    /// The `event-delivery` GUID sent with it (a resend carries the original's).
    pub event_delivery: Uuid,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// HTTP status code of the latest attempt; absent before the first attempt and when the
    /// receiver did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = 200)]
    pub status: Option<u16>,
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
