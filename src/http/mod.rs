//! The HTTP face of tokenvault: one router serving both Dintero hosts' paths
//! (`/v1/accounts/{aid}/…` of the API host and `/v1/card-tokens…` of the checkout host).

pub mod error;
pub mod extract;
pub mod metrics;
pub mod rate_limit;
pub mod response;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{BoxError, Router};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::keys::KeyRing;
use crate::config::BODY_LIMIT_BYTES;
use crate::crypto::TokenCipher;
use crate::store::Store;
use error::ApiError;

/// What every handler shares: the store, the signing keys, the card-token cipher, and the bell
/// that wakes the webhook worker after a card-token change.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyRing>,
    pub cipher: Arc<TokenCipher>,
    pub webhook_wake: Arc<tokio::sync::Notify>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<metrics::Metrics>,
}

/// Request limits: token requests per client id (against brute force), and optionally API
/// calls per client.
pub struct Limits {
    pub token_requests: rate_limit::RateLimiter,
    pub api_calls: Option<rate_limit::RateLimiter>,
}

impl Limits {
    /// Checks `limiter` for `key`, turning a refusal into 429.
    pub fn check(limiter: &rate_limit::RateLimiter, key: &str) -> Result<(), ApiError> {
        limiter
            .check(key)
            .map_err(|wait| ApiError::TooManyRequests { retry_after: rate_limit::retry_after_seconds(wait) })
    }
}

/// The whole API. Separate from serving so tests can drive it in-process too.
pub fn router(state: AppState, request_timeout: Duration, max_in_flight: usize) -> Router {
    use routes::{auth, card_tokens, customer_tokens, customers, hooks, meta, token_events};

    let api = Router::new()
        .route("/health", get(meta::health))
        .route("/.well-known/jwks.json", get(meta::jwks))
        .route("/metrics", get(metrics::render))
        .route("/v1/accounts/{oid}/auth/token", post(auth::token))
        .route("/v1/accounts/{aid}/customers/users", get(customers::list).post(customers::create))
        .route("/v1/accounts/{aid}/customers/users/{customer_id}", get(customers::get).delete(customers::delete))
        .route(
            "/v1/accounts/{aid}/customers/users/{customer_id}/tokens",
            get(customer_tokens::list).post(customer_tokens::create),
        )
        .route(
            "/v1/accounts/{aid}/customers/users/{customer_id}/tokens/{tid}",
            axum::routing::delete(customer_tokens::delete),
        )
        .route(
            "/v1/accounts/{aid}/customers/tokens/events",
            get(token_events::list).post(token_events::find_or_add).delete(token_events::clear),
        )
        .route("/v1/card-tokens", get(card_tokens::list).post(card_tokens::create))
        .route("/v1/card-tokens/{token_id}", get(card_tokens::get).delete(card_tokens::delete))
        .route("/v1/card-tokens/{token_id}/status", put(card_tokens::set_status))
        .route("/v1/accounts/{aid}/payments/card-tokens", get(card_tokens::list_for_account))
        .route(
            "/v1/accounts/{aid}/payments/card-tokens/{token_id}",
            get(card_tokens::get_for_account).delete(card_tokens::delete_for_account),
        )
        .route("/v1/accounts/{aid}/payments/card-tokens/{token_id}/status", put(card_tokens::set_status_for_account))
        .route("/v1/accounts/{aid}/hooks/subscriptions", get(hooks::list).post(hooks::create))
        .route("/v1/accounts/{aid}/hooks/subscriptions/{subscription_id}", get(hooks::get).delete(hooks::delete))
        .fallback(|| async { ApiError::NotFound("resource not found".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track));

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::PATCH, Method::POST, Method::DELETE])
        .allow_headers(Any)
        .expose_headers([
            HeaderName::from_static("paging-token"),
            HeaderName::from_static("total-count"),
            HeaderName::from_static("link"),
        ]);

    let request_id = HeaderName::from_static("request-id");
    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
                let id = request.headers().get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                // The path only: query strings may carry customer data.
                tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), request_id = %id)
            }))
            .layer(PropagateRequestIdLayer::new(request_id))
            .layer(axum::error_handling::HandleErrorLayer::new(|error: BoxError| async move {
                if error.is::<tower::timeout::error::Elapsed>() {
                    ApiError::Timeout.into_response()
                } else if error.is::<tower::load_shed::error::Overloaded>() {
                    ApiError::Overloaded.into_response()
                } else {
                    error::error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal server error", &[])
                }
            }))
            // Beyond `max_in_flight` concurrent requests (across all routes), shed at once
            // rather than queue without bound.
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(max_in_flight))
            .timeout(request_timeout)
            .layer(cors)
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
    )
}
