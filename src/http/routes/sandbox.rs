//! Sandbox conveniences for test accounts (`T…` only): reset an account between CI runs, as far
//! as the caller's admin scopes reach.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::auth::{Caller, Permission};
use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::AppState;
use crate::service::sandbox::ResetParts;

/// `POST /v1/accounts/{aid}/sandbox/reset` (tokenvault extension).
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/sandbox/reset",
    operation_id = "aid_sandbox_reset_post",
    tag = "sandbox",
    summary = "Reset a test account",
    description = "Deletes, in one transaction, the parts of a test account (`T…`) the caller administers: with `admin:customers` every customer, customer token and token event; with `admin:checkout` every card token; with `admin:hooks` every webhook subscription and its deliveries. At least one of these scopes is required (403 otherwise). `deleted` counts the rows removed per kind and leaves out the kinds of the parts not reset. Clients, signing keys and the audit trail stay; responses kept for the account's `Idempotency-Key`s are forgotten, so a key reused after the reset runs afresh. Production accounts (`P…`) are refused with 403.",
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
    };
    let deleted = app.vault.reset_account(&account, parts, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &json!({"account_id": account, "deleted": deleted})))
}
