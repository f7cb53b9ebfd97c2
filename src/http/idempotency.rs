//! Idempotency keys (Stripe's semantics) on every POST and DELETE but the token endpoint.
//!
//! A request with `Idempotency-Key: <1–255 printable ASCII characters>` from an authenticated
//! caller claims the key in the store before its handler runs; the key is the caller's own
//! (account, client id, key). The handler's response is then kept for 24 hours: a retry with the
//! same key and the same request (a keyed digest of method, path, query and body) gets that
//! response again, byte for byte, with `idempotent-replayed: true` and a fresh `request-id`,
//! and nothing runs twice. The same key with another request is 422; while the first request
//! runs, a retry is 409 with `Retry-After: 1`. Responses that a retry may fix are not kept: 5xx
//! and 429 release the key. Requests without the header, and requests that do not authenticate
//! (their handler answers 401), pass through untouched.
//!
//! The claim and the response are written in transactions of their own, apart from the
//! operation's (as Stripe does): if the process dies between the operation and storing its
//! response, the claim's lease (60 s) runs out and a retry runs the operation again. The handler
//! runs in a task of its own, so a client that disconnects, or the request timeout, does not
//! cut it short: its response is still stored for the retry.
//!
//! The token endpoint is left out on purpose: it has no bearer caller, minting a second token
//! changes nothing, and its response is a bearer token that must not be kept in the database.

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::{count_call, verify_caller, Authenticated};
use super::AppState;
use crate::service::idempotency::{IdempotencyScope, IdempotencyStart, IdempotentRequest, StoredResponse};

/// The request header (HTTP header names are case-insensitive).
pub const HEADER: &str = "Idempotency-Key";
/// Set (`true`) on a response that replays the first response to a key.
pub static REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// The one POST that takes no key (see the module documentation).
pub const TOKEN_ROUTE: &str = "/v1/accounts/{oid}/auth/token";
/// Longest key accepted, as Stripe.
pub const MAX_KEY_LENGTH: usize = 255;

/// The response headers a replay repeats; everything else is either added again by the layers
/// outside (`request-id`, CORS) or not produced by handlers.
const KEPT_HEADERS: [HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::LINK,
    HeaderName::from_static("paging-token"),
    HeaderName::from_static("total-count"),
    header::RETRY_AFTER,
    header::WWW_AUTHENTICATE,
];

/// Whether an operation (method and route pattern) takes `Idempotency-Key`.
pub fn applies(method: &Method, route: &str) -> bool {
    (method == Method::POST || method == Method::DELETE) && route != TOKEN_ROUTE
}

/// The middleware, applied to every route (it picks the ones [`applies`] names).
pub async fn layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    if !route.is_some_and(|route| applies(request.method(), &route)) || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    // Authenticated as the `Caller` extractor does (and counted against the call limit once,
    // here); a request that does not authenticate reaches its handler, which answers 401.
    let Ok(caller) = verify_caller(&app, request.headers()).await else {
        return next.run(request).await;
    };
    super::journal::note_caller(request.extensions(), &caller);
    if let Err(error) = count_call(&app, &caller) {
        return error.into_response();
    }
    let key = match parse_key(request.headers()) {
        Ok(key) => key,
        Err(error) => return error.into_response(),
    };

    let (mut parts, body) = request.into_parts();
    let body = match read_body(&parts, body).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let query = parts.uri.query().unwrap_or("");
    let claim = app
        .vault
        .idempotent_request(
            caller.account.clone(),
            caller.client_id.clone(),
            key,
            &[parts.method.as_str().as_bytes(), parts.uri.path().as_bytes(), query.as_bytes(), &body],
            app.idempotency,
        )
        .await;
    let claim = match claim {
        Ok(claim) => claim,
        Err(error) => return ApiError::from(error).into_response(),
    };
    match app.vault.begin_idempotent(&claim).await {
        Err(error) => ApiError::from(error).into_response(),
        Ok(IdempotencyStart::Mismatch) => ApiError::IdempotencyMismatch.into_response(),
        Ok(IdempotencyStart::InProgress) => ApiError::IdempotencyInProgress.into_response(),
        Ok(IdempotencyStart::Replay(stored)) => replay(&app, &claim.scope, stored).await,
        Ok(IdempotencyStart::Started) => {
            parts.extensions.insert(Authenticated(caller));
            run(app, claim, Request::from_parts(parts, Body::from(body)), next).await
        }
    }
}

fn parse_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::field(HEADER, "must be given once"));
    };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_KEY_LENGTH || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::field(HEADER, format!("must be 1 to {MAX_KEY_LENGTH} printable ASCII characters")));
    }
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// The whole request body, within the same limits the handlers apply.
async fn read_body(parts: &axum::http::request::Parts, body: Body) -> Result<Bytes, ApiError> {
    super::extract::read_body(Request::from_parts(parts.clone(), body)).await
}

/// Runs the handler in a task of its own (so that neither a client that goes away nor the
/// request timeout stops it half-way), then stores or releases the claim.
async fn run(app: AppState, claim: IdempotentRequest, request: Request, next: Next) -> Response {
    let (vault, kept_claim) = (app.vault.clone(), claim.clone());
    let task = tokio::spawn(async move {
        let response = next.run(request).await;
        let (parts, body) = response.into_parts();
        let body = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(body) => body,
            Err(error) => {
                tracing::error!(%error, "reading a response body failed");
                release(&app, &claim).await;
                return super::error::error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal server error", &[]);
            }
        };
        if parts.status.is_server_error() || parts.status == StatusCode::TOO_MANY_REQUESTS {
            // A retry may succeed: it runs afresh.
            release(&app, &claim).await;
        } else {
            let headers = KEPT_HEADERS
                .iter()
                .flat_map(|name| parts.headers.get_all(name).iter().map(move |value| (name, value)))
                .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
                .collect();
            if let Err(error) = app.vault.finish_idempotent(&claim, parts.status.as_u16(), headers, &body).await {
                // The client still gets its answer; a retry waits for the lease, then runs again.
                tracing::warn!(%error, "storing the response of an idempotent request failed");
            }
        }
        Response::from_parts(parts, Body::from(body))
    });
    match task.await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "an idempotent request's handler failed");
            if let Err(error) = vault.abandon_idempotent(&kept_claim).await {
                tracing::warn!(%error, "releasing an idempotency key failed");
            }
            super::error::error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal server error", &[])
        }
    }
}

async fn release(app: &AppState, claim: &IdempotentRequest) {
    if let Err(error) = app.vault.abandon_idempotent(claim).await {
        tracing::warn!(%error, "releasing an idempotency key failed");
    }
}

/// The stored response again: status, kept headers and body bytes, marked as a replay.
async fn replay(app: &AppState, scope: &IdempotencyScope, stored: StoredResponse) -> Response {
    let body = match app.vault.replayed_body(scope, &stored).await {
        Ok(body) => body,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            headers.append(name, value);
        }
    }
    headers.insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn keys_are_1_to_255_printable_ascii_characters_given_once() {
        assert_eq!(parse_key(&headers(&[b"a"])).unwrap(), "a");
        assert_eq!(parse_key(&headers(&[b" ~ key with spaces ~ "])).unwrap(), " ~ key with spaces ~ ");
        let longest = "k".repeat(255);
        assert_eq!(parse_key(&headers(&[longest.as_bytes()])).unwrap(), longest);
        for bad in [&b""[..], "k".repeat(256).as_bytes(), b"tab\there", "caf\u{e9}".as_bytes()] {
            assert!(parse_key(&headers(&[bad])).is_err(), "{bad:?}");
        }
        assert!(parse_key(&headers(&[b"a", b"a"])).is_err());
    }

    #[test]
    fn every_post_and_delete_but_the_token_endpoint() {
        assert!(applies(&Method::POST, "/v1/card-tokens"));
        assert!(applies(&Method::DELETE, "/v1/card-tokens/{token_id}"));
        assert!(!applies(&Method::POST, TOKEN_ROUTE));
        assert!(!applies(&Method::GET, "/v1/card-tokens"));
        assert!(!applies(&Method::PUT, "/v1/card-tokens/{token_id}/status"));
    }
}
