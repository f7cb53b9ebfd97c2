use serde::Serialize;

/// One rejected input field, named so a client can fix exactly that field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A rejected field.")]
pub struct FieldError {
    /// The field, as a path into the request: `limit`, `token.value`, `links[0].href`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Every field a request got wrong, collected so one round trip reports them all.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{}", summary(.errors))]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

fn summary(errors: &[FieldError]) -> String {
    match errors {
        [] => "invalid request".to_owned(),
        [one] => format!("{}: {}", one.field, one.message),
        [first, rest @ ..] => format!("{}: {} (and {} more)", first.field, first.message, rest.len()),
    }
}

impl ValidationError {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { errors: vec![FieldError::new(field, message)] }
    }

    pub fn push(&mut self, error: FieldError) {
        self.errors.push(error);
    }

    /// Records the error of `result`, if any, and passes the value on.
    pub fn check<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.errors.push(error);
                None
            }
        }
    }

    /// Ends a validation pass: `Ok(value)` when no field was rejected.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, ValidationError> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(self)
        }
    }
}

impl From<FieldError> for ValidationError {
    fn from(error: FieldError) -> Self {
        Self { errors: vec![error] }
    }
}

/// The ids clients define themselves (`customer_id`, `token_id`): 1–255 characters, no leading
/// or trailing whitespace, as the seeds require.
pub fn identifier(field: &str, value: &str) -> Result<(), FieldError> {
    let length = value.chars().count();
    if length == 0 || length > 255 {
        return Err(FieldError::new(field, "length must be between 1 and 255"));
    }
    if value.trim() != value {
        return Err(FieldError::new(field, "must not have leading or trailing spaces"));
    }
    if value.chars().any(char::is_control) {
        return Err(FieldError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// A required string of at least one character (the seeds' `minLength: 1`).
pub fn non_empty(field: &str, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        Err(FieldError::new(field, "must have at least 1 character"))
    } else {
        Ok(())
    }
}

/// A string with an upper bound on its length in characters.
pub fn max_chars(field: &str, value: &str, max: usize) -> Result<(), FieldError> {
    if value.chars().count() > max {
        Err(FieldError::new(field, format!("must be at most {max} characters")))
    } else {
        Ok(())
    }
}

/// The unique value a create clashed with: a customer's `customer_id`, `email` or
/// `phone_number`, a customer's live `token_id`, or a live token `type`+`value` of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    CustomerId,
    Email,
    PhoneNumber,
    TokenId,
    TokenTypeValue,
}

impl Duplicate {
    /// The error `code` naming the duplicate.
    pub fn code(self) -> &'static str {
        match self {
            Self::CustomerId => "DUPLICATE_CUSTOMER_ID",
            Self::Email => "DUPLICATE_EMAIL",
            Self::PhoneNumber => "DUPLICATE_PHONE_NUMBER",
            Self::TokenId => "DUPLICATE_TOKEN_ID",
            Self::TokenTypeValue => "DUPLICATE_TOKEN",
        }
    }

    /// The request fields that hold the duplicate.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::CustomerId => &["customer_id"],
            Self::Email => &["email"],
            Self::PhoneNumber => &["phone_number"],
            Self::TokenId => &["token_id"],
            Self::TokenTypeValue => &["type", "value"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_follow_the_seed_rules() {
        assert!(identifier("customer_id", "c-1").is_ok());
        assert!(identifier("customer_id", &"x".repeat(255)).is_ok());
        assert!(identifier("customer_id", &"é".repeat(255)).is_ok());
        assert!(identifier("customer_id", "").is_err());
        assert!(identifier("customer_id", &"x".repeat(256)).is_err());
        assert!(identifier("customer_id", " c").is_err());
        assert!(identifier("customer_id", "c ").is_err());
    }

    #[test]
    fn summary_names_the_first_field() {
        let mut errors = ValidationError::default();
        errors.push(FieldError::new("type", "must have at least 1 character"));
        errors.push(FieldError::new("value", "must have at least 1 character"));
        assert_eq!(errors.to_string(), "type: must have at least 1 character (and 1 more)");
    }
}
