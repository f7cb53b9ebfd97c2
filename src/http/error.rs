//! The one mapping from every error of every layer to Dintero's error body:
//! `{"error": {"code", "message", "errors": [...]}}` with `application/json; charset=utf-8`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::AuthError;
use crate::domain::{FieldError, ValidationError};
use crate::service::ServiceError;

/// Everything a handler can fail with. Converted to a response exactly once, here.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Service(ServiceError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("expected a JSON body with content-type: application/json")]
    UnsupportedMediaType,
    #[error("the request took too long")]
    Timeout,
    #[error("the request body did not arrive in time")]
    BodyReadTimeout,
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    #[error("too many requests; retry in {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    #[error("this Idempotency-Key was already used with a different request (method, path, query or body)")]
    IdempotencyMismatch,
    #[error("a request with this Idempotency-Key is in progress; retry shortly")]
    IdempotencyInProgress,
    /// The server was started sealed and its master key's shares are not all entered yet.
    #[error("the server is sealed: its master key's shares are being entered (tokenvault unseal); retry once it is unsealed")]
    Sealed,
    /// A Dintero operation tokenvault does not implement (501), with why.
    #[error("{0}")]
    NotImplemented(String),
}

/// A use case's invalid input is a validation error like any other.
impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(error) => Self::Validation(error),
            error => Self::Service(error),
        }
    }
}

/// Authentication that failed in the database fails like any use case there (503 when the
/// database is away).
impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Store(error) => Self::Service(error.into()),
            error => Self::Auth(error),
        }
    }
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(ValidationError::single(field, message))
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Auth(error) => match error {
                AuthError::MissingToken | AuthError::InvalidToken | AuthError::InvalidClient => {
                    StatusCode::UNAUTHORIZED
                }
                AuthError::UnsupportedGrantType | AuthError::InvalidField(_) | AuthError::UnknownScope(_) => {
                    StatusCode::BAD_REQUEST
                }
                AuthError::AccountMismatch(_) | AuthError::WrongAccount(_) | AuthError::MissingScope(_) => {
                    StatusCode::FORBIDDEN
                }
                AuthError::Signing(_) | AuthError::SealedKey(_) => StatusCode::INTERNAL_SERVER_ERROR,
                AuthError::Busy | AuthError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            Self::Service(error) => match error {
                // aid_customers_post: "400 Bad request - missing required fields or duplicate field
                // detected".
                ServiceError::Invalid(_) | ServiceError::UnknownCursor | ServiceError::Duplicate(..) => {
                    StatusCode::BAD_REQUEST
                }
                ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
                ServiceError::Conflict(_) => StatusCode::CONFLICT,
                ServiceError::TestAccountsOnly { .. } => StatusCode::FORBIDDEN,
                ServiceError::DisabledBySettings(_) => StatusCode::METHOD_NOT_ALLOWED,
                ServiceError::Unavailable(_) | ServiceError::Exhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::Key(_) | ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Timeout | Self::Overloaded | Self::Sealed => StatusCode::SERVICE_UNAVAILABLE,
            Self::BodyReadTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::IdempotencyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Self::IdempotencyInProgress => StatusCode::CONFLICT,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Self::Validation(error) => &error.errors,
            Self::Auth(AuthError::InvalidField(field)) => std::slice::from_ref(field),
            _ => &[],
        }
    }
}

/// `Retry-After` when the database is out of space or memory: freeing it takes longer than a
/// passing outage, and clients retrying every second would only add load.
const EXHAUSTED_RETRY_AFTER_SECONDS: u64 = 30;

/// `Retry-After` while sealed: unsealing waits for people to enter shares.
const SEALED_RETRY_AFTER_SECONDS: u64 = 10;

/// Dintero writes its codes as upper-case reason phrases (`"NOT FOUND"`).
fn code(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("ERROR").to_uppercase()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        // 503 and 501 say what happened; other 5xx hide their details (logged instead).
        let told = [StatusCode::SERVICE_UNAVAILABLE, StatusCode::NOT_IMPLEMENTED];
        let message = if status.is_server_error() && !told.contains(&status) {
            tracing::error!(error = %self, "request failed");
            "internal server error".to_owned()
        } else if let Self::Service(ServiceError::Unavailable(detail)) = &self {
            tracing::warn!(%detail, "database unavailable");
            "the database is unavailable; retry shortly".to_owned()
        } else if let Self::Service(ServiceError::Exhausted(detail)) = &self {
            // An operator must act (free disk space, memory): logged as an error.
            tracing::error!(%detail, "the database is out of resources; writes fail until there is room");
            "the database is out of storage space or another resource; retry later".to_owned()
        } else if let Self::Service(ServiceError::Duplicate(duplicate, message)) = &self {
            let errors: Vec<FieldError> =
                duplicate.fields().iter().map(|field| FieldError::new(*field, "is already in use")).collect();
            let body = json!({"error": {"code": duplicate.code(), "message": message, "errors": errors}});
            return super::response::json(status, &body);
        } else if let Self::Service(ServiceError::UnknownCursor) = &self {
            return error_response(
                status,
                "starting_after: does not name an item of this list",
                &[FieldError::new("starting_after", "does not name an item of this list")],
            );
        } else {
            self.to_string()
        };
        let mut response = error_response(status, &message, self.field_errors());
        if let Self::TooManyRequests { retry_after } = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
        } else if let Self::Sealed = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(SEALED_RETRY_AFTER_SECONDS));
        } else if let Self::Service(ServiceError::Exhausted(_)) = self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(EXHAUSTED_RETRY_AFTER_SECONDS));
        } else if status == StatusCode::SERVICE_UNAVAILABLE || matches!(self, Self::IdempotencyInProgress) {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Builds an error body; also used for rejections produced outside handlers.
pub fn error_response(status: StatusCode, message: &str, errors: &[FieldError]) -> Response {
    let body = json!({"error": {"code": code(status), "message": message, "errors": errors}});
    super::response::json(status, &body)
}

/// The same body as text, for answers written below the router (refused connections, parser
/// refusals: see `http::server`).
pub fn error_body(status: StatusCode, message: &str) -> String {
    json!({"error": {"code": code(status), "message": message, "errors": []}}).to_string()
}
