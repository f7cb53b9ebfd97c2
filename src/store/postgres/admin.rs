//! The store as a whole: its health, the audit log, sandbox resets and its figures.

use async_trait::async_trait;

use super::sql::append_audit;
use super::{rows, PostgresStore};
use crate::domain::audit::{AuditRecord, ChainLink, NewAuditRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::{AdminStore, ResetCounts, ResetParts, StoreError, StoreResult, StoreStats};

#[async_trait]
impl AdminStore for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let statement = conn.prepare_cached("SELECT 1").await?;
            conn.query_one(&statement, &[]).await?;
            Ok(())
        })
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT seq, at, account_id, actor, action, resource_type, resource_id, details FROM audit_log \
                     WHERE seq > $1 AND ($2::TEXT IS NULL OR account_id = $2) ORDER BY seq LIMIT $3",
                )
                .await?;
            let account = account.map(AccountId::as_str);
            let rows = conn.query(&statement, &[&after_seq, &account, &i64::from(limit)]).await?;
            rows.iter().map(rows::audit_record).collect()
        })
    }

    async fn append_audit(&self, record: NewAuditRecord) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            append_audit(&tx, record.clone()).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn unsealed_audit(&self, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT seq, at, account_id, actor, action, resource_type, resource_id, details FROM audit_log \
                     WHERE chain_pos IS NULL ORDER BY seq LIMIT $1",
                )
                .await?;
            let rows = conn.query(&statement, &[&i64::from(limit)]).await?;
            rows.iter().map(rows::audit_record).collect()
        })
    }

    async fn audit_chain_head(&self) -> StoreResult<Option<ChainLink>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT chain_pos, chain_hash FROM audit_log WHERE chain_pos IS NOT NULL \
                     ORDER BY chain_pos DESC LIMIT 1",
                )
                .await?;
            let row = conn.query_opt(&statement, &[]).await?;
            Ok(row.map(|row| ChainLink { position: row.get(0), hash: row.get(1) }))
        })
    }

    async fn extend_audit_chain(&self, head: Option<i64>, links: Vec<(i64, ChainLink)>) -> StoreResult<bool> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            // Sealers take turns (requests never take this lock): the head read below is then
            // the one this transaction extends.
            tx.execute("SELECT pg_advisory_xact_lock(7320516001)", &[]).await?;
            let current: Option<i64> = tx.query_one("SELECT MAX(chain_pos) FROM audit_log", &[]).await?.get(0);
            if current != head {
                return Ok(false);
            }
            let statement = tx
                .prepare_cached(
                    "UPDATE audit_log SET chain_pos = $1, chain_hash = $2 WHERE seq = $3 AND chain_pos IS NULL",
                )
                .await?;
            for (seq, link) in &links {
                if tx.execute(&statement, &[&link.position, &link.hash, seq]).await? != 1 {
                    return Ok(false);
                }
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    async fn audit_chain(&self, after: i64, limit: u32) -> StoreResult<Vec<(AuditRecord, ChainLink)>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT seq, at, account_id, actor, action, resource_type, resource_id, details, chain_pos, \
                     chain_hash FROM audit_log WHERE chain_pos > $1 ORDER BY chain_pos LIMIT $2",
                )
                .await?;
            let rows = conn.query(&statement, &[&after, &i64::from(limit)]).await?;
            rows.iter()
                .map(|row| Ok((rows::audit_record(row)?, ChainLink { position: row.get(8), hash: row.get(9) })))
                .collect()
        })
    }

    async fn count_unsealed_audit(&self) -> StoreResult<u64> {
        with_conn!(self, |conn| {
            let count: i64 =
                conn.query_one("SELECT COUNT(*) FROM audit_log WHERE chain_pos IS NULL", &[]).await?.get(0);
            Ok(count as u64)
        })
    }

    async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ResetCounts> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let id = account.as_str();
            let delete = async |sql: &str| -> StoreResult<u64> {
                let statement = tx.prepare_cached(sql).await?;
                Ok(tx.execute(&statement, &[&id]).await?)
            };
            let mut counts = ResetCounts::default();
            if parts.customers {
                counts.customer_tokens = Some(delete("DELETE FROM customer_tokens WHERE account_id = $1").await?);
                counts.customers = Some(delete("DELETE FROM customers WHERE account_id = $1").await?);
                counts.token_events = Some(
                    delete(
                        "DELETE FROM token_events WHERE entry_seq IN \
                         (SELECT seq FROM token_event_entries WHERE account_id = $1)",
                    )
                    .await?,
                );
                delete("DELETE FROM token_event_entries WHERE account_id = $1").await?;
                delete("DELETE FROM customer_settings WHERE account_id = $1").await?;
            }
            if parts.card_tokens {
                counts.card_tokens = Some(delete("DELETE FROM card_tokens WHERE account_id = $1").await?);
            }
            if parts.hooks {
                delete(
                    "DELETE FROM webhook_attempts WHERE delivery_id IN \
                     (SELECT id FROM webhook_outbox WHERE account_id = $1)",
                )
                .await?;
                counts.webhook_deliveries = Some(
                    delete(
                        "DELETE FROM webhook_outbox WHERE account_id = $1 AND delivered_at IS NULL AND gave_up_at IS NULL",
                    )
                    .await?,
                );
                delete("DELETE FROM webhook_outbox WHERE account_id = $1").await?;
                counts.hook_subscriptions = Some(delete("DELETE FROM hook_subscriptions WHERE account_id = $1").await?);
            }
            if parts.faults {
                counts.fault_rules = Some(delete("DELETE FROM sandbox_faults WHERE account_id = $1").await?);
            }
            if parts.clock {
                counts.clocks = Some(delete("DELETE FROM sandbox_clocks WHERE account_id = $1").await?);
            }
            // Replays of responses about data that is gone: a key reused after the reset runs
            // afresh. Claims in progress (the reset's own among them) stay with their requests.
            delete("DELETE FROM idempotency_keys WHERE account_id = $1 AND state = 'done'").await?;
            append_audit(&tx, NewAuditRecord::sandbox_reset(account, &counts, actor, at)).await?;
            tx.commit().await?;
            Ok(counts)
        })
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let status = self.pool.status();
        let (webhook_outbox_pending, audit_chain_head, audit_unchained): (i64, i64, i64) = with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT (SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL), \
                     COALESCE((SELECT MAX(chain_pos) FROM audit_log), 0), \
                     (SELECT COUNT(*) FROM audit_log WHERE chain_pos IS NULL)",
                )
                .await?;
            let row = conn.query_one(&statement, &[]).await?;
            Ok::<_, StoreError>((row.get(0), row.get(1), row.get(2)))
        })?;
        Ok(StoreStats {
            pool_size: status.max_size as u64,
            pool_idle: status.available as u64,
            webhook_outbox_pending: webhook_outbox_pending as u64,
            audit_chain_head: audit_chain_head as u64,
            audit_unchained: audit_unchained as u64,
        })
    }
}
