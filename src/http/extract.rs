//! Extractors that turn requests into checked input, failing only with [`ApiError`] so that
//! every rejection is rendered in Dintero's error body.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::request_limits::is_body_read_timeout;
use super::AppState;
use super::BODY_LIMIT_BYTES;
use crate::auth::{AuthError, Caller};
use crate::domain::{FieldError, PageRequest, Timestamp, ValidationError};

/// The authenticated caller of an API operation (`Authorization: Bearer <JWT>`).
impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if let Some(Authenticated(caller)) = parts.extensions.get::<Authenticated>() {
            super::journal::note_caller(&parts.extensions, caller);
            return Ok(caller.clone());
        }
        let app = AppState::from_ref(state);
        let caller = verify_caller(&app, &parts.headers).await?;
        super::journal::note_caller(&parts.extensions, &caller);
        count_call(&app, &caller)?;
        Ok(caller)
    }
}

/// A caller that a layer before the handler (idempotency keys) already verified and counted
/// against the per-client call limit; the [`Caller`] extractor takes it as it is.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

/// Verifies the bearer token (the key ring caches verified tokens).
pub async fn verify_caller(app: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let token = bearer_token(headers).ok_or(AuthError::MissingToken)?;
    let claims = app.keys.verify(token).await?;
    let caller = Caller::from_claims(&claims)?;
    tracing::Span::current().record("client_id", tracing::field::display(&caller.client_id));
    Ok(caller)
}

/// Counts a call against the optional per-client limit (429 beyond it).
pub fn count_call(app: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if let Some(limiter) = &app.limits.api_calls {
        super::Limits::check(limiter, &caller.client_id)?;
    }
    Ok(())
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// A JSON object body, parsed lazily: the extractor never rejects, so handlers check the
/// caller's rights before they look at (and complain about) the body.
pub struct JsonObject(Result<Option<Map<String, Value>>, ApiError>);

impl JsonObject {
    /// The body, which must be present.
    pub fn required(self) -> Result<Map<String, Value>, ApiError> {
        self.0?.ok_or_else(|| ApiError::BadRequest("a JSON object body is required".to_owned()))
    }

    /// The body, which may be left out entirely (an empty body).
    pub fn optional(self) -> Result<Option<Map<String, Value>>, ApiError> {
        self.0
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(read_json_object(request, state).await))
    }
}

/// The whole request body, within the body-size limit and the body-read deadline
/// (`http::request_limits`); both failures are the client's (413, 408).
pub async fn read_body(request: Request) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, &()).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(BODY_LIMIT_BYTES)
        } else if is_body_read_timeout(&rejection) {
            ApiError::BodyReadTimeout
        } else {
            ApiError::BadRequest(format!("could not read the request body: {}", rejection.body_text()))
        }
    })
}

async fn read_json_object<S: Send + Sync>(
    request: Request,
    _state: &S,
) -> Result<Option<Map<String, Value>>, ApiError> {
    let json_content_type = is_json_content_type(request.headers());
    let bytes = read_body(request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    if !json_content_type {
        return Err(ApiError::UnsupportedMediaType);
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err(ApiError::BadRequest("the request body must be a JSON object".to_owned())),
        Err(error) => Err(ApiError::BadRequest(format!("the request body is not valid JSON: {error}"))),
    }
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// What a date-time query parameter that is not RFC 3339 is told ([`Query::time`]).
pub const NOT_A_DATE_TIME: &str = "must be an RFC 3339 date-time";

/// The query string as ordered key/value pairs, so repeated keys (`status=A&status=B`) and
/// bracketed arrays (`status[]=A`) both work, and each parameter is validated where it is used.
pub struct Query(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let raw = parts.uri.query().unwrap_or("");
        Ok(Self(form_urlencoded::parse(raw.as_bytes()).into_owned().collect()))
    }
}

impl Query {
    /// The last value given for `name` (or `name[]`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(key, _)| is_key(key, name)).map(|(_, value)| value.as_str())
    }

    /// Every value of `name`, including `name[]` and comma-separated lists.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| is_key(key, name))
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .collect()
    }

    /// Every value of `name` (or `name[]`) in order, each whole (no splitting at commas).
    pub fn each(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(key, _)| is_key(key, name)).map(|(_, value)| value.as_str()).collect()
    }

    /// A boolean parameter: `true` or `false`, anything else is an error.
    pub fn bool(&self, errors: &mut ValidationError, name: &str, default: bool) -> bool {
        match self.get(name) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(_) => {
                errors.push(FieldError::new(name, "must be true or false"));
                default
            }
        }
    }

    /// A non-empty string filter.
    pub fn text(&self, errors: &mut ValidationError, name: &str) -> Option<String> {
        match self.get(name) {
            None => None,
            Some("") => {
                errors.push(FieldError::new(name, "must have at least 1 character"));
                None
            }
            Some(value) => Some(value.to_owned()),
        }
    }

    /// A date-time filter (RFC 3339, any offset); anything else is an error saying `invalid`.
    pub fn time(&self, errors: &mut ValidationError, name: &str, invalid: &str) -> Option<Timestamp> {
        let parsed = self.text(errors, name).map(|raw| Timestamp::parse_rfc3339(&raw));
        if parsed == Some(None) {
            errors.push(FieldError::new(name, invalid));
        }
        parsed.flatten()
    }

    /// `limit`, `starting_after` and `total`, as every list takes them.
    pub fn page(&self, errors: &mut ValidationError) -> PageRequest {
        let limit = errors.check(PageRequest::parse_limit(self.get("limit"))).unwrap_or_default();
        let starting_after = self.text(errors, "starting_after");
        let include_total = self.bool(errors, "total", false);
        PageRequest { limit, starting_after, include_total }
    }
}

fn is_key(key: &str, name: &str) -> bool {
    key == name || key.strip_suffix("[]") == Some(name)
}

/// Path parameters, with axum's rejection (e.g. a segment that is not valid UTF-8 once
/// percent-decoded) rendered in Dintero's error body.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

/// Checks a client-defined id taken from the path (`customer_id`, `tid`).
pub fn path_identifier(field: &str, value: &str) -> Result<(), ApiError> {
    crate::domain::validation::identifier(field, value).map_err(|error| ApiError::Validation(error.into()))
}
