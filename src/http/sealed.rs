//! The front of a server started sealed (`serve --unseal-with-shares`): until enough shares of
//! the master key are entered, `/health` answers 503 `{"status": "sealed", …}`, every other call
//! 503 in Dintero's error body with `Retry-After`, and `POST /v1/admin/unseal` takes shares from
//! operators (HTTP Basic client credentials of a client holding `admin:vault`). Once the shares
//! rebuild the database's key, the full API is opened behind the same listener.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use tower::ServiceExt;

use super::error::ApiError;
use super::extract::JsonObject;
use super::response::json;
use super::routes::auth::basic_credentials;
use super::Limits;
use crate::auth::AuthError;
use crate::service::keys::MasterKey;
use crate::service::unseal::{share_of, Unsealer};

/// Where operators enter shares (an extension of tokenvault's own; `routes::meta::unseal`
/// documents it and answers it on servers not started sealed).
pub const UNSEAL_PATH: &str = "/v1/admin/unseal";
/// A share is about 100 bytes; nothing larger is read.
const UNSEAL_BODY_LIMIT: usize = 4 * 1024;

/// Finishes the server's start with the rebuilt master key: the full API's router, or why the
/// key does not open the database.
pub type OpenServer =
    Box<dyn Fn(MasterKey) -> Pin<Box<dyn Future<Output = Result<Router, String>> + Send>> + Send + Sync>;

struct Gate {
    unsealer: Unsealer,
    limits: Arc<Limits>,
    open: OpenServer,
    api: OnceLock<Router>,
}

/// The router of a sealed server; it serves the full API once unsealed. Share entry is limited as
/// the token endpoint is (`limits`): per client id, in all, and by the credential checks at once.
pub fn router(unsealer: Unsealer, limits: Arc<Limits>, open: OpenServer) -> Router {
    let gate = Arc::new(Gate { unsealer, limits, open, api: OnceLock::new() });
    // The API's own limit replaces this one for the requests passed on to it.
    Router::new().fallback(front).with_state(gate).layer(DefaultBodyLimit::max(UNSEAL_BODY_LIMIT))
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

/// `POST /v1/admin/unseal` `{"share": "tokenvault-share-v1:…"}`: 200 with the status
/// (`sealed`, `threshold`, `progress`, `key`), 400 for a share refused, 401/403 for credentials.
async fn unseal(gate: &Arc<Gate>, request: Request) -> Result<Response, ApiError> {
    if request.method() != axum::http::Method::POST {
        return Err(ApiError::MethodNotAllowed);
    }
    let (operator, share) = share_entry(&gate.limits, request, |client_id, secret| async move {
        gate.unsealer.operator(&gate.limits.credential_checks, &client_id, &secret).await
    })
    .await?;
    let status = gate
        .unsealer
        .enter(&share, &operator, |master| async {
            let api = (gate.open)(master).await?;
            let _ = gate.api.set(api);
            Ok(())
        })
        .await?;
    Ok(json(StatusCode::OK, &status))
}

/// What every share entry passes first, on a sealed server and on one started with its key
/// alike, in this order: client credentials (HTTP Basic), the token endpoint's rate limits,
/// `operator` (the client must hold `admin:vault`), and a body of one share. Returns the
/// operator's client id and the share's text.
pub(super) async fn share_entry<F, Fut>(
    limits: &Limits,
    request: Request,
    operator: F,
) -> Result<(String, String), ApiError>
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = Result<String, AuthError>>,
{
    let (client_id, secret) = basic_credentials(request.headers()).ok_or(AuthError::InvalidClient)?;
    Limits::check(&limits.token_requests, &client_id)?;
    Limits::check(&limits.token_endpoint, "")?;
    let operator = operator(client_id, secret).await?;
    let body = JsonObject::from_request(request, &()).await.unwrap_or_else(|never| match never {});
    Ok((operator, share_of(&body.required()?)?))
}
