//! The clocks of test accounts.

use async_trait::async_trait;

use super::rows::{self, get};
use super::sql::append_audit;
use super::PostgresStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::clock::AccountClock;
use crate::domain::{AccountId, Timestamp};
use crate::store::{ClockStore, StoreResult};

/// Real time in `account`'s time: for the moments the store takes itself (an outbox row due at
/// once), which must be in the account's time as every other moment of it is. Production accounts
/// have no clock: no query.
pub(super) async fn account_now(
    client: &impl deadpool_postgres::GenericClient,
    account: &AccountId,
) -> StoreResult<Timestamp> {
    if !account.is_test() {
        return Ok(Timestamp::now());
    }
    let statement = client.prepare_cached("SELECT offset_ms FROM sandbox_clocks WHERE account_id = $1").await?;
    let offset = client.query_opt(&statement, &[&account.as_str()]).await?.map(|row| get::<i64>(&row, "offset_ms"));
    Ok(AccountClock::at(offset.transpose()?.unwrap_or(0), Timestamp::now()))
}

#[async_trait]
impl ClockStore for PostgresStore {
    async fn account_clock(&self, account: &AccountId) -> StoreResult<Option<AccountClock>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT account_id, offset_ms, updated_at, updated_by FROM sandbox_clocks WHERE account_id = $1",
                )
                .await?;
            let row = conn.query_opt(&statement, &[&account.as_str()]).await?;
            row.map(|row| {
                Ok(AccountClock {
                    account_id: rows::account(&row, "account_id")?,
                    offset_ms: get(&row, "offset_ms")?,
                    updated_at: Timestamp::from_millis(get(&row, "updated_at")?),
                    updated_by: get(&row, "updated_by")?,
                })
            })
            .transpose()
        })
    }

    async fn set_account_clock(&self, clock: &AccountClock) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let statement = tx
                .prepare_cached(
                    "INSERT INTO sandbox_clocks (account_id, offset_ms, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account_id) DO UPDATE SET offset_ms = excluded.offset_ms, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .await?;
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
                [&clock.account_id.as_str(), &clock.offset_ms, &clock.updated_at.millis(), &clock.updated_by];
            tx.execute(&statement, &params).await?;
            append_audit(&tx, NewAuditRecord::clock_set(clock)).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    async fn clear_account_clock(&self, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<bool> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let statement = tx.prepare_cached("DELETE FROM sandbox_clocks WHERE account_id = $1").await?;
            if tx.execute(&statement, &[&account.as_str()]).await? == 0 {
                return Ok(false);
            }
            append_audit(&tx, NewAuditRecord::clock_cleared(account, actor, at)).await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
