//! Webhook subscriptions (`/v1/accounts/{aid}/hooks/subscriptions`), Dintero's hooks API for the
//! card-token events tokenvault emits.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::domain::webhook::HookSubscription;
use crate::domain::Timestamp;
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path};
use crate::http::response::json;
use crate::http::AppState;

fn not_found() -> ApiError {
    ApiError::NotFound("subscription not found".to_owned())
}

fn subscription_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| not_found())
}

/// 201 with the subscription; its `config.secret` (given or generated) is shown this once.
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_WRITE)?;
    let (subscription, secret) =
        HookSubscription::from_body(&body.required()?, &account, &caller.client_id, Timestamp::now())?;
    let secret = secret.unwrap_or_else(|| {
        let mut bytes = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    });
    let sealed = app.cipher.seal(&account, &subscription.id.to_string(), &secret);
    app.store.create_hook_subscription(&subscription, &sealed.ciphertext).await?;
    let mut shown = serde_json::to_value(&subscription).unwrap_or(Value::Null);
    if let Some(Value::Object(config)) = shown.get_mut("config") {
        config.insert("secret".to_owned(), Value::String(secret));
    }
    Ok(json(StatusCode::CREATED, &shown))
}

pub async fn list(State(app): State<AppState>, caller: Caller, Path(aid): Path<String>) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_READ)?;
    Ok(json(StatusCode::OK, &app.store.list_hook_subscriptions(&account).await?))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_READ)?;
    let subscription = app.store.get_hook_subscription(&account, subscription_id(&id)?).await?.ok_or_else(not_found)?;
    Ok(json(StatusCode::OK, &subscription))
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_WRITE)?;
    let subscription = app
        .store
        .delete_hook_subscription(&account, subscription_id(&id)?, &caller.client_id, Timestamp::now())
        .await?;
    Ok(json(StatusCode::OK, &subscription))
}
