use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::customer_token::NewCustomerToken;
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
    /// See [`name_key`].
    pub name_key: Option<String>,
    pub attributes: Map<String, Value>,
    pub created_by: String,
    pub created_at: Timestamp,
    /// Tokens the account's `auto_tokens` settings derive from the e-mail and phone number,
    /// stored in the customer's transaction (filled in by the service, which seals values).
    pub auto_tokens: Vec<NewCustomerToken>,
}

/// Fields of a customer body no client may set: the server's own, and credentials tokenvault
/// does not keep (`password`, `pin`).
const READ_ONLY: [&str; 8] =
    ["id", "created_at", "created_by", "updated_at", "deleted_at", "deleted_by", "password", "pin"];

impl NewCustomer {
    /// Validates a create body. Unknown fields are kept verbatim; read-only fields a client sent
    /// are dropped so they cannot be forged.
    pub fn from_body(body: Map<String, Value>, created_by: &str, now: Timestamp) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let mut attributes = body;
        for read_only in READ_ONLY {
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

        if matches!(attributes.get("type"), None | Some(Value::Null)) {
            attributes.insert("type".to_owned(), Value::String("customer".to_owned()));
        }
        check_fields(&attributes, &mut errors);
        let keys = CustomerKeys::of(&attributes);

        errors.finish(|| NewCustomer {
            id: Uuid::new_v4(),
            customer_id,
            customer_type: keys.customer_type,
            email_key: keys.email_key,
            phone_number: keys.phone_number,
            name_key: keys.name_key,
            attributes,
            created_by: created_by.to_owned(),
            created_at: now,
            auto_tokens: Vec::new(),
        })
    }
}

/// The columns derived from a customer's fields (its type, unique keys and search key), for a
/// body [`check_fields`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerKeys {
    pub customer_type: String,
    pub email_key: Option<String>,
    pub phone_number: Option<String>,
    pub name_key: Option<String>,
}

impl CustomerKeys {
    pub fn of(attributes: &Map<String, Value>) -> Self {
        Self {
            customer_type: attributes.get("type").and_then(Value::as_str).unwrap_or("customer").to_owned(),
            email_key: attributes.get("email").and_then(Value::as_str).map(str::to_lowercase),
            phone_number: attributes.get("phone_number").and_then(Value::as_str).map(str::to_owned),
            name_key: name_key(attributes),
        }
    }
}

/// Checks the fields tokenvault interprets, wherever they are present (a create's whole body or
/// an update's changes).
fn check_fields(attributes: &Map<String, Value>, errors: &mut ValidationError) {
    match attributes.get("type") {
        None => {}
        Some(Value::String(t)) if CUSTOMER_TYPES.contains(&t.as_str()) => {}
        Some(_) => errors.push(FieldError::new("type", "must be one of customer, company, contact, employee, other")),
    }
    match attributes.get("email") {
        None | Some(Value::Null) => {}
        Some(Value::String(email)) if email.contains('@') && email.len() <= 254 => {}
        Some(_) => errors.push(FieldError::new("email", "must be an e-mail address")),
    }
    match attributes.get("phone_number") {
        None | Some(Value::Null) => {}
        Some(Value::String(phone)) if is_e164(phone) => {}
        Some(_) => errors.push(FieldError::new("phone_number", "must match ^\\+?[1-9]\\d{1,14}$")),
    }
    // Free-text fields tokenvault documents as strings: anything else is refused rather than
    // stored and echoed back in a shape clients do not expect.
    for field in ["first_name", "last_name", "status"] {
        if let Some(value) = attributes.get(field) {
            if !value.is_string() && !value.is_null() {
                errors.push(FieldError::new(field, "must be a string"));
            }
        }
    }
    // BasicUser's `attributes` ("Custom attributes") is an object: `attributes_keys[]` looks in it.
    for field in ["metadata", "attributes"] {
        if let Some(value) = attributes.get(field) {
            if !value.is_object() && !value.is_null() {
                errors.push(FieldError::new(field, "must be an object"));
            }
        }
    }
}

/// A validated `PUT …/customers/users/{customer_id}` body (aid_customers_cid_put, BasicUser):
/// "properties not included in the body will remain unchanged".
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerUpdate {
    /// The fields sent, read-only ones dropped; `null` removes a field.
    pub changes: Map<String, Value>,
    pub updated_by: String,
    pub updated_at: Timestamp,
    /// Auto tokens of the changed e-mail or phone number (see [`NewCustomer::auto_tokens`]).
    pub auto_tokens: Vec<NewCustomerToken>,
    /// The `token_id`s of the customer's auto tokens the change replaces (those of a changed
    /// e-mail or phone number), deleted in the update's transaction.
    pub retired_auto_tokens: Vec<String>,
}

impl CustomerUpdate {
    /// Validates an update body. `customer_id` may only repeat the path's (it changes through
    /// `change_customer_id`); `type` cannot be removed.
    pub fn from_body(
        body: Map<String, Value>,
        customer_id: &str,
        updated_by: &str,
        now: Timestamp,
    ) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let mut changes = body;
        for read_only in READ_ONLY {
            changes.shift_remove(read_only);
        }
        match changes.shift_remove("customer_id") {
            None => {}
            Some(Value::String(id)) if id == customer_id => {}
            Some(_) => errors.push(FieldError::new(
                "customer_id",
                "cannot be changed here; use POST …/customers/users/{customer_id}/change_customer_id",
            )),
        }
        // `type` is required in CustomerResponse: `null` is refused (check_fields) like a bad type.
        check_fields(&changes, &mut errors);
        errors.finish(|| CustomerUpdate {
            changes,
            updated_by: updated_by.to_owned(),
            updated_at: now,
            auto_tokens: Vec::new(),
            retired_auto_tokens: Vec::new(),
        })
    }

    /// The new value of a field the update sets (`Some(None)` when it removes it), `None` when
    /// the update leaves it alone.
    pub fn changed_text(&self, field: &str) -> Option<Option<&str>> {
        self.changes.get(field).map(Value::as_str)
    }

    /// The customer's fields after the update: changed fields replace theirs in place, new ones
    /// follow, `null` removes one. `metadata` merges key by key (a `null` key is removed, as
    /// Dintero's CustomerData says; `metadata: null` clears it).
    pub fn apply(&self, current: &Map<String, Value>) -> Map<String, Value> {
        let mut merged = current.clone();
        for (field, value) in &self.changes {
            match (field.as_str(), value) {
                (_, Value::Null) => {
                    merged.shift_remove(field);
                }
                ("metadata", Value::Object(changes)) => {
                    let mut metadata = match merged.get("metadata") {
                        Some(Value::Object(old)) => old.clone(),
                        _ => Map::new(),
                    };
                    for (key, value) in changes {
                        if value.is_null() {
                            metadata.shift_remove(key);
                        } else {
                            metadata.insert(key.clone(), value.clone());
                        }
                    }
                    merged.insert(field.clone(), Value::Object(metadata));
                }
                _ => {
                    merged.insert(field.clone(), value.clone());
                }
            }
        }
        merged
    }
}

/// The `metadata` entry aid_customers_cid_change_customer_id_post adds at every change ("A new
/// metadata property `dintero_change_customer_id_{timestamp}.{hash}` will be added everytime the
/// customer_id is changed", with `created_at`, `created_by`, `old` and `new`). Dintero does not
/// say how it writes the timestamp or the hash: tokenvault uses Unix milliseconds and the first
/// 8 hex digits of SHA-256 over `old`, a newline and `new`.
pub fn customer_id_change_entry(old: &str, new: &str, actor: &str, at: Timestamp) -> (String, Value) {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{old}\n{new}").as_bytes());
    let hash: String = digest.iter().take(4).map(|byte| format!("{byte:02x}")).collect();
    let key = format!("dintero_change_customer_id_{}.{hash}", at.millis());
    let entry = serde_json::json!({"created_at": at.to_rfc3339(), "created_by": actor, "old": old, "new": new});
    (key, entry)
}

/// The customer's fields with the change entry added to `metadata` (created when absent).
pub fn with_customer_id_change(attributes: &Map<String, Value>, entry: (String, Value)) -> Map<String, Value> {
    let mut attributes = attributes.clone();
    let mut metadata = match attributes.get("metadata") {
        Some(Value::Object(metadata)) => metadata.clone(),
        _ => Map::new(),
    };
    metadata.insert(entry.0, entry.1);
    attributes.insert("metadata".to_owned(), Value::Object(metadata));
    attributes
}

fn is_e164(phone: &str) -> bool {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    let bytes = digits.as_bytes();
    (2..=15).contains(&bytes.len()) && bytes[0] != b'0' && bytes.iter().all(u8::is_ascii_digit)
}

/// Filters of `GET …/customers/users` (aid_customers_get), all combined with AND. `token` finds
/// the customer that owns a live token.
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
    /// `search`: a prefix of the customer_id, e-mail, phone number or name.
    pub search: Option<CustomerSearch>,
    /// `since_datetime`: customers added or modified at or after it, listed in order of
    /// `updated_at` (Dintero pages such a list by moving `since_datetime` forward).
    pub since: Option<Timestamp>,
    /// `tag_id`: tokenvault keeps no customer tags (Dintero's tag operations are not
    /// implemented), so a tag filter matches no customer rather than being ignored.
    pub tag_id: Option<String>,
    /// `attributes_keys[]` paired by position with `attributes_values[]`: each key must be in
    /// the customer's `attributes`, with the paired value when there is one.
    pub attributes: Vec<AttributeFilter>,
}

/// One `search` term, in the forms each field is compared in: customer ids and phone numbers
/// as given, e-mails and names lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerSearch {
    pub exact: String,
    pub lower: String,
}

impl CustomerSearch {
    pub fn new(term: &str) -> Self {
        Self { exact: term.to_owned(), lower: term.to_lowercase() }
    }
}

/// An `attributes_keys[]` entry with its `attributes_values[]` partner, if any. A value matches
/// a string attribute equal to it, a number or boolean whose JSON text equals it, or an array
/// holding such an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeFilter {
    pub key: String,
    pub value: Option<String>,
}

/// What `search` compares names with: `first_name` and `last_name` joined by a space,
/// lower-cased (Unicode), or `None` without either. Kept beside the customer so that the search
/// needs no JSON parsing per row.
pub fn name_key(attributes: &Map<String, Value>) -> Option<String> {
    let parts: Vec<&str> = ["first_name", "last_name"]
        .iter()
        .filter_map(|field| attributes.get(*field).and_then(Value::as_str))
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join(" ").to_lowercase())
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
