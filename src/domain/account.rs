use std::fmt;

use serde::Serialize;

use super::validation::FieldError;

/// A Dintero account id (`P` + 8 digits for production, `T` + 8 digits for test). Parsing once
/// at the edge means every layer below can trust it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// Accepts exactly `^[PT]{1}\d{8}$`, the pattern of the seeds' `aid`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldError> {
        let bytes = raw.as_bytes();
        let valid = bytes.len() == 9 && matches!(bytes[0], b'P' | b'T') && bytes[1..].iter().all(u8::is_ascii_digit);
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldError::new(field, "must match ^[PT]{1}\\d{8}$"))
        }
    }

    /// Test accounts (`T…`) and production accounts (`P…`) are separate worlds.
    pub fn is_test(&self) -> bool {
        self.0.starts_with('T')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// On the wire: a string of Dintero's pattern, referenced as the `AccountId` schema.
impl utoipa::PartialSchema for AccountId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An id that uniquely identifies the account (`T` for test, `P` for production)."))
            .pattern(Some(r"^[PT]{1}\d{8}$"))
            .min_length(Some(9))
            .max_length(Some(9))
            .examples([serde_json::json!("P12345678")])
            .into()
    }
}

impl utoipa::ToSchema for AccountId {}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_documented_pattern() {
        assert!(AccountId::parse("aid", "P12345678").is_ok());
        assert!(AccountId::parse("aid", "T00000001").unwrap().is_test());
        for bad in ["", "P1234567", "P123456789", "X12345678", "p12345678", "T1234567a", "T１2345678"] {
            assert!(AccountId::parse("aid", bad).is_err(), "{bad:?} accepted");
        }
    }
}
