//! Fault rules of test accounts.

use async_trait::async_trait;
use tokio_postgres::Row;
use uuid::Uuid;

use super::rows::{self, get};
use super::sql::append_audit;
use super::PostgresStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::fault::{FaultEffect, FaultFrequency, FaultRule};
use crate::domain::{AccountId, Timestamp};
use crate::store::{FaultStore, StoreError, StoreResult};

const COLUMNS: &str =
    "id, account_id, method, path, client_id, effect, frequency, remaining, matched, until, created_at, created_by";

fn stored<T>(row: &Row, column: &str, read: impl FnOnce(&serde_json::Value) -> Option<T>) -> StoreResult<T> {
    let text: &str = get(row, column)?;
    serde_json::from_str(text)
        .ok()
        .as_ref()
        .and_then(read)
        .ok_or_else(|| StoreError::Internal(format!("column {column} is not a stored fault {column}")))
}

fn fault_row(row: &Row) -> StoreResult<FaultRule> {
    Ok(FaultRule {
        id: rows::uuid(row, "id")?,
        account_id: rows::account(row, "account_id")?,
        method: get(row, "method")?,
        path: get(row, "path")?,
        client_id: get(row, "client_id")?,
        effect: stored(row, "effect", FaultEffect::from_json)?,
        frequency: stored(row, "frequency", FaultFrequency::from_json)?,
        remaining: get(row, "remaining")?,
        matched: get(row, "matched")?,
        until: Timestamp::from_millis(get(row, "until")?),
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        created_by: get(row, "created_by")?,
    })
}

#[async_trait]
impl FaultStore for PostgresStore {
    async fn add_fault(&self, rule: &FaultRule) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let account = rule.account_id.as_str();
            let expired = tx.prepare_cached("DELETE FROM sandbox_faults WHERE account_id = $1 AND until <= $2").await?;
            tx.execute(&expired, &[&account, &rule.created_at.millis()]).await?;
            let insert = tx
                .prepare_cached(
                    "INSERT INTO sandbox_faults (id, account_id, method, path, client_id, effect, frequency, remaining, \
                     matched, until, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
                )
                .await?;
            let (effect, frequency) =
                (rows::json_text(&rule.effect.to_json())?, rows::json_text(&rule.frequency.to_json())?);
            tx.execute(
                &insert,
                &[
                    &rule.id.to_string(),
                    &account,
                    &rule.method,
                    &rule.path,
                    &rule.client_id,
                    &effect,
                    &frequency,
                    &rule.remaining,
                    &rule.until.millis(),
                    &rule.created_at.millis(),
                    &rule.created_by,
                ],
            )
            .await?;
            append_audit(&tx, NewAuditRecord::fault_rule_added(rule)).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn list_faults(&self, account: &AccountId, now: Timestamp) -> StoreResult<Vec<FaultRule>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM sandbox_faults WHERE account_id = $1 AND until > $2 ORDER BY seq"
                ))
                .await?;
            let found = conn.query(&statement, &[&account.as_str(), &now.millis()]).await?;
            found.iter().map(fault_row).collect()
        })
    }

    async fn delete_fault(&self, account: &AccountId, id: Uuid, actor: &str, at: Timestamp) -> StoreResult<bool> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let statement = tx.prepare_cached("DELETE FROM sandbox_faults WHERE account_id = $1 AND id = $2").await?;
            let deleted = tx.execute(&statement, &[&account.as_str(), &id.to_string()]).await?;
            if deleted == 0 {
                return Ok(false);
            }
            append_audit(&tx, NewAuditRecord::fault_rule_deleted(account, id, actor, at)).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn delete_faults(&self, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<u64> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let statement =
                tx.prepare_cached("DELETE FROM sandbox_faults WHERE account_id = $1 RETURNING until").await?;
            let deleted = tx.query(&statement, &[&account.as_str()]).await?;
            let mut live = 0u64;
            for row in &deleted {
                if get::<i64>(row, "until")? > at.millis() {
                    live += 1;
                }
            }
            append_audit(&tx, NewAuditRecord::fault_rules_cleared(account, live, actor, at)).await?;
            tx.commit().await?;
            Ok(live)
        })
    }

    async fn count_fault_match(&self, account: &AccountId, id: Uuid, now: Timestamp) -> StoreResult<Option<i64>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "UPDATE sandbox_faults SET matched = matched + 1, remaining = remaining - 1 \
                     WHERE account_id = $1 AND id = $2 AND until > $3 AND (remaining IS NULL OR remaining > 0) \
                     RETURNING matched",
                )
                .await?;
            let row = conn.query_opt(&statement, &[&account.as_str(), &id.to_string(), &now.millis()]).await?;
            row.map(|row| get::<i64>(&row, "matched")).transpose()
        })
    }
}
