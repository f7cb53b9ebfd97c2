//! Token events: one entry per account and token type/value, with its events in order.

use async_trait::async_trait;
use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Object};
use uuid::Uuid;

use super::rows::{self, CUSTOMER_COLUMNS, EVENT_COLUMNS, TOKEN_COLUMNS};
use super::sql::{append_audit, end_snapshot, lock_list, overfetch, snapshot, ListQuery};
use super::PostgresStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{StoreError, StoreResult, TokenEventStore};

/// Creates the entry of a token type/value or touches the existing one, returning its `seq` and
/// `id`. Both paths lock the row, so a concurrent clear cannot delete the entry between finding
/// it and adding an event to it. Only a possible insert takes the account's list lock (see
/// `lock_list`), so events for existing entries do not take turns.
async fn touch_entry(
    client: &impl GenericClient,
    account: &AccountId,
    token: &TokenTypeValue,
    at: Timestamp,
) -> StoreResult<(i64, String)> {
    // An entry without events (made when its token was added, or cleared) that gets an event
    // again moves to the end of the list, with a new `seq` and the same id, under the list lock
    // as an insert: a reader paging with `starting_after` must never see a row appear behind its
    // cursor. A concurrent move makes the DELETE find nothing, and the entry is touched below.
    let statement = client
        .prepare_cached(
            "SELECT seq FROM token_event_entries WHERE account_id = $1 AND token_type = $2 AND value = $3 \
             AND NOT has_events",
        )
        .await?;
    if let Some(row) = client.query_opt(&statement, &[&account.as_str(), &token.token_type, &token.value]).await? {
        let seq: i64 = rows::get(&row, "seq")?;
        lock_list(client, "token_event_entries", account.as_str()).await?;
        let statement = client
            .prepare_cached(
                "DELETE FROM token_event_entries WHERE seq = $1 AND NOT has_events RETURNING id, deleted_at",
            )
            .await?;
        if let Some(gone) = client.query_opt(&statement, &[&seq]).await? {
            let id: String = rows::get(&gone, "id")?;
            let deleted_at: Option<i64> = rows::get(&gone, "deleted_at")?;
            let statement = client
                .prepare_cached(
                    "INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, deleted_at, \
                     has_events) VALUES ($1, $2, $3, $4, $5, $6, FALSE) RETURNING seq, id",
                )
                .await?;
            let row = client
                .query_one(
                    &statement,
                    &[&id, &account.as_str(), &token.token_type, &token.value, &at.millis(), &deleted_at],
                )
                .await?;
            return Ok((rows::get(&row, "seq")?, rows::get(&row, "id")?));
        }
    }
    let statement = client
        .prepare_cached(
            "UPDATE token_event_entries SET updated_at = $4 WHERE account_id = $1 AND token_type = $2 AND value = $3 \
             RETURNING seq, id",
        )
        .await?;
    let touched =
        client.query_opt(&statement, &[&account.as_str(), &token.token_type, &token.value, &at.millis()]).await?;
    if let Some(row) = touched {
        return Ok((rows::get(&row, "seq")?, rows::get(&row, "id")?));
    }
    lock_list(client, "token_event_entries", account.as_str()).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, has_events) \
             VALUES ($1, $2, $3, $4, $5, FALSE) \
             ON CONFLICT (account_id, token_type, value) DO UPDATE SET updated_at = EXCLUDED.updated_at \
             RETURNING seq, id",
        )
        .await?;
    let id = Uuid::new_v4().to_string();
    let row =
        client.query_one(&statement, &[&id, &account.as_str(), &token.token_type, &token.value, &at.millis()]).await?;
    Ok((rows::get(&row, "seq")?, rows::get(&row, "id")?))
}

async fn insert_event(client: &impl GenericClient, entry_seq: i64, event: &TokenEvent) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO token_events (entry_seq, event, status, metadata, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    let metadata = event.metadata.as_ref().map(rows::json_text).transpose()?;
    client
        .execute(
            &statement,
            &[
                &entry_seq,
                &event.event,
                &event.status,
                &metadata,
                &event.created_at.millis(),
                &event.expires_at.map(Timestamp::millis),
            ],
        )
        .await?;
    let statement = client
        .prepare_cached("UPDATE token_event_entries SET has_events = TRUE WHERE seq = $1 AND NOT has_events")
        .await?;
    client.execute(&statement, &[&entry_seq]).await?;
    Ok(())
}

async fn delete_events(client: &impl GenericClient, entry_seq: i64) -> StoreResult<u64> {
    let statement = client.prepare_cached("UPDATE token_event_entries SET has_events = FALSE WHERE seq = $1").await?;
    client.execute(&statement, &[&entry_seq]).await?;
    let statement = client.prepare_cached("DELETE FROM token_events WHERE entry_seq = $1").await?;
    Ok(client.execute(&statement, &[&entry_seq]).await?)
}

/// Deletes the events of a token type/value, keeping its entry (and so its id for ever), and
/// records the deletion when there were events; returns the entry's id and how many events went,
/// or `None` when there was no entry.
pub(super) async fn delete_entry(
    client: &impl GenericClient,
    account: &AccountId,
    token: &TokenTypeValue,
    at: Timestamp,
) -> StoreResult<Option<(String, u64)>> {
    let statement = client
        .prepare_cached(
            "SELECT seq, id FROM token_event_entries WHERE account_id = $1 AND token_type = $2 AND value = $3 FOR UPDATE",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&account.as_str(), &token.token_type, &token.value]).await? else {
        return Ok(None);
    };
    let seq: i64 = rows::get(&row, "seq")?;
    let deleted = delete_events(client, seq).await?;
    if deleted > 0 {
        mark_deleted(client, seq, at).await?;
    }
    Ok(Some((rows::get(&row, "id")?, deleted)))
}

/// Records that the entry's events were deleted at `at` (for `deleted_since`).
async fn mark_deleted(client: &impl GenericClient, entry_seq: i64, at: Timestamp) -> StoreResult<()> {
    let statement =
        client.prepare_cached("UPDATE token_event_entries SET deleted_at = $2, updated_at = $2 WHERE seq = $1").await?;
    client.execute(&statement, &[&entry_seq, &at.millis()]).await?;
    Ok(())
}

/// Gives a type/value added to a customer its entry, with the token's id, unless it has one: from
/// then on its TokenDetail.id is fixed ("random until the token type/value has been added to a
/// customer or a token event has been registered").
pub(super) async fn ensure_entry_with_id(
    client: &impl GenericClient,
    account: &AccountId,
    token: &TokenTypeValue,
    id: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, has_events) \
             VALUES ($1, $2, $3, $4, $5, FALSE) ON CONFLICT (account_id, token_type, value) DO NOTHING",
        )
        .await?;
    client.execute(&statement, &[&id, &account.as_str(), &token.token_type, &token.value, &at.millis()]).await?;
    Ok(())
}

/// Entries with at least one event: the ones the events list shows.
const HAS_EVENTS: &str = "has_events";

async fn events_of(client: &impl GenericClient, entry_seqs: &[i64]) -> StoreResult<Vec<(i64, TokenEvent)>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM token_events WHERE entry_seq = ANY($1) ORDER BY seq");
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &[&entry_seqs]).await?;
    rows.iter().map(|row| Ok((rows::get(row, "entry_seq")?, rows::token_event(row)?))).collect()
}

fn parse_id(id: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(id).map_err(|e| StoreError::Internal(format!("token event entry id {id:?}: {e}")))
}

async fn token_detail(
    conn: &mut Object,
    account: &AccountId,
    token: &TokenTypeValue,
    event: Option<&TokenEvent>,
    actor: &str,
    at: Timestamp,
) -> StoreResult<TokenDetail> {
    let tx = conn.transaction().await?;
    let entry = match event {
        Some(event) => {
            let (seq, id) = touch_entry(&tx, account, token, at).await?;
            insert_event(&tx, seq, event).await?;
            append_audit(&tx, NewAuditRecord::token_event_recorded(account, &id, token, event, actor, at)).await?;
            Some((seq, id))
        }
        None => {
            let statement = tx
                .prepare_cached(
                    "SELECT seq, id FROM token_event_entries WHERE account_id = $1 AND token_type = $2 AND value = $3",
                )
                .await?;
            match tx.query_opt(&statement, &[&account.as_str(), &token.token_type, &token.value]).await? {
                Some(row) => Some((rows::get::<i64>(&row, "seq")?, rows::get::<String>(&row, "id")?)),
                None => None,
            }
        }
    };
    let events = match &entry {
        Some((seq, _)) => events_of(&tx, &[*seq]).await?.into_iter().map(|(_, event)| event).collect(),
        None => Vec::new(),
    };

    let sql = format!(
        "SELECT customer_seq, {TOKEN_COLUMNS} FROM customer_tokens \
         WHERE account_id = $1 AND token_type = $2 AND value = $3 AND deleted_at IS NULL"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let token_row = tx.query_opt(&statement, &[&account.as_str(), &token.token_type, &token.value]).await?;
    let (customer, live_token) = match token_row {
        None => (None, None),
        Some(row) => {
            let customer_seq: i64 = rows::get(&row, "customer_seq")?;
            let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE seq = $1 AND deleted_at IS NULL");
            let statement = tx.prepare_cached(&sql).await?;
            let customer =
                tx.query_opt(&statement, &[&customer_seq]).await?.as_ref().map(rows::customer).transpose()?;
            (customer, Some(rows::customer_token(&row)?))
        }
    };
    tx.commit().await?;

    let id = match (&entry, &live_token) {
        (Some((_, id)), _) => parse_id(id)?,
        (None, Some(token)) => token.id,
        (None, None) => Uuid::new_v4(),
    };
    Ok(TokenDetail { id, customer, token: live_token, events })
}

pub(super) async fn list_token_events(
    conn: &mut Object,
    account: &AccountId,
    since: Option<Timestamp>,
    page: &PageRequest,
) -> StoreResult<Page<TokenEventEntry>> {
    let tx = snapshot(conn).await?;
    let account = account.as_str();
    let cursor = match &page.starting_after {
        None => None,
        Some(id) => {
            let statement = tx
                .prepare_cached("SELECT seq, updated_at FROM token_event_entries WHERE account_id = $1 AND id = $2")
                .await?;
            let row = tx.query_opt(&statement, &[&account, id]).await?.ok_or(StoreError::UnknownCursor)?;
            Some((rows::get::<i64>(&row, "seq")?, rows::get::<i64>(&row, "updated_at")?))
        }
    };
    let since = since.map(Timestamp::millis);
    let limit = overfetch(page);
    let mut query = ListQuery::new("token_event_entries", "seq, id, token_type, value, updated_at");
    let p = query.bind(&account);
    query.filter(format!("account_id = {p}"));
    query.filter(HAS_EVENTS.to_owned());
    let order = match &since {
        None => {
            if let Some((seq, _)) = &cursor {
                query.after(|q| format!("seq > {}", q.bind(seq)));
            }
            "seq"
        }
        Some(since) => {
            let p = query.bind(since);
            query.filter(format!("updated_at >= {p}"));
            if let Some((seq, updated_at)) = &cursor {
                query.after(|q| {
                    let (u, s) = (q.bind(updated_at), q.bind(seq));
                    format!("(updated_at, seq) > ({u}, {s})")
                });
            }
            "updated_at, seq"
        }
    };
    let (rows, total) = query.fetch(&tx, order, &limit, page.include_total).await?;
    let items = entries_with_events(tx, &rows).await?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

/// The entries of a page's rows (`seq, id, token_type, value, updated_at`) with their events,
/// read in the page's snapshot, which then ends.
async fn entries_with_events(
    tx: deadpool_postgres::Transaction<'_>,
    rows: &[tokio_postgres::Row],
) -> StoreResult<Vec<TokenEventEntry>> {
    let seqs = rows.iter().map(|row| rows::get::<i64>(row, "seq")).collect::<StoreResult<Vec<_>>>()?;
    let mut events: HashMap<i64, Vec<TokenEvent>> = HashMap::new();
    for (seq, event) in events_of(&tx, &seqs).await? {
        events.entry(seq).or_default().push(event);
    }
    end_snapshot(tx);

    let mut items = Vec::with_capacity(rows.len());
    for (row, seq) in rows.iter().zip(&seqs) {
        items.push(TokenEventEntry {
            id: rows::uuid(row, "id")?,
            token: TokenTypeValue { token_type: rows::get(row, "token_type")?, value: rows::get(row, "value")? },
            events: events.remove(seq).unwrap_or_default(),
            updated_at: Timestamp::from_millis(rows::get(row, "updated_at")?),
        });
    }
    Ok(items)
}

pub(super) async fn list_deleted_token_events(
    conn: &mut Object,
    account: &AccountId,
    deleted_since: Timestamp,
    page: &PageRequest,
) -> StoreResult<Page<TokenEventEntry>> {
    let tx = snapshot(conn).await?;
    let account = account.as_str();
    let cursor = match &page.starting_after {
        None => None,
        Some(id) => {
            let statement = tx
                .prepare_cached(
                    "SELECT seq, deleted_at FROM token_event_entries WHERE account_id = $1 AND id = $2 \
                     AND deleted_at IS NOT NULL",
                )
                .await?;
            let row = tx.query_opt(&statement, &[&account, id]).await?.ok_or(StoreError::UnknownCursor)?;
            Some((rows::get::<i64>(&row, "seq")?, rows::get::<i64>(&row, "deleted_at")?))
        }
    };
    let since = deleted_since.millis();
    let limit = overfetch(page);
    let mut query = ListQuery::new("token_event_entries", "seq, id, token_type, value, updated_at");
    let p = query.bind(&account);
    query.filter(format!("account_id = {p}"));
    let p = query.bind(&since);
    query.filter(format!("deleted_at >= {p}"));
    if let Some((seq, deleted_at)) = &cursor {
        query.after(|q| {
            let (d, s) = (q.bind(deleted_at), q.bind(seq));
            format!("(deleted_at, seq) > ({d}, {s})")
        });
    }
    let (rows, total) = query.fetch(&tx, "deleted_at, seq", &limit, page.include_total).await?;
    let items = entries_with_events(tx, &rows).await?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

async fn clear_token_events(
    conn: &mut Object,
    account: &AccountId,
    token: &TokenTypeValue,
    delete_event: Option<&TokenEvent>,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let tx = conn.transaction().await?;
    let (entry_id, events_deleted) = match delete_event {
        Some(event) => {
            let (seq, id) = touch_entry(&tx, account, token, at).await?;
            let deleted = delete_events(&tx, seq).await?;
            insert_event(&tx, seq, event).await?;
            mark_deleted(&tx, seq, at).await?;
            (id, deleted)
        }
        None => match delete_entry(&tx, account, token, at).await? {
            Some(deleted) if deleted.1 > 0 => deleted,
            // Clearing nothing changes nothing, and leaves no audit record.
            _ => return Ok(()),
        },
    };
    let record =
        NewAuditRecord::token_events_cleared(account, &entry_id, token, delete_event, events_deleted, actor, at);
    append_audit(&tx, record).await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl TokenEventStore for PostgresStore {
    async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<TokenDetail> {
        with_conn!(self, |conn| token_detail(&mut conn, account, token, event, actor, at).await)
    }

    async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        with_conn!(self, |conn| list_token_events(&mut conn, account, since, page).await)
    }

    async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        with_conn!(self, |conn| list_deleted_token_events(&mut conn, account, deleted_since, page).await)
    }

    async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        with_conn!(self, |conn| clear_token_events(&mut conn, account, token, delete_event, actor, at).await)
    }
}
