//! Card tokens. The secret `token` only ever arrives and leaves sealed.

use async_trait::async_trait;
use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::{params, Connection, Row};
use serde_json::Map;

use super::sql::{self, json_opt_col, parsed_col, text, time_col, time_opt_col, Where};
use super::{webhooks, SqliteStore};
use crate::domain::audit::NewAuditRecord;
use crate::domain::card_token::{token_type_from_str, CardToken, CardTokenFilter, CardTokenLink, CardTokenStatus};
use crate::domain::webhook::{CARD_TOKEN_ADD, CARD_TOKEN_DELETE, CARD_TOKEN_UPDATE};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{
    CardTokenDeletion, CardTokenRecord, CardTokenStore, ImportOutcome, SealedToken, StoreError, StoreResult,
};

const COLUMNS: &str = "id, status, card_brand, account_id, payment_product_type, created_at, updated_at, masked_pan, \
                       pan_expiry_date, token_expiry_date, links, customer_id, relationship_id, transaction_id, \
                       external_token_references, created_by, deleted_at, deleted_by, token_sealed, token_type";

fn record_row(row: &Row<'_>) -> rusqlite::Result<CardTokenRecord> {
    let account_id: String = row.get(3)?;
    let account_id = AccountId::parse("account_id", &account_id).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("{}: {}", e.field, e.message).into(),
        )
    })?;
    let links: Option<Vec<Map<String, serde_json::Value>>> = json_opt_col(row, 10)?;
    let card = CardToken {
        id: row.get(0)?,
        token_type: token_type_from_str(&row.get::<_, String>(19)?),
        status: parsed_col(row, 1)?,
        card_brand: parsed_col(row, 2)?,
        account_id,
        payment_product_type: row.get(4)?,
        created_at: time_col(row, 5)?,
        updated_at: time_col(row, 6)?,
        token: None,
        masked_pan: row.get(7)?,
        pan_expiry_date: row.get(8)?,
        token_expiry_date: row.get(9)?,
        links: links.map(|links| links.iter().map(link_from_json).collect()),
        customer_id: row.get(11)?,
        relationship_id: row.get(12)?,
        transaction_id: row.get(13)?,
        external_token_references: json_opt_col(row, 14)?,
        created_by: row.get(15)?,
        deleted_at: time_opt_col(row, 16)?,
        deleted_by: row.get(17)?,
    };
    Ok(CardTokenRecord { card, sealed_token: row.get(18)? })
}

/// Links are validated on the way in, so reading them back is lenient.
fn link_from_json(link: &Map<String, serde_json::Value>) -> CardTokenLink {
    let field = |name: &str| link.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
    CardTokenLink {
        href: field("href").unwrap_or_default(),
        rel: field("rel").unwrap_or_default(),
        mime_type: field("mime_type"),
    }
}

pub(super) fn find(conn: &Connection, account: &str, id: &str) -> StoreResult<Option<CardTokenRecord>> {
    sql::first(
        conn,
        &format!("SELECT {COLUMNS} FROM card_tokens WHERE account_id = ?1 AND id = ?2"),
        params![account, id],
        record_row,
    )
}

fn get(conn: &Connection, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>> {
    find(conn, account.as_str(), id)
}

/// Why `card` cannot be stored, if it clashes with a token of its account.
fn clash(conn: &Connection, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<Option<String>> {
    let aid = card.account_id.as_str();
    if sql::exists(conn, "SELECT 1 FROM card_tokens WHERE account_id = ?1 AND id = ?2", params![aid, card.id])? {
        return Ok(Some(format!("a card token with id '{}' already exists", card.id)));
    }
    if let Some(sealed) = sealed {
        let holder: Option<String> = sql::first(
            conn,
            "SELECT id FROM card_tokens WHERE account_id = ?1 AND token_fingerprint = ?2",
            params![aid, sealed.fingerprint],
            |r| r.get(0),
        )?;
        if let Some(holder) = holder {
            return Ok(Some(format!("this token is already stored as card token '{holder}'")));
        }
    }
    Ok(None)
}

/// Inserts a card token and its audit record, `audit` built from the card (create or import).
fn insert(
    conn: &Connection,
    card: &CardToken,
    sealed: Option<&SealedToken>,
    audit: fn(&CardToken) -> NewAuditRecord,
) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO card_tokens (account_id, id, status, card_brand, payment_product_type, token_sealed, token_fingerprint,
                                  masked_pan, pan_expiry_date, token_expiry_date, links, customer_id, relationship_id,
                                  transaction_id, external_token_references, created_at, created_by, updated_at,
                                  deleted_at, deleted_by, token_type)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)",
        params![
            card.account_id.as_str(),
            card.id,
            card.status.as_str(),
            card.card_brand.as_str(),
            card.payment_product_type,
            sealed.map(|s| &s.ciphertext),
            sealed.map(|s| &s.fingerprint),
            card.masked_pan,
            card.pan_expiry_date,
            card.token_expiry_date,
            sql::to_json_opt(card.links.as_ref())?,
            card.customer_id,
            card.relationship_id,
            card.transaction_id,
            sql::to_json_opt(card.external_token_references.as_ref())?,
            card.created_at.millis(),
            card.created_by,
            card.updated_at.millis(),
            card.deleted_at.map(Timestamp::millis),
            card.deleted_by,
            card.token_type,
        ],
    )?;
    sql::audit(conn, &audit(card))
}

fn create(conn: &Connection, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord> {
    if let Some(reason) = clash(conn, card, sealed)? {
        return Err(StoreError::Conflict(reason));
    }
    insert(conn, card, sealed, NewAuditRecord::card_token_created)?;
    let record = CardTokenRecord {
        card: CardToken { token: None, ..card.clone() },
        sealed_token: sealed.map(|s| s.ciphertext.clone()),
    };
    webhooks::announce(conn, CARD_TOKEN_ADD, &record.card)?;
    Ok(record)
}

fn import(conn: &Connection, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>> {
    let mut outcomes = Vec::with_capacity(batch.len());
    // A batch is usually of one account: its subscriptions are looked up once.
    let mut listeners: HashMap<&str, Vec<webhooks::Listener>> = HashMap::new();
    for (card, sealed) in batch {
        if clash(conn, card, sealed.as_ref())?.is_some() {
            outcomes.push(ImportOutcome::AlreadyPresent);
        } else {
            insert(conn, card, sealed.as_ref(), NewAuditRecord::card_token_imported)?;
            let account = card.account_id.as_str();
            if !listeners.contains_key(account) {
                listeners.insert(account, webhooks::listeners(conn, &card.account_id)?);
            }
            let listeners = &listeners[account];
            if !listeners.is_empty() {
                webhooks::enqueue(conn, listeners, CARD_TOKEN_ADD, &CardToken { token: None, ..card.clone() })?;
            }
            outcomes.push(ImportOutcome::Imported);
        }
    }
    Ok(outcomes)
}

pub(super) fn list(
    conn: &Connection,
    account: &AccountId,
    filter: &CardTokenFilter,
    page: &PageRequest,
) -> StoreResult<Page<CardTokenRecord>> {
    let aid = account.as_str();
    let mut query = Where::new("account_id = ?", [text(aid)]);
    if let Some(customer_id) = &filter.customer_id {
        query.and("customer_id = ?", [text(customer_id)]);
    }
    if let Some(relationship_id) = &filter.relationship_id {
        query.and("relationship_id = ?", [text(relationship_id)]);
    }
    if !filter.statuses.is_empty() {
        let marks = vec!["?"; filter.statuses.len()].join(", ");
        query.and(&format!("status IN ({marks})"), filter.statuses.iter().map(|s| text(s.as_str())));
    }
    if !filter.shows_deleted() {
        query.and("status <> 'DELETED'", []);
    }
    let after = match &page.starting_after {
        Some(cursor) => {
            let seq = sql::cursor_seq(
                conn,
                "SELECT seq FROM card_tokens WHERE account_id = ?1 AND id = ?2",
                params![aid, cursor],
            )?;
            Some(("seq > ?", vec![Value::Integer(seq)]))
        }
        None => None,
    };
    sql::keyset_page(conn, COLUMNS, "card_tokens", &query, after, "seq", page, record_row)
}

fn delete(
    conn: &Connection,
    account: &AccountId,
    id: &str,
    deletion: &CardTokenDeletion,
) -> StoreResult<CardTokenRecord> {
    let mut record = find(conn, account.as_str(), id)?.ok_or(StoreError::NotFound("card token"))?;
    if record.card.status == CardTokenStatus::Deleted {
        return Ok(record);
    }
    let at = deletion.at;
    // Crypto-shredding: the sealed secret and its fingerprint go with the delete, in its
    // transaction; the record and its audit trail stay.
    sql::execute(
        conn,
        "UPDATE card_tokens SET status = 'DELETED', deleted_at = ?3, deleted_by = ?4, updated_at = ?3,
                                token_sealed = NULL, token_fingerprint = NULL
         WHERE account_id = ?1 AND id = ?2",
        params![account.as_str(), id, at.millis(), deletion.actor],
    )?;
    sql::audit(
        conn,
        &NewAuditRecord::card_token_deleted(
            account,
            id,
            deletion.reason.as_deref(),
            deletion.requestor,
            &deletion.actor,
            at,
        ),
    )?;
    let card = &mut record.card;
    card.status = CardTokenStatus::Deleted;
    card.deleted_at = Some(at);
    card.deleted_by = Some(deletion.actor.clone());
    card.updated_at = at;
    record.sealed_token = None;
    webhooks::announce(conn, CARD_TOKEN_DELETE, &record.card)?;
    Ok(record)
}

fn set_status(
    conn: &Connection,
    account: &AccountId,
    id: &str,
    status: CardTokenStatus,
    actor: &str,
    at: Timestamp,
) -> StoreResult<CardTokenRecord> {
    let mut record = find(conn, account.as_str(), id)?.ok_or(StoreError::NotFound("card token"))?;
    let current = record.card.status;
    if !current.can_become(status) {
        return Err(StoreError::Conflict(if current == CardTokenStatus::Deleted {
            format!("card token '{id}' is DELETED; its status cannot change")
        } else {
            format!("cannot change status from {current} to {status}")
        }));
    }
    if current == status {
        return Ok(record);
    }
    sql::execute(
        conn,
        "UPDATE card_tokens SET status = ?3, updated_at = ?4 WHERE account_id = ?1 AND id = ?2",
        params![account.as_str(), id, status.as_str(), at.millis()],
    )?;
    sql::audit(conn, &NewAuditRecord::card_token_status_changed(account, id, current, status, actor, at))?;
    record.card.status = status;
    record.card.updated_at = at;
    webhooks::announce(conn, CARD_TOKEN_UPDATE, &record.card)?;
    Ok(record)
}

#[async_trait]
impl CardTokenStore for SqliteStore {
    async fn create_card_token(&self, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord> {
        let (card, sealed) = (card.clone(), sealed.cloned());
        self.writer.submit(move |conn| create(conn, &card, sealed.as_ref())).await
    }

    async fn import_card_tokens(&self, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>> {
        let batch = batch.to_vec();
        self.writer.submit(move |conn| import(conn, &batch)).await
    }

    async fn get_card_token(&self, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>> {
        let (account, id) = (account.clone(), id.to_owned());
        self.readers.read(move |conn| get(conn, &account, &id)).await
    }

    async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CardTokenRecord>> {
        let (account, filter, page) = (account.clone(), filter.clone(), page.clone());
        self.readers.read(move |conn| list(conn, &account, &filter, &page)).await
    }

    async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> StoreResult<CardTokenRecord> {
        let (account, id, deletion) = (account.clone(), id.to_owned(), deletion.clone());
        self.writer.submit(move |conn| delete(conn, &account, &id, &deletion)).await
    }

    async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CardTokenRecord> {
        let (account, id, actor) = (account.clone(), id.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| set_status(conn, &account, &id, status, &actor, at)).await
    }
}
