//! An account's customer settings (Dintero's `CustomersSettings`, aid_customers_atributes_get and
//! aid_customers_atributes_put): kept as given, with the parts that change token behaviour read
//! from them: `users.head.enabled` (aid_customers_head), `auto_tokens` (tokens derived from a
//! customer's e-mail and phone number) and `tokens.event_expiry` (a time to live per event
//! status).

use serde_json::{Map, Value};

use super::token_event::TokenEvent;
use super::validation::{FieldError, ValidationError};
use super::Timestamp;

/// Validated settings, as the client put them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerSettings {
    raw: Map<String, Value>,
}

/// A customer field `auto_tokens` derives tokens from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoTokenProperty {
    Email,
    PhoneNumber,
}

impl AutoTokenProperty {
    pub const ALL: [AutoTokenProperty; 2] = [AutoTokenProperty::Email, AutoTokenProperty::PhoneNumber];

    /// The field's name, in a customer and in `auto_tokens`.
    pub fn field(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::PhoneNumber => "phone_number",
        }
    }

    /// The `token_id`s of every auto token this property can have, so that a change of the
    /// property retires them whatever the settings were when they were made.
    pub fn token_ids(self) -> Vec<String> {
        [AutoTokenKind::Sha256, AutoTokenKind::HmacSha256].iter().map(|kind| kind.token_id(self)).collect()
    }
}

/// Dintero's `AutoTokenType.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoTokenKind {
    Sha256,
    HmacSha256,
}

impl AutoTokenKind {
    /// The token `type` of an auto token, in the `algorithm:property` form of Dintero's examples
    /// (`sha1:email`): `sha256:email`, `hmac-sha256:phone_number`. Dintero does not name them.
    pub fn token_type(self, property: AutoTokenProperty) -> String {
        let algorithm = match self {
            Self::Sha256 => "sha256",
            Self::HmacSha256 => "hmac-sha256",
        };
        format!("{algorithm}:{}", property.field())
    }

    /// The `token_id` of an auto token: `auto:` and its type, one per customer and type.
    pub fn token_id(self, property: AutoTokenProperty) -> String {
        format!("auto:{}", self.token_type(property))
    }
}

/// One entry of `auto_tokens.email` or `auto_tokens.phone_number`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoTokenType {
    pub kind: AutoTokenKind,
    /// The HMAC key (`HMAC-SHA256` only).
    pub secret: Option<String>,
}

/// One entry of `tokens.event_expiry`: events with this `status` count for `time_to_live`
/// seconds after they were recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventExpiry {
    pub status: String,
    pub time_to_live: i64,
}

impl CustomerSettings {
    /// Validates a PUT body: the fields tokenvault acts on must have Dintero's shapes; every
    /// other field is kept as given.
    pub fn from_body(body: Map<String, Value>) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        if let Some(users) = body.get("users") {
            match users {
                Value::Object(users) => match users.get("head") {
                    None => {}
                    Some(Value::Object(head)) => match head.get("enabled") {
                        None | Some(Value::Bool(_)) => {}
                        Some(_) => errors.push(FieldError::new("users.head.enabled", "must be true or false")),
                    },
                    Some(_) => errors.push(FieldError::new("users.head", "must be an object")),
                },
                _ => errors.push(FieldError::new("users", "must be an object")),
            }
        }
        if let Some(auto_tokens) = body.get("auto_tokens") {
            match auto_tokens {
                Value::Object(auto_tokens) => {
                    for property in AutoTokenProperty::ALL {
                        check_auto_token_types(auto_tokens.get(property.field()), property, &mut errors);
                    }
                }
                _ => errors.push(FieldError::new("auto_tokens", "must be an object")),
            }
        }
        if let Some(tokens) = body.get("tokens") {
            match tokens {
                Value::Object(tokens) => check_event_expiry(tokens.get("event_expiry"), &mut errors),
                _ => errors.push(FieldError::new("tokens", "must be an object")),
            }
        }
        match body.get("attributes") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.iter().all(Value::is_object) => {}
            Some(_) => errors.push(FieldError::new("attributes", "must be an array of objects")),
        }
        errors.finish(|| Self { raw: body })
    }

    /// Settings as stored (validated when they were put).
    pub fn from_stored(raw: Map<String, Value>) -> Self {
        Self { raw }
    }

    /// The settings object, as put.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.raw
    }

    /// `users.head.enabled`: whether `HEAD …/customers/users` answers (default false).
    pub fn head_enabled(&self) -> bool {
        self.raw.get("users").and_then(|u| u.get("head")).and_then(|h| h.get("enabled")) == Some(&Value::Bool(true))
    }

    /// The auto tokens configured for `property`.
    pub fn auto_tokens(&self, property: AutoTokenProperty) -> Vec<AutoTokenType> {
        let Some(Value::Array(types)) = self.raw.get("auto_tokens").and_then(|a| a.get(property.field())) else {
            return Vec::new();
        };
        types.iter().filter_map(auto_token_type).collect()
    }

    /// `tokens.event_expiry`.
    pub fn event_expiry(&self) -> Vec<EventExpiry> {
        let Some(Value::Array(entries)) = self.raw.get("tokens").and_then(|t| t.get("event_expiry")) else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|entry| {
                Some(EventExpiry {
                    status: entry.get("status")?.as_str()?.to_owned(),
                    time_to_live: entry.get("time_to_live")?.as_i64()?,
                })
            })
            .collect()
    }
}

impl EventExpiry {
    /// Leaves out the events whose status has a time to live in `expiry` that has run out at
    /// `now` (`tokens.event_expiry`): they are no longer shown, nor decide a token's status.
    pub fn retain_live(expiry: &[EventExpiry], events: &mut Vec<TokenEvent>, now: Timestamp) {
        if expiry.is_empty() {
            return;
        }
        events.retain(|event| {
            let Some(status) = event.status.as_deref() else { return true };
            expiry
                .iter()
                .filter(|rule| rule.status == status)
                .all(|rule| event.created_at.plus_seconds(rule.time_to_live) > now)
        });
    }
}

fn auto_token_type(value: &Value) -> Option<AutoTokenType> {
    let kind = match value.get("type")?.as_str()? {
        "SHA256" => AutoTokenKind::Sha256,
        "HMAC-SHA256" => AutoTokenKind::HmacSha256,
        _ => return None,
    };
    let secret = value.get("secret").and_then(Value::as_str).map(str::to_owned);
    Some(AutoTokenType { kind, secret })
}

fn check_auto_token_types(value: Option<&Value>, property: AutoTokenProperty, errors: &mut ValidationError) {
    let field = format!("auto_tokens.{}", property.field());
    let types = match value {
        None => return,
        Some(Value::Array(types)) => types,
        Some(_) => return errors.push(FieldError::new(field, "must be an array")),
    };
    for (index, entry) in types.iter().enumerate() {
        let at = format!("{field}[{index}]");
        match entry.get("type").and_then(Value::as_str) {
            Some("SHA256") => {}
            Some("HMAC-SHA256") => match entry.get("secret") {
                Some(Value::String(secret)) if !secret.is_empty() => {}
                _ => errors.push(FieldError::new(format!("{at}.secret"), "is required for HMAC-SHA256")),
            },
            _ => errors.push(FieldError::new(format!("{at}.type"), "must be one of SHA256, HMAC-SHA256")),
        }
    }
}

fn check_event_expiry(value: Option<&Value>, errors: &mut ValidationError) {
    let entries = match value {
        None => return,
        Some(Value::Array(entries)) => entries,
        Some(_) => return errors.push(FieldError::new("tokens.event_expiry", "must be an array")),
    };
    for (index, entry) in entries.iter().enumerate() {
        let at = format!("tokens.event_expiry[{index}]");
        match entry.get("status") {
            Some(Value::String(status)) if !status.is_empty() => {}
            _ => errors.push(FieldError::new(format!("{at}.status"), "is required (a non-empty string)")),
        }
        match entry.get("time_to_live").and_then(Value::as_i64) {
            Some(seconds) if seconds >= 0 => {}
            _ => errors
                .push(FieldError::new(format!("{at}.time_to_live"), "must be a whole number of seconds, 0 or more")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: Option<&str>, at_seconds: i64) -> TokenEvent {
        TokenEvent {
            event: "e".into(),
            status: status.map(str::to_owned),
            metadata: None,
            created_at: Timestamp::from_millis(at_seconds * 1000),
            expires_at: None,
        }
    }

    #[test]
    fn events_past_their_status_time_to_live_are_left_out() {
        let expiry = [EventExpiry { status: "OPT_OUT".into(), time_to_live: 60 }];
        let mut events =
            vec![event(Some("OPT_OUT"), 0), event(Some("PENDING"), 0), event(None, 0), event(Some("OPT_OUT"), 50)];
        EventExpiry::retain_live(&expiry, &mut events, Timestamp::from_millis(100_000));
        let kept: Vec<_> = events.iter().map(|e| (e.status.clone(), e.created_at.millis())).collect();
        assert_eq!(kept, [(Some("PENDING".into()), 0), (None, 0), (Some("OPT_OUT".into()), 50_000)]);
    }
}
