//! Schema migrations, embedded in the binary and applied in order at open.

use rusqlite::{params, Connection, TransactionBehavior};

use crate::domain::Timestamp;
use crate::store::StoreResult;

/// Every migration, by version. Append only: an applied migration is never edited.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../../migrations/sqlite/0002_webhooks.sql")),
];

/// Applies each pending migration in its own transaction. `BEGIN IMMEDIATE` makes a second
/// process opening the same file wait, then see the version as applied.
pub(super) fn run(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )?;
    for &(version, sql) in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = super::sql::exists(&tx, "SELECT 1 FROM schema_migrations WHERE version = ?1", [version])?;
        if !applied {
            tx.execute_batch(sql)?;
            super::sql::execute(
                &tx,
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, Timestamp::now().millis()],
            )?;
        }
        tx.commit()?;
    }
    Ok(())
}
