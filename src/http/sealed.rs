//! The front of a server started sealed (`serve --unseal-with-shares`): until enough shares of
//! the master key are entered, `/health` answers 503 `{"status": "sealed", …}`, every other call
//! 503 in Dintero's error body with `Retry-After`, and `POST /v1/admin/unseal` takes shares from
//! operators (HTTP Basic client credentials of a client holding `admin:vault`). Once the shares
//! rebuild the database's key, the full API is opened behind the same listener.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Deserialize;
use serde_json::json;
use tower::ServiceExt;

use super::error::ApiError;
use super::response::json;
use super::routes::auth::basic_credentials;
use crate::auth::clients::CredentialChecks;
use crate::auth::AuthError;
use crate::service::keys::MasterKey;
use crate::service::unseal::Unsealer;

/// Where operators enter shares (an extension of tokenvault's own).
pub const UNSEAL_PATH: &str = "/v1/admin/unseal";
/// A share is about 100 bytes; nothing larger is read.
const UNSEAL_BODY_LIMIT: usize = 4 * 1024;

/// Finishes the server's start with the rebuilt master key: the full API's router, or why the
/// key does not open the database.
pub type OpenServer =
    Box<dyn Fn(MasterKey) -> Pin<Box<dyn Future<Output = Result<Router, String>> + Send>> + Send + Sync>;

struct Gate {
    unsealer: Unsealer,
    checks: CredentialChecks,
    open: OpenServer,
    api: OnceLock<Router>,
}

/// The router of a sealed server; it serves the full API once unsealed.
pub fn router(unsealer: Unsealer, checks: CredentialChecks, open: OpenServer) -> Router {
    let gate = Arc::new(Gate { unsealer, checks, open, api: OnceLock::new() });
    Router::new().fallback(front).with_state(gate)
}

async fn front(State(gate): State<Arc<Gate>>, request: Request) -> Response {
    if request.uri().path() == UNSEAL_PATH {
        return unseal(&gate, request).await.unwrap_or_else(IntoResponse::into_response);
    }
    if let Some(api) = gate.api.get() {
        return api.clone().oneshot(request).await.unwrap_or_else(|never| match never {});
    }
    if request.uri().path() == "/health" {
        let status = gate.unsealer.status().await;
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "sealed", "threshold": status.threshold, "progress": status.progress, "key": status.key}),
        );
    }
    ApiError::Sealed.into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareBody {
    share: String,
}

/// `POST /v1/admin/unseal` `{"share": "tokenvault-share-v1:…"}`: 200 with the status
/// (`sealed`, `threshold`, `progress`, `key`), 400 for a share refused, 401/403 for credentials.
async fn unseal(gate: &Arc<Gate>, request: Request<Body>) -> Result<Response, ApiError> {
    if request.method() != axum::http::Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let (client_id, secret) = basic_credentials(request.headers()).ok_or(AuthError::InvalidClient)?;
    let operator = gate.unsealer.operator(&gate.checks, &client_id, &secret).await?;
    let body = axum::body::to_bytes(request.into_body(), UNSEAL_BODY_LIMIT)
        .await
        .map_err(|_| ApiError::PayloadTooLarge(UNSEAL_BODY_LIMIT))?;
    let body: ShareBody = serde_json::from_slice(&body)
        .map_err(|_| ApiError::field("share", "a JSON object {\"share\": \"tokenvault-share-v1:…\"} is expected"))?;
    let status = gate
        .unsealer
        .enter(&body.share, &operator, |master| async {
            let api = (gate.open)(master).await?;
            let _ = gate.api.set(api);
            Ok(())
        })
        .await?;
    Ok(json(StatusCode::OK, &status))
}
