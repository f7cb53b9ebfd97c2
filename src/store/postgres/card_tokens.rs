//! Card tokens. The secret `token` only ever arrives sealed and is stored as such.

use async_trait::async_trait;
use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::types::ToSql;

use super::rows::{self, CARD_COLUMNS};
use super::sql::{append_audit, lock_list, overfetch};
use super::{webhooks, PostgresStore};
use crate::domain::audit::NewAuditRecord;
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus};
use crate::domain::webhook::{CARD_TOKEN_ADD, CARD_TOKEN_DELETE, CARD_TOKEN_UPDATE};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{
    CardTokenDeletion, CardTokenRecord, CardTokenStore, ImportOutcome, SealedToken, StoreError, StoreResult,
};

/// Inserts a card token unless its id or fingerprint is already taken in the account (`None`).
/// `ON CONFLICT DO NOTHING` keeps the transaction usable after a clash, which imports need.
async fn insert(
    client: &impl GenericClient,
    card: &CardToken,
    sealed: Option<&SealedToken>,
) -> StoreResult<Option<CardTokenRecord>> {
    let sql = format!(
        "INSERT INTO card_tokens (account_id, id, status, card_brand, payment_product_type, token_sealed, \
         token_fingerprint, masked_pan, pan_expiry_date, token_expiry_date, links, customer_id, relationship_id, \
         transaction_id, external_token_references, created_at, created_by, updated_at, deleted_at, deleted_by, \
         token_type) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
         ON CONFLICT DO NOTHING RETURNING {CARD_COLUMNS}"
    );
    let statement = client.prepare_cached(&sql).await?;
    let links = card.links.as_ref().map(rows::json_text).transpose()?;
    let references = card.external_token_references.as_ref().map(rows::json_text).transpose()?;
    let row = client
        .query_opt(
            &statement,
            &[
                &card.account_id.as_str(),
                &card.id,
                &card.status.as_str(),
                &card.card_brand.as_str(),
                &card.payment_product_type,
                &sealed.map(|s| s.ciphertext.as_slice()),
                &sealed.map(|s| s.fingerprint.as_str()),
                &card.masked_pan,
                &card.pan_expiry_date,
                &card.token_expiry_date,
                &links,
                &card.customer_id,
                &card.relationship_id,
                &card.transaction_id,
                &references,
                &card.created_at.millis(),
                &card.created_by,
                &card.updated_at.millis(),
                &card.deleted_at.map(Timestamp::millis),
                &card.deleted_by,
                &card.token_type,
            ],
        )
        .await?;
    row.as_ref().map(rows::card_token).transpose()
}

async fn create_card_token(
    conn: &mut Object,
    card: &CardToken,
    sealed: Option<&SealedToken>,
) -> StoreResult<CardTokenRecord> {
    let tx = conn.transaction().await?;
    // Keeps the account's list in commit order for paging (see `lock_list`).
    lock_list(&tx, "card_tokens", card.account_id.as_str()).await?;
    let Some(created) = insert(&tx, card, sealed).await? else {
        return Err(clash(&tx, card, sealed).await?);
    };
    append_audit(&tx, NewAuditRecord::card_token_created(card)).await?;
    webhooks::announce(&tx, CARD_TOKEN_ADD, &created.card).await?;
    tx.commit().await?;
    Ok(created)
}

/// Names what an insert that did nothing collided with. Card tokens are never removed, so the
/// row that won is still there to be found.
async fn clash(client: &impl GenericClient, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<StoreError> {
    let statement = client.prepare_cached("SELECT 1 FROM card_tokens WHERE account_id = $1 AND id = $2").await?;
    if client.query_opt(&statement, &[&card.account_id.as_str(), &card.id]).await?.is_some() {
        return Ok(StoreError::Conflict(format!("a card token with id '{}' already exists", card.id)));
    }
    if let Some(sealed) = sealed {
        let statement = client
            .prepare_cached("SELECT id FROM card_tokens WHERE account_id = $1 AND token_fingerprint = $2")
            .await?;
        if let Some(row) = client.query_opt(&statement, &[&card.account_id.as_str(), &sealed.fingerprint]).await? {
            let id: String = rows::get(&row, "id")?;
            return Ok(StoreError::Conflict(format!("this token is already stored as card token '{id}'")));
        }
    }
    Ok(StoreError::Internal(format!("card token '{}' clashed with a row that cannot be found", card.id)))
}

async fn import_card_tokens(
    conn: &mut Object,
    batch: &[(CardToken, Option<SealedToken>)],
) -> StoreResult<Vec<ImportOutcome>> {
    let tx = conn.transaction().await?;
    // Inserts into an account's card tokens take turns (see `lock_list`), imports included. That
    // also keeps two imports inserting overlapping ids in different orders from deadlocking on
    // each other's uncommitted rows; the accounts are locked in a fixed order.
    let mut accounts: Vec<&str> = batch.iter().map(|(card, _)| card.account_id.as_str()).collect();
    accounts.sort_unstable();
    accounts.dedup();
    for account in accounts {
        lock_list(&tx, "card_tokens", account).await?;
    }
    let mut outcomes = Vec::with_capacity(batch.len());
    // Each account's subscriptions are looked up once per batch.
    let mut listeners: HashMap<&str, Vec<webhooks::Listener>> = HashMap::new();
    for (card, sealed) in batch {
        if let Some(imported) = insert(&tx, card, sealed.as_ref()).await? {
            append_audit(&tx, NewAuditRecord::card_token_imported(card)).await?;
            let account = card.account_id.as_str();
            if !listeners.contains_key(account) {
                listeners.insert(account, webhooks::listeners(&tx, &card.account_id).await?);
            }
            let listeners = &listeners[account];
            if !listeners.is_empty() {
                webhooks::enqueue(&tx, listeners, CARD_TOKEN_ADD, &imported.card).await?;
            }
            outcomes.push(ImportOutcome::Imported);
        } else {
            outcomes.push(ImportOutcome::AlreadyPresent);
        }
    }
    tx.commit().await?;
    Ok(outcomes)
}

pub(super) async fn find_card_token(
    client: &impl GenericClient,
    account: &AccountId,
    id: &str,
) -> StoreResult<Option<CardTokenRecord>> {
    let sql = format!("SELECT {CARD_COLUMNS} FROM card_tokens WHERE account_id = $1 AND id = $2");
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[&account.as_str(), &id]).await?;
    row.as_ref().map(rows::card_token).transpose()
}

/// An account's card tokens in one statement, sent once and run in autocommit, as
/// [`super::customers::list_customer_tokens`] lists a customer's: one statement reads one
/// snapshot, so the cursor, the page and its count agree without a read-only transaction and the
/// cursor's own round trip. For a cursor and a total:
///
/// ```sql
/// WITH cur AS (SELECT seq FROM card_tokens WHERE account_id = $1 AND id = $2)
/// SELECT (SELECT seq FROM cur) AS cursor_seq,
///        (SELECT COUNT(*) FROM card_tokens WHERE account_id = $1 AND <filters>) AS total, p.*
/// FROM (SELECT) AS one LEFT JOIN (SELECT <CARD_COLUMNS> FROM card_tokens
///     WHERE account_id = $1 AND <filters> AND seq > (SELECT seq FROM cur) ORDER BY seq LIMIT $3) p ON TRUE
/// ```
///
/// - `cursor_seq` NULL for a given cursor: it names none of the account's card tokens (whatever
///   the filters), `UnknownCursor`; checked before the page.
/// - One row whose card columns are NULL: nothing past the cursor passes the filters, an empty
///   page; `total` (the filters' count, cursor or not) is still there.
///
/// `one` is the row that carries them when the page is empty. Without a cursor or a total the
/// statement is the page alone. Rows are sorted by `seq` here, as in `list_customer_tokens`.
pub(super) async fn list_card_tokens(
    conn: &mut Object,
    account: &AccountId,
    filter: &CardTokenFilter,
    page: &PageRequest,
) -> StoreResult<Page<CardTokenRecord>> {
    let account = account.as_str();
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let limit = overfetch(page);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&account];
    // The filters, shared by the page and its count.
    let mut filters = "account_id = $1".to_owned();
    if let Some(customer_id) = &filter.customer_id {
        params.push(customer_id);
        filters.push_str(&format!(" AND customer_id = ${}", params.len()));
    }
    if let Some(relationship_id) = &filter.relationship_id {
        params.push(relationship_id);
        filters.push_str(&format!(" AND relationship_id = ${}", params.len()));
    }
    if !statuses.is_empty() {
        params.push(&statuses);
        filters.push_str(&format!(" AND status = ANY(${})", params.len()));
    }
    if !filter.shows_deleted() {
        filters.push_str(" AND status <> 'DELETED'");
    }
    let mut ctes = String::new();
    let mut columns = Vec::new();
    let mut after = String::new();
    if let Some(id) = &page.starting_after {
        params.push(id);
        ctes = format!("WITH cur AS (SELECT seq FROM card_tokens WHERE account_id = $1 AND id = ${}) ", params.len());
        columns.push("(SELECT seq FROM cur) AS cursor_seq".to_owned());
        after.push_str(" AND seq > (SELECT seq FROM cur)");
    }
    if page.include_total {
        columns.push(format!("(SELECT COUNT(*) FROM card_tokens WHERE {filters}) AS total"));
    }
    params.push(&limit);
    let page_sql =
        format!("SELECT {CARD_COLUMNS} FROM card_tokens WHERE {filters}{after} ORDER BY seq LIMIT ${}", params.len());
    let sql = if columns.is_empty() {
        page_sql
    } else {
        format!("{ctes}SELECT {}, p.* FROM (SELECT) AS one LEFT JOIN ({page_sql}) p ON TRUE", columns.join(", "))
    };
    let statement = conn.prepare_cached(&sql).await?;
    let rows = conn.query(&statement, &params).await?;
    // With a cursor or a total there is always a first row: `one`'s.
    let first = rows.first();
    if page.starting_after.is_some() {
        let cursor = first.map(|row| rows::get::<Option<i64>>(row, "cursor_seq")).transpose()?.flatten();
        if cursor.is_none() {
            return Err(StoreError::UnknownCursor);
        }
    }
    let total = match first {
        Some(row) if page.include_total => Some(u64::try_from(rows::get::<i64>(row, "total")?).unwrap_or_default()),
        _ => None,
    };
    let items = rows::page_items(&rows, rows::card_token)?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

/// Reads a card token and locks it until the transaction ends, so that a status change and a
/// delete racing on two instances apply one after the other.
async fn lock(client: &impl GenericClient, account: &AccountId, id: &str) -> StoreResult<CardTokenRecord> {
    let sql = format!("SELECT {CARD_COLUMNS} FROM card_tokens WHERE account_id = $1 AND id = $2 FOR UPDATE");
    let statement = client.prepare_cached(&sql).await?;
    let row =
        client.query_opt(&statement, &[&account.as_str(), &id]).await?.ok_or(StoreError::NotFound("card token"))?;
    rows::card_token(&row)
}

/// A transaction, not one statement like the customer-token delete: its webhook bodies are the
/// deleted card as Rust serialises it (`card_token_event_body`), which needs the updated row.
async fn delete_card_token(
    conn: &mut Object,
    account: &AccountId,
    id: &str,
    deletion: &CardTokenDeletion,
) -> StoreResult<CardTokenRecord> {
    let tx = conn.transaction().await?;
    let current = lock(&tx, account, id).await?;
    if current.card.status == CardTokenStatus::Deleted {
        tx.commit().await?;
        return Ok(current);
    }
    // Crypto-shredding: the sealed secret and its fingerprint go with the delete, in its
    // transaction; the record and its audit trail stay.
    let sql = format!(
        "UPDATE card_tokens SET status = 'DELETED', deleted_at = $3, deleted_by = $4, updated_at = $3, \
         token_sealed = NULL, token_fingerprint = NULL \
         WHERE account_id = $1 AND id = $2 RETURNING {CARD_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let row = tx.query_one(&statement, &[&account.as_str(), &id, &deletion.at.millis(), &deletion.actor]).await?;
    let deleted = rows::card_token(&row)?;
    let record = NewAuditRecord::card_token_deleted(
        account,
        id,
        deletion.reason.as_deref(),
        deletion.requestor,
        &deletion.actor,
        deletion.at,
    );
    append_audit(&tx, record).await?;
    webhooks::announce(&tx, CARD_TOKEN_DELETE, &deleted.card).await?;
    tx.commit().await?;
    Ok(deleted)
}

async fn set_card_token_status(
    conn: &mut Object,
    account: &AccountId,
    id: &str,
    status: CardTokenStatus,
    actor: &str,
    at: Timestamp,
) -> StoreResult<CardTokenRecord> {
    let tx = conn.transaction().await?;
    let current = lock(&tx, account, id).await?;
    let from = current.card.status;
    if !from.can_become(status) {
        return Err(StoreError::Conflict(if from == CardTokenStatus::Deleted {
            format!("card token '{id}' is DELETED; its status cannot change")
        } else {
            format!("cannot change status from {from} to {status}")
        }));
    }
    if from == status {
        tx.commit().await?;
        return Ok(current);
    }
    let sql = format!(
        "UPDATE card_tokens SET status = $3, updated_at = $4 WHERE account_id = $1 AND id = $2 RETURNING {CARD_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let row = tx.query_one(&statement, &[&account.as_str(), &id, &status.as_str(), &at.millis()]).await?;
    let updated = rows::card_token(&row)?;
    append_audit(&tx, NewAuditRecord::card_token_status_changed(account, id, from, status, actor, at)).await?;
    webhooks::announce(&tx, CARD_TOKEN_UPDATE, &updated.card).await?;
    tx.commit().await?;
    Ok(updated)
}

#[async_trait]
impl CardTokenStore for PostgresStore {
    async fn create_card_token(&self, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord> {
        with_conn!(self, |conn| create_card_token(&mut conn, card, sealed).await)
    }

    async fn import_card_tokens(&self, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>> {
        with_conn!(self, |conn| import_card_tokens(&mut conn, batch).await)
    }

    async fn get_card_token(&self, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>> {
        with_conn!(self, |conn| find_card_token(&conn, account, id).await)
    }

    async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CardTokenRecord>> {
        with_conn!(self, |conn| list_card_tokens(&mut conn, account, filter, page).await)
    }

    async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> StoreResult<CardTokenRecord> {
        with_conn!(self, |conn| delete_card_token(&mut conn, account, id, deletion).await)
    }

    async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CardTokenRecord> {
        with_conn!(self, |conn| set_card_token_status(&mut conn, account, id, status, actor, at).await)
    }
}
