//! The request journal on SQLite: a batch of entries is one writer job (one savepoint in the
//! writer's group commit), lists read on the read pool.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, Connection, Row};

use super::sql::{self, text, Where};
use super::SqliteStore;
use crate::domain::journal::{JournalEntry, JournalFilter};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{JournalStore, StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, recorded_at, method, path, query, status, latency_ms, request_id, client_id, \
                       idempotency_key, request_headers, request_body, response_body, fault, received_at";

fn entry_row(row: &Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        id: row.get(0)?,
        account: sql::account_col(row, 1)?,
        recorded_at: sql::time_col(row, 2)?,
        method: row.get(3)?,
        path: row.get(4)?,
        query: row.get(5)?,
        status: u16::try_from(row.get::<_, i64>(6)?).unwrap_or_default(),
        latency_ms: u64::try_from(row.get::<_, i64>(7)?).unwrap_or_default(),
        request_id: row.get(8)?,
        client_id: row.get(9)?,
        idempotency_key: row.get(10)?,
        request_headers: row.get(11)?,
        request_body: row.get(12)?,
        response_body: row.get(13)?,
        fault: row.get(14)?,
        received_at: sql::time_col(row, 15)?,
    })
}

fn append(conn: &Connection, entries: &[JournalEntry]) -> StoreResult<()> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO request_journal (id, account_id, recorded_at, method, path, query, status, latency_ms, request_id,
                                      client_id, idempotency_key, request_headers, request_body, response_body, fault,
                                      received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for e in entries {
        statement.execute(params![
            e.id,
            e.account.as_str(),
            e.recorded_at.millis(),
            e.method,
            e.path,
            e.query,
            i64::from(e.status),
            i64::try_from(e.latency_ms).unwrap_or(i64::MAX),
            e.request_id,
            e.client_id,
            e.idempotency_key,
            e.request_headers,
            e.request_body,
            e.response_body,
            e.fault,
            e.received_at.millis(),
        ])?;
    }
    Ok(())
}

fn list(
    conn: &Connection,
    account: &AccountId,
    filter: &JournalFilter,
    page: &PageRequest,
) -> StoreResult<Page<JournalEntry>> {
    let aid = account.as_str();
    let mut query = Where::new("account_id = ?", [text(aid)]);
    if let Some(method) = &filter.method {
        query.and("method = ?", [text(method)]);
    }
    if let Some(prefix) = &filter.path_prefix {
        query.and("substr(path, 1, length(?)) = ?", [text(prefix), text(prefix)]);
    }
    if let Some(status) = filter.status {
        query.and("status BETWEEN ? AND ?", [Value::Integer(status.min.into()), Value::Integer(status.max.into())]);
    }
    if let Some(client_id) = &filter.client_id {
        query.and("client_id = ?", [text(client_id)]);
    }
    if let Some(request_id) = &filter.request_id {
        query.and("request_id = ?", [text(request_id)]);
    }
    if let Some(since) = filter.since {
        query.and("recorded_at >= ?", [Value::Integer(since.millis())]);
    }
    let after = match &page.starting_after {
        Some(cursor) => {
            let seq = sql::cursor_seq(
                conn,
                "SELECT seq FROM request_journal WHERE account_id = ?1 AND id = ?2",
                params![aid, cursor],
            )?;
            Some(("seq < ?", vec![Value::Integer(seq)]))
        }
        None => None,
    };
    sql::keyset_page(conn, COLUMNS, "request_journal", &query, after, "seq DESC", page, entry_row)
}

fn get(conn: &Connection, account: &AccountId, id: &str) -> StoreResult<JournalEntry> {
    sql::first(
        conn,
        &format!("SELECT {COLUMNS} FROM request_journal WHERE account_id = ?1 AND id = ?2"),
        params![account.as_str(), id],
        entry_row,
    )?
    .ok_or(StoreError::NotFound("request"))
}

fn prune(conn: &Connection, accounts: &[AccountId], max_entries: u64, older_than: Timestamp) -> StoreResult<u64> {
    let mut removed =
        sql::execute(conn, "DELETE FROM request_journal WHERE received_at < ?1", params![older_than.millis()])? as u64;
    let keep = i64::try_from(max_entries).unwrap_or(i64::MAX);
    for account in accounts {
        removed += sql::execute(
            conn,
            "DELETE FROM request_journal WHERE account_id = ?1 AND seq <=
                 (SELECT seq FROM request_journal WHERE account_id = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            params![account.as_str(), keep],
        )? as u64;
    }
    Ok(removed)
}

#[async_trait]
impl JournalStore for SqliteStore {
    async fn append_journal(&self, entries: &[JournalEntry]) -> StoreResult<()> {
        let entries = entries.to_vec();
        self.writer.submit(move |conn| append(conn, &entries)).await
    }

    async fn list_journal(
        &self,
        account: &AccountId,
        filter: &JournalFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<JournalEntry>> {
        let (account, filter, page) = (account.clone(), filter.clone(), page.clone());
        self.readers.read(move |conn| list(conn, &account, &filter, &page)).await
    }

    async fn get_journal_entry(&self, account: &AccountId, id: &str) -> StoreResult<JournalEntry> {
        let (account, id) = (account.clone(), id.to_owned());
        self.readers.read(move |conn| get(conn, &account, &id)).await
    }

    async fn clear_journal(&self, account: &AccountId) -> StoreResult<u64> {
        let account = account.clone();
        self.writer
            .submit(move |conn| {
                Ok(sql::execute(conn, "DELETE FROM request_journal WHERE account_id = ?1", params![account.as_str()])?
                    as u64)
            })
            .await
    }

    async fn prune_journal(&self, accounts: &[AccountId], max_entries: u64, older_than: Timestamp) -> StoreResult<u64> {
        let accounts = accounts.to_vec();
        self.writer.submit(move |conn| prune(conn, &accounts, max_entries, older_than)).await
    }
}
