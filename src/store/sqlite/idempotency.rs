//! Idempotency keys. Each call is one writer job, so a claim is atomic: the single writer sees
//! every concurrent first use of a key one after the other.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};

use super::{sql, SqliteStore};
use crate::store::{
    IdempotencyScope, IdempotencyStart, IdempotencyStore, IdempotentRequest, StoreError, StoreResult, StoredResponse,
};

/// Expired keys removed per claim: enough to keep up with any arrival rate, bounded per call.
const PURGE_BATCH: i64 = 16;

const KEY: &str = "account_id = ?1 AND client_id = ?2 AND idempotency_key = ?3";

struct Existing {
    fingerprint: String,
    done: bool,
    locked_until: Option<i64>,
    expires_at: i64,
    status: Option<i64>,
    headers: Option<String>,
    body: Option<Vec<u8>>,
}

fn begin(conn: &Connection, request: &IdempotentRequest) -> StoreResult<IdempotencyStart> {
    let now = request.now.millis();
    sql::execute(
        conn,
        "DELETE FROM idempotency_keys WHERE rowid IN
             (SELECT rowid FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
        params![now, PURGE_BATCH],
    )?;
    let scope = &request.scope;
    let existing = conn
        .prepare_cached(&format!(
            "SELECT fingerprint, state, locked_until, expires_at, status, headers, body FROM idempotency_keys
             WHERE {KEY}"
        ))?
        .query_row(params![scope.account.as_str(), scope.client_id, scope.key], |row| {
            Ok(Existing {
                fingerprint: row.get(0)?,
                done: row.get::<_, String>(1)? == "done",
                locked_until: row.get(2)?,
                expires_at: row.get(3)?,
                status: row.get(4)?,
                headers: row.get(5)?,
                body: row.get(6)?,
            })
        })
        .optional()?;

    let Some(existing) = existing.filter(|row| row.expires_at > now) else {
        sql::execute(
            conn,
            "INSERT OR REPLACE INTO idempotency_keys (account_id, client_id, idempotency_key, fingerprint, attempt,
                                                      state, created_at, locked_until, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'in_progress', ?6, ?7, ?8)",
            params![
                scope.account.as_str(),
                scope.client_id,
                scope.key,
                request.fingerprint,
                request.attempt.to_string(),
                now,
                request.lease_until.millis(),
                request.expires_at.millis(),
            ],
        )?;
        return Ok(IdempotencyStart::Started);
    };
    if existing.fingerprint != request.fingerprint {
        return Ok(IdempotencyStart::Mismatch);
    }
    if existing.done {
        return Ok(IdempotencyStart::Replay(stored_response(existing.status, existing.headers, existing.body)?));
    }
    if existing.locked_until.is_some_and(|until| until > now) {
        return Ok(IdempotencyStart::InProgress);
    }
    sql::execute(
        conn,
        &format!("UPDATE idempotency_keys SET attempt = ?4, locked_until = ?5 WHERE {KEY}"),
        params![
            scope.account.as_str(),
            scope.client_id,
            scope.key,
            request.attempt.to_string(),
            request.lease_until.millis()
        ],
    )?;
    Ok(IdempotencyStart::Started)
}

fn stored_response(status: Option<i64>, headers: Option<String>, body: Option<Vec<u8>>) -> StoreResult<StoredResponse> {
    let broken = || StoreError::Internal("a finished idempotency key lacks its response".into());
    let status = status.and_then(|s| u16::try_from(s).ok()).ok_or_else(broken)?;
    let headers = serde_json::from_str(&headers.ok_or_else(broken)?)
        .map_err(|e| StoreError::Internal(format!("idempotency_keys.headers is not JSON: {e}")))?;
    Ok(StoredResponse { status, headers, body: body.ok_or_else(broken)? })
}

fn finish(
    conn: &Connection,
    scope: &IdempotencyScope,
    attempt: uuid::Uuid,
    response: &StoredResponse,
) -> StoreResult<()> {
    sql::execute(
        conn,
        &format!(
            "UPDATE idempotency_keys SET state = 'done', locked_until = NULL, status = ?5, headers = ?6, body = ?7
             WHERE {KEY} AND attempt = ?4 AND state = 'in_progress'"
        ),
        params![
            scope.account.as_str(),
            scope.client_id,
            scope.key,
            attempt.to_string(),
            response.status,
            sql::to_json(&response.headers)?,
            response.body,
        ],
    )?;
    Ok(())
}

fn abandon(conn: &Connection, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()> {
    sql::execute(
        conn,
        &format!("DELETE FROM idempotency_keys WHERE {KEY} AND attempt = ?4 AND state = 'in_progress'"),
        params![scope.account.as_str(), scope.client_id, scope.key, attempt.to_string()],
    )?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn begin_idempotent(&self, request: &IdempotentRequest) -> StoreResult<IdempotencyStart> {
        let request = request.clone();
        self.writer.submit(move |conn| begin(conn, &request)).await
    }

    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: uuid::Uuid,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let (scope, response) = (scope.clone(), response.clone());
        self.writer.submit(move |conn| finish(conn, &scope, attempt, &response)).await
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()> {
        let scope = scope.clone();
        self.writer.submit(move |conn| abandon(conn, &scope, attempt)).await
    }
}
