//! Sandbox conveniences for test accounts (`T…` only): reset an account between CI runs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::auth::{AuthError, Caller, Permission};
use crate::domain::Timestamp;
use crate::http::error::ApiError;
use crate::http::extract::Path;
use crate::http::openapi as oa;
use crate::http::response::json;
use crate::http::AppState;

/// `POST /v1/accounts/{aid}/sandbox/reset` (tokenvault extension).
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/sandbox/reset",
    operation_id = "aid_sandbox_reset_post",
    tag = "sandbox",
    summary = "Reset a test account",
    description = "Deletes every customer, customer token, token event, card token and webhook subscription (with its pending deliveries) of a test account (`T…`), in one transaction. Clients, signing keys and the audit trail stay; responses kept for `Idempotency-Key`s are forgotten, so a key reused after the reset runs afresh. Production accounts (`P…`) are refused with 403.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "What was deleted", body = oa::SandboxReset, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn reset(State(app): State<AppState>, caller: Caller, Path(aid): Path<String>) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::SANDBOX)?;
    if !account.is_test() {
        return Err(AuthError::ProductionAccount(account.to_string()).into());
    }
    let deleted = app.store.reset_account(&account, &caller.client_id, Timestamp::now()).await?;
    Ok(json(StatusCode::OK, &json!({"account_id": account, "deleted": deleted})))
}
