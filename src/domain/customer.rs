use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::validation::{self, FieldError, ValidationError};
use super::Timestamp;

/// The customer types Dintero knows; `contact` is left out of lists unless asked for.
pub const CUSTOMER_TYPES: [&str; 5] = ["customer", "company", "contact", "employee", "other"];

/// A customer as stored: the fields tokenvault interprets, plus every other field exactly as the
/// client sent it (`attributes`), so clients get back what they sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub id: Uuid,
    pub customer_id: String,
    #[serde(flatten)]
    pub attributes: Map<String, Value>,
    pub created_at: Timestamp,
    pub created_by: String,
    pub updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_by: Option<String>,
}

impl Customer {
    /// The `status` attribute, which takes precedence in a token's aggregated status.
    pub fn status(&self) -> Option<&str> {
        self.attributes.get("status").and_then(Value::as_str)
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }
}

/// A validated customer ready to be stored. `email_key` is the lower-cased e-mail, unique per
/// account and customer type, as Dintero checks it case-insensitively.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCustomer {
    pub id: Uuid,
    pub customer_id: String,
    pub customer_type: String,
    pub email_key: Option<String>,
    pub phone_number: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_by: String,
    pub created_at: Timestamp,
}

impl NewCustomer {
    /// Validates a create body. Unknown fields are kept verbatim; read-only fields a client sent
    /// are dropped so they cannot be forged.
    pub fn from_body(body: Map<String, Value>, created_by: &str, now: Timestamp) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let mut attributes = body;
        for read_only in ["id", "created_at", "created_by", "updated_at", "deleted_at", "deleted_by", "password", "pin"]
        {
            attributes.shift_remove(read_only);
        }

        let customer_id = match attributes.shift_remove("customer_id") {
            None | Some(Value::Null) => Uuid::new_v4().to_string(),
            Some(Value::String(id)) => {
                errors.check(validation::identifier("customer_id", &id));
                id
            }
            Some(_) => {
                errors.push(FieldError::new("customer_id", "must be a string"));
                String::new()
            }
        };

        let customer_type = match attributes.get("type") {
            None | Some(Value::Null) => "customer".to_owned(),
            Some(Value::String(t)) if CUSTOMER_TYPES.contains(&t.as_str()) => t.clone(),
            Some(_) => {
                errors.push(FieldError::new("type", "must be one of customer, company, contact, employee, other"));
                String::new()
            }
        };
        attributes.insert("type".to_owned(), Value::String(customer_type.clone()));

        let email_key = match attributes.get("email") {
            None | Some(Value::Null) => None,
            Some(Value::String(email)) if email.contains('@') && email.len() <= 254 => Some(email.to_lowercase()),
            Some(_) => {
                errors.push(FieldError::new("email", "must be an e-mail address"));
                None
            }
        };

        let phone_number = match attributes.get("phone_number") {
            None | Some(Value::Null) => None,
            Some(Value::String(phone)) if is_e164(phone) => Some(phone.clone()),
            Some(_) => {
                errors.push(FieldError::new("phone_number", "must match ^\\+?[1-9]\\d{1,14}$"));
                None
            }
        };

        // Free-text fields tokenvault documents as strings: anything else is refused rather than
        // stored and echoed back in a shape clients do not expect.
        for field in ["first_name", "last_name", "status"] {
            if let Some(value) = attributes.get(field) {
                if !value.is_string() && !value.is_null() {
                    errors.push(FieldError::new(field, "must be a string"));
                }
            }
        }

        if let Some(metadata) = attributes.get("metadata") {
            if !metadata.is_object() && !metadata.is_null() {
                errors.push(FieldError::new("metadata", "must be an object"));
            }
        }

        errors.finish(|| NewCustomer {
            id: Uuid::new_v4(),
            customer_id,
            customer_type,
            email_key,
            phone_number,
            attributes,
            created_by: created_by.to_owned(),
            created_at: now,
        })
    }
}

fn is_e164(phone: &str) -> bool {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    let bytes = digits.as_bytes();
    (2..=15).contains(&bytes.len()) && bytes[0] != b'0' && bytes.iter().all(u8::is_ascii_digit)
}

/// Filters of `GET …/customers/users`. `token` finds the customer that owns a live token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerFilter {
    pub token: Option<(String, String)>,
    /// Lower-cased e-mail prefix.
    pub email_prefix: Option<String>,
    pub phone_number_prefix: Option<String>,
    /// `None` means every type but `contact`; `Some("any")` is not used, callers pass `None`
    /// with `all_types` instead.
    pub customer_type: Option<String>,
    pub all_types: bool,
    pub include_deleted: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn keeps_unknown_fields_and_defaults_the_type() {
        let customer = NewCustomer::from_body(
            body(json!({"customer_id": "c1", "first_name": "Ada", "email": "Ada@Example.com", "created_by": "forged"})),
            "client",
            Timestamp::from_millis(0),
        )
        .unwrap();
        assert_eq!(customer.customer_id, "c1");
        assert_eq!(customer.customer_type, "customer");
        assert_eq!(customer.email_key.as_deref(), Some("ada@example.com"));
        assert_eq!(
            Value::Object(customer.attributes),
            json!({"first_name": "Ada", "email": "Ada@Example.com", "type": "customer"})
        );
    }

    #[test]
    fn reports_every_bad_field() {
        let err = NewCustomer::from_body(
            body(json!({"customer_id": " c1", "type": "robot", "phone_number": "12", "first_name": [{"x": false}], "status": 1, "metadata": 3})),
            "client",
            Timestamp::from_millis(0),
        )
        .unwrap_err();
        let fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["customer_id", "type", "first_name", "status", "metadata"]);
    }

    #[test]
    fn generates_a_customer_id_when_absent() {
        let customer = NewCustomer::from_body(Map::new(), "client", Timestamp::from_millis(0)).unwrap();
        assert!(Uuid::parse_str(&customer.customer_id).is_ok());
    }
}
