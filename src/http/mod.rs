//! The HTTP face of tokenvault: one router serving both Dintero hosts' paths
//! (`/v1/accounts/{aid}/…` of the API host and `/v1/card-tokens…` of the checkout host).

pub mod error;
pub mod extract;
pub mod faults;
pub mod idempotency;
pub mod journal;
pub mod metrics;
pub mod openapi;
pub mod places;
pub mod rate_limit;
pub mod request_limits;
pub mod response;
mod routes;
pub mod sealed;
pub mod server;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Method, StatusCode};
use axum::response::IntoResponse;
use axum::{BoxError, Router};
use tower::ServiceBuilder;
use tower_http::cors::{Any, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::clients::CredentialChecks;
use crate::auth::keys::KeyRing;
use crate::service::idempotency::IdempotencySettings;
use crate::service::Vault;
use error::ApiError;
use places::Places;
use rate_limit::RateLimiter;
use request_limits::RequestLimits;

/// The bounds the router puts on each request, with the defaults `tokenvault serve` starts
/// with (the README's configuration table explains each).
#[derive(Debug, Clone, Copy)]
pub struct RequestSettings {
    pub request_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_in_flight: usize,
    pub max_in_flight_per_address: usize,
    /// One log line per request at `info` (method, path, status, latency, request id, client
    /// id): on with `serve --dev`, where an integrator debugs their calls.
    pub log_each_request: bool,
}

impl Default for RequestSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(10),
            max_in_flight: 1024,
            max_in_flight_per_address: 128,
            log_each_request: false,
        }
    }
}

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// What every handler shares: the use cases, the signing keys that authenticate callers, the
/// request limits and the metrics.
#[derive(Clone)]
pub struct AppState {
    pub vault: Arc<Vault>,
    pub keys: Arc<KeyRing>,
    pub limits: Arc<Limits>,
    pub metrics: Arc<metrics::Metrics>,
    pub idempotency: IdempotencySettings,
    /// Scheduled backups' outcome, for `/metrics`; `None` when `serve` takes none.
    pub backups: Option<Arc<crate::service::backup::BackupStatus>>,
    /// The base URL clients reach this server at (`--public-url`), for the URLs tokenvault hands
    /// out (a session's `url`); `None`: the request's `Host`, over `http`.
    pub public_url: Option<Arc<str>>,
    /// Where the journal layer hands the requests of test accounts; `None` when the journal is
    /// off (`--journal false`).
    pub journal: Option<Arc<crate::service::journal::JournalRecorder>>,
}

/// Request limits: token requests per client id (against brute force) and in all (a budget no
/// flood of made-up client ids escapes), client-secret checks at once (each costs an Argon2id
/// hash of ~19 MiB), and optionally API calls per client.
pub struct Limits {
    pub token_requests: rate_limit::RateLimiter,
    pub token_endpoint: rate_limit::RateLimiter,
    pub credential_checks: CredentialChecks,
    pub api_calls: Option<rate_limit::RateLimiter>,
}

impl Limits {
    /// `token_requests_per_minute` per client id; `token_endpoint_per_second` token requests in
    /// all; `credential_checks` hashes at once; `api_calls_per_second` per client (0: no limit).
    pub fn new(
        token_requests_per_minute: u32,
        token_endpoint_per_second: u32,
        credential_checks: usize,
        api_calls_per_second: u32,
    ) -> Self {
        Self {
            token_requests: RateLimiter::new(
                f64::from(token_requests_per_minute.max(1)) / 60.0,
                token_requests_per_minute,
            ),
            token_endpoint: RateLimiter::new(f64::from(token_endpoint_per_second.max(1)), token_endpoint_per_second),
            credential_checks: CredentialChecks::new(credential_checks),
            api_calls: (api_calls_per_second > 0)
                .then(|| RateLimiter::new(f64::from(api_calls_per_second), api_calls_per_second)),
        }
    }

    /// Checks `limiter` for `key`, turning a refusal into 429.
    pub fn check(limiter: &rate_limit::RateLimiter, key: &str) -> Result<(), ApiError> {
        limiter
            .check(key)
            .map_err(|wait| ApiError::TooManyRequests { retry_after: rate_limit::retry_after_seconds(wait) })
    }
}

/// Every operation, registered once: utoipa-axum's `routes!` takes each handler's method and
/// path from its `#[utoipa::path]` attribute and adds the operation to the OpenAPI document as it
/// adds the route, so the router and the document are built from this one table. Handlers that
/// share a path are registered together.
pub fn api_routes() -> OpenApiRouter<AppState> {
    use routes::{
        auth, card_tokens, customer_tokens, customers, docs, hooks, journal, meta, sandbox, sessions, token_events,
        transactions,
    };

    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(meta::health))
        .routes(routes!(meta::jwks))
        .routes(routes!(meta::unseal))
        .routes(routes!(metrics::render))
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::docs))
        .routes(routes!(auth::token))
        .routes(routes!(customers::list, customers::create, customers::head))
        .routes(routes!(customers::get, customers::update, customers::delete))
        .routes(routes!(customers::change_customer_id))
        .routes(routes!(customers::settings, customers::put_settings))
        .routes(routes!(customer_tokens::list, customer_tokens::create))
        .routes(routes!(customer_tokens::delete))
        .routes(routes!(token_events::list, token_events::find_or_add, token_events::clear))
        .routes(routes!(card_tokens::list, card_tokens::create))
        .routes(routes!(card_tokens::get, card_tokens::delete))
        .routes(routes!(card_tokens::set_status))
        .routes(routes!(card_tokens::list_for_account))
        .routes(routes!(card_tokens::get_for_account, card_tokens::delete_for_account))
        .routes(routes!(card_tokens::set_status_for_account))
        .routes(routes!(hooks::list, hooks::create))
        .routes(routes!(hooks::get, hooks::delete))
        .routes(routes!(hooks::deliveries))
        .routes(routes!(hooks::delivery))
        .routes(routes!(hooks::ping))
        .routes(routes!(hooks::resend))
        .routes(routes!(sandbox::reset))
        .routes(routes!(sandbox::list_faults, sandbox::add_fault, sandbox::clear_faults))
        .routes(routes!(sandbox::remove_fault))
        .routes(routes!(sandbox::trigger_webhook))
        .routes(routes!(sandbox::clock, sandbox::set_clock, sandbox::clear_clock))
        .routes(routes!(journal::list, journal::clear))
        .routes(routes!(journal::get))
        .routes(routes!(sessions::create))
        .routes(routes!(sessions::get))
        .routes(routes!(sessions::complete))
        .routes(routes!(sessions::transaction, transactions::update))
        .routes(routes!(transactions::list))
        .routes(routes!(transactions::capture))
        .routes(routes!(transactions::refund))
        .routes(routes!(transactions::void))
        .routes(routes!(transactions::extend_authorization))
        .routes(routes!(sessions::page, sessions::submit))
}

/// The OpenAPI 3.1 document of [`api_routes`], served at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut document) = api_routes().split_for_parts();
    openapi::finish(&mut document);
    document
}

/// The served routes with their fallbacks, before state and layers. Add routes only in
/// [`api_routes`]: the OpenAPI test compares the paths of this router with the document's.
pub fn app_routes() -> Router<AppState> {
    let (routes, _) = api_routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::NotFound("resource not found".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
}

/// The whole API. Separate from serving so tests can drive it in-process too.
pub fn router(state: AppState, settings: RequestSettings) -> Router {
    let api = app_routes()
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state.clone(), idempotency::layer))
        // Outside idempotency keys: a faulted request neither claims nor replays one.
        .layer(axum::middleware::from_fn_with_state(state.clone(), faults::layer))
        .layer(axum::middleware::from_fn_with_state(state.metrics.clone(), metrics::track));

    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::PUT, Method::PATCH, Method::POST, Method::DELETE])
        .allow_headers(Any)
        .expose_headers([
            HeaderName::from_static("paging-token"),
            HeaderName::from_static("total-count"),
            HeaderName::from_static("link"),
            idempotency::REPLAYED.clone(),
            faults::HEADER.clone(),
        ]);

    let request_id = HeaderName::from_static("request-id");
    let metrics = state.metrics.clone();
    let limits = RequestLimits {
        in_flight: Places::new(settings.max_in_flight, settings.max_in_flight_per_address),
        metrics: state.metrics.clone(),
        body_read_timeout: settings.body_read_timeout,
    };
    api.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|request: &axum::http::Request<_>| {
                        let id = request.headers().get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                        // The path only: query strings may carry customer data. The client id is
                        // recorded once the caller is authenticated (`extract`).
                        tracing::info_span!(
                            "request",
                            method = %request.method(),
                            path = %request.uri().path(),
                            request_id = %id,
                            client_id = tracing::field::Empty,
                        )
                    })
                    .on_response(move |response: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                        let (status, latency_ms) = (response.status().as_u16(), latency.as_millis() as u64);
                        if settings.log_each_request {
                            tracing::info!(status, latency_ms, "answered");
                        } else {
                            tracing::debug!(status, latency_ms, "answered");
                        }
                    }),
            )
            .layer(PropagateRequestIdLayer::new(request_id))
            // Outside the limits below, so that a request of a test account that is shed or cut
            // by the request timeout is journaled with the 503 its client got.
            .layer(axum::middleware::from_fn_with_state(state.clone(), journal::record))
            // Beyond `max_in_flight` concurrent requests (across all routes but `/health`), or
            // beyond one address's share, shed at once rather than queue without bound; and a
            // deadline for the body from the request head, so that a client trickling a body
            // holds no place for longer than it.
            .layer(axum::middleware::from_fn_with_state(limits, request_limits::limit_request))
            .layer(axum::error_handling::HandleErrorLayer::new(move |error: BoxError| {
                let response = limit_error(&metrics, error);
                async move { response }
            }))
            .timeout(settings.request_timeout)
            .layer(cors)
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES)),
    )
}

/// The answer for a request the request timeout stopped: 503 (counted for `/metrics`), 500 for
/// anything else a layer could fail with.
fn limit_error(metrics: &metrics::Metrics, error: BoxError) -> axum::response::Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        metrics.reject(metrics::Rejection::TimedOut);
        ApiError::Timeout.into_response()
    } else {
        error::error_response(StatusCode::INTERNAL_SERVER_ERROR, "internal server error", &[])
    }
}
