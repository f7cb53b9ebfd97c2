//! Customer tokens (seeds 000, 002, 003): `/v1/accounts/{aid}/customers/users/{customer_id}/tokens`.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::{Caller, Permission};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::ValidationError;
use crate::http::error::ApiError;
use crate::http::extract::{path_identifier, JsonObject, Path, Query};
use crate::http::openapi as oa;
use crate::http::response::{self, json};
use crate::http::AppState;

/// Seed 003: 201 with the stored token; `delete_token_events` clears the type/value's events in
/// the same transaction.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}/tokens",
    operation_id = "aid_customers_cid_tokens_post",
    tag = "customer tokens",
    summary = "Create a new customer token",
    description = "Adds a token to an existing customer. A live `token_id` of the customer is 400 with the code `DUPLICATE_TOKEN_ID`; a type/value that is live on a customer is 400 with `DUPLICATE_TOKEN` (`errors` names the fields).",
    params(oa::AccountPath, oa::CustomerPath, oa::CustomerTokenCreateQuery),
    request_body(content = oa::CustomerTokenCreate, description = "customer token to add", content_type = "application/json"),
    responses(
        (status = 201, description = "Customer token added", body = CustomerToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers"])),
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id)): Path<(String, String)>,
    query: Query,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    path_identifier("customer_id", &customer_id)?;
    let mut errors = ValidationError::default();
    let delete_token_events = query.bool(&mut errors, "delete_token_events", false);
    errors.finish(|| ())?;
    let token = NewCustomerToken::from_body(&body.required()?, &caller.client_id, app.vault.now(&account).await?)?;
    let stored = app.vault.create_customer_token(&account, &customer_id, token, delete_token_events).await?;
    Ok(json(StatusCode::CREATED, &stored))
}

/// Seed 002: deleted tokens are included unless `include_deleted=false`.
#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}/tokens",
    operation_id = "aid_customers_cid_tokens_get",
    tag = "customer tokens",
    summary = "Get all tokens for a Customer",
    params(oa::AccountPath, oa::CustomerPath, oa::CustomerTokenListQuery, oa::PageQuery),
    responses(
        (status = 200, description = "Token collection", body = [CustomerToken], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:customers", "read:customers"])),
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
    query: Query,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_READ)?;
    path_identifier("customer_id", &customer_id)?;
    let mut errors = ValidationError::default();
    let filter = CustomerTokenFilter {
        token_type: query.text(&mut errors, "type"),
        include_deleted: query.bool(&mut errors, "include_deleted", true),
    };
    let page = query.page(&mut errors);
    let (filter, page) = errors.finish(|| (filter, page))?;
    let tokens = app.vault.list_customer_tokens(&account, &customer_id, &filter, &page).await?;
    Ok(response::list(tokens, &uri, |t| t.id.to_string(), |t| t))
}

/// Seed 000: 200 with the deleted token; repeating it is a safe no-op.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}/tokens/{tid}",
    operation_id = "aid_customers_cid_tokens_tid_delete",
    tag = "customer tokens",
    summary = "Delete Token",
    description = "Returns the token with `deleted_at`/`deleted_by` set; deleting it again returns the same record.",
    params(oa::AccountPath, oa::CustomerPath, oa::CustomerTokenPath),
    responses(
        (status = 200, description = "Token deleted", body = CustomerToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id, token_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    path_identifier("customer_id", &customer_id)?;
    path_identifier("tid", &token_id)?;
    let token = app.vault.delete_customer_token(&account, &customer_id, &token_id, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &token))
}
