//! Endpoints about the server itself.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::sealed::share_entry;
use crate::http::AppState;
use crate::service::unseal::UNSEALED;

/// `GET /health`: 200 once the server is up and its database answers.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health_get",
    tag = "server",
    summary = "Health",
    description = "200 once the server is up and its database answers; 503 otherwise.",
    responses(
        (status = 200, description = "Healthy", body = oa::Health, content_type = "application/json; charset=utf-8"),
    ),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn health(State(app): State<AppState>) -> Result<Response, ApiError> {
    app.vault.ping().await?;
    Ok(json(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /.well-known/jwks.json`: the public keys that verify access tokens.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    operation_id = "jwks_get",
    tag = "server",
    summary = "Signing keys",
    description = "The public keys (JWKS) that verify access tokens.",
    responses(
        (status = 200, description = "Key set", body = oa::Jwks, content_type = "application/json; charset=utf-8"),
    ),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn jwks(State(app): State<AppState>) -> Response {
    json(StatusCode::OK, &app.keys.jwks())
}

/// `POST /v1/admin/unseal`: a share of the master key, on a server started sealed (where
/// `http::sealed` answers it); this server was started with its key and only says so.
#[utoipa::path(
    post,
    path = "/v1/admin/unseal",
    operation_id = "admin_unseal_post",
    tag = "server",
    summary = "Enter a master-key share",
    description = "On a server started with `--unseal-with-shares`, takes one share of the master key (as `tokenvault keys split` wrote it) from an operator: a client holding `admin:vault`, authenticated with its id and secret (HTTP Basic, as at the token endpoint: a sealed server cannot open its signing keys). Until the shares' threshold is reached, `/health` answers 503 `{\"status\": \"sealed\", …}` and every other call 503 with `Retry-After: 10`. The answer says where unsealing stands; a share mistyped, entered twice or of another key is 400, and a whole set that rebuilds another key than the database's is 400 and entry starts over. Every entry is audited (`master_key.share`: the share's number and the outcome, never the share). A server started with its key answers `{\"sealed\": false}` to operators. Rate limited like the token endpoint.",
    request_body(content = oa::UnsealRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Where unsealing stands", body = oa::SealStatus, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 429, response = oa::TooManyRequests),
    ),
    security(("clientAuth" = ["admin:vault"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn unseal(State(app): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let app = &app;
    share_entry(&app.limits, request, |client_id, secret| async move {
        app.vault.operator(&app.limits.credential_checks, &client_id, &secret).await
    })
    .await?;
    Ok(json(StatusCode::OK, &UNSEALED))
}
