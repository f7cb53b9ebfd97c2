//! The store as a whole: its health, the audit log, sandbox resets and its figures.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::sql::{self, json_col};
use super::SqliteStore;
use crate::domain::audit::{AuditRecord, ChainLink, NewAuditRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::{AdminStore, ResetCounts, ResetParts, StoreError, StoreResult, StoreStats};

const AUDIT_COLUMNS: &str = "seq, at, account_id, actor, action, resource_type, resource_id, details";

fn audit_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: row.get(0)?,
        at: Timestamp::from_millis(row.get(1)?),
        account_id: row.get(2)?,
        actor: row.get(3)?,
        action: row.get(4)?,
        resource_type: row.get(5)?,
        resource_id: row.get(6)?,
        details: json_col(row, 7)?,
    })
}

fn list_audit(conn: &Connection, account: Option<&str>, after_seq: i64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
    let columns = AUDIT_COLUMNS;
    let map = audit_row;
    match account {
        Some(account) => sql::rows(
            conn,
            &format!("SELECT {columns} FROM audit_log WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
            params![account, after_seq, limit],
            map,
        ),
        None => sql::rows(
            conn,
            &format!("SELECT {columns} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            params![after_seq, limit],
            map,
        ),
    }
}

/// Deletes the account's data, children before parents, and records the reset.
fn reset_account(
    conn: &Connection,
    account: &AccountId,
    parts: ResetParts,
    actor: &str,
    at: Timestamp,
) -> StoreResult<ResetCounts> {
    let delete = |sql: &str| sql::execute(conn, sql, params![account.as_str()]).map(|n| n as u64);
    let mut counts = ResetCounts::default();
    if parts.customers {
        counts.customer_tokens = Some(delete("DELETE FROM customer_tokens WHERE account_id = ?1")?);
        counts.customers = Some(delete("DELETE FROM customers WHERE account_id = ?1")?);
        counts.token_events = Some(delete(
            "DELETE FROM token_events WHERE entry_seq IN (SELECT seq FROM token_event_entries WHERE account_id = ?1)",
        )?);
        delete("DELETE FROM token_event_entries WHERE account_id = ?1")?;
        delete("DELETE FROM customer_settings WHERE account_id = ?1")?;
    }
    if parts.card_tokens {
        counts.card_tokens = Some(delete("DELETE FROM card_tokens WHERE account_id = ?1")?);
    }
    if parts.hooks {
        delete(
            "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_outbox WHERE account_id = ?1)",
        )?;
        counts.webhook_deliveries = Some(delete(
            "DELETE FROM webhook_outbox WHERE account_id = ?1 AND delivered_at IS NULL AND gave_up_at IS NULL",
        )?);
        counts.hook_subscriptions = Some(delete("DELETE FROM hook_subscriptions WHERE account_id = ?1")?);
        delete("DELETE FROM webhook_outbox WHERE account_id = ?1")?;
    }
    if parts.faults {
        counts.fault_rules = Some(delete("DELETE FROM sandbox_faults WHERE account_id = ?1")?);
    }
    if parts.clock {
        counts.clocks = Some(delete("DELETE FROM sandbox_clocks WHERE account_id = ?1")?);
    }
    // Replays of responses about data that is gone: a key reused after the reset runs afresh.
    // Claims in progress (the reset's own among them) stay with their requests.
    delete("DELETE FROM idempotency_keys WHERE account_id = ?1 AND state = 'done'")?;
    sql::audit(conn, &NewAuditRecord::sandbox_reset(account, &counts, actor, at))?;
    Ok(counts)
}

/// The links of [`AdminStore::extend_audit_chain`], or a conflict (which rolls back the job's
/// savepoint: nothing of it stays).
fn extend_audit_chain(conn: &Connection, head: Option<i64>, links: &[(i64, ChainLink)]) -> StoreResult<()> {
    let current: Option<i64> =
        sql::first(conn, "SELECT MAX(chain_pos) FROM audit_log", [], |row| row.get(0))?.flatten();
    if current != head {
        return Err(StoreError::Conflict("the audit chain moved".into()));
    }
    for (seq, link) in links {
        let changed = sql::execute(
            conn,
            "UPDATE audit_log SET chain_pos = ?1, chain_hash = ?2 WHERE seq = ?3 AND chain_pos IS NULL",
            params![link.position, link.hash, seq],
        )?;
        if changed != 1 {
            return Err(StoreError::Conflict("the audit chain moved".into()));
        }
    }
    Ok(())
}

/// The chain's last position and the records not chained yet (both through their indexes).
fn audit_chain_figures(conn: &Connection) -> StoreResult<(u64, u64)> {
    let figures = sql::first(
        conn,
        "SELECT COALESCE((SELECT MAX(chain_pos) FROM audit_log), 0), \
         (SELECT COUNT(*) FROM audit_log WHERE chain_pos IS NULL)",
        [],
        |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
    )?
    .unwrap_or((0, 0));
    Ok((figures.0 as u64, figures.1 as u64))
}

/// Webhook deliveries still to be made (the partial index holds exactly these).
fn pending_deliveries(conn: &Connection) -> StoreResult<u64> {
    let count: i64 = sql::first(
        conn,
        "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL",
        [],
        |row| row.get(0),
    )?
    .unwrap_or(0);
    Ok(count as u64)
}

#[async_trait]
impl AdminStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers.read(|conn| sql::first(conn, "SELECT 1", [], |_| Ok(())).map(drop)).await
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let account = account.map(|a| a.as_str().to_owned());
        self.readers.read(move |conn| list_audit(conn, account.as_deref(), after_seq, limit)).await
    }

    async fn append_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        self.writer.submit(move |conn| sql::audit(conn, &record)).await
    }

    async fn unsealed_audit(&self, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        self.readers
            .read(move |conn| {
                sql::rows(
                    conn,
                    &format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE chain_pos IS NULL ORDER BY seq LIMIT ?1"),
                    params![limit],
                    audit_row,
                )
            })
            .await
    }

    async fn audit_chain_head(&self) -> StoreResult<Option<ChainLink>> {
        self.readers
            .read(|conn| {
                sql::first(
                    conn,
                    "SELECT chain_pos, chain_hash FROM audit_log WHERE chain_pos IS NOT NULL ORDER BY chain_pos DESC LIMIT 1",
                    [],
                    |row| Ok(ChainLink { position: row.get(0)?, hash: row.get(1)? }),
                )
            })
            .await
    }

    async fn extend_audit_chain(&self, head: Option<i64>, links: Vec<(i64, ChainLink)>) -> StoreResult<bool> {
        match self.writer.submit(move |conn| extend_audit_chain(conn, head, &links)).await {
            Ok(()) => Ok(true),
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> StoreResult<Vec<(AuditRecord, ChainLink)>> {
        self.readers
            .read(move |conn| {
                sql::rows(
                    conn,
                    &format!(
                        "SELECT {AUDIT_COLUMNS}, chain_pos, chain_hash FROM audit_log WHERE chain_pos > ?1 \
                         ORDER BY chain_pos LIMIT ?2"
                    ),
                    params![after, limit],
                    |row| Ok((audit_row(row)?, ChainLink { position: row.get(8)?, hash: row.get(9)? })),
                )
            })
            .await
    }

    async fn count_unsealed_audit(&self) -> StoreResult<u64> {
        self.readers
            .read(|conn| {
                let count: i64 =
                    sql::first(conn, "SELECT COUNT(*) FROM audit_log WHERE chain_pos IS NULL", [], |row| row.get(0))?
                        .unwrap_or(0);
                Ok(count as u64)
            })
            .await
    }

    async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ResetCounts> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| reset_account(conn, &account, parts, &actor, at)).await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (pool_size, pool_idle) = self.readers.status();
        let webhook_outbox_pending = self.readers.read(pending_deliveries).await?;
        let (audit_chain_head, audit_unchained) = self.readers.read(audit_chain_figures).await?;
        Ok(StoreStats { pool_size, pool_idle, webhook_outbox_pending, audit_chain_head, audit_unchained })
    }
}
