//! Idempotency keys. Concurrent first uses of one key meet on the primary key: the first
//! `INSERT … ON CONFLICT DO NOTHING` claims it, the others wait for its transaction and then read
//! the committed row `FOR UPDATE`, so exactly one of them runs the request (across instances too).

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};

use super::rows::get;
use super::PostgresStore;
use crate::store::{
    IdempotencyScope, IdempotencyStart, IdempotencyStore, IdempotentRequest, StoreError, StoreResult, StoredResponse,
};

/// Expired keys removed per claim: enough to keep up with any arrival rate, bounded per call.
const PURGE_BATCH: i64 = 16;

const KEY: &str = "account_id = $1 AND client_id = $2 AND idempotency_key = $3";

async fn begin(conn: &mut Object, request: &IdempotentRequest) -> StoreResult<IdempotencyStart> {
    let now = request.now.millis();
    let scope = &request.scope;
    let attempt = request.attempt.to_string();
    let (lease_until, expires_at) = (request.lease_until.millis(), request.expires_at.millis());
    let tx = conn.transaction().await?;
    // Never waits: rows another transaction holds are left for a later purge.
    let purge = tx
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(SELECT ctid FROM idempotency_keys \
             WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED))",
        )
        .await?;
    tx.execute(&purge, &[&now, &PURGE_BATCH]).await?;

    let insert = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (account_id, client_id, idempotency_key, fingerprint, attempt, state, \
             created_at, locked_until, expires_at) VALUES ($1, $2, $3, $4, $5, 'in_progress', $6, $7, $8) \
             ON CONFLICT (account_id, client_id, idempotency_key) DO NOTHING",
        )
        .await?;
    let select = tx
        .prepare_cached(&format!(
            "SELECT fingerprint, state, locked_until, expires_at, status, headers, body FROM idempotency_keys \
             WHERE {KEY} FOR UPDATE"
        ))
        .await?;
    let key = [&scope.account.as_str() as &(dyn tokio_postgres::types::ToSql + Sync), &scope.client_id, &scope.key];
    // The row can vanish between the insert and the select (abandoned or purged meanwhile):
    // then the insert is tried again.
    for _ in 0..3 {
        let inserted = tx
            .execute(
                &insert,
                &[key[0], key[1], key[2], &request.fingerprint, &attempt, &now, &lease_until, &expires_at],
            )
            .await?;
        if inserted == 1 {
            tx.commit().await?;
            return Ok(IdempotencyStart::Started);
        }
        let Some(row) = tx.query_opt(&select, &key).await? else { continue };
        let expired = get::<i64>(&row, "expires_at")? <= now;
        let outcome = if expired {
            let statement = tx
                .prepare_cached(&format!(
                    "UPDATE idempotency_keys SET fingerprint = $4, attempt = $5, state = 'in_progress', \
                     created_at = $6, locked_until = $7, expires_at = $8, status = NULL, headers = NULL, body = NULL \
                     WHERE {KEY}"
                ))
                .await?;
            tx.execute(
                &statement,
                &[key[0], key[1], key[2], &request.fingerprint, &attempt, &now, &lease_until, &expires_at],
            )
            .await?;
            IdempotencyStart::Started
        } else if get::<&str>(&row, "fingerprint")? != request.fingerprint {
            IdempotencyStart::Mismatch
        } else if get::<&str>(&row, "state")? == "done" {
            IdempotencyStart::Replay(stored_response(&row)?)
        } else if get::<Option<i64>>(&row, "locked_until")?.is_some_and(|until| until > now) {
            IdempotencyStart::InProgress
        } else {
            let statement = tx
                .prepare_cached(&format!("UPDATE idempotency_keys SET attempt = $4, locked_until = $5 WHERE {KEY}"))
                .await?;
            tx.execute(&statement, &[key[0], key[1], key[2], &attempt, &lease_until]).await?;
            IdempotencyStart::Started
        };
        tx.commit().await?;
        return Ok(outcome);
    }
    Err(StoreError::Unavailable("the idempotency key is changing too fast; retry".into()))
}

fn stored_response(row: &tokio_postgres::Row) -> StoreResult<StoredResponse> {
    let broken = || StoreError::Internal("a finished idempotency key lacks its response".into());
    let status = get::<Option<i32>>(row, "status")?.and_then(|s| u16::try_from(s).ok()).ok_or_else(broken)?;
    let headers = get::<Option<&str>>(row, "headers")?.ok_or_else(broken)?;
    let headers = serde_json::from_str(headers)
        .map_err(|e| StoreError::Internal(format!("idempotency_keys.headers is not JSON: {e}")))?;
    let body = get::<Option<Vec<u8>>>(row, "body")?.ok_or_else(broken)?;
    Ok(StoredResponse { status, headers, body })
}

async fn finish(
    client: &impl GenericClient,
    scope: &IdempotencyScope,
    attempt: uuid::Uuid,
    response: &StoredResponse,
) -> StoreResult<()> {
    let statement = client
        .prepare_cached(&format!(
            "UPDATE idempotency_keys SET state = 'done', locked_until = NULL, status = $5, headers = $6, body = $7 \
             WHERE {KEY} AND attempt = $4 AND state = 'in_progress'"
        ))
        .await?;
    let headers = super::rows::json_text(&response.headers)?;
    client
        .execute(
            &statement,
            &[
                &scope.account.as_str(),
                &scope.client_id,
                &scope.key,
                &attempt.to_string(),
                &i32::from(response.status),
                &headers,
                &response.body,
            ],
        )
        .await?;
    Ok(())
}

async fn abandon(client: &impl GenericClient, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()> {
    let statement = client
        .prepare_cached(&format!("DELETE FROM idempotency_keys WHERE {KEY} AND attempt = $4 AND state = 'in_progress'"))
        .await?;
    client.execute(&statement, &[&scope.account.as_str(), &scope.client_id, &scope.key, &attempt.to_string()]).await?;
    Ok(())
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    async fn begin_idempotent(&self, request: &IdempotentRequest) -> StoreResult<IdempotencyStart> {
        with_conn!(self, |conn| begin(&mut conn, request).await)
    }

    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: uuid::Uuid,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        with_conn!(self, |conn| finish(&conn, scope, attempt, response).await)
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()> {
        with_conn!(self, |conn| abandon(&conn, scope, attempt).await)
    }
}
