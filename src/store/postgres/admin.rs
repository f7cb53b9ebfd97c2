//! The store as a whole: its health, the audit log, sandbox resets and its figures.

use async_trait::async_trait;

use super::sql::append_audit;
use super::{rows, PostgresStore};
use crate::domain::audit::{AuditRecord, NewAuditRecord};
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
                counts.webhook_deliveries = Some(
                    delete(
                        "DELETE FROM webhook_outbox WHERE account_id = $1 AND delivered_at IS NULL AND gave_up_at IS NULL",
                    )
                    .await?,
                );
                delete("DELETE FROM webhook_outbox WHERE account_id = $1").await?;
                counts.hook_subscriptions = Some(delete("DELETE FROM hook_subscriptions WHERE account_id = $1").await?);
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
        let webhook_outbox_pending: i64 = with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL")
                .await?;
            Ok::<_, StoreError>(conn.query_one(&statement, &[]).await?.get(0))
        })?;
        Ok(StoreStats {
            pool_size: status.max_size as u64,
            pool_idle: status.available as u64,
            webhook_outbox_pending: webhook_outbox_pending as u64,
        })
    }
}
