use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::customer::Customer;
use super::customer_token::{required_string, CustomerToken};
use super::validation::{FieldError, ValidationError};
use super::Timestamp;

/// The status of a token nobody has said anything about.
pub const UNKNOWN_STATUS: &str = "UNKNOWN";
/// The status recorded by a delete event (`DELETE …/tokens/events` with an `event`).
pub const DELETED_STATUS: &str = "DELETED";

/// A token's identity in events: its `type` and `value` (Dintero's `TokenTypeValue`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[schema(description = "Lookup by token type and value")]
pub struct TokenTypeValue {
    #[serde(rename = "type")]
    #[schema(min_length = 1, example = "sha1:email")]
    pub token_type: String,
    #[schema(min_length = 1, example = "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92")]
    pub value: String,
}

impl TokenTypeValue {
    pub fn from_value(field: &str, value: Option<&Value>) -> Result<Self, ValidationError> {
        let Some(Value::Object(map)) = value else {
            return Err(ValidationError::single(field, "must be an object with type and value"));
        };
        let mut errors = ValidationError::default();
        let token_type = required_string(&mut errors, map, "type");
        let value = required_string(&mut errors, map, "value");
        for error in &mut errors.errors {
            error.field = format!("{field}.{}", error.field);
        }
        errors.finish(|| TokenTypeValue { token_type, value })
    }
}

/// Something that happened to a token (Dintero's `TokenEvent`): the latest unexpired event's
/// `status` becomes the token's status when its customer has none.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(
    description = "Something that happened to a token type/value. The latest unexpired event's `status` is the token's status when its customer has none."
)]
pub struct TokenEvent {
    /// Context about the event
    #[schema(example = "customer declined signup in store")]
    pub event: String,
    /// The state to set on the token type/value
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "OPT_OUT")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<Object>, example = json!({"store_id": "SID1234"}))]
    pub metadata: Option<Map<String, Value>>,
    #[schema(value_type = String, format = DateTime, read_only)]
    pub created_at: Timestamp,
    /// After this time the event no longer decides the token's status
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

impl TokenEvent {
    /// Validates an `event` object of a request. `required_event` is false for the optional
    /// delete event, whose `event` text may be left out.
    pub fn from_value(
        field: &str,
        value: &Value,
        required_event: bool,
        now: Timestamp,
    ) -> Result<Self, ValidationError> {
        let Value::Object(map) = value else {
            return Err(ValidationError::single(field, "must be an object"));
        };
        let mut errors = ValidationError::default();
        let event = match map.get("event") {
            Some(Value::String(text)) if !text.is_empty() => text.clone(),
            None | Some(Value::Null) if !required_event => String::new(),
            Some(Value::String(_)) => {
                errors.push(FieldError::new(format!("{field}.event"), "must have at least 1 character"));
                String::new()
            }
            None | Some(Value::Null) => {
                errors.push(FieldError::new(format!("{field}.event"), "is required"));
                String::new()
            }
            Some(_) => {
                errors.push(FieldError::new(format!("{field}.event"), "must be a string"));
                String::new()
            }
        };
        let status = match map.get("status") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(format!("{field}.status"), "must be a non-empty string"));
                None
            }
        };
        let metadata = match map.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => Some(m.clone()),
            Some(_) => {
                errors.push(FieldError::new(format!("{field}.metadata"), "must be an object"));
                None
            }
        };
        let expires_at = match map.get("expires_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match Timestamp::parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    errors.push(FieldError::new(format!("{field}.expires_at"), "must be an RFC 3339 date-time"));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new(format!("{field}.expires_at"), "must be an RFC 3339 date-time"));
                None
            }
        };
        errors.finish(|| TokenEvent { event, status, metadata, created_at: now, expires_at })
    }

    fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|expires| expires > now)
    }
}

/// The events recorded for one token type/value: an item of `GET …/tokens/events`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEventEntry {
    pub id: Uuid,
    pub token: TokenTypeValue,
    pub events: Vec<TokenEvent>,
    pub updated_at: Timestamp,
}

/// Everything known about a token type/value (Dintero's `TokenDetail`).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenDetail {
    pub id: Uuid,
    pub customer: Option<Customer>,
    pub token: Option<CustomerToken>,
    pub events: Vec<TokenEvent>,
}

/// The aggregated status: the customer's own `status`, else the latest unexpired event's
/// status, else `UNKNOWN`. Expired events fall back to the one before them.
pub fn aggregated_status(customer_status: Option<&str>, events: &[TokenEvent], now: Timestamp) -> String {
    if let Some(status) = customer_status {
        return status.to_owned();
    }
    events
        .iter()
        .rev()
        .filter(|event| event.is_live(now))
        .find_map(|event| event.status.clone())
        .unwrap_or_else(|| UNKNOWN_STATUS.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(status: Option<&str>, expires_at: Option<i64>) -> TokenEvent {
        TokenEvent {
            event: "e".into(),
            status: status.map(str::to_owned),
            metadata: None,
            created_at: Timestamp::from_millis(0),
            expires_at: expires_at.map(Timestamp::from_millis),
        }
    }

    #[test]
    fn status_falls_back_in_the_documented_order() {
        let now = Timestamp::from_millis(1000);
        assert_eq!(aggregated_status(None, &[], now), "UNKNOWN");
        assert_eq!(aggregated_status(Some("ACTIVE"), &[event(Some("OPT_OUT"), None)], now), "ACTIVE");
        let events = [event(Some("PENDING"), None), event(Some("OPT_OUT"), Some(500)), event(None, None)];
        assert_eq!(aggregated_status(None, &events, now), "PENDING");
        assert_eq!(aggregated_status(None, &[event(Some("OPT_OUT"), Some(500))], now), "UNKNOWN");
    }

    #[test]
    fn event_validation_names_nested_fields() {
        let err = TokenEvent::from_value(
            "event",
            &json!({"status": 1, "expires_at": "soon"}),
            true,
            Timestamp::from_millis(0),
        )
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["event.event", "event.status", "event.expires_at"]);
        let err = TokenTypeValue::from_value("token", Some(&json!({"type": "sha1:email"}))).unwrap_err();
        assert_eq!(err.errors[0].field, "token.value");
    }
}
