//! Sandbox conveniences for test accounts (`T…` only): reset an account between CI runs, as far
//! as the caller's admin scopes reach, make its requests fail on purpose (fault rules, applied
//! by `http::faults`), move its clock, and trigger webhooks.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::auth::{Caller, Permission};
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path};
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::AppState;
use crate::service::sandbox::ResetParts;
use crate::service::ServiceError;

/// `POST /v1/accounts/{aid}/sandbox/reset` (tokenvault extension).
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/sandbox/reset",
    operation_id = "aid_sandbox_reset_post",
    tag = "sandbox",
    summary = "Reset a test account",
    description = "Deletes, in one transaction, the parts of a test account (`T…`) the caller administers: with `admin:customers` every customer, customer token and token event; with `admin:checkout` every card token; with `admin:hooks` every webhook subscription and its deliveries; with `admin:customers` or `admin:checkout` every fault rule (`fault_rules`), and the account's clock goes back to real time (`clocks`: 1 when it had been set). At least one of these scopes is required (403 otherwise). `deleted` counts the rows removed per kind and leaves out the kinds of the parts not reset. Clients, signing keys and the audit trail stay; responses kept for the account's `Idempotency-Key`s are forgotten, so a key reused after the reset runs afresh. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "What was deleted", body = oa::SandboxReset, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout", "admin:hooks"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn reset(State(app): State<AppState>, caller: Caller, Path(aid): Path<String>) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX)?;
    let administers = |permission: Permission| caller.require(permission).is_ok();
    let parts = ResetParts {
        customers: administers(Permission::CUSTOMERS_ADMIN),
        card_tokens: administers(Permission::CHECKOUT_ADMIN),
        hooks: administers(Permission::HOOKS_ADMIN),
        faults: administers(Permission::CUSTOMERS_ADMIN) || administers(Permission::CHECKOUT_ADMIN),
        clock: administers(Permission::CUSTOMERS_ADMIN) || administers(Permission::CHECKOUT_ADMIN),
    };
    let deleted = app.vault.reset_account(&account, parts, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &json!({"account_id": account, "deleted": deleted})))
}

/// `POST /v1/accounts/{aid}/sandbox/faults` (tokenvault extension): 201 with the rule.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/sandbox/faults",
    operation_id = "aid_sandbox_faults_post",
    tag = "sandbox",
    summary = "Add a fault rule",
    description = "Makes matching requests to this test account (`T…`) fail on purpose, until `until` (an hour from now when left out): a `status` answer (429, 500, 502, 503 or 504, in the usual error body; `Retry-After` on 429 and 503, one second unless `retry_after` says otherwise), a `delay` (the request then proceeds), or a `drop` (the connection is closed without an answer). A request matches when its method is `method` (any when left out), its path matches `path` (`*` stands for any characters within one segment, a whole segment `**` for any number of segments) and, when `client_id` is given, it comes from that client. `frequency` says how often a matching request is faulted: `always` (the default), the next `times` matches (counted across every instance on the database), or each match with `probability`, drawn from `seed` and the match's number, so the same seed faults the same matches on every run (a seed is chosen and shown when left out). The oldest rule that fires decides; a faulted request changes no data (a delayed one runs after its delay). Every faulted answer carries `tokenvault-fault: <rule id>`. The sandbox's own operations are never faulted. A request header `tokenvault-fault` (`503`, `delay=250`, `drop`, …) faults one request of a test account without a rule (a value outside these is 400; production accounts ignore the header). At most 100 rules per account (409 beyond). Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    request_body(content = oa::FaultRuleCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "The rule, in effect on this instance at once and on the others within a second", body = oa::FaultRule, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 409, response = oa::Conflict),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn add_fault(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    let rule = app.vault.add_fault(&account, &body.required()?, &caller.client_id).await?;
    Ok(json(StatusCode::CREATED, &rule))
}

/// `GET /v1/accounts/{aid}/sandbox/faults` (tokenvault extension).
#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/sandbox/faults",
    operation_id = "aid_sandbox_faults_get",
    tag = "sandbox",
    summary = "List fault rules",
    description = "The test account's fault rules that have not expired, oldest first (the order in which they are tried), each with the matching requests it has seen (`matched`) and, for `times`, the faults it has left (`remaining`). Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "The rules", body = [oa::FaultRule], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn list_faults(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    let rules = app.vault.list_faults(&account).await?;
    Ok(json(StatusCode::OK, &rules))
}

/// `DELETE /v1/accounts/{aid}/sandbox/faults` (tokenvault extension).
#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/sandbox/faults",
    operation_id = "aid_sandbox_faults_delete",
    tag = "sandbox",
    summary = "Remove every fault rule",
    description = "Removes every fault rule of the test account; `deleted` counts those that had not expired. `sandbox/reset` does the same. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "How many rules were removed", body = oa::FaultRulesCleared, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn clear_faults(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    let deleted = app.vault.clear_faults(&account, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &json!({"account_id": account, "deleted": deleted})))
}

/// `DELETE /v1/accounts/{aid}/sandbox/faults/{fault_id}` (tokenvault extension): 204.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/sandbox/faults/{fault_id}",
    operation_id = "aid_sandbox_faults_fault_id_delete",
    tag = "sandbox",
    summary = "Remove a fault rule",
    description = "Removes one fault rule of the test account (404 when it has none of this id, expired ones included until they are removed). Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath, oa::FaultPath),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn remove_fault(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, fault_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    // An id that is no UUID names no rule.
    let id = uuid::Uuid::parse_str(&fault_id).map_err(|_| ServiceError::NotFound("fault rule"))?;
    app.vault.remove_fault(&account, id, &caller.client_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/accounts/{aid}/sandbox/webhooks/trigger` (tokenvault extension): 202.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/sandbox/webhooks/trigger",
    operation_id = "aid_sandbox_webhooks_trigger_post",
    tag = "sandbox",
    summary = "Trigger a webhook event",
    description = "Emits a card-token event (`checkout_token_add`, `checkout_token_update` or `checkout_token_delete`) of this test account (`T…`) through the outbox, to every subscription that listens for it, signed and retried as any delivery. With `token_id`, that card token is announced as it is stored, unchanged (404 when the account has none of this id). Without, a test card token is made for the purpose (`created: true`) and brought to the state the event announces: created, then suspended for `checkout_token_update` or deleted for `checkout_token_delete` (its `checkout_token_add` is then queued too; deliveries go out side by side and may arrive in either order). `deliveries` counts the subscriptions that get the event. Answered before the deliveries are attempted. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    request_body(content = oa::WebhookTrigger, content_type = "application/json"),
    responses(
        (status = 202, description = "The event, queued", body = oa::WebhookTriggered, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn trigger_webhook(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CHECKOUT_ADMIN)?;
    let triggered = app.vault.trigger_webhook(&account, &body.required()?, &caller.client_id).await?;
    Ok(json(StatusCode::ACCEPTED, &triggered.to_json(&account)))
}

/// `GET /v1/accounts/{aid}/sandbox/clock` (tokenvault extension).
#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/sandbox/clock",
    operation_id = "aid_sandbox_clock_get",
    tag = "sandbox",
    summary = "Read a test account's clock",
    description = "The test account's time (`time`), real time, and the offset between them (0 when the account runs on real time). Everything tokenvault derives from \"now\" for the account follows its clock: `created_at`, `updated_at` and `deleted_at`, token-event expiry, `Idempotency-Key` expiry, payment-token session and test card expiry, webhook delivery times and retry schedules, and the journal's `recorded_at`. Access tokens, fault rules' `until` and the journal's age bound stay on real time. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "The clock", body = oa::SandboxClock, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn clock(State(app): State<AppState>, caller: Caller, Path(aid): Path<String>) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    Ok(json(StatusCode::OK, &app.vault.clock(&account).await?))
}

/// `PUT /v1/accounts/{aid}/sandbox/clock` (tokenvault extension).
#[utoipa::path(
    put,
    path = "/v1/accounts/{aid}/sandbox/clock",
    operation_id = "aid_sandbox_clock_put",
    tag = "sandbox",
    summary = "Set or advance a test account's clock",
    description = "Sets the test account's clock to `time` (earlier or later than it shows) or moves it `advance_seconds` ahead; either way it then runs on at real speed. Webhook retries that the new time makes due are attempted at once. The change applies on this instance at once and on the others on the same database within a second. `DELETE` (or `sandbox/reset`) returns the account to real time. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    request_body(content = oa::SandboxClockChange, content_type = "application/json"),
    responses(
        (status = 200, description = "The clock, as set", body = oa::SandboxClock, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn set_clock(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    Ok(json(StatusCode::OK, &app.vault.set_clock(&account, &body.required()?, &caller.client_id).await?))
}

/// `DELETE /v1/accounts/{aid}/sandbox/clock` (tokenvault extension).
#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/sandbox/clock",
    operation_id = "aid_sandbox_clock_delete",
    tag = "sandbox",
    summary = "Return a test account to real time",
    description = "The test account runs on real time again (answered with the clock, offset 0, whether or not it had been set). What was stored meanwhile keeps the times it got. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "The clock, on real time", body = oa::SandboxClock, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn clear_clock(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX_ADMIN)?;
    Ok(json(StatusCode::OK, &app.vault.clear_clock(&account, &caller.client_id).await?))
}
