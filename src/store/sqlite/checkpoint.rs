//! Background WAL checkpoints, so the writer's batches seldom stop to copy pages into the
//! database file.
//!
//! With SQLite's automatic checkpoints alone, the writer thread copies the WAL back into the
//! database file and fsyncs it every 1,000 pages, and every request queued behind that batch
//! waits for it (a fifth of the writer's writes under a steady create load). Here a thread of
//! its own runs a `PASSIVE` checkpoint every few milliseconds on a separate connection (it never
//! blocks the writer or the readers). The writer keeps SQLite's automatic checkpoint at its
//! default threshold, [`WRITER_CHECKPOINT_FRAMES`]: by then this thread has copied most frames,
//! so the writer's checkpoint is short, and it is what lets the next write start the WAL from its
//! beginning again (a checkpoint on another connection, under continuous writes, never catches
//! up with the last frame, and SQLite restarts the WAL only when a write begins on a fully copied
//! one). If this thread stalls, the writer's checkpoint does all the work, as SQLite's default
//! would. Checkpoints are SQLite's crash-safe operation: a kill at any moment loses nothing that
//! was committed.
//!
//! Measured (bench/README.md): the mixed load's p99 at 64 connections fell from 18–19 ms to
//! 12 ms at 1M tokens. A writer threshold of 4,096 pages added 5–10 % to pure creates but nearly
//! doubled their p99 (longer tails to copy), so the default stays.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::store::{StoreError, StoreResult};

/// How often the WAL is copied into the database file.
const PASSIVE_EVERY: Duration = Duration::from_millis(10);
/// WAL length (pages) at which the writer's own checkpoint runs after a commit (SQLite's default;
/// about 4 MiB of 4 KiB pages, the WAL's usual bound).
pub(super) const WRITER_CHECKPOINT_FRAMES: i64 = 1000;

/// The checkpoint thread; dropping it stops the thread and waits for it.
pub(super) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(conn: Connection) -> StoreResult<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tokenvault-sqlite-checkpoint".into())
            .spawn(move || {
                // Logged once per run of failures (a full disk would fail every 10 ms).
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PASSIVE_EVERY) {
                    match checkpoint(&conn) {
                        Ok(()) => failing = false,
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, "background WAL checkpoint failed; the writer's own checkpoint remains");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }
}

/// Copies what the WAL holds into the database file, as far as no reader still needs it.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached("PRAGMA wal_checkpoint(PASSIVE)")?.query_row([], |_| Ok(()))
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
