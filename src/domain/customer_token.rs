use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::validation::{self, FieldError, ValidationError};
use super::Timestamp;

/// A customer token (seed 003's `CustomerToken`). Field order is the seeds' order, so responses
/// match Dintero's byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(description = "A token (type/value) of a customer.")]
pub struct CustomerToken {
    /// identifies how or who is resposible for the token value
    #[serde(rename = "type")]
    #[schema(min_length = 1, example = "sha1:email")]
    pub token_type: String,
    #[schema(min_length = 1, example = "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92")]
    pub value: String,
    /// An UUID that uniquely identifies the resource
    #[schema(read_only)]
    pub id: Uuid,
    /// The date-time when the resource was created
    #[schema(value_type = String, format = DateTime, read_only)]
    pub created_at: Timestamp,
    /// The ID of the user/client created the resource
    #[schema(read_only, example = "1c92f7e1-2897-4d46-bdcc-c127a914fb4e")]
    pub created_by: String,
    /// The date-time when the resource was last updated
    #[schema(value_type = String, format = DateTime, read_only)]
    pub updated_at: Timestamp,
    /// The ID of the user/client that deleted the resource
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, read_only, example = "1c92f7e1-2897-4d46-bdcc-c127a914fb4e")]
    pub deleted_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>, format = DateTime, read_only)]
    pub deleted_at: Option<Timestamp>,
    /// The token id you have defined for the token. (must not have trailing or leading spaces)
    #[schema(read_only, min_length = 1, max_length = 255)]
    pub token_id: String,
    /// Additional metadata about the token or the entity the token was created from
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<Object>, example = json!({"exp_month": 10, "exp_year": 20, "mask_pan": "**** **** **** 3477"}))]
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
