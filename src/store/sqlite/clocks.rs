//! The clocks of test accounts.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::sql::{self, account_col, time_col};
use super::SqliteStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::clock::AccountClock;
use crate::domain::{AccountId, Timestamp};
use crate::store::{ClockStore, StoreResult};

/// Real time in `account`'s time: for the moments the store takes itself (an outbox row due at
/// once), which must be in the account's time as every other moment of it is. Production accounts
/// have no clock: no query.
pub(super) fn account_now(conn: &Connection, account: &AccountId) -> StoreResult<Timestamp> {
    if !account.is_test() {
        return Ok(Timestamp::now());
    }
    let offset = sql::first(
        conn,
        "SELECT offset_ms FROM sandbox_clocks WHERE account_id = ?1",
        params![account.as_str()],
        |row| row.get::<_, i64>(0),
    )?;
    Ok(AccountClock::at(offset.unwrap_or(0), Timestamp::now()))
}

fn set(conn: &Connection, clock: &AccountClock) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO sandbox_clocks (account_id, offset_ms, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account_id) DO UPDATE SET offset_ms = excluded.offset_ms, updated_at = excluded.updated_at,
                                                updated_by = excluded.updated_by",
        params![clock.account_id.as_str(), clock.offset_ms, clock.updated_at.millis(), clock.updated_by],
    )?;
    sql::audit(conn, &NewAuditRecord::clock_set(clock))
}

fn clear(conn: &Connection, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<bool> {
    if sql::execute(conn, "DELETE FROM sandbox_clocks WHERE account_id = ?1", params![account.as_str()])? == 0 {
        return Ok(false);
    }
    sql::audit(conn, &NewAuditRecord::clock_cleared(account, actor, at))?;
    Ok(true)
}

#[async_trait]
impl ClockStore for SqliteStore {
    async fn account_clock(&self, account: &AccountId) -> StoreResult<Option<AccountClock>> {
        let account = account.as_str().to_owned();
        self.readers
            .read(move |conn| {
                sql::first(
                    conn,
                    "SELECT account_id, offset_ms, updated_at, updated_by FROM sandbox_clocks WHERE account_id = ?1",
                    params![account],
                    |row| {
                        Ok(AccountClock {
                            account_id: account_col(row, 0)?,
                            offset_ms: row.get(1)?,
                            updated_at: time_col(row, 2)?,
                            updated_by: row.get(3)?,
                        })
                    },
                )
            })
            .await
    }

    async fn set_account_clock(&self, clock: &AccountClock) -> StoreResult<()> {
        let clock = clock.clone();
        self.writer.submit(move |conn| set(conn, &clock)).await
    }

    async fn clear_account_clock(&self, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<bool> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| clear(conn, &account, &actor, at)).await
    }
}
