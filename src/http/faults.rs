//! Faults on demand, applied before a request reaches idempotency keys or its handler, so that a
//! faulted request changes no data (a delay is the exception: the request then proceeds).
//!
//! A request to a test account (`T…`: the account of the path `/v1/accounts/{aid}/…`, or for
//! the paths without one, `/v1/card-tokens…`, the account of the bearer token) is faulted:
//! - when it carries the header `tokenvault-fault` (`429`, `500`, `502`, `503`, `504`,
//!   `delay=<ms>` or `drop`): a one-off, for that request alone. A value outside these is 400.
//!   On production accounts the header is ignored (never an error): a header left in a client's
//!   code must not change what production answers.
//! - when a rule of the account (`sandbox/faults`, see `service::faults`) matches and fires.
//!
//! The header wins over the rules. The sandbox's own operations (`/v1/accounts/{aid}/sandbox/…`)
//! are never faulted, so that a rule matching everything can still be removed.
//!
//! What a faulted request gets: a status answer in Dintero's error body (with `Retry-After` on
//! 429 and 503), or the same request after the delay, or a connection closed without an
//! answer. Every faulted answer carries the response header `tokenvault-fault: <rule id>`
//! (`header` for the request header's), and the request's [`JournalNote`] is marked, so that
//! its journal entry shows the fault (a delayed request the request timeout cuts included).
//! A dropped connection is marked on its response with [`DropConnection`], which the connection
//! floor (`http::server`) turns into closing the connection instead of answering.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::error::{error_response, ApiError};
use super::extract::verify_caller;
use super::journal::JournalNote;
use super::routes::auth::basic_credentials;
use super::AppState;
use crate::domain::fault::FaultTarget;
use crate::domain::AccountId;
use crate::service::faults::{Fault, FaultEffect};

/// The request header of one-off faults, and the response header naming what faulted a request.
pub static HEADER: HeaderName = HeaderName::from_static("tokenvault-fault");
/// The response header's value for a fault the request header asked for.
pub const BY_HEADER: &str = "header";

/// On a response that must not be sent: the connection is closed instead (`http::server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropConnection;

/// The middleware, applied to every route.
pub async fn layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let in_path = account_in_path(&path);
    if in_path.as_ref().is_some_and(|account| !account.is_test()) || is_sandbox_operation(&path) {
        return next.run(request).await;
    }
    let caller = verify_caller(&app, request.headers()).await.ok();
    let Some(account) = in_path.or_else(|| caller.as_ref().map(|caller| caller.account.clone())) else {
        return next.run(request).await;
    };
    if !account.is_test() {
        return next.run(request).await;
    }
    if let Some(value) = request.headers().get(&HEADER) {
        return match value.to_str().ok().and_then(FaultEffect::from_header) {
            Some(effect) => apply(effect, None, request, next).await,
            None => {
                ApiError::field(HEADER.as_str(), "must be one of 429, 500, 502, 503, 504, delay=<1 to 60000 ms>, drop")
                    .into_response()
            }
        };
    }
    let client_id = caller.map(|caller| caller.client_id).or_else(|| basic_user(request.headers()));
    let method = request.method().as_str().to_owned();
    let target = FaultTarget { method: &method, path: &path, client_id: client_id.as_deref() };
    match app.vault.fault_for(&account, &target).await {
        Some(Fault { rule_id, effect }) => apply(effect, Some(rule_id), request, next).await,
        None => next.run(request).await,
    }
}

/// Applies the fault of rule `rule_id` (`None`: the `tokenvault-fault` request header).
async fn apply(effect: FaultEffect, rule_id: Option<Uuid>, request: Request, next: Next) -> Response {
    let named = match rule_id {
        Some(id) => id.to_string(),
        None => BY_HEADER.to_owned(),
    };
    // Noted before the fault takes effect: a delayed request the request timeout then cuts is
    // journaled as faulted too.
    if let Some(note) = request.extensions().get::<JournalNote>() {
        let rule = rule_id.map_or_else(|| "the tokenvault-fault header".to_owned(), |id| format!("rule {id}"));
        note.fault(if effect == FaultEffect::Drop { format!("{rule}: connection dropped") } else { rule });
    }
    let mut response = match effect {
        FaultEffect::Status { status, retry_after } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
            let source = match rule_id {
                Some(id) => format!("fault rule {id}"),
                None => "the tokenvault-fault header".to_owned(),
            };
            let mut response = error_response(status, &format!("a fault injected by tokenvault ({source})"), &[]);
            if let Some(seconds) = retry_after {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response
        }
        FaultEffect::Delay { ms } => {
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(ms))).await;
            next.run(request).await
        }
        FaultEffect::Drop => {
            let mut response = StatusCode::BAD_GATEWAY.into_response();
            response.extensions_mut().insert(DropConnection);
            response
        }
    };
    if let Ok(value) = HeaderValue::from_str(&named) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

/// The account of a `/v1/accounts/{aid}/…` path, when `aid` is a valid account id (the journal
/// layer asks the same).
pub(super) fn account_in_path(path: &str) -> Option<AccountId> {
    let aid = path.strip_prefix("/v1/accounts/")?.split('/').next()?;
    AccountId::parse("aid", aid).ok()
}

/// `/v1/accounts/{aid}/sandbox/…`: never faulted.
fn is_sandbox_operation(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    segments.next() == Some("v1") && segments.next() == Some("accounts") && segments.nth(1) == Some("sandbox")
}

/// The client id of the token endpoint's `Authorization: Basic`, for rules naming a client.
fn basic_user(headers: &HeaderMap) -> Option<String> {
    basic_credentials(headers).map(|(user, _)| user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_sandbox_paths() {
        assert_eq!(account_in_path("/v1/accounts/T12345678/customers/users").unwrap().as_str(), "T12345678");
        assert_eq!(account_in_path("/v1/accounts/T12345678").unwrap().as_str(), "T12345678");
        assert!(account_in_path("/v1/accounts/X1/customers").is_none());
        assert!(account_in_path("/v1/card-tokens").is_none());
        assert!(is_sandbox_operation("/v1/accounts/T12345678/sandbox/faults"));
        assert!(is_sandbox_operation("/v1/accounts/T12345678/sandbox/reset"));
        assert!(!is_sandbox_operation("/v1/accounts/T12345678/customers/sandbox"));
        assert!(!is_sandbox_operation("/v1/card-tokens"));
    }

    #[test]
    fn basic_users() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic Y2xpZW50OnNlY3JldA=="));
        assert_eq!(basic_user(&headers).as_deref(), Some("client"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_user(&headers), None);
    }
}
