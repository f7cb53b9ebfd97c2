//! Customers (`/v1/accounts/{aid}/customers/users`): the owners of customer tokens.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;

use crate::auth::{Caller, Permission};
use crate::domain::customer::{CustomerFilter, NewCustomer, CUSTOMER_TYPES};
use crate::domain::{FieldError, Timestamp, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{path_identifier, JsonObject, Path, Query};
use crate::http::openapi as oa;
use crate::http::response::{self, json};
use crate::http::AppState;

#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/customers/users",
    operation_id = "aid_customers_post",
    tag = "customers",
    summary = "Create customer",
    description = "Stores a customer. Fields beyond those listed are kept and returned as sent. `customer_id`, `email` (per customer type) and `phone_number` must be unique among live customers: a duplicate is 400 with the code `DUPLICATE_CUSTOMER_ID`, `DUPLICATE_EMAIL` or `DUPLICATE_PHONE_NUMBER` and the field in `errors`.",
    params(oa::AccountPath),
    request_body(content = oa::CustomerCreate, content_type = "application/json"),
    responses(
        (status = 200, description = "Customer created", body = oa::CustomerResponse, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers", "create:customers:/users"])),
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_CREATE_USER)?;
    let customer = NewCustomer::from_body(body.required()?, &caller.client_id, Timestamp::now())?;
    let stored = app.vault.create_customer(&account, &customer).await?;
    Ok(json(StatusCode::OK, &stored))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}",
    operation_id = "aid_customers_cid_get",
    tag = "customers",
    summary = "Get customer",
    params(oa::AccountPath, oa::CustomerPath),
    responses(
        (status = 200, description = "Customer", body = oa::CustomerResponse, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:customers", "read:customers"])),
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_READ)?;
    path_identifier("customer_id", &customer_id)?;
    let customer = app.vault.customer(&account, &customer_id).await?;
    Ok(json(StatusCode::OK, &customer))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/customers/users",
    operation_id = "aid_customers_get",
    tag = "customers",
    summary = "List customers",
    description = "Customers of the account, oldest first. `token_type` with `token_value` finds the customer that owns a live token.",
    params(oa::AccountPath, oa::CustomerListQuery, oa::PageQuery),
    responses(
        (status = 200, description = "Customers", body = [oa::CustomerResponse], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "read:customers"])),
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    OriginalUri(uri): OriginalUri,
    query: Query,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_READ)?;
    let mut errors = ValidationError::default();
    let token = match (query.text(&mut errors, "token_type"), query.text(&mut errors, "token_value")) {
        (Some(token_type), Some(value)) => Some((token_type, value)),
        (None, None) => None,
        (Some(_), None) => {
            errors.push(FieldError::new("token_value", "is required together with token_type"));
            None
        }
        (None, Some(_)) => {
            errors.push(FieldError::new("token_type", "is required together with token_value"));
            None
        }
    };
    let (customer_type, all_types) = match query.get("type") {
        None => (None, false),
        Some("any") => (None, true),
        Some(t) if CUSTOMER_TYPES.contains(&t) => (Some(t.to_owned()), false),
        Some(_) => {
            errors.push(FieldError::new("type", "must be one of customer, company, contact, employee, other, any"));
            (None, false)
        }
    };
    let filter = CustomerFilter {
        token,
        email_prefix: query.text(&mut errors, "email"),
        phone_number_prefix: query.text(&mut errors, "phone_number"),
        customer_type,
        all_types,
        include_deleted: query.bool(&mut errors, "include_deleted", false),
    };
    let page = query.page(&mut errors);
    let (filter, page) = errors.finish(|| (filter, page))?;
    let customers = app.vault.list_customers(&account, filter, &page).await?;
    Ok(response::list(customers, &uri, |c| c.id.to_string(), |c| c))
}

#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}",
    operation_id = "aid_customers_cid_delete",
    tag = "customers",
    summary = "Delete customer",
    description = "Marks the customer deleted; `delete_tokens=true` deletes its tokens too. Deleting again returns the same record.",
    params(oa::AccountPath, oa::CustomerPath, oa::CustomerDeleteQuery),
    responses(
        (status = 200, description = "Customer deleted", body = oa::CustomerResponse, content_type = "application/json; charset=utf-8"),
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
    Path((aid, customer_id)): Path<(String, String)>,
    query: Query,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    path_identifier("customer_id", &customer_id)?;
    let mut errors = ValidationError::default();
    let delete_tokens = query.bool(&mut errors, "delete_tokens", false);
    errors.finish(|| ())?;
    let customer = app.vault.delete_customer(&account, &customer_id, delete_tokens, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &customer))
}
