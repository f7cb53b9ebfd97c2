use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::validation::{self, FieldError, ValidationError};
use super::{AccountId, Timestamp};

/// A card token's lifecycle state (seed 004's enum). `DELETED` is terminal and only reached
/// through DELETE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[schema(description = "The card token's state. `DELETED` is reached only through DELETE and is final.")]
pub enum CardTokenStatus {
    Active,
    Inactive,
    Suspended,
    Cancelled,
    Deleted,
}

impl CardTokenStatus {
    pub const ALL: [CardTokenStatus; 5] =
        [Self::Active, Self::Inactive, Self::Suspended, Self::Cancelled, Self::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Inactive => "INACTIVE",
            Self::Suspended => "SUSPENDED",
            Self::Cancelled => "CANCELLED",
            Self::Deleted => "DELETED",
        }
    }

    /// `PUT …/status` moves freely between the four live states; nothing leaves `DELETED` and
    /// nothing but DELETE enters it.
    pub fn can_become(self, next: CardTokenStatus) -> bool {
        self != Self::Deleted && next != Self::Deleted
    }
}

impl FromStr for CardTokenStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|status| status.as_str() == s).ok_or(())
    }
}

impl fmt::Display for CardTokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The card schemes seed 004 lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(description = "The card's scheme.")]
pub enum CardBrand {
    Visa,
    Mastercard,
}

impl CardBrand {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visa => "visa",
            Self::Mastercard => "mastercard",
        }
    }
}

impl FromStr for CardBrand {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "visa" => Ok(Self::Visa),
            "mastercard" => Ok(Self::Mastercard),
            _ => Err(()),
        }
    }
}

/// Who asked for a card token's deletion (seed 001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
#[schema(description = "Entity initiating the token deletion.")]
pub enum DeleteRequestor {
    Cardholder,
    #[default]
    Merchant,
}

impl DeleteRequestor {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cardholder => "CARDHOLDER",
            Self::Merchant => "MERCHANT",
        }
    }
}

/// A link attached to a card token, such as its card art.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A link attached to a card token, such as its card art.")]
pub struct CardTokenLink {
    #[schema(min_length = 1, max_length = 2048)]
    pub href: String,
    #[schema(min_length = 1, max_length = 2048, example = "digital_card_art")]
    pub rel: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, min_length = 1, max_length = 2048, example = "image/png")]
    pub mime_type: Option<String>,
}

/// A stored card token (seed 004's `CardToken`), in the seeds' field order. `token` is the
/// PSP's secret reference: present here in clear only between the cipher and the wire.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(description = "Card Token")]
pub struct CardToken {
    /// The card token's id: the `payment_token_id` used in paths.
    pub id: String,
    #[serde(rename = "type")]
    #[schema(schema_with = payment_token_type)]
    pub token_type: &'static str,
    pub status: CardTokenStatus,
    pub card_brand: CardBrand,
    pub account_id: AccountId,
    #[schema(example = "dintero_psp.creditcard")]
    pub payment_product_type: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
    /// The PSP's token (stored encrypted). Absent once the card token is deleted: a delete
    /// erases it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, example = "476173******0416")]
    pub masked_pan: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = r"^\d{2}/\d{4}$", example = "09/2030")]
    pub pan_expiry_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, pattern = r"^\d{2}/\d{4}$", example = "09/2030")]
    pub token_expiry_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_items = 20)]
    pub links: Option<Vec<CardTokenLink>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub customer_id: Option<String>,
    /// Reference to the merchant entity for which the token is dedicated. Merchant-dedicated
    /// tokens are uniquely created per merchant_relationship_id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub relationship_id: Option<String>,
    /// Reference to the transaction where the token was created
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub transaction_id: Option<String>,
    /// External references to migrated card tokens
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, max_items = 20)]
    pub external_token_references: Option<Vec<String>>,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub deleted_by: Option<String>,
}

/// `type` on the wire: seed 004's one value, and the recurrence tokens payment-token sessions
/// create (Dintero's card-token paths take a `payment_token_id` or a `recurrence_token_id`).
fn payment_token_type() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([PAYMENT_TOKEN_TYPE, RECURRENCE_TOKEN_TYPE]))
        .build()
}

/// The card token type seed 004 allows, and the only one a create or an import takes.
pub const PAYMENT_TOKEN_TYPE: &str = "payment_token";
/// A recurrence token (for charges without the payer), made only by payment-token sessions of
/// product types whose token provider offers one.
pub const RECURRENCE_TOKEN_TYPE: &str = "recurrence_token";

/// The stored type's constant; anything but a recurrence token reads as a payment token.
pub fn token_type_from_str(raw: &str) -> &'static str {
    if raw == RECURRENCE_TOKEN_TYPE {
        RECURRENCE_TOKEN_TYPE
    } else {
        PAYMENT_TOKEN_TYPE
    }
}

const CREATE_FIELDS: [&str; 14] = [
    "id",
    "type",
    "status",
    "card_brand",
    "account_id",
    "payment_product_type",
    "token",
    "masked_pan",
    "pan_expiry_date",
    "token_expiry_date",
    "links",
    "customer_id",
    "relationship_id",
    "transaction_id",
];

impl CardToken {
    /// Validates a create body (`POST /v1/card-tokens` or one import line) and builds the new,
    /// `ACTIVE` token for `account`. Read-only and unknown fields are refused rather than
    /// silently dropped, so a migration cannot lose data unnoticed.
    pub fn from_create_body(
        body: &Map<String, Value>,
        account: &AccountId,
        created_by: &str,
        now: Timestamp,
    ) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        for key in body.keys() {
            if !CREATE_FIELDS.contains(&key.as_str()) && key != "external_token_references" {
                errors.push(FieldError::new(key.clone(), "is not a field that can be set"));
            }
        }

        let id = optional_string(&mut errors, body, "id", validation::identifier)
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        if let Some(token_type) = optional_string(&mut errors, body, "type", validation::non_empty) {
            if token_type != PAYMENT_TOKEN_TYPE {
                errors.push(FieldError::new("type", "must be payment_token"));
            }
        }
        if let Some(status) = optional_string(&mut errors, body, "status", validation::non_empty) {
            if status != CardTokenStatus::Active.as_str() {
                errors.push(FieldError::new(
                    "status",
                    "new card tokens are ACTIVE; change it with PUT /v1/card-tokens/{token_id}/status",
                ));
            }
        }
        if let Some(account_id) = optional_string(&mut errors, body, "account_id", validation::non_empty) {
            if account_id != account.as_str() {
                errors.push(FieldError::new("account_id", "must be the account of the access token"));
            }
        }
        let card_brand = match body.get("card_brand") {
            Some(Value::String(brand)) => match brand.parse() {
                Ok(brand) => Some(brand),
                Err(()) => {
                    errors.push(FieldError::new("card_brand", "must be one of visa, mastercard"));
                    None
                }
            },
            None | Some(Value::Null) => {
                errors.push(FieldError::new("card_brand", "is required"));
                None
            }
            Some(_) => {
                errors.push(FieldError::new("card_brand", "must be one of visa, mastercard"));
                None
            }
        };
        let payment_product_type = match body.get("payment_product_type") {
            None | Some(Value::Null) => {
                errors.push(FieldError::new("payment_product_type", "is required"));
                None
            }
            _ => optional_string(&mut errors, body, "payment_product_type", |f, v| {
                validation::non_empty(f, v)?;
                validation::max_chars(f, v, 255)
            }),
        };
        let token = optional_string(&mut errors, body, "token", |f, v| {
            validation::non_empty(f, v)?;
            validation::max_chars(f, v, 1024)
        });
        let masked_pan = optional_string(&mut errors, body, "masked_pan", masked_pan);
        let pan_expiry_date = optional_string(&mut errors, body, "pan_expiry_date", expiry_date);
        let token_expiry_date = optional_string(&mut errors, body, "token_expiry_date", expiry_date);
        let customer_id = optional_string(&mut errors, body, "customer_id", validation::identifier);
        let relationship_id = optional_string(&mut errors, body, "relationship_id", validation::identifier);
        let transaction_id = optional_string(&mut errors, body, "transaction_id", validation::identifier);
        let links = links(&mut errors, body.get("links"));
        let external_token_references = external_references(&mut errors, body.get("external_token_references"));

        errors.finish(|| CardToken {
            id,
            token_type: PAYMENT_TOKEN_TYPE,
            status: CardTokenStatus::Active,
            card_brand: card_brand.unwrap_or(CardBrand::Visa),
            account_id: account.clone(),
            payment_product_type: payment_product_type.unwrap_or_default(),
            created_at: now,
            updated_at: now,
            token,
            masked_pan,
            pan_expiry_date,
            token_expiry_date,
            links,
            customer_id,
            relationship_id,
            transaction_id,
            external_token_references,
            created_by: created_by.to_owned(),
            deleted_at: None,
            deleted_by: None,
        })
    }
}

fn optional_string(
    errors: &mut ValidationError,
    body: &Map<String, Value>,
    field: &str,
    check: impl Fn(&str, &str) -> Result<(), FieldError>,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => errors.check(check(field, s)).map(|()| s.clone()),
        Some(_) => {
            errors.push(FieldError::new(field, "must be a string"));
            None
        }
    }
}

/// `476173******0416`: leading digits, a run of `*`, the last four digits; 12–19 characters.
fn masked_pan(field: &str, value: &str) -> Result<(), FieldError> {
    let bytes = value.as_bytes();
    let leading = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let stars = bytes[leading..].iter().take_while(|b| **b == b'*').count();
    let trailing = &bytes[leading + stars..];
    let valid = (12..=19).contains(&bytes.len())
        && leading <= 8
        && stars >= 1
        && trailing.len() == 4
        && trailing.iter().all(u8::is_ascii_digit);
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(field, "must be a masked PAN such as 476173******0416"))
    }
}

/// `MM/YYYY` with a real month.
fn expiry_date(field: &str, value: &str) -> Result<(), FieldError> {
    let bytes = value.as_bytes();
    let valid = bytes.len() == 7
        && bytes[2] == b'/'
        && bytes[..2].iter().chain(&bytes[3..]).all(u8::is_ascii_digit)
        && matches!(value[..2].parse::<u8>(), Ok(1..=12));
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(field, "must be a date of the form MM/YYYY"))
    }
}

fn links(errors: &mut ValidationError, value: Option<&Value>) -> Option<Vec<CardTokenLink>> {
    let items = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) if items.len() <= 20 => items,
        Some(_) => {
            errors.push(FieldError::new("links", "must be an array of at most 20 links"));
            return None;
        }
    };
    let mut links = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::Object(link) = item else {
            errors.push(FieldError::new(format!("links[{index}]"), "must be an object with href and rel"));
            continue;
        };
        let field = |name: &str| format!("links[{index}].{name}");
        let mut text = |name: &str, required: bool| match link.get(name) {
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 2048 => Some(s.clone()),
            None | Some(Value::Null) if !required => None,
            None | Some(Value::Null) => {
                errors.push(FieldError::new(field(name), "is required"));
                None
            }
            Some(_) => {
                errors.push(FieldError::new(field(name), "must be a string of 1 to 2048 characters"));
                None
            }
        };
        let href = text("href", true);
        let rel = text("rel", true);
        let mime_type = text("mime_type", false);
        for key in link.keys().filter(|k| !["href", "rel", "mime_type"].contains(&k.as_str())) {
            errors.push(FieldError::new(field(key), "is not a field of a link"));
        }
        if let (Some(href), Some(rel)) = (href, rel) {
            links.push(CardTokenLink { href, rel, mime_type });
        }
    }
    Some(links)
}

fn external_references(errors: &mut ValidationError, value: Option<&Value>) -> Option<Vec<String>> {
    let items = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) if items.len() <= 20 => items,
        Some(_) => {
            errors.push(FieldError::new("external_token_references", "must be an array of at most 20 strings"));
            return None;
        }
    };
    let mut references = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let field = format!("external_token_references[{index}]");
        match item {
            Value::String(s) => {
                if errors.check(validation::identifier(&field, s)).is_some() {
                    references.push(s.clone());
                }
            }
            _ => errors.push(FieldError::new(field, "must be a string")),
        }
    }
    Some(references)
}

/// Filters of `GET /v1/card-tokens` (seed 004). Deleted tokens are left out unless
/// `include_deleted` is set or `DELETED` is asked for by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CardTokenFilter {
    pub customer_id: Option<String>,
    pub relationship_id: Option<String>,
    pub statuses: Vec<CardTokenStatus>,
    pub include_deleted: bool,
}

impl CardTokenFilter {
    /// Whether tokens in the `DELETED` state belong in the result.
    pub fn shows_deleted(&self) -> bool {
        self.include_deleted || self.statuses.contains(&CardTokenStatus::Deleted)
    }
}

/// A stored card token: its fields (with `token` left `None`) and the sealed secret.
#[derive(Debug, Clone, PartialEq)]
pub struct CardTokenRecord {
    pub card: CardToken,
    pub sealed_token: Option<Vec<u8>>,
}

/// Why and by whom a card token is deleted (seed 001), kept in the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardTokenDeletion {
    pub actor: String,
    pub reason: Option<String>,
    pub requestor: DeleteRequestor,
    pub at: Timestamp,
}

impl CardTokenDeletion {
    /// Seed 001: the optional delete body, `reason` (at most 128 characters) and `requestor`
    /// (`CARDHOLDER` or `MERCHANT`); an absent body is an empty one.
    pub fn from_body(body: &Map<String, Value>, actor: &str, at: Timestamp) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let reason = match body.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(reason)) => {
                errors.check(validation::max_chars("reason", reason, 128)).map(|()| reason.clone())
            }
            Some(_) => {
                errors.push(FieldError::new("reason", "must be a string"));
                None
            }
        };
        let requestor = match body.get("requestor") {
            None | Some(Value::Null) => DeleteRequestor::default(),
            Some(Value::String(r)) if r == "CARDHOLDER" => DeleteRequestor::Cardholder,
            Some(Value::String(r)) if r == "MERCHANT" => DeleteRequestor::Merchant,
            Some(_) => {
                errors.push(FieldError::new("requestor", "must be CARDHOLDER or MERCHANT"));
                DeleteRequestor::default()
            }
        };
        errors.finish(|| Self { actor: actor.to_owned(), reason, requestor, at })
    }
}

impl CardTokenStatus {
    /// The body of `PUT …/{token_id}/status` (tokenvault extension): `{"status": …}`.
    pub fn from_status_body(body: &Map<String, Value>) -> Result<Self, ValidationError> {
        match body.get("status") {
            Some(Value::String(raw)) => raw.parse::<CardTokenStatus>().map_err(|()| {
                ValidationError::single("status", "must be one of ACTIVE, INACTIVE, SUSPENDED, CANCELLED")
            }),
            None | Some(Value::Null) => Err(ValidationError::single("status", "is required")),
            Some(_) => Err(ValidationError::single("status", "must be a string")),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn account() -> AccountId {
        AccountId::parse("aid", "T12345678").unwrap()
    }

    #[test]
    fn builds_an_active_token_from_a_full_body() {
        let body = json!({
            "card_brand": "visa", "payment_product_type": "dintero_psp.creditcard", "token": "secret",
            "masked_pan": "476173******0416", "pan_expiry_date": "09/2030", "token_expiry_date": "09/2030",
            "links": [{"href": "https://x/card.png", "rel": "digital_card_art", "mime_type": "image/png"}],
            "customer_id": "c1", "relationship_id": "r1", "transaction_id": "t1",
            "external_token_references": ["old-1"]
        });
        let token =
            CardToken::from_create_body(body.as_object().unwrap(), &account(), "client", Timestamp::from_millis(0))
                .unwrap();
        assert_eq!(token.status, CardTokenStatus::Active);
        assert_eq!(token.card_brand, CardBrand::Visa);
        assert!(Uuid::parse_str(&token.id).is_ok());
    }

    #[test]
    fn names_every_bad_field() {
        let body = json!({
            "card_brand": "amex", "masked_pan": "4761730416", "pan_expiry_date": "13/2030",
            "token_expiry_date": "9/2030", "links": [{"href": ""}], "external_token_references": [1],
            "status": "SUSPENDED", "account_id": "P12345678", "colour": "red"
        });
        let err =
            CardToken::from_create_body(body.as_object().unwrap(), &account(), "client", Timestamp::from_millis(0))
                .unwrap_err();
        let mut fields: Vec<_> = err.errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "account_id",
                "card_brand",
                "colour",
                "external_token_references[0]",
                "links[0].href",
                "links[0].rel",
                "masked_pan",
                "pan_expiry_date",
                "payment_product_type",
                "status",
                "token_expiry_date"
            ]
        );
    }

    #[test]
    fn status_transitions() {
        use CardTokenStatus::*;
        assert!(Active.can_become(Suspended));
        assert!(Cancelled.can_become(Active));
        assert!(!Deleted.can_become(Active));
        assert!(!Active.can_become(Deleted));
    }
}
