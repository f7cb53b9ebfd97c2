//! Webhook subscriptions (`/v1/accounts/{aid}/hooks/subscriptions`), Dintero's hooks API for the
//! card-token events tokenvault emits.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::{Caller, Permission};
use crate::domain::webhook::{HookDelivery, HookSubscription};
use crate::domain::ValidationError;
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path, Query};
use crate::http::openapi as oa;
use crate::http::response::{self, json};
use crate::http::AppState;

/// 200 with the subscription (aid_source_hooks_post: "Subscription created" is a 200); its `config.secret` (given or generated) is shown this once.
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
        (status = 200, description = "Subscription created", body = oa::HookSubscriptionCreated, content_type = "application/json; charset=utf-8"),
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
        HookSubscription::from_body(&body.required()?, &account, &caller.client_id, app.vault.now(&account).await?)?;
    let secret = app.vault.create_hook_subscription(&subscription, secret).await?;
    let mut shown = serde_json::to_value(&subscription).unwrap_or(Value::Null);
    if let Some(Value::Object(config)) = shown.get_mut("config") {
        config.insert("secret".to_owned(), Value::String(secret));
    }
    Ok(json(StatusCode::OK, &shown))
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
    path = "/v1/accounts/{aid}/hooks/subscriptions/{hid}",
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
    path = "/v1/accounts/{aid}/hooks/subscriptions/{hid}",
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

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/deliveries",
    operation_id = "aid_source_hooks_hid_deliveries_get",
    tag = "hooks",
    summary = "Get recent subscription deliveries",
    description = "The subscription's deliveries (one event to this subscription each; a ping or a resend is one too), newest first, each with the HTTP status of its latest attempt (absent before the first attempt and when the receiver did not answer). Deliveries stay until they are finished and older than the server's retention (7 days by default). `limit`, `starting_after` and `total` page the list (tokenvault extension: Dintero names no parameters here); another account's subscription is 404.",
    params(oa::AccountPath, oa::SubscriptionPath, oa::PageQuery),
    responses(
        (status = 200, description = "Deliveries Collection", body = [HookDelivery], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:hooks", "read:hooks"])),
)]
pub async fn deliveries(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, hid)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    query: Query,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_READ)?;
    let mut errors = ValidationError::default();
    let page = query.page(&mut errors);
    errors.finish(|| ())?;
    let deliveries = app.vault.hook_deliveries(&account, &hid, &page).await?;
    Ok(response::list(deliveries, &uri, |delivery| delivery.id.to_string(), |delivery| delivery))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/deliveries/{delivery_id}",
    operation_id = "aid_source_hooks_hid_deliveries_did_get",
    tag = "hooks",
    summary = "Get subscription delivery details",
    description = "One delivery: Dintero's `url`, `request` (the headers sent, `event-signature` included, and the body), `response` (the receiver's headers, `set-cookie` left out, and the first 4 KiB of its body) and `details` of the latest attempt; tokenvault adds `event`, `state` (`PENDING`, `DELIVERED`, `FAILED`), `next_attempt_at` while pending, and every attempt in `attempts`.",
    params(oa::AccountPath, oa::SubscriptionPath, oa::DeliveryPath),
    responses(
        (status = 200, description = "Deliveries", body = oa::HookDeliveryDetail, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:hooks", "read:hooks"])),
)]
pub async fn delivery(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, hid, delivery_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_READ)?;
    let delivery = app.vault.hook_delivery(&account, &hid, &delivery_id).await?;
    Ok(json(StatusCode::OK, &delivery.detail()))
}

/// 204: the ping is queued and the worker sends it at once; it shows in the deliveries.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/ping",
    operation_id = "aid_source_hooks_hid_ping_post",
    tag = "hooks",
    summary = "Ping subscription",
    description = "Sends a `ping` event to the subscription's URL now (headers `event: ping`, `event-delivery`, `event-signature`; the body is the subscription as `aid_source_hooks_hid_get` shows it). The ping is a delivery like any other (retried, and listed in the deliveries). A new subscription is pinged too.",
    params(oa::AccountPath, oa::SubscriptionPath),
    responses(
        (status = 204, description = "No Content"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:hooks", "write:hooks"])),
)]
pub async fn ping(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, hid)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_WRITE)?;
    app.vault.ping_hook_subscription(&account, &hid, &caller.client_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// 202 with the new delivery (tokenvault extension).
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/hooks/subscriptions/{hid}/deliveries/{delivery_id}/resend",
    operation_id = "tokenvault_hooks_hid_deliveries_did_resend_post",
    tag = "hooks",
    summary = "Resend delivery",
    description = "Sends the delivery's event again through the outbox, signed as usual: a new delivery (its own `id`) with the original's body and `event-delivery`, so a receiver that deduplicates by `event-delivery` sees the same event. Answers 202 with the new delivery, before it is attempted.",
    params(oa::AccountPath, oa::SubscriptionPath, oa::DeliveryPath),
    responses(
        (status = 202, description = "The new delivery, queued", body = HookDelivery, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:hooks", "write:hooks"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn resend(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, hid, delivery_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::HOOKS_WRITE)?;
    let queued = app.vault.resend_hook_delivery(&account, &hid, &delivery_id, &caller.client_id).await?;
    Ok(json(StatusCode::ACCEPTED, &queued.summary()))
}
