//! The transaction operations of Dintero's Checkout API that tokenvault does not implement: it
//! creates payment tokens and processes no payments, so there is nothing to capture, refund,
//! void, update or list. Each answers 501 in Dintero's error body (after the caller's
//! credentials and scopes, as the operation would check them), so that an integration hitting
//! one learns why instead of getting a 404 for a path Dintero serves. `GET /v1/transactions/{id}`
//! is implemented in `sessions`.

use axum::response::Response;

use crate::auth::{Caller, Permission};
use crate::http::error::ApiError;
use crate::http::openapi as oa;

/// The 501 every operation here answers, naming what is missing.
fn not_implemented(what: &str) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(format!("{what} is not implemented: tokenvault processes no payments")))
}

#[utoipa::path(
    get,
    path = "/v1/transactions",
    operation_id = "transactions_get",
    tag = "transactions",
    summary = "List all transactions",
    description = "Not implemented (501): tokenvault processes no payments. Read the transaction of an approved payment-token session with `GET /v1/transactions/{id}`.",
    responses(
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 501, response = oa::NotImplemented),
    ),
    security(("bearerAuth" = ["admin:checkout", "read:checkout"])),
)]
pub async fn list(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_SESSION_READ)?;
    not_implemented("listing transactions")
}

#[utoipa::path(
    put,
    path = "/v1/transactions/{id}",
    operation_id = "transactions_id_put",
    tag = "transactions",
    summary = "Update a transaction",
    description = "Not implemented (501): tokenvault processes no payments.",
    params(("id" = String, Path, description = "The transaction ID")),
    responses(
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 501, response = oa::NotImplemented),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
)]
pub async fn update(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    not_implemented("updating a transaction")
}

#[utoipa::path(
    post,
    path = "/v1/transactions/{id}/capture",
    operation_id = "transactions_id_capture_post",
    tag = "transactions",
    summary = "Capture a transaction",
    description = "Not implemented (501): tokenvault processes no payments (a payment-token session's transaction reserves no amount).",
    params(("id" = String, Path, description = "The transaction ID")),
    responses(
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 501, response = oa::NotImplemented),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
)]
pub async fn capture(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    not_implemented("capturing a transaction")
}

#[utoipa::path(
    post,
    path = "/v1/transactions/{id}/refund",
    operation_id = "transactions_id_refund_post",
    tag = "transactions",
    summary = "Refund transaction",
    description = "Not implemented (501): tokenvault processes no payments.",
    params(("id" = String, Path, description = "The transaction ID")),
    responses(
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 501, response = oa::NotImplemented),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
)]
pub async fn refund(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    not_implemented("refunding a transaction")
}

#[utoipa::path(
    post,
    path = "/v1/transactions/{id}/void",
    operation_id = "transactions_id_void_post",
    tag = "transactions",
    summary = "Void transaction",
    description = "Not implemented (501): tokenvault processes no payments.",
    params(("id" = String, Path, description = "The transaction ID")),
    responses(
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 501, response = oa::NotImplemented),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
)]
pub async fn void(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    not_implemented("voiding a transaction")
}

/// Dintero's spec lists no security for this operation (nor scopes); tokenvault asks for the
/// scopes of the other transaction writes rather than answer anyone.
#[utoipa::path(
    post,
    path = "/v1/transactions/{id}/authorization",
    operation_id = "transaction_tid_extend_authorization_post",
    tag = "transactions",
    summary = "Extend authorization on transaction",
    description = "Not implemented (501): tokenvault processes no payments.",
    params(("id" = String, Path, description = "The transaction ID")),
    responses(
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 501, response = oa::NotImplemented),
    ),
    security(("bearerAuth" = ["admin:checkout", "write:checkout"])),
)]
pub async fn extend_authorization(caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::CHECKOUT_WRITE)?;
    not_implemented("extending a transaction's authorization")
}
