//! Customers (`/v1/accounts/{aid}/customers/users`): the owners of customer tokens.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::{Caller, Permission};
use crate::domain::customer::{
    AttributeFilter, CustomerFilter, CustomerSearch, CustomerUpdate, NewCustomer, CUSTOMER_TYPES,
};
use crate::domain::customer_settings::CustomerSettings;
use crate::domain::{FieldError, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{path_identifier, JsonObject, Path, Query, NOT_A_DATE_TIME};
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
    let customer = NewCustomer::from_body(body.required()?, &caller.client_id, app.vault.now(&account).await?)?;
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
    // aid_customers_get `since_datetime`: "can't be combined with `starting_after`".
    let since = query.time(&mut errors, "since_datetime", NOT_A_DATE_TIME);
    let filter = CustomerFilter {
        token,
        email_prefix: query.text(&mut errors, "email"),
        phone_number_prefix: query.text(&mut errors, "phone_number"),
        customer_type,
        all_types,
        include_deleted: query.bool(&mut errors, "include_deleted", false),
        search: query.text(&mut errors, "search").map(|term| CustomerSearch::new(&term)),
        since,
        tag_id: query.text(&mut errors, "tag_id"),
        attributes: attribute_filters(&query, &mut errors),
    };
    let page = query.page(&mut errors);
    if since.is_some() && page.starting_after.is_some() {
        errors.push(FieldError::new("starting_after", "cannot be combined with since_datetime"));
    }
    let (filter, page) = errors.finish(|| (filter, page))?;
    let customers = app.vault.list_customers(&account, filter, &page).await?;
    // Dintero: "Retrieve next page by updating since_datetime to the latest updated_at value
    // found in the result" (to the millisecond here, so that a page ends where the next begins).
    let next_since = customers.items.last().map(|c| c.updated_at.to_rfc3339_millis());
    let mut response = response::list(customers, &uri, |c| c.id.to_string(), |c| c);
    if since.is_some() {
        response::page_by_since(&mut response, &uri, next_since);
    }
    Ok(response)
}

/// `attributes_keys[]` paired by position with `attributes_values[]` (aid_customers_get: "include
/// customers that has all the attributes", values "combine with `attributes_keys`"). Each value
/// is taken whole (commas included); a value without its key is refused, not ignored.
fn attribute_filters(query: &Query, errors: &mut ValidationError) -> Vec<AttributeFilter> {
    let keys = query.each("attributes_keys");
    let values = query.each("attributes_values");
    if keys.iter().any(|key| key.is_empty()) {
        errors.push(FieldError::new("attributes_keys", "must have at least 1 character"));
    }
    if values.len() > keys.len() {
        errors.push(FieldError::new("attributes_values", "each value needs an attributes_keys entry at its position"));
    }
    keys.iter()
        .enumerate()
        .map(|(index, key)| AttributeFilter {
            key: (*key).to_owned(),
            value: values.get(index).map(|v| (*v).to_owned()),
        })
        .collect()
}

/// aid_customers_head: 200 when a customer matches, 404 when none does, 405 unless the account's
/// settings enable it. HEAD has its own handler, so that the list (axum's default for HEAD)
/// never answers it.
#[utoipa::path(
    head,
    path = "/v1/accounts/{aid}/customers/users",
    operation_id = "aid_customers_head",
    tag = "customers",
    summary = "Check if customer exists",
    description = "Check if there is users that match the parameters. The result will match all parameters with `AND`. This endpoint must be enabled with `PUT …/customers/settings` (`users.head.enabled: true`): 405 otherwise. `email` and `phone_number` match as in the list (prefixes, the e-mail case-insensitively; encode `+` as `%2B`); at least one is required. Contact users are not counted, as in the list's default.",
    params(oa::AccountPath, oa::CustomerHeadQuery),
    responses(
        (status = 200, description = "Customer user exist"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NoCustomerMatch),
        (status = 405, response = oa::DisabledByCustomerSettings),
    ),
    security(("bearerAuth" = ["admin:customers", "read:customers", "public:customers"])),
)]
pub async fn head(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    query: Query,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_HEAD)?;
    let mut errors = ValidationError::default();
    let filter = CustomerFilter {
        email_prefix: query.text(&mut errors, "email"),
        phone_number_prefix: query.text(&mut errors, "phone_number"),
        ..CustomerFilter::default()
    };
    if errors.errors.is_empty() && filter.email_prefix.is_none() && filter.phone_number_prefix.is_none() {
        errors.push(FieldError::new("email", "email or phone_number is required"));
    }
    let filter = errors.finish(|| filter)?;
    if app.vault.customer_exists(&account, filter).await? {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::NotFound("no user match given query parameters".to_owned()))
    }
}

/// aid_customers_cid_put: "Update customer properties, properties not included in the body will
/// remain unchanged."
#[utoipa::path(
    put,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}",
    operation_id = "aid_customers_cid_put",
    tag = "customers",
    summary = "Update customer",
    description = "Update customer properties, properties not included in the body will remain unchanged. A field set to `null` is removed; `metadata` merges key by key (a key set to `null` is removed, `metadata: null` clears it). `status` is the token status `POST …/customers/tokens/events` reports for the customer's tokens. `email` (per type) and `phone_number` must stay unique: a duplicate is 400 `DUPLICATE_EMAIL` / `DUPLICATE_PHONE_NUMBER`. `customer_id` changes only through `change_customer_id`. With `auto_tokens` settings, a changed e-mail or phone number replaces its auto tokens.",
    params(oa::AccountPath, oa::CustomerPath),
    request_body(content = oa::CustomerUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "Customer updated", body = oa::CustomerResponse, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers"])),
)]
pub async fn update(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id)): Path<(String, String)>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    path_identifier("customer_id", &customer_id)?;
    let update =
        CustomerUpdate::from_body(body.required()?, &customer_id, &caller.client_id, app.vault.now(&account).await?)?;
    let customer = app.vault.update_customer(&account, &customer_id, update).await?;
    Ok(json(StatusCode::OK, &customer))
}

/// aid_customers_cid_change_customer_id_post: the customer and its tokens move to a new id.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/customers/users/{customer_id}/change_customer_id",
    operation_id = "aid_customers_cid_change_customer_id_post",
    tag = "customers",
    summary = "Change customer_id",
    description = "Update customer_id for an customer. Its tokens follow it (listed under the new id; the old id is 404). A new metadata property `dintero_change_customer_id_{timestamp}.{hash}` (`timestamp` in Unix milliseconds, `hash` 8 hex digits) is added every time, with `created_at`, `created_by`, `old` and `new`. An id a live customer has (this one's own included) is 400 `DUPLICATE_CUSTOMER_ID`.",
    params(oa::AccountPath, oa::CustomerPath),
    request_body(content = oa::ChangeCustomerId, content_type = "application/json"),
    responses(
        (status = 200, description = "Customer updated", body = oa::CustomerResponse, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:accounts"])),
)]
pub async fn change_customer_id(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, customer_id)): Path<(String, String)>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_CHANGE_ID)?;
    path_identifier("customer_id", &customer_id)?;
    let body = body.required()?;
    let new_customer_id = match body.get("customer_id") {
        Some(Value::String(id)) => {
            crate::domain::validation::identifier("customer_id", id).map_err(|e| ApiError::Validation(e.into()))?;
            id.clone()
        }
        None | Some(Value::Null) => return Err(ApiError::field("customer_id", "is required")),
        Some(_) => return Err(ApiError::field("customer_id", "must be a string")),
    };
    let customer = app.vault.change_customer_id(&account, &customer_id, &new_customer_id, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &customer))
}

/// aid_customers_atributes_get: the account's customer settings.
#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/customers/settings",
    operation_id = "aid_customers_atributes_get",
    tag = "customers",
    summary = "Get customers settings",
    description = "The settings as last put (`{}` before). tokenvault acts on `users.head.enabled`, `auto_tokens` and `tokens.event_expiry`; other fields are kept and returned as given.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "an object of customers settings", body = oa::CustomersSettings, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "read:customers", "public:customers"])),
)]
pub async fn settings(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_SETTINGS_READ)?;
    let settings = app.vault.customer_settings(&account).await?;
    Ok(json(StatusCode::OK, settings.as_map()))
}

/// aid_customers_atributes_put: replaces the account's customer settings.
#[utoipa::path(
    put,
    path = "/v1/accounts/{aid}/customers/settings",
    operation_id = "aid_customers_atributes_put",
    tag = "customers",
    summary = "Update customers settings",
    description = "Replaces the settings. `users.head.enabled` turns `HEAD …/customers/users` on; `auto_tokens.email` / `auto_tokens.phone_number` (`[{type: SHA256 | HMAC-SHA256, secret}]`, `secret` required for HMAC) add, to every customer created or updated from then on, a token per entry: `type` `sha256:email`, `hmac-sha256:email`, `sha256:phone_number` or `hmac-sha256:phone_number`, `token_id` `auto:` and the type, `value` the lower-case hex digest of the lower-cased e-mail or of the phone number (one whose type/value another customer holds is left out); `tokens.event_expiry` (`[{status, time_to_live}]`, seconds) stops events with that status from counting (listed or deciding a token's status) once older than it. Other fields are kept and returned as given.",
    params(oa::AccountPath),
    request_body(content = oa::CustomersSettings, content_type = "application/json"),
    responses(
        (status = 200, description = "added/updated object of customers settings", body = oa::CustomersSettings, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers"])),
)]
pub async fn put_settings(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    let settings = CustomerSettings::from_body(body.required()?)?;
    let stored = app.vault.put_customer_settings(&account, &settings, &caller.client_id).await?;
    Ok(json(StatusCode::OK, &stored))
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
