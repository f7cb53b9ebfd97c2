//! Endpoints about the server itself.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::http::error::ApiError;
use crate::http::response::json;
use crate::http::AppState;

/// `GET /health`: 200 once the server is up and its database answers.
pub async fn health(State(app): State<AppState>) -> Result<Response, ApiError> {
    app.store.ping().await?;
    Ok(json(StatusCode::OK, &json!({"status": "ok"})))
}

/// `GET /.well-known/jwks.json`: the public keys that verify access tokens.
pub async fn jwks(State(app): State<AppState>) -> Response {
    json(StatusCode::OK, &app.keys.jwks())
}
