//! Customer tokens (seeds 000, 002, 003): `/v1/accounts/{aid}/customers/users/{customer_id}/tokens`.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::{Caller, Permission};
use crate::domain::customer_token::{CustomerTokenFilter, NewCustomerToken};
use crate::domain::{Timestamp, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{path_identifier, JsonObject, Path, Query};
use crate::http::response::{self, json};
use crate::http::AppState;

/// Seed 003: 201 with the stored token; `delete_token_events` clears the type/value's events in
/// the same transaction.
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
    let token = NewCustomerToken::from_body(&body.required()?, &caller.client_id, Timestamp::now())?;
    let stored = app.store.create_customer_token(&account, &customer_id, &token, delete_token_events).await?;
    Ok(json(StatusCode::CREATED, &stored))
}

/// Seed 002: deleted tokens are included unless `include_deleted=false`.
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
    let tokens = app.store.list_customer_tokens(&account, &customer_id, &filter, &page).await?;
    Ok(response::list(tokens, &uri, |t| t.id.to_string(), |t| t))
}

/// Seed 000: 200 with the deleted token; repeating it is a safe no-op.
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id, token_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    path_identifier("customer_id", &customer_id)?;
    path_identifier("tid", &token_id)?;
    let token =
        app.store.delete_customer_token(&account, &customer_id, &token_id, &caller.client_id, Timestamp::now()).await?;
    Ok(json(StatusCode::OK, &token))
}
