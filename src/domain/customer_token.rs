use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::validation::{self, FieldError, ValidationError};
use super::Timestamp;

/// A customer token (seed 003's `CustomerToken`). Field order is the seeds' order, so responses
/// match Dintero's byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomerToken {
    #[serde(rename = "type")]
    pub token_type: String,
    pub value: String,
    pub id: Uuid,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    pub token_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl CustomerToken {
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// A validated create request for a customer token.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomerToken {
    pub id: Uuid,
    pub token_id: String,
    pub token_type: String,
    pub value: String,
    pub metadata: Option<Map<String, Value>>,
    pub created_by: String,
    pub created_at: Timestamp,
}

impl NewCustomerToken {
    /// Validates seed 003's body: `type` and `value` required strings of at least one
    /// character, `token_id` optional (generated) with the identifier rules, `metadata` an object.
    pub fn from_body(body: &Map<String, Value>, created_by: &str, now: Timestamp) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let token_type = required_string(&mut errors, body, "type");
        let value = required_string(&mut errors, body, "value");

        let token_id = match body.get("token_id") {
            None | Some(Value::Null) => Uuid::new_v4().to_string(),
            Some(Value::String(id)) => {
                errors.check(validation::identifier("token_id", id));
                id.clone()
            }
            Some(_) => {
                errors.push(FieldError::new("token_id", "must be a string"));
                String::new()
            }
        };

        let metadata = match body.get("metadata") {
            None | Some(Value::Null) => None,
            Some(Value::Object(map)) => Some(map.clone()),
            Some(_) => {
                errors.push(FieldError::new("metadata", "must be an object"));
                None
            }
        };

        errors.finish(|| NewCustomerToken {
            id: Uuid::new_v4(),
            token_id,
            token_type,
            value,
            metadata,
            created_by: created_by.to_owned(),
            created_at: now,
        })
    }
}

/// Reads a required, non-empty string field, recording what is wrong with it.
pub(crate) fn required_string(errors: &mut ValidationError, body: &Map<String, Value>, field: &str) -> String {
    match body.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(field, "is required"));
            String::new()
        }
        Some(Value::String(s)) => {
            errors.check(validation::non_empty(field, s));
            s.clone()
        }
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            String::new()
        }
    }
}

/// Filters of the customer-token list (seed 002). Deleted tokens are included by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerTokenFilter {
    pub token_type: Option<String>,
    pub include_deleted: bool,
}

impl Default for CustomerTokenFilter {
    fn default() -> Self {
        Self { token_type: None, include_deleted: true }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn validates_the_seed_body() {
        let ok = NewCustomerToken::from_body(
            json!({"type": "sha1:email", "value": "a1b7", "metadata": {"mask_pan": "**** 3477"}}).as_object().unwrap(),
            "client",
            Timestamp::from_millis(0),
        )
        .unwrap();
        assert!(Uuid::parse_str(&ok.token_id).is_ok());

        let err = NewCustomerToken::from_body(
            json!({"type": "", "value": 3, "token_id": "t ", "metadata": []}).as_object().unwrap(),
            "client",
            Timestamp::from_millis(0),
        )
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["type", "value", "token_id", "metadata"]);
    }

    #[test]
    fn serializes_in_the_seed_order() {
        let token = CustomerToken {
            token_type: "sha1:email".into(),
            value: "v".into(),
            id: Uuid::nil(),
            created_at: Timestamp::from_millis(0),
            created_by: "c".into(),
            updated_at: Timestamp::from_millis(0),
            deleted_by: Some("d".into()),
            deleted_at: Some(Timestamp::from_millis(0)),
            token_id: "t".into(),
            metadata: None,
        };
        assert_eq!(
            serde_json::to_string(&token).unwrap(),
            r#"{"type":"sha1:email","value":"v","id":"00000000-0000-0000-0000-000000000000","created_at":"1970-01-01T00:00:00Z","created_by":"c","updated_at":"1970-01-01T00:00:00Z","deleted_by":"d","deleted_at":"1970-01-01T00:00:00Z","token_id":"t"}"#
        );
    }
}
