//! Token events: one entry per account/type/value with a stable id, and its events.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use super::sql::{self, json_opt_col, text, time_col, time_opt_col, uuid_col, Where};
use super::{customers, SqliteStore};
use crate::domain::audit::NewAuditRecord;
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{StoreError, StoreResult, TokenEventStore};

/// The entry of a type/value: its `seq` and `id`.
fn entry(conn: &Connection, account: &AccountId, token_type: &str, value: &str) -> StoreResult<Option<(i64, Uuid)>> {
    sql::first(
        conn,
        "SELECT seq, id FROM token_event_entries WHERE account_id = ?1 AND token_type = ?2 AND value = ?3",
        params![account.as_str(), token_type, value],
        |row| Ok((row.get(0)?, uuid_col(row, 1)?)),
    )
}

fn ensure_entry(
    conn: &Connection,
    account: &AccountId,
    token: &TokenTypeValue,
    at: Timestamp,
) -> StoreResult<(i64, Uuid)> {
    let empty: Option<(i64, Uuid, Option<i64>)> = sql::first(
        conn,
        "SELECT seq, id, deleted_at FROM token_event_entries
         WHERE account_id = ?1 AND token_type = ?2 AND value = ?3 AND has_events = 0",
        params![account.as_str(), token.token_type, token.value],
        |row| Ok((row.get(0)?, uuid_col(row, 1)?, row.get(2)?)),
    )?;
    if let Some((seq, id, deleted_at)) = empty {
        // An entry without events (made when its token was added, or cleared) that gets an event
        // again moves to the end of the list, with a new `seq` and the same id: a reader paging
        // with `starting_after` must never see a row appear behind its cursor.
        sql::execute(conn, "DELETE FROM token_event_entries WHERE seq = ?1", [seq])?;
        sql::execute(
            conn,
            "INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, deleted_at, has_events)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
            params![id.to_string(), account.as_str(), token.token_type, token.value, at.millis(), deleted_at],
        )?;
        return Ok((conn.last_insert_rowid(), id));
    }
    ensure_entry_with_id(conn, account, token, Uuid::new_v4(), at)
}

/// The entry of a type/value, created with `id` when there is none. Entries are never deleted
/// (only their events are), so the id a type/value gets here is its id for ever
/// (TokenDetail.id: "random until the token type/value has been added to a customer or a token
/// event has been registered").
pub(super) fn ensure_entry_with_id(
    conn: &Connection,
    account: &AccountId,
    token: &TokenTypeValue,
    id: Uuid,
    at: Timestamp,
) -> StoreResult<(i64, Uuid)> {
    if let Some(found) = entry(conn, account, &token.token_type, &token.value)? {
        return Ok(found);
    }
    sql::execute(
        conn,
        "INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, has_events)
         VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        params![id.to_string(), account.as_str(), token.token_type, token.value, at.millis()],
    )?;
    Ok((conn.last_insert_rowid(), id))
}

fn append(conn: &Connection, entry_seq: i64, event: &TokenEvent, at: Timestamp) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO token_events (entry_seq, event, status, metadata, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            entry_seq,
            event.event,
            event.status,
            sql::to_json_opt(event.metadata.as_ref())?,
            event.created_at.millis(),
            event.expires_at.map(Timestamp::millis),
        ],
    )?;
    sql::execute(
        conn,
        "UPDATE token_event_entries SET updated_at = ?2, has_events = 1 WHERE seq = ?1",
        params![entry_seq, at.millis()],
    )?;
    Ok(())
}

fn events_of(conn: &Connection, entry_seq: i64) -> StoreResult<Vec<TokenEvent>> {
    sql::rows(
        conn,
        "SELECT event, status, metadata, created_at, expires_at FROM token_events WHERE entry_seq = ?1 ORDER BY seq",
        [entry_seq],
        |row| {
            Ok(TokenEvent {
                event: row.get(0)?,
                status: row.get(1)?,
                metadata: json_opt_col(row, 2)?,
                created_at: time_col(row, 3)?,
                expires_at: time_opt_col(row, 4)?,
            })
        },
    )
}

fn delete_events(conn: &Connection, entry_seq: i64) -> StoreResult<u64> {
    sql::execute(conn, "UPDATE token_event_entries SET has_events = 0 WHERE seq = ?1", [entry_seq])?;
    Ok(sql::execute(conn, "DELETE FROM token_events WHERE entry_seq = ?1", [entry_seq])? as u64)
}

/// Deletes the events of a type/value, keeping its entry (and id), and records the deletion when
/// there were events; returns the entry's id and how many events went, or `None` when there was
/// no entry.
pub(super) fn remove_entry(
    conn: &Connection,
    account: &AccountId,
    token_type: &str,
    value: &str,
    at: Timestamp,
) -> StoreResult<Option<(Uuid, u64)>> {
    let Some((seq, id)) = entry(conn, account, token_type, value)? else {
        return Ok(None);
    };
    let deleted = delete_events(conn, seq)?;
    if deleted > 0 {
        mark_deleted(conn, seq, at)?;
    }
    Ok(Some((id, deleted)))
}

/// Records that the entry's events were deleted at `at` (for `deleted_since`).
fn mark_deleted(conn: &Connection, entry_seq: i64, at: Timestamp) -> StoreResult<()> {
    sql::execute(
        conn,
        "UPDATE token_event_entries SET deleted_at = ?2, updated_at = ?2 WHERE seq = ?1",
        params![entry_seq, at.millis()],
    )?;
    Ok(())
}

/// Entries with at least one event: the ones the events list shows.
const HAS_EVENTS: &str = "has_events = 1";

fn record(
    conn: &Connection,
    account: &AccountId,
    token: &TokenTypeValue,
    event: &TokenEvent,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let (seq, id) = ensure_entry(conn, account, token, at)?;
    append(conn, seq, event, at)?;
    sql::audit(conn, &NewAuditRecord::token_event_recorded(account, &id.to_string(), token, event, actor, at))
}

fn detail(conn: &Connection, account: &AccountId, token: &TokenTypeValue) -> StoreResult<TokenDetail> {
    let entry = entry(conn, account, &token.token_type, &token.value)?;
    let owned = customers::live_token_by_value(conn, account, &token.token_type, &token.value)?;
    let customer = match &owned {
        Some((customer_seq, _)) => customers::live_customer_by_seq(conn, *customer_seq)?,
        None => None,
    };
    let events = match entry {
        Some((seq, _)) => events_of(conn, seq)?,
        None => Vec::new(),
    };
    let token = owned.map(|(_, token)| token);
    // Entries are kept for ever and made when a token is added: the entry's id, else random.
    let id = entry.map(|(_, id)| id).or(token.as_ref().map(|t| t.id)).unwrap_or_else(Uuid::new_v4);
    Ok(TokenDetail { id, customer, token, events })
}

pub(super) fn list(
    conn: &Connection,
    account: &AccountId,
    since: Option<Timestamp>,
    page: &PageRequest,
) -> StoreResult<Page<TokenEventEntry>> {
    let aid = account.as_str();
    let mut query = Where::new("account_id = ?", [text(aid)]);
    query.and(HAS_EVENTS, []);
    if let Some(since) = since {
        query.and("updated_at >= ?", [Value::Integer(since.millis())]);
    }
    let after = match &page.starting_after {
        Some(cursor) => {
            let (seq, updated_at): (i64, i64) = sql::first(
                conn,
                "SELECT seq, updated_at FROM token_event_entries WHERE account_id = ?1 AND id = ?2",
                params![aid, cursor],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .ok_or(StoreError::UnknownCursor)?;
            Some(match since {
                Some(_) => ("(updated_at, seq) > (?, ?)", vec![Value::Integer(updated_at), Value::Integer(seq)]),
                None => ("seq > ?", vec![Value::Integer(seq)]),
            })
        }
        None => None,
    };
    let order_by = if since.is_some() { "updated_at, seq" } else { "seq" };
    entries_page(conn, &query, after, order_by, page)
}

/// A page of entries in `order_by`, each with its events.
fn entries_page(
    conn: &Connection,
    query: &Where,
    after: Option<(&str, Vec<Value>)>,
    order_by: &str,
    page: &PageRequest,
) -> StoreResult<Page<TokenEventEntry>> {
    let entries = sql::keyset_page(
        conn,
        "seq, id, token_type, value, updated_at",
        "token_event_entries",
        query,
        after,
        order_by,
        page,
        |row: &Row<'_>| Ok((row.get::<_, i64>(0)?, uuid_col(row, 1)?, row.get(2)?, row.get(3)?, time_col(row, 4)?)),
    )?;
    let mut items = Vec::with_capacity(entries.items.len());
    for (seq, id, token_type, value, updated_at) in entries.items {
        let events = events_of(conn, seq)?;
        items.push(TokenEventEntry { id, token: TokenTypeValue { token_type, value }, events, updated_at });
    }
    Ok(Page { items, has_more: entries.has_more, total: entries.total })
}

/// The type/values whose events were deleted at or after `deleted_since`, in the order of their
/// latest deletion.
pub(super) fn list_deleted(
    conn: &Connection,
    account: &AccountId,
    deleted_since: Timestamp,
    page: &PageRequest,
) -> StoreResult<Page<TokenEventEntry>> {
    let aid = account.as_str();
    let mut query = Where::new("account_id = ?", [text(aid)]);
    query.and("deleted_at >= ?", [Value::Integer(deleted_since.millis())]);
    let after = match &page.starting_after {
        Some(cursor) => {
            let (seq, deleted_at): (i64, i64) = sql::first(
                conn,
                "SELECT seq, deleted_at FROM token_event_entries WHERE account_id = ?1 AND id = ?2 \
                 AND deleted_at IS NOT NULL",
                params![aid, cursor],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .ok_or(StoreError::UnknownCursor)?;
            Some(("(deleted_at, seq) > (?, ?)", vec![Value::Integer(deleted_at), Value::Integer(seq)]))
        }
        None => None,
    };
    entries_page(conn, &query, after, "deleted_at, seq", page)
}

fn clear(
    conn: &Connection,
    account: &AccountId,
    token: &TokenTypeValue,
    delete_event: Option<&TokenEvent>,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let (id, events_deleted) = match delete_event {
        Some(event) => {
            let (seq, id) = ensure_entry(conn, account, token, at)?;
            let deleted = delete_events(conn, seq)?;
            append(conn, seq, event, at)?;
            mark_deleted(conn, seq, at)?;
            (id, deleted)
        }
        // Nothing recorded and nothing to record: no change, so no audit record either.
        None => match remove_entry(conn, account, &token.token_type, &token.value, at)? {
            Some(removed) if removed.1 > 0 => removed,
            _ => return Ok(()),
        },
    };
    let record =
        NewAuditRecord::token_events_cleared(account, &id.to_string(), token, delete_event, events_deleted, actor, at);
    sql::audit(conn, &record)
}

#[async_trait]
impl TokenEventStore for SqliteStore {
    async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<TokenDetail> {
        let (account, token) = (account.clone(), token.clone());
        match event {
            Some(event) => {
                let (event, actor) = (event.clone(), actor.to_owned());
                self.writer
                    .submit(move |conn| {
                        record(conn, &account, &token, &event, &actor, at)?;
                        detail(conn, &account, &token)
                    })
                    .await
            }
            None => self.readers.read(move |conn| detail(conn, &account, &token)).await,
        }
    }

    async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        let (account, page) = (account.clone(), page.clone());
        self.readers.read(move |conn| list(conn, &account, since, &page)).await
    }

    async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        let (account, page) = (account.clone(), page.clone());
        self.readers.read(move |conn| list_deleted(conn, &account, deleted_since, &page)).await
    }

    async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (account, token, delete_event, actor) =
            (account.clone(), token.clone(), delete_event.cloned(), actor.to_owned());
        self.writer.submit(move |conn| clear(conn, &account, &token, delete_event.as_ref(), &actor, at)).await
    }
}
