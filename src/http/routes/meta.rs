//! Endpoints about the server itself.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::AppState;

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
