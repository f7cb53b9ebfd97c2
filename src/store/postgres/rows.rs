//! Rows to domain values. Conversion failures mean the database holds something tokenvault did
//! not write, so they are `Internal`, never a panic.

use serde_json::{Map, Value};
use tokio_postgres::types::FromSql;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::domain::audit::AuditRecord;
use crate::domain::card_token::{token_type_from_str, CardToken, CardTokenLink};
use crate::domain::customer::Customer;
use crate::domain::customer_token::CustomerToken;
use crate::domain::token_event::TokenEvent;
use crate::domain::{AccountId, Timestamp};
use crate::store::{CardTokenRecord, StoreError, StoreResult};

pub(super) const CUSTOMER_COLUMNS: &str =
    "seq, id, customer_id, attributes, created_at, created_by, updated_at, deleted_at, deleted_by";

pub(super) const TOKEN_COLUMNS: &str =
    "seq, id, token_id, token_type, value, metadata, created_at, created_by, updated_at, deleted_at, deleted_by";

pub(super) const EVENT_COLUMNS: &str = "entry_seq, event, status, metadata, created_at, expires_at";

pub(super) const CARD_COLUMNS: &str = "seq, account_id, id, status, card_brand, payment_product_type, token_sealed, \
     masked_pan, pan_expiry_date, token_expiry_date, links, customer_id, relationship_id, transaction_id, \
     external_token_references, created_at, created_by, updated_at, deleted_at, deleted_by, token_type";

pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, column: &str) -> StoreResult<T> {
    row.try_get(column).map_err(|e| StoreError::Internal(format!("column {column}: {e}")))
}

fn time(row: &Row, column: &str) -> StoreResult<Timestamp> {
    Ok(Timestamp::from_millis(get(row, column)?))
}

fn optional_time(row: &Row, column: &str) -> StoreResult<Option<Timestamp>> {
    Ok(get::<Option<i64>>(row, column)?.map(Timestamp::from_millis))
}

/// The page of a one-statement list (see `list_customer_tokens`), in `seq` order: the rows are
/// those of a `LEFT JOIN LATERAL` page, whose order SQL does not promise without an outer sort,
/// and a row whose `seq` is NULL is the outer side alone (an empty page), not an item.
pub(super) fn page_items<T>(rows: &[Row], item: impl Fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    let mut items = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(seq) = get::<Option<i64>>(row, "seq")? {
            items.push((seq, item(row)?));
        }
    }
    items.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(items.into_iter().map(|(_, item)| item).collect())
}

pub(super) fn uuid(row: &Row, column: &str) -> StoreResult<Uuid> {
    let text: &str = get(row, column)?;
    Uuid::parse_str(text).map_err(|e| StoreError::Internal(format!("column {column} is not a UUID: {e}")))
}

pub(super) fn account(row: &Row, column: &str) -> StoreResult<AccountId> {
    let text: &str = get(row, column)?;
    AccountId::parse(column, text).map_err(|e| StoreError::Internal(format!("column {column}: {}", e.message)))
}

pub(super) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("cannot encode JSON: {e}")))
}

fn json(row: &Row, column: &str) -> StoreResult<Option<Value>> {
    let Some(text) = get::<Option<&str>>(row, column)? else {
        return Ok(None);
    };
    serde_json::from_str(text).map(Some).map_err(|e| StoreError::Internal(format!("column {column} is not JSON: {e}")))
}

fn json_object(row: &Row, column: &str) -> StoreResult<Option<Map<String, Value>>> {
    match json(row, column)? {
        None => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(StoreError::Internal(format!("column {column} is not a JSON object"))),
    }
}

fn parsed<T: std::str::FromStr>(row: &Row, column: &str) -> StoreResult<T> {
    let text: &str = get(row, column)?;
    text.parse().map_err(|_| StoreError::Internal(format!("column {column} holds an unknown value {text:?}")))
}

pub(super) fn customer(row: &Row) -> StoreResult<Customer> {
    Ok(Customer {
        id: uuid(row, "id")?,
        customer_id: get(row, "customer_id")?,
        attributes: json_object(row, "attributes")?.unwrap_or_default(),
        created_at: time(row, "created_at")?,
        created_by: get(row, "created_by")?,
        updated_at: time(row, "updated_at")?,
        deleted_at: optional_time(row, "deleted_at")?,
        deleted_by: get(row, "deleted_by")?,
    })
}

pub(super) fn customer_token(row: &Row) -> StoreResult<CustomerToken> {
    Ok(CustomerToken {
        token_type: get(row, "token_type")?,
        value: get(row, "value")?,
        id: uuid(row, "id")?,
        created_at: time(row, "created_at")?,
        created_by: get(row, "created_by")?,
        updated_at: time(row, "updated_at")?,
        deleted_by: get(row, "deleted_by")?,
        deleted_at: optional_time(row, "deleted_at")?,
        token_id: get(row, "token_id")?,
        metadata: json_object(row, "metadata")?,
    })
}

pub(super) fn token_event(row: &Row) -> StoreResult<TokenEvent> {
    Ok(TokenEvent {
        event: get(row, "event")?,
        status: get(row, "status")?,
        metadata: json_object(row, "metadata")?,
        created_at: time(row, "created_at")?,
        expires_at: optional_time(row, "expires_at")?,
    })
}

pub(super) fn card_token(row: &Row) -> StoreResult<CardTokenRecord> {
    let links = match json(row, "links")? {
        None => None,
        Some(Value::Array(items)) => Some(items.iter().map(link).collect::<StoreResult<Vec<_>>>()?),
        Some(_) => return Err(StoreError::Internal("column links is not a JSON array".into())),
    };
    let external_token_references = match get::<Option<&str>>(row, "external_token_references")? {
        None => None,
        Some(text) => Some(
            serde_json::from_str::<Vec<String>>(text)
                .map_err(|e| StoreError::Internal(format!("column external_token_references: {e}")))?,
        ),
    };
    let card = CardToken {
        id: get(row, "id")?,
        token_type: token_type_from_str(&get::<String>(row, "token_type")?),
        status: parsed(row, "status")?,
        card_brand: parsed(row, "card_brand")?,
        account_id: account(row, "account_id")?,
        payment_product_type: get(row, "payment_product_type")?,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        token: None,
        masked_pan: get(row, "masked_pan")?,
        pan_expiry_date: get(row, "pan_expiry_date")?,
        token_expiry_date: get(row, "token_expiry_date")?,
        links,
        customer_id: get(row, "customer_id")?,
        relationship_id: get(row, "relationship_id")?,
        transaction_id: get(row, "transaction_id")?,
        external_token_references,
        created_by: get(row, "created_by")?,
        deleted_at: optional_time(row, "deleted_at")?,
        deleted_by: get(row, "deleted_by")?,
    };
    Ok(CardTokenRecord { card, sealed_token: get(row, "token_sealed")? })
}

fn link(value: &Value) -> StoreResult<CardTokenLink> {
    let text = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    match (text("href"), text("rel")) {
        (Some(href), Some(rel)) => Ok(CardTokenLink { href, rel, mime_type: text("mime_type") }),
        _ => Err(StoreError::Internal("column links holds a link without href or rel".into())),
    }
}

pub(super) fn audit_record(row: &Row) -> StoreResult<AuditRecord> {
    Ok(AuditRecord {
        seq: get(row, "seq")?,
        at: time(row, "at")?,
        account_id: get(row, "account_id")?,
        actor: get(row, "actor")?,
        action: get(row, "action")?,
        resource_type: get(row, "resource_type")?,
        resource_id: get(row, "resource_id")?,
        details: json(row, "details")?.unwrap_or(Value::Null),
    })
}
