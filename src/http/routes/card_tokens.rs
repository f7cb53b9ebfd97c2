//! Card tokens (seeds 001, 004): `/v1/card-tokens…`, and the account-scoped aliases
//! `/v1/accounts/{aid}/payments/card-tokens…`. The account always comes from the access token;
//! another account's token is simply not found.

use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;

use crate::auth::{Caller, Permission};
use crate::domain::card_token::{CardToken, CardTokenDeletion, CardTokenFilter, CardTokenStatus};
use crate::domain::validation::FieldError;
use crate::domain::{AccountId, ValidationError};
use crate::http::error::ApiError;
use crate::http::extract::{JsonObject, Path, Query};
use crate::http::openapi as oa;
use crate::http::response::{self, json};
use crate::http::AppState;

/// The caller's account, checked against the alias path's `aid` when there is one.
fn account_for(caller: &Caller, aid: Option<&str>, permission: Permission) -> Result<AccountId, ApiError> {
    match aid {
        Some(aid) => Ok(caller.authorize(aid, permission)?),
        None => {
            caller.require(permission)?;
            Ok(caller.account.clone())
        }
    }
}

/// `POST /v1/card-tokens` (tokenvault extension): stores a card token, `ACTIVE`.
#[utoipa::path(
    post,
    path = "/v1/card-tokens",
    operation_id = "card_tokens_post",
    tag = "card tokens",
    summary = "Create card token",
    description = "Stores a card token, `ACTIVE`, in the caller's account (Dintero creates card tokens inside payments, which tokenvault does not process). Announced to `checkout_token_add` subscribers.",
    request_body(content = oa::CardTokenCreate, content_type = "application/json"),
    responses(
        (status = 201, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 409, response = oa::Conflict),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn create(State(app): State<AppState>, caller: Caller, body: JsonObject) -> Result<Response, ApiError> {
    let account = account_for(&caller, None, Permission::CHECKOUT_ADMIN)?;
    let card =
        CardToken::from_create_body(&body.required()?, &account, &caller.client_id, app.vault.now(&account).await?)?;
    Ok(json(StatusCode::CREATED, &app.vault.create_card_token(card).await?))
}

#[utoipa::path(
    get,
    path = "/v1/card-tokens",
    operation_id = "card_tokens_get",
    tag = "card tokens",
    summary = "List card tokens",
    description = "The card tokens of the access token's account. Deleted tokens are left out unless `include_deleted=true` or `status=DELETED`.",
    params(oa::CardTokenListQuery, oa::PageQuery),
    responses(
        (status = 200, description = "Card Tokens", body = [CardToken], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
)]
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    query: Query,
) -> Result<Response, ApiError> {
    list_in(app, caller, None, uri, query).await
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/payments/card-tokens",
    operation_id = "aid_payments_card_tokens_get",
    tag = "card tokens",
    summary = "List card tokens",
    description = "The account-scoped alias of `GET /v1/card-tokens`; `aid` must be the access token's account.",
    params(oa::AccountPath, oa::CardTokenListQuery, oa::PageQuery),
    responses(
        (status = 200, description = "Card Tokens", body = [CardToken], content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
)]
pub async fn list_for_account(
    State(app): State<AppState>,
    caller: Caller,
    Path(aid): Path<String>,
    OriginalUri(uri): OriginalUri,
    query: Query,
) -> Result<Response, ApiError> {
    list_in(app, caller, Some(aid), uri, query).await
}

async fn list_in(
    app: AppState,
    caller: Caller,
    aid: Option<String>,
    uri: Uri,
    query: Query,
) -> Result<Response, ApiError> {
    let account = account_for(&caller, aid.as_deref(), Permission::CHECKOUT_READ)?;
    let mut errors = ValidationError::default();
    let mut statuses = Vec::new();
    for raw in query.all("status") {
        match raw.parse::<CardTokenStatus>() {
            Ok(status) if !statuses.contains(&status) => statuses.push(status),
            Ok(_) => {}
            Err(()) => errors.push(FieldError::new(
                "status",
                format!("unknown status {raw:?}: must be ACTIVE, INACTIVE, SUSPENDED, CANCELLED or DELETED"),
            )),
        }
    }
    let filter = CardTokenFilter {
        customer_id: query.text(&mut errors, "customer_id"),
        relationship_id: query.text(&mut errors, "relationship_id"),
        statuses,
        include_deleted: query.bool(&mut errors, "include_deleted", false),
    };
    let page = query.page(&mut errors);
    let (filter, page) = errors.finish(|| (filter, page))?;
    let page = app.vault.list_card_tokens(&account, &filter, &page).await?;
    Ok(response::list(page, &uri, |card| card.id.clone(), |card| card))
}

#[utoipa::path(
    get,
    path = "/v1/card-tokens/{token_id}",
    operation_id = "card_tokens_token_id_get",
    tag = "card tokens",
    summary = "Get card token",
    params(oa::CardTokenPath),
    responses(
        (status = 200, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
)]
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> Result<Response, ApiError> {
    get_in(app, caller, None, token_id).await
}

#[utoipa::path(
    get,
    path = "/v1/accounts/{aid}/payments/card-tokens/{token_id}",
    operation_id = "aid_payments_card_tokens_token_id_get",
    tag = "card tokens",
    summary = "Get card token",
    description = "The account-scoped alias of `GET /v1/card-tokens/{token_id}`.",
    params(oa::AccountPath, oa::CardTokenPath),
    responses(
        (status = 200, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
)]
pub async fn get_for_account(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    get_in(app, caller, Some(aid), token_id).await
}

async fn get_in(app: AppState, caller: Caller, aid: Option<String>, token_id: String) -> Result<Response, ApiError> {
    let account = account_for(&caller, aid.as_deref(), Permission::CHECKOUT_READ)?;
    Ok(json(StatusCode::OK, &app.vault.card_token(&account, &token_id).await?))
}

#[utoipa::path(
    delete,
    path = "/v1/card-tokens/{token_id}",
    operation_id = "card_tokens_token_id_delete",
    tag = "card tokens",
    summary = "Delete card token",
    description = "Returns the token with `status` `DELETED` and `deleted_at`/`deleted_by` set, without `token`: a delete erases the PSP token (the stored secret is gone; the record and its audit trail stay), so later reads of the token carry no `token` either. Deleting it again returns the same record. The body is optional.",
    params(oa::CardTokenPath),
    request_body(content = Option<oa::CardTokenDeleteRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
)]
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    delete_in(app, caller, None, token_id, body).await
}

#[utoipa::path(
    delete,
    path = "/v1/accounts/{aid}/payments/card-tokens/{token_id}",
    operation_id = "aid_payments_card_tokens_token_id_delete",
    tag = "card tokens",
    summary = "Delete card token",
    description = "The account-scoped alias of `DELETE /v1/card-tokens/{token_id}`. Returns the token with `status` `DELETED` and `deleted_at`/`deleted_by` set, without `token`: a delete erases the PSP token (the stored secret is gone; the record and its audit trail stay). Deleting it again returns the same record. The body is optional.",
    params(oa::AccountPath, oa::CardTokenPath),
    request_body(content = Option<oa::CardTokenDeleteRequest>, content_type = "application/json"),
    responses(
        (status = 200, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
)]
pub async fn delete_for_account(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, token_id)): Path<(String, String)>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    delete_in(app, caller, Some(aid), token_id, body).await
}

/// Seed 001: an optional body with `reason` (≤ 128 characters) and `requestor`.
async fn delete_in(
    app: AppState,
    caller: Caller,
    aid: Option<String>,
    token_id: String,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = account_for(&caller, aid.as_deref(), Permission::CHECKOUT_ADMIN)?;
    let body = body.optional()?.unwrap_or_default();
    let deletion = CardTokenDeletion::from_body(&body, &caller.client_id, app.vault.now(&account).await?)?;
    Ok(json(StatusCode::OK, &app.vault.delete_card_token(&account, &token_id, &deletion).await?))
}

#[utoipa::path(
    put,
    path = "/v1/card-tokens/{token_id}/status",
    operation_id = "card_tokens_token_id_status_put",
    tag = "card tokens",
    summary = "Update card token status",
    description = "Moves a card token between `ACTIVE`, `INACTIVE`, `SUSPENDED` and `CANCELLED`, so sandbox users can try every state. A `DELETED` token is 409. Announced to `checkout_token_update` subscribers.",
    params(oa::CardTokenPath),
    request_body(content = oa::CardTokenStatusUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 409, response = oa::Conflict),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn set_status(
    State(app): State<AppState>,
    caller: Caller,
    Path(token_id): Path<String>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    set_status_in(app, caller, None, token_id, body).await
}

#[utoipa::path(
    put,
    path = "/v1/accounts/{aid}/payments/card-tokens/{token_id}/status",
    operation_id = "aid_payments_card_tokens_token_id_status_put",
    tag = "card tokens",
    summary = "Update card token status",
    description = "The account-scoped alias of `PUT /v1/card-tokens/{token_id}/status`. Moves a card token between `ACTIVE`, `INACTIVE`, `SUSPENDED` and `CANCELLED`, so sandbox users can try every state. A `DELETED` token is 409. Announced to `checkout_token_update` subscribers.",
    params(oa::AccountPath, oa::CardTokenPath),
    request_body(content = oa::CardTokenStatusUpdate, content_type = "application/json"),
    responses(
        (status = 200, description = "Card Token", body = CardToken, content_type = "application/json; charset=utf-8"),
        (status = 400, response = oa::BadRequest),
        (status = 401, response = oa::Unauthorized),
        (status = 403, response = oa::Forbidden),
        (status = 404, response = oa::NotFound),
        (status = 409, response = oa::Conflict),
        (status = 413, response = oa::PayloadTooLarge),
        (status = 415, response = oa::UnsupportedMediaType),
    ),
    security(("bearerAuth" = ["admin:checkout"])),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn set_status_for_account(
    State(app): State<AppState>,
    caller: Caller,
    Path((aid, token_id)): Path<(String, String)>,
    body: JsonObject,
) -> Result<Response, ApiError> {
    set_status_in(app, caller, Some(aid), token_id, body).await
}

/// `PUT …/{token_id}/status` (tokenvault extension): lets sandbox users suspend, deactivate,
/// cancel and reactivate a card.
async fn set_status_in(
    app: AppState,
    caller: Caller,
    aid: Option<String>,
    token_id: String,
    body: JsonObject,
) -> Result<Response, ApiError> {
    let account = account_for(&caller, aid.as_deref(), Permission::CHECKOUT_ADMIN)?;
    let status = CardTokenStatus::from_status_body(&body.required()?)?;
    Ok(json(StatusCode::OK, &app.vault.set_card_token_status(&account, &token_id, status, &caller.client_id).await?))
}
