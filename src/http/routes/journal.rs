//! The request journal of test accounts (`/v1/accounts/{aid}/sandbox/requests`, tokenvault
//! extension): what an integration sent and got back, newest first, secrets redacted.

use axum::extract::{OriginalUri, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::auth::{Caller, Permission};
use crate::domain::journal::{JournalFilter, StatusFilter};
use crate::domain::{FieldError, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{Path, Query};
use crate::http::openapi as oa;
use crate::http::response::{self, json};
use crate::http::AppState;

/// The HTTP methods a `method` filter may name.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// `GET /v1/accounts/{aid}/sandbox/requests` (tokenvault extension).
#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/sandbox/requests",
    operation_id = "aid_sandbox_requests_get",
    tag = "sandbox",
    summary = "List recorded requests",
    description = "The request journal of a test account (`T…`), newest first: every API request made with the account's credentials (or to its paths without valid credentials) with its status, latency, ids and bodies, secrets redacted (`Authorization` and other credential headers, client secrets, card `token` values, webhook secrets and access tokens read `[redacted]`). Entries are written off the request's path and appear within moments. The journal's own operations are not recorded. Production accounts (`P…`) record nothing and are refused with 403.",
    params(oa::AccountPath, oa::JournalListQuery, oa::PageQuery),
    responses(
        (status = 200, description = "Recorded requests, newest first", body = [oa::JournalEntry], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    OriginalUri(uri): OriginalUri,
    query: Query,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::JOURNAL)?;
    let mut errors = ValidationError::default();
    let method = query.text(&mut errors, "method").map(|m| m.to_ascii_uppercase());
    if let Some(method) = method.as_deref().filter(|m| !METHODS.contains(m)) {
        errors.push(FieldError::new(
            "method",
            format!("unknown method {method:?}: must be one of {}", METHODS.join(", ")),
        ));
    }
    let path_prefix = query.text(&mut errors, "path_prefix");
    if path_prefix.as_deref().is_some_and(|p| !p.starts_with('/')) {
        errors.push(FieldError::new("path_prefix", "must start with /"));
    }
    let status = query.get("status").and_then(|raw| errors.check(StatusFilter::parse(raw)));
    let since = query.time(&mut errors, "since", "must be an RFC 3339 date-time such as 2026-12-03T06:00:00Z");
    let filter = JournalFilter {
        method,
        path_prefix,
        status,
        client_id: query.text(&mut errors, "client_id"),
        request_id: query.text(&mut errors, "request_id"),
        since,
    };
    let page = query.page(&mut errors);
    let (filter, page) = errors.finish(|| (filter, page))?;
    let page = app.vault.list_journal(&account, &filter, &page).await?;
    Ok(response::list(page, &uri, |entry| entry.id.clone(), |entry| entry.to_json()))
}

/// `GET /v1/accounts/{aid}/sandbox/requests/{id}` (tokenvault extension).
#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/sandbox/requests/{id}",
    operation_id = "aid_sandbox_requests_id_get",
    tag = "sandbox",
    summary = "Get a recorded request",
    description = "One entry of a test account's request journal.",
    params(oa::AccountPath, oa::JournalEntryPath),
    responses(
        (status = 200, description = "The recorded request", body = oa::JournalEntry, content_type = "application/json; charset=utf-8"),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::JOURNAL)?;
    let entry = app.vault.journal_entry(&account, &id).await?;
    Ok(json(StatusCode::OK, &entry.to_json()))
}

/// `DELETE /v1/accounts/{aid}/sandbox/requests` (tokenvault extension).
#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/sandbox/requests",
    operation_id = "aid_sandbox_requests_delete",
    tag = "sandbox",
    summary = "Clear recorded requests",
    description = "Empties a test account's request journal; `deleted` is the number of entries removed. Requests still being written when it runs may appear afterwards.",
    params(oa::AccountPath),
    responses(
        (status = 200, description = "How many entries were removed", body = oa::JournalCleared, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:customers", "admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn clear(State(app): State<AppState>, caller: Caller, Path(aid): Path<String>) -> Result<Response, ApiError> {
    let account = caller.authorize(&aid, Permission::JOURNAL)?;
    let deleted = app.vault.clear_journal(&account).await?;
    Ok(json(StatusCode::OK, &json!({"account_id": account, "deleted": deleted})))
}
