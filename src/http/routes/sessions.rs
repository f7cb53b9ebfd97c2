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
use crate::domain::ValidationError;
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path, Query};
use crate::http::response::json;
use crate::http::AppState;

/// The session page's address on this server (Dintero's is `…/v1/view/{session_id}`): under
/// `--public-url` when set, else `http://` and the request's `Host`.
fn page_url(public_url: Option<&str>, headers: &HeaderMap, id: &str) -> String {
    match public_url {
        Some(base) => format!("{base}/v1/view/{id}"),
        None => {
            let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}/v1/view/{id}")
        }
    }
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
    let mut out = json!({"id": session.id, "url": page_url(app.public_url.as_deref(), &headers, &session.id)});
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
            Some(TestCard::parse(
                field("number"),
                field("expiry"),
                field("cvc"),
                app.vault.now(&caller.account).await?,
            )?)
        }
        Some(_) => return Err(ApiError::field("card", "must be an object")),
    };
    let done = app.vault.complete_session_for_test(&caller.account, &id, outcome, card).await?;
    if let Some(callback) = done.callback.clone() {
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
    description = "A transaction an approved payment-token session created (tokenvault processes no payments, so there are no others). `card.payment_token_id` and `card.recurrence_token_id` name the card tokens it created (a recurrence token only for `payex.creditcard` and `bambora.creditcard` sessions whose `token_types` asked for one); `includes=card.payment_token` adds `card.payment_token`, `includes=card.recurrence_token` adds `card.recurrence_token`.",
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
    let includes = crate::service::sessions::TransactionIncludes {
        payment_token: includes.contains(&"card.payment_token"),
        recurrence_token: includes.contains(&"card.recurrence_token"),
    };
    let transaction = app.vault.token_transaction(&caller.account, &id, includes).await?;
    Ok(json(StatusCode::OK, &transaction))
}

/// Escapes text for HTML element content and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// The session page: small, accessible, no external assets. The card fields are submitted to
/// the same path; nothing on the page is stored but the outcome and the masked card.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tokenvault test card</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}label{display:block;margin-top:.8rem}input,select{font-size:1rem;padding:.3rem;width:100%;box-sizing:border-box}.row{display:flex;gap:.5rem;flex-wrap:wrap;margin-top:1rem}button{font-size:1rem;padding:.4rem .8rem}.error{color:#a00}</style>
</head><body><main>
<h1>Save a test card</h1>
<p>Merchant reference: <strong>{{REFERENCE}}</strong> &middot; tokenvault test page, no real payments.</p>
{{ERRORS}}
<form method="post" action="/v1/view/{{ID}}">
<label for="pick">Published test card</label>
<select id="pick" onchange="document.getElementById('number').value=this.value"><option value="">Choose a card…</option>{{CARDS}}</select>
<label for="number">Card number</label><input id="number" name="number" inputmode="numeric" autocomplete="off" required>
<label for="expiry">Expiry (MM/YY)</label><input id="expiry" name="expiry" placeholder="12/30" autocomplete="off">
<label for="cvc">CVC</label><input id="cvc" name="cvc" inputmode="numeric" autocomplete="off" maxlength="3">
<div class="row">
<button type="submit" name="outcome" value="approve">Approve</button>
<button type="submit" name="outcome" value="decline" formnovalidate>Decline</button>
<button type="submit" name="outcome" value="fail" formnovalidate>Fail</button>
<button type="submit" name="outcome" value="cancel" formnovalidate>Cancel</button>
</div></form></main></body></html>
"#;

fn render_page(
    session: &crate::domain::session::PaymentTokenSession,
    errors: &[crate::domain::FieldError],
) -> Response {
    let cards: String = crate::domain::session::TEST_CARDS
        .iter()
        .map(|(brand, number)| format!("<option value=\"{number}\">{brand} {number}</option>"))
        .collect();
    let errors = if errors.is_empty() {
        String::new()
    } else {
        let items: String =
            errors.iter().map(|e| format!("<li>{}: {}</li>", escape(&e.field), escape(&e.message))).collect();
        format!("<div class=\"error\" role=\"alert\"><ul>{items}</ul></div>")
    };
    let html = PAGE
        .replace("{{REFERENCE}}", &escape(session.merchant_reference()))
        .replace("{{ID}}", &escape(&session.id))
        .replace("{{CARDS}}", &cards)
        .replace("{{ERRORS}}", &errors);
    let status = if errors.is_empty() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let mut response = Response::new(axum::body::Body::from(html));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

#[utoipa::path(
    get,
    path = "/v1/view/{session_id}",
    operation_id = "checkout_sid_html_get",
    tag = "sessions",
    summary = "Session page",
    description = "The page a payment-token session's `url` opens: pick or type a published Visa/Mastercard test number, expiry and CVC, then approve, decline, fail or cancel. No access token (the customer's browser opens it); no external assets.",
    params(("session_id" = String, Path, description = "The session ID")),
    responses(
        (status = 200, description = "The session page", body = String, content_type = "text/html; charset=utf-8"),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
    ),
)]
pub async fn page(State(app): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let session = app.vault.open_session_for_page(&id).await?;
    Ok(render_page(&session, &[]))
}

#[utoipa::path(
    post,
    path = "/v1/view/{session_id}",
    operation_id = "tokenvault_view_sid_post",
    tag = "sessions",
    summary = "Submit the session page",
    description = "The session page's form (`application/x-www-form-urlencoded`: `outcome`, `number`, `expiry`, `cvc`): completes the session as the completion call does and answers 303 to `url.return_url` with Dintero's query; an invalid card shows the page again (400). The number and CVC are never stored or logged.",
    params(("session_id" = String, Path, description = "The session ID")),
    responses(
        (status = 303, description = "Redirect to the session's return_url"),
        (status = 400, response = crate::http::openapi::BadRequest),
        (status = 404, response = crate::http::openapi::NotFound),
        (status = 409, response = crate::http::openapi::Conflict),
        (status = 415, response = crate::http::openapi::UnsupportedMediaType),
    ),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn submit(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let form_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !form_type {
        return Err(ApiError::UnsupportedMediaType);
    }
    let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let session = app.vault.session_for_page(&id).await?;
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    let outcome = Outcome::parse(field("outcome")).map_err(|e| ValidationError { errors: vec![e] })?;
    let card = if outcome == Outcome::Approve {
        let now = app.vault.now(&session.account_id).await?;
        match TestCard::parse(field("number"), field("expiry"), field("cvc"), now) {
            Ok(card) => Some(card),
            Err(error) => return Ok(render_page(&session, &error.errors)),
        }
    } else {
        None
    };
    let done = app.vault.complete_payment_token_session(session, outcome, card).await?;
    if let Some(callback) = done.callback.clone() {
        let vault = app.vault.clone();
        tokio::spawn(async move { vault.call_session_callback(callback).await });
    }
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let location = axum::http::HeaderValue::from_str(&done.redirect_url)
        .map_err(|_| ApiError::BadRequest("the return_url cannot be redirected to".to_owned()))?;
    response.headers_mut().insert(axum::http::header::LOCATION, location);
    Ok(response)
}
