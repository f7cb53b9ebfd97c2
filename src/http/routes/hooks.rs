//! Webhook subscriptions (`/v1/accounts/{aid}/hooks/subscriptions`), Dintero's hooks API for the
//! card-token events tokenvault emits.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::auth::{Caller, Permission};
use crate::domain::webhook::HookSubscription;
use crate::domain::Timestamp;
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path};
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::AppState;

/// 201 with the subscription; its `config.secret` (given or generated) is shown this once.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/hooks/subscriptions",
    operation_id = "aid_source_hooks_post",
    tag = "hooks",
    summary = "Create subscription",
    description = "Subscribes a URL to card-token events. The response shows `config.secret`, given or generated, this once. The URL must be `https` unless the account is a test account (`T…`), and must not point to a loopback, private, link-local or other internal address (its host name is resolved to check; deliveries check the resolved addresses again and follow no redirects): 400 naming `config.url` otherwise. A server started with `--webhook-allow-private-targets` (local development) allows such addresses.",
    params(oa::AccountPath),
    request_body(content = oa::HookSubscriptionCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Subscription created", body = oa::HookSubscriptionCreated, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:hooks", "write:hooks"])),
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_WRITE)?;
    let (subscription, secret) =
        HookSubscription::from_body(&body.required()?, &account, &caller.client_id, Timestamp::now())?;
    let secret = app.vault.create_hook_subscription(&subscription, secret).await?;
    let mut shown = serde_json::to_value(&subscription).unwrap_or(Value::Null);
    if let Some(Value::Object(config)) = shown.get_mut("config") {
        config.insert("secret".to_owned(), Value::String(secret));
    }
    Ok(json(StatusCode::CREATED, &shown))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/hooks/subscriptions",
    operation_id = "aid_source_hooks_get",
    tag = "hooks",
    summary = "List subscriptions",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "Subscriptions", body = [HookSubscription], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:hooks", "read:hooks"])),
)]
pub async fn list(State(app): State<AppState>, caller: Caller, Path(aid): Path<String>) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_READ)?;
    Ok(json(StatusCode::OK, &app.vault.hook_subscriptions(&account).await?))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/hooks/subscriptions/{subscription_id}",
    operation_id = "aid_source_hooks_hid_get",
    tag = "hooks",
    summary = "Get subscription",
    params(oa::AccountPath, oa::SubscriptionPath),
    responses(
        (status = 200, description = "Subscription", body = HookSubscription, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:hooks", "read:hooks"])),
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_READ)?;
    let subscription = app.vault.hook_subscription(&account, &id).await?;
    Ok(json(StatusCode::OK, &subscription))
}

#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/hooks/subscriptions/{subscription_id}",
    operation_id = "aid_source_hooks_hid_delete",
    tag = "hooks",
    summary = "Delete subscription",
    params(oa::AccountPath, oa::SubscriptionPath),
    responses(
        (status = 200, description = "Subscription deleted", body = HookSubscription, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:hooks", "write:hooks"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_WRITE)?;
    let subscription = app.vault.delete_hook_subscription(&account, &id, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &subscription))
}
