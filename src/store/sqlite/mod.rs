//! The embedded SQLite store: one writer thread that group-commits (durable with
//! `synchronous=FULL`, yet one fsync per batch) and a small pool of read-only connections.

mod admin;
mod card_tokens;
mod checkpoint;
mod clients;
mod clocks;
mod customers;
mod dataset;
mod faults;
mod idempotency;
mod journal;
mod keys;
mod migrate;
mod pool;
mod sessions;
mod sql;
mod token_events;
mod values;
mod webhooks;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{StoreError, StoreOptions, StoreResult};
use checkpoint::Checkpointer;
pub use dataset::SqliteDataset;
pub use migrate::migrate;
use pool::ReadPool;
use writer::Writer;

/// How long a connection waits on another process's lock before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_CACHE: usize = 64;
/// Page cache of each read connection, in KiB, as `PRAGMA cache_size` takes it (negative): 512 KiB
/// holds the upper levels of the indexes a list searches; the rest comes from the OS page cache.
/// SQLite's default (2 MiB each) made the readers alone 16 MiB of the server's memory.
const READER_CACHE_KIB: i64 = -512;
/// Page cache of the checkpoint connection (SQLite keeps at least ten pages whatever it is told).
const CHECKPOINT_CACHE_KIB: i64 = -64;

pub struct SqliteStore {
    writer: Writer,
    readers: ReadPool,
    /// Declared last: dropped after the writer and the readers, its connection is the last to
    /// close, and closing it checkpoints and removes the WAL.
    _checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Creates the file (and its directory) if needed and brings the schema up to date.
    pub async fn open(path: &Path, options: &StoreOptions) -> StoreResult<Self> {
        let path = path.to_owned();
        let options = options.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, &options))
            .await
            .map_err(|e| StoreError::Internal(format!("opening the SQLite store failed: {e}")))?
    }

    fn open_blocking(path: &Path, options: &StoreOptions) -> StoreResult<Self> {
        let (conn, _) = migrate::open_migrated(path)?;

        let mut readers = Vec::with_capacity(options.pool_size.max(1));
        for _ in 0..options.pool_size.max(1) {
            let reader =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            configure(&reader)?;
            reader.pragma_update(None, "query_only", true)?;
            reader.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
            readers.push(reader);
        }
        // The writer's own automatic checkpoint is the short last step; the thread does the rest.
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::WRITER_CHECKPOINT_FRAMES)?;
        let checkpoints =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        configure(&checkpoints)?;
        // A checkpoint copies frames without the page cache; SQLite's default 2 MiB cache filled
        // anyway and showed as 4 MiB more peak RSS under the list load.
        checkpoints.pragma_update(None, "cache_size", CHECKPOINT_CACHE_KIB)?;
        Ok(Self {
            writer: Writer::start(conn)?,
            readers: ReadPool::new(readers, options.acquire_timeout)?,
            _checkpointer: Checkpointer::start(checkpoints)?,
        })
    }
}

/// Process-wide SQLite settings; call before the first connection opens (later, SQLite refuses
/// them and nothing changes). Turns off SQLite's memory statistics, which take a global mutex
/// on every allocation of every connection: the read connections contend on it under load.
pub fn configure_process() {
    // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int; called before
    // sqlite3_initialize it only sets a flag, afterwards it returns SQLITE_MISUSE and does nothing.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int);
    }
}

fn configure(conn: &Connection) -> StoreResult<()> {
    // FULL, never NORMAL: an acknowledged write must survive power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Overwritten and deleted content is zeroed, in pages and in pages moved to the freelist, so
    // values converted to their sealed form do not linger in the file's free space.
    conn.pragma_update(None, "secure_delete", true)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // The pre-checks give the friendly message; this is the guard behind them.
            Some(ErrorCode::ConstraintViolation)
                if matches!(
                    &error,
                    rusqlite::Error::SqliteFailure(e, _)
                        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict("the record conflicts with one that already exists".into())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen) => {
                StoreError::Unavailable(error.to_string())
            }
            // SQLITE_FULL: the file system has no room (SQLite turns ENOSPC from a write into it),
            // or the database reached `max_page_count`; SQLITE_NOMEM: no memory. The transaction
            // is rolled back, nothing is half-written, and a retry works once there is room.
            Some(ErrorCode::DiskFull | ErrorCode::OutOfMemory) => StoreError::Exhausted(error.to_string()),
            _ => StoreError::Internal(error.to_string()),
        }
    }
}
