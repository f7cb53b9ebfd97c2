//! Read-only connections, each owned by a reader thread of its own that takes reads from one
//! shared queue. A fixed set of threads (not tokio's blocking pool, which grew to ~40 threads
//! under list load as each read's thread went idle only after the next read had been handed
//! out): fewer thread switches and wake-ups per read, each connection's page cache stays with its
//! thread, and the allocator keeps per-thread memory for a handful of threads only.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// A queued read, run by whichever reader thread takes it.
type Job = Box<dyn FnOnce(&Connection) + Send>;

pub(super) struct ReadPool {
    size: usize,
    /// Reads running now.
    busy: Arc<AtomicUsize>,
    sender: Option<Sender<Job>>,
    /// Each gives its connection back when it ends.
    threads: Vec<JoinHandle<Connection>>,
    acquire_timeout: Duration,
}

impl ReadPool {
    pub(super) fn new(connections: Vec<Connection>, acquire_timeout: Duration) -> StoreResult<Self> {
        let size = connections.len();
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let busy = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::with_capacity(size);
        for (index, conn) in connections.into_iter().enumerate() {
            let (receiver, busy) = (Arc::clone(&receiver), Arc::clone(&busy));
            let thread = std::thread::Builder::new()
                .name(format!("tokenvault-sqlite-reader-{index}"))
                .spawn(move || {
                    serve(&conn, &receiver, &busy);
                    conn
                })
                .map_err(|e| StoreError::Internal(format!("cannot start an SQLite reader thread: {e}")))?;
            threads.push(thread);
        }
        Ok(Self { size, busy, sender: Some(sender), threads, acquire_timeout })
    }

    /// (connections in the pool, connections idle now).
    pub(super) fn status(&self) -> (u64, u64) {
        let busy = self.busy.load(Ordering::Relaxed).min(self.size);
        (self.size as u64, (self.size - busy) as u64)
    }

    /// Runs `work` inside one read transaction, so all its queries see the same snapshot. A read
    /// that found no connection free within the acquire timeout fails with `Unavailable`.
    pub(super) async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, mut answer) = oneshot::channel();
        // QUEUED until a reader takes the job (STARTED) or the caller gives up on it (ABANDONED).
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job_state = Arc::clone(&state);
        let job: Job = Box::new(move |conn: &Connection| {
            if job_state.compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_err() {
                return;
            }
            let result = conn.unchecked_transaction().map_err(StoreError::from).and_then(|snapshot| work(&snapshot));
            let _ = reply.send(result);
        });
        let sender = self.sender.as_ref().ok_or_else(closed)?;
        sender.send(job).map_err(|_| closed())?;
        let timeout = self.acquire_timeout;
        let answered = match tokio::time::timeout(timeout, &mut answer).await {
            Ok(answered) => answered,
            Err(_) => {
                if state.compare_exchange(QUEUED, ABANDONED, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return Err(StoreError::Unavailable(format!("no read connection became free within {timeout:?}")));
                }
                // Taken by a reader meanwhile: its answer is on the way.
                answer.await
            }
        };
        answered.map_err(|_| StoreError::Internal("the read failed (it panicked)".into()))?
    }
}

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

fn closed() -> StoreError {
    StoreError::Unavailable("the read pool is closed".into())
}

/// A reader thread: takes the next queued read until the pool closes.
fn serve(conn: &Connection, receiver: &Mutex<Receiver<Job>>, busy: &AtomicUsize) {
    loop {
        let job = receiver.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(job) = job else { return };
        busy.fetch_add(1, Ordering::Relaxed);
        // A panicking read drops its reply, so its caller gets an error; the thread goes on.
        let _ = catch_unwind(AssertUnwindSafe(|| job(conn)));
        busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for ReadPool {
    fn drop(&mut self) {
        // Closing the queue ends each thread once the reads already queued are done. The
        // connections close here, one after another: the last to close checkpoints and removes
        // the WAL, which none does when they close at the same moment on their own threads.
        self.sender.take();
        let connections: Vec<Connection> = self.threads.drain(..).filter_map(|thread| thread.join().ok()).collect();
        for conn in connections {
            drop(conn);
        }
    }
}
