//! Payment-token sessions (`/v1/sessions/payment-token`, `/v1/sessions/{session_id}`), the
//! test-account completion call (a tokenvault extension), and the transactions an approval
//! creates (`/v1/transactions/{id}`). The account always comes from the access token; another
//! account's session or transaction is simply not found.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use crate::auth::{Caller, Permission};
use crate::domain::session::{Outcome, TestCard};
use crate::domain::{Timestamp, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path, Query};
use crate::http::response::json;
use crate::http::AppState;

/// The session page's address on this server (Dintero's is `…/v1/view/{session_id}`).
fn page_url(headers: &HeaderMap, id: &str) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    format!("http://{host}/v1/view/{id}")
}

#[utoipa::path(
    post,
    path = "/v1/sessions/payment-token",
    operation_id = "checkout_payment_token_session_post",
    tag = "sessions",
    summary = "Payment token session",
    description = "Creates a session whose `url` opens tokenvault's test card page; completing it with a card creates a payment token without reserving or charging any amount, and a transaction that references it. `include_session=true` adds the session.",
    params(("include_session" = Option<bool>, Query, description = "Include all details about the session created")),
    request_body(content = Object, content_type = "application/json", description = "`{session: SessionPaymentToken & Metadata, token_provider: TokenProvider}`"),
    responses(
        (status = 200, description = "Session created: `{id, url, session?}`", body = Object, content_type = "application/json; charset=utf-8"),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Query,
    body: JsonObject,
) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    let mut errors = ValidationError::default();
    let include_session = query.bool(&mut errors, "include_session", false);
    errors.finish(|| ())?;
    let session = app.vault.create_payment_token_session(&caller.account, &body.required()?, &caller.client_id).await?;
    let mut out = json!({"id": session.id, "url": page_url(&headers, &session.id)});
    if include_session {
        out["session"] = session.to_json();
    }
    Ok(json(StatusCode::OK, &out))
}

#[utoipa::path(
    get,
    path = "/v1/sessions/{session_id}",
    operation_id = "checkout_session_get",
    tag = "sessions",
    summary = "Get checkout session details",
    description = "A payment-token session of the caller's account (other sessions do not exist in tokenvault), with `transaction_id` once approved.",
    params(("session_id" = String, Path, description = "The session ID")),
    responses(
        (status = 200, description = "checkout session", body = Object, content_type = "application/json; charset=utf-8"),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
    ),
    security(("bearerAuth" = ["admin:checkout", "read:checkout"])),
)]
pub async fn get(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_SESSION_READ)?;
    let session = app.vault.payment_token_session(&caller.account, &id).await?;
    Ok(json(StatusCode::OK, &session.to_json()))
}

#[utoipa::path(
    post,
    path = "/v1/sessions/{session_id}/complete",
    operation_id = "tokenvault_session_complete_post",
    tag = "sessions",
    summary = "Complete a payment-token session (test accounts)",
    description = "Completes an open session of a test account as the session page would, for CI without a browser: `{\"outcome\": \"approve\"|\"decline\"|\"fail\"|\"cancel\", \"card\": {\"number\", \"expiry\": \"MM/YY\", \"cvc\"}}` (`card` required to approve). Answers `{session_id, transaction_id?, redirect_url}`; `callback_url` is called as after the page. The number and CVC are never stored or logged.",
    params(("session_id" = String, Path, description = "The session ID")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "Session completed", body = Object, content_type = "application/json; charset=utf-8"),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn complete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    let body = body.required()?;
    let outcome = match body.get("outcome").and_then(Value::as_str) {
        Some(raw) => Outcome::parse(raw).map_err(|e| ValidationError { errors: vec![e] })?,
        None => return Err(ApiError::field("outcome", "is required")),
    };
    let card = match body.get("card") {
        None | Some(Value::Null) => None,
        Some(Value::Object(card)) => {
            let field = |name: &str| card.get(name).and_then(Value::as_str).unwrap_or_default();
            Some(TestCard::parse(field("number"), field("expiry"), field("cvc"), Timestamp::now())?)
        }
        Some(_) => return Err(ApiError::field("card", "must be an object")),
    };
    let done = app.vault.complete_session_for_test(&caller.account, &id, outcome, card).await?;
    if let Some(callback) = done.callback_url.clone() {
        let vault = app.vault.clone();
        tokio::spawn(async move { vault.call_session_callback(callback).await });
    }
    let mut out = json!({"session_id": done.session.id});
    if let Some(transaction_id) = &done.session.transaction_id {
        out["transaction_id"] = json!(transaction_id);
    }
    out["redirect_url"] = json!(done.redirect_url);
    Ok(json(StatusCode::OK, &out))
}

#[utoipa::path(
    get,
    path = "/v1/transactions/{id}",
    operation_id = "transactions_id_get",
    tag = "transactions",
    summary = "Get transaction",
    description = "A transaction an approved payment-token session created (tokenvault processes no payments, so there are no others). `includes=card.payment_token` adds `card.payment_token`.",
    params(
        ("id" = String, Path, description = "The transaction ID"),
        ("includes" = Option<Vec<String>>, Query, description = "`card.payment_token`, `card.recurrence_token`"),
    ),
    responses(
        (status = 200, description = "Transaction", body = Object, content_type = "application/json; charset=utf-8"),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 401, response = crate::http::openapi::Unauthorized),
        (status = 403, response = crate::http::openapi::Forbidden),
        (status = 404, response = crate::http::openapi::NotFound),
    ),
    security(("bearerAuth" = ["admin:checkout", "read:checkout"])),
)]
pub async fn transaction(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_SESSION_READ)?;
    let includes = query.all("includes");
    let include_token = includes.contains(&"card.payment_token");
    let transaction = app.vault.token_transaction(&caller.account, &id, include_token).await?;
    Ok(json(StatusCode::OK, &transaction))
}
