//! Token events (`/v1/accounts/{aid}/customers/tokens/events`): what is known about a token
//! type/value, with or without a customer.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use crate::auth::{Caller, Permission};
use crate::domain::customer::Customer;
use crate::domain::customer_token::CustomerToken;
use crate::domain::token_event::{aggregated_status, TokenEvent, TokenTypeValue, DELETED_STATUS};
use crate::domain::{FieldError, Timestamp, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path, Query, NOT_A_DATE_TIME};
use crate::http::openapi as oa;
use crate::http::response::{self, json};
use crate::http::AppState;

/// Dintero's `TokenDetail`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenDetail)]
struct TokenDetailBody {
    /// An id for the token type/value.
    id: Uuid,
    /// The customer owning the token, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<oa::CustomerResponse>)]
    customer: Option<Customer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token: Option<CustomerToken>,
    /// The customer's `status`, else the latest unexpired event's status, else `UNKNOWN`.
    #[schema(example = "OPT_OUT")]
    status: String,
    events: Vec<TokenEvent>,
}

/// An item of the events collection.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = TokenEvents)]
struct TokenEventsBody {
    id: Uuid,
    /// The latest unexpired event's status, else `UNKNOWN`.
    #[schema(example = "DELETED")]
    status: String,
    events: Vec<TokenEvent>,
}

/// Reads `{"token": {...}, "event": {...}?}`.
fn parse_body(
    body: &serde_json::Map<String, serde_json::Value>,
    event_required: bool,
    now: Timestamp,
) -> Result<(TokenTypeValue, Option<TokenEvent>), ApiError> {
    let mut errors = ValidationError::default();
    let token = match TokenTypeValue::from_value("token", body.get("token")) {
        Ok(token) => Some(token),
        Err(error) => {
            errors.errors.extend(error.errors);
            None
        }
    };
    let event = match body.get("event") {
        None | Some(serde_json::Value::Null) => None,
        Some(value) => match TokenEvent::from_value("event", value, event_required, now) {
            Ok(event) => Some(event),
            Err(error) => {
                errors.errors.extend(error.errors);
                None
            }
        },
    };
    Ok(errors.finish(|| (token.expect("validated"), event))?)
}

/// Find / add: returns the token's details, recording the event first when one is given.
#[utoipa::path(
    post,
    path = "/v1/accounts/{aid}/customers/tokens/events",
    operation_id = "aid_customers_tokens_events_post",
    tag = "token events",
    summary = "Find / Add token events",
    description = "Returns details about a token: the owning customer and recorded events. If an `event` is included, it is recorded and updates the token's status.",
    params(oa::AccountPath),
    request_body(content = oa::TokenEventsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Token details", body = TokenDetailBody, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers"])),
)]
pub async fn find_or_add(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    let now = app.vault.now(&account).await?;
    let (token, event) = parse_body(&body.required()?, true, now)?;
    let detail = app.vault.token_detail(&account, &token, event.as_ref(), &caller.client_id, now).await?;
    let status = aggregated_status(detail.customer.as_ref().and_then(Customer::status), &detail.events, now);
    Ok(json(
        StatusCode::OK,
        &TokenDetailBody {
            id: detail.id,
            customer: detail.customer,
            token: detail.token,
            status,
            events: detail.events,
        },
    ))
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/customers/tokens/events",
    operation_id = "aid_customers_tokens_events_get",
    tag = "token events",
    summary = "Get token events",
    params(oa::AccountPath, oa::TokenEventsQuery, oa::PageQuery),
    responses(
        (status = 200, description = "events collection", body = [TokenEventsBody], content_type = "application/json; charset=utf-8"),
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
    let since = query.time(&mut errors, "since_datetime", NOT_A_DATE_TIME);
    // aid_customers_tokens_events_get `deleted_since`: "return only token events that has been
    // deleted", a date-time as `since_datetime`.
    let deleted_since = query.time(&mut errors, "deleted_since", NOT_A_DATE_TIME);
    if deleted_since.is_some() && since.is_some() {
        errors.push(FieldError::new("deleted_since", "cannot be combined with since_datetime"));
    }
    let page = query.page(&mut errors);
    if since.is_some() && page.starting_after.is_some() {
        errors.push(FieldError::new("starting_after", "cannot be combined with since_datetime"));
    }
    let page = errors.finish(|| page)?;
    let entries = match deleted_since {
        Some(deleted_since) => app.vault.list_deleted_token_events(&account, deleted_since, &page).await?,
        None => app.vault.list_token_events(&account, since, &page).await?,
    };
    let now = app.vault.now(&account).await?;
    let mut response = response::list(
        entries,
        &uri,
        |e| e.id.to_string(),
        |entry| TokenEventsBody {
            id: entry.id,
            // A deleted type/value without events since: `DELETED`, as the delete event would say.
            status: match deleted_since {
                Some(_) if entry.events.is_empty() => DELETED_STATUS.to_owned(),
                _ => aggregated_status(None, &entry.events, now),
            },
            events: entry.events,
        },
    );
    // `since_datetime` cannot be combined with `starting_after` (aid_customers_tokens_events_get):
    // no cursor that would lead to a 400; the caller moves `since_datetime` on.
    if since.is_some() {
        response::page_by_since(&mut response, &uri, None);
    }
    Ok(response)
}

/// Clears a type/value's events; an optional `event` is recorded as the `DELETED` event.
#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/customers/tokens/events",
    operation_id = "aid_customers_tokens_events_delete",
    tag = "token events",
    summary = "Delete token events",
    description = "Removes the link between a token (type/value) and its events. An optional event stores the reason.",
    params(oa::AccountPath),
    request_body(content = oa::TokenEventsDeleteRequest, content_type = "application/json"),
    responses(
        (status = 204, description = "events cleared"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:customers", "write:customers"])),
)]
pub async fn clear(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::CUSTOMERS_WRITE)?;
    let now = app.vault.now(&account).await?;
    let (token, event) = parse_body(&body.required()?, false, now)?;
    app.vault.clear_token_events(&account, &token, event, &caller.client_id, now).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
