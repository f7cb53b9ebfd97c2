//! `POST /v1/accounts/{oid}/auth/token`: OAuth2 client credentials for an access token.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::auth::AuthError;
use crate::domain::{AccountId, FieldError, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path};
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::{AppState, Limits};

/// `oid` is an owner id: `P`/`T` and 3 (partner) or 8 (account) digits.
fn parse_owner_id(oid: &str) -> Result<(), FieldError> {
    let bytes = oid.as_bytes();
    let valid = matches!(bytes.first(), Some(b'P' | b'T'))
        && matches!(bytes.len(), 4 | 9)
        && bytes[1..].iter().all(u8::is_ascii_digit);
    if valid {
        Ok(())
    } else {
        Err(FieldError::new("oid", "must match ^[PT]{1}(?=(?:.{3}|.{8})$)[0-9]*$"))
    }
}

/// The client id and secret of an `Authorization: Basic` header.
pub(crate) fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// The account an audience names: `<any base URL>/v1/accounts/{aid}`.
fn audience_account(audience: &str) -> Option<AccountId> {
    let (_, aid) = audience.trim_end_matches('/').rsplit_once("/v1/accounts/")?;
    AccountId::parse("audience", aid).ok()
}

#[utoipa::path(
    post,
    path = "/v1/accounts/{oid}/auth/token",
    operation_id = "aid_auths_oauth_token_post",
    tag = "authenticate",
    summary = "Get token",
    description = "Exchanges the client's credentials (HTTP Basic) for an access token (grant type `client_credentials`). The audience's account must be `oid` and the client's account. Requests are rate limited per client id and in all (429), and answered 503 with `Retry-After` when too many credential checks run at once.",
    params(oa::OwnerPath),
    request_body(content = oa::AuthTokenRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Access token", body = oa::AccessToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
        (status = 429, response = oa::TooManyRequests),
    ),
    security(("clientAuth" = [])),
)]
pub async fn token(
    State(app): State<AppState>,
    Path(oid): Path<String>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Response, ApiError> {
    parse_owner_id(&oid).map_err(AuthError::InvalidField)?;
    let (client_id, secret) = basic_credentials(&headers).ok_or(AuthError::InvalidClient)?;
    Limits::check(&app.limits.token_requests, &client_id)?;
    Limits::check(&app.limits.token_endpoint, "")?;
    let client = app.keys.authenticate(&app.limits.credential_checks, &client_id, &secret).await?;
    tracing::Span::current().record("client_id", tracing::field::display(&client.client_id));

    let body = body.required()?;
    let mut errors = ValidationError::default();
    match body.get("grant_type") {
        Some(Value::String(grant)) if grant == "client_credentials" => {}
        Some(Value::String(_)) => return Err(AuthError::UnsupportedGrantType.into()),
        None | Some(Value::Null) => errors.push(FieldError::new("grant_type", "is required")),
        Some(_) => errors.push(FieldError::new("grant_type", "must be a string")),
    }
    let audience = match body.get("audience") {
        Some(Value::String(audience)) => match audience_account(audience) {
            Some(account) => Some((audience.clone(), account)),
            None => {
                errors.push(FieldError::new("audience", "must be a URL ending in /v1/accounts/{aid}"));
                None
            }
        },
        None | Some(Value::Null) => {
            errors.push(FieldError::new("audience", "is required"));
            None
        }
        Some(_) => {
            errors.push(FieldError::new("audience", "must be a string"));
            None
        }
    };
    let (audience, account) = errors.finish(|| audience.expect("validated"))?;

    if account.as_str() != oid {
        return Err(AuthError::AccountMismatch(account.to_string()).into());
    }
    if account != client.account_id {
        return Err(AuthError::AccountMismatch(account.to_string()).into());
    }
    let access_token =
        app.keys.sign(&client.client_id, account.as_str(), &audience, &client.scopes, client.secret_generation)?;
    Ok(json(
        StatusCode::OK,
        &json!({"access_token": access_token, "token_type": "Bearer", "expires_in": app.keys.ttl_seconds()}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_from_any_host_name_their_account() {
        assert_eq!(audience_account("https://api.dintero.com/v1/accounts/T12345678").unwrap().as_str(), "T12345678");
        assert_eq!(audience_account("http://127.0.0.1:8080/v1/accounts/P00000001/").unwrap().as_str(), "P00000001");
        assert!(audience_account("https://api.dintero.com/v1/accounts/X1").is_none());
        assert!(audience_account("T12345678").is_none());
        assert!(parse_owner_id("P123").is_ok() && parse_owner_id("T12345678").is_ok());
        assert!(parse_owner_id("P12").is_err() && parse_owner_id("X12345678").is_err());
    }
}
