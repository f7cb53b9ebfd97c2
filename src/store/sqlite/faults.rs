//! Fault rules of test accounts.

use async_trait::async_trait;
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use super::sql::{self, account_col, time_col, uuid_col};
use super::SqliteStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::fault::{FaultEffect, FaultFrequency, FaultRule};
use crate::domain::{AccountId, Timestamp};
use crate::store::{FaultStore, StoreResult};

const COLUMNS: &str =
    "id, account_id, method, path, client_id, effect, frequency, remaining, matched, until, created_at, created_by";

fn conversion(index: usize, what: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        index,
        rusqlite::types::Type::Text,
        format!("not a stored fault {what}").into(),
    )
}

fn fault_row(row: &Row<'_>) -> rusqlite::Result<FaultRule> {
    let effect: serde_json::Value = sql::json_col(row, 5)?;
    let frequency: serde_json::Value = sql::json_col(row, 6)?;
    Ok(FaultRule {
        id: uuid_col(row, 0)?,
        account_id: account_col(row, 1)?,
        method: row.get(2)?,
        path: row.get(3)?,
        client_id: row.get(4)?,
        effect: FaultEffect::from_json(&effect).ok_or_else(|| conversion(5, "effect"))?,
        frequency: FaultFrequency::from_json(&frequency).ok_or_else(|| conversion(6, "frequency"))?,
        remaining: row.get(7)?,
        matched: row.get(8)?,
        until: time_col(row, 9)?,
        created_at: time_col(row, 10)?,
        created_by: row.get(11)?,
    })
}

fn add(conn: &Connection, rule: &FaultRule) -> StoreResult<()> {
    sql::execute(
        conn,
        "DELETE FROM sandbox_faults WHERE account_id = ?1 AND until <= ?2",
        params![rule.account_id.as_str(), rule.created_at.millis()],
    )?;
    sql::execute(
        conn,
        "INSERT INTO sandbox_faults (id, account_id, method, path, client_id, effect, frequency, remaining, matched,
                                     until, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11)",
        params![
            rule.id.to_string(),
            rule.account_id.as_str(),
            rule.method,
            rule.path,
            rule.client_id,
            sql::to_json(&rule.effect.to_json())?,
            sql::to_json(&rule.frequency.to_json())?,
            rule.remaining,
            rule.until.millis(),
            rule.created_at.millis(),
            rule.created_by,
        ],
    )?;
    sql::audit(conn, &NewAuditRecord::fault_rule_added(rule))
}

fn delete_one(conn: &Connection, account: &AccountId, id: Uuid, actor: &str, at: Timestamp) -> StoreResult<bool> {
    let deleted = sql::execute(
        conn,
        "DELETE FROM sandbox_faults WHERE account_id = ?1 AND id = ?2",
        params![account.as_str(), id.to_string()],
    )?;
    if deleted == 0 {
        return Ok(false);
    }
    sql::audit(conn, &NewAuditRecord::fault_rule_deleted(account, id, actor, at))?;
    Ok(true)
}

fn delete_all(conn: &Connection, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<u64> {
    let live: i64 = sql::first(
        conn,
        "SELECT COUNT(*) FROM sandbox_faults WHERE account_id = ?1 AND until > ?2",
        params![account.as_str(), at.millis()],
        |row| row.get(0),
    )?
    .unwrap_or(0);
    sql::execute(conn, "DELETE FROM sandbox_faults WHERE account_id = ?1", params![account.as_str()])?;
    let live = live as u64;
    sql::audit(conn, &NewAuditRecord::fault_rules_cleared(account, live, actor, at))?;
    Ok(live)
}

#[async_trait]
impl FaultStore for SqliteStore {
    async fn add_fault(&self, rule: &FaultRule) -> StoreResult<()> {
        let rule = rule.clone();
        self.writer.submit(move |conn| add(conn, &rule)).await
    }

    async fn list_faults(&self, account: &AccountId, now: Timestamp) -> StoreResult<Vec<FaultRule>> {
        let account = account.as_str().to_owned();
        self.readers
            .read(move |conn| {
                sql::rows(
                    conn,
                    &format!("SELECT {COLUMNS} FROM sandbox_faults WHERE account_id = ?1 AND until > ?2 ORDER BY seq"),
                    params![account, now.millis()],
                    fault_row,
                )
            })
            .await
    }

    async fn delete_fault(&self, account: &AccountId, id: Uuid, actor: &str, at: Timestamp) -> StoreResult<bool> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| delete_one(conn, &account, id, &actor, at)).await
    }

    async fn delete_faults(&self, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<u64> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| delete_all(conn, &account, &actor, at)).await
    }

    async fn count_fault_match(&self, account: &AccountId, id: Uuid, now: Timestamp) -> StoreResult<Option<i64>> {
        let account = account.as_str().to_owned();
        self.writer
            .submit(move |conn| {
                sql::first(
                    conn,
                    "UPDATE sandbox_faults SET matched = matched + 1, remaining = remaining - 1
                     WHERE account_id = ?1 AND id = ?2 AND until > ?3 AND (remaining IS NULL OR remaining > 0)
                     RETURNING matched",
                    params![account, id.to_string(), now.millis()],
                    |row| row.get(0),
                )
            })
            .await
    }
}
