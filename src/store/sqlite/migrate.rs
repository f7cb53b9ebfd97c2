//! Schema migrations, embedded in the binary and applied in order at open.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use crate::domain::Timestamp;
use crate::store::{StoreError, StoreResult};

/// Every migration, by version. Append only: an applied migration is never edited.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../../../migrations/sqlite/0002_webhooks.sql")),
    (3, include_str!("../../../migrations/sqlite/0003_idempotency.sql")),
    (4, include_str!("../../../migrations/sqlite/0004_encryption_keys.sql")),
    (5, include_str!("../../../migrations/sqlite/0005_fewer_token_indexes.sql")),
    (6, include_str!("../../../migrations/sqlite/0006_vault_settings.sql")),
    (7, include_str!("../../../migrations/sqlite/0007_customer_seq_lookup.sql")),
    (8, include_str!("../../../migrations/sqlite/0008_client_secret_generation.sql")),
    (9, include_str!("../../../migrations/sqlite/0009_shred_deleted_card_tokens.sql")),
    (10, include_str!("../../../migrations/sqlite/0010_dintero_conformance.sql")),
    (12, include_str!("../../../migrations/sqlite/0012_payment_token_sessions.sql")),
    (13, include_str!("../../../migrations/sqlite/0013_customer_filters_and_settings.sql")),
    (14, include_str!("../../../migrations/sqlite/0014_webhook_deliveries.sql")),
    (15, include_str!("../../../migrations/sqlite/0015_recurrence_tokens.sql")),
    (16, include_str!("../../../migrations/sqlite/0016_audit_chain.sql")),
    (18, include_str!("../../../migrations/sqlite/0018_request_journal.sql")),
    (19, include_str!("../../../migrations/sqlite/0019_sandbox_faults.sql")),
    (20, include_str!("../../../migrations/sqlite/0020_sandbox_clocks.sql")),
];

/// Opens (creating the file if needed, but never its directory: a mistyped path must not grow a
/// new tree) a read-write connection in WAL mode and brings the schema up to date; returns the
/// connection and the versions it applied.
pub(super) fn open_migrated(path: &Path) -> StoreResult<(Connection, Vec<i64>)> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.is_dir()) {
        return Err(StoreError::Unavailable(format!(
            "the directory {} does not exist; create it first (tokenvault creates the database file, not its directory)",
            dir.display()
        )));
    }
    create_private(path).map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", path.display())))?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    super::configure(&conn)?;
    let mode: String = super::sql::first(&conn, "PRAGMA journal_mode = WAL", [], |r| r.get(0))?.unwrap_or_default();
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Internal(format!("{} cannot use WAL mode (journal_mode is {mode})", path.display())));
    }
    let applied = run(&mut conn)?;
    Ok((conn, applied))
}

/// Creates the database file empty with mode 0600 when it does not exist, before SQLite opens
/// it: SQLite would create it with the umask's mode (often 0644, readable by every local user),
/// and gives its `-wal` and `-shm` files the main file's mode. An existing file is left as it is.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// `tokenvault migrate` for an SQLite file: applies pending migrations and returns their
/// versions (empty when the schema was already up to date).
pub fn migrate(path: &Path) -> StoreResult<Vec<i64>> {
    open_migrated(path).map(|(_, applied)| applied)
}

/// Applies each pending migration in its own transaction and returns the versions applied.
/// `BEGIN IMMEDIATE` makes a second process opening the same file wait, then see the version as
/// applied.
pub(super) fn run(conn: &mut Connection) -> StoreResult<Vec<i64>> {
    let mut applied_now = Vec::new();
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
            applied_now.push(version);
        }
        tx.commit()?;
    }
    Ok(applied_now)
}
