//! The single writer: one thread owns the write connection and commits queued jobs in groups,
//! so many requests share one transaction and one fsync while each keeps its own outcome.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::{StoreError, StoreResult};

/// Most jobs one transaction takes; bounds the latency of the first job of a batch.
const MAX_BATCH: usize = 512;

/// A queued write whose caller waits for its reply.
trait Job: Send {
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran>;
    /// Answers without running, when the batch failed before the job's turn.
    fn fail(self: Box<Self>, error: StoreError);
}

/// A job that has run: its result is held back until the batch's commit is known.
trait Ran: Send {
    fn succeeded(&self) -> bool;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Task<T, F> {
    work: F,
    reply: oneshot::Sender<StoreResult<T>>,
}

struct Finished<T> {
    result: StoreResult<T>,
    reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> Job for Task<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Ran> {
        let result = (self.work)(conn);
        Box::new(Finished { result, reply: self.reply })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

impl<T: Send + 'static> Ran for Finished<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let _ = self.reply.send(commit.and(self.result));
    }
}

pub(super) struct Writer {
    sender: Option<Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(super) fn start(conn: Connection) -> StoreResult<Self> {
        let (sender, receiver) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("tokenvault-sqlite-writer".into())
            .spawn(move || run(&conn, &receiver))
            .map_err(|e| StoreError::Internal(format!("cannot start the SQLite writer thread: {e}")))?;
        Ok(Self { sender: Some(sender), thread: Some(thread) })
    }

    /// Runs `work` in the next batch; resolves only after that batch committed (or failed).
    pub(super) async fn submit<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let sender = self.sender.as_ref().ok_or_else(stopped)?;
        sender.send(Box::new(Task { work, reply })).map_err(|_| stopped())?;
        answer.await.map_err(|_| StoreError::Internal("the write was aborted (the job panicked)".into()))?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".into())
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the thread once the queued jobs are done.
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, receiver: &Receiver<Box<dyn Job>>) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(conn, batch);
    }
}

/// One transaction for the batch, one savepoint per job; replies go out only after COMMIT.
fn commit_batch(conn: &Connection, batch: Vec<Box<dyn Job>>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let error = StoreError::from(e);
        for job in batch {
            job.fail(duplicate(&error));
        }
        return;
    }

    let mut ran: Vec<Box<dyn Ran>> = Vec::with_capacity(batch.len());
    let mut broken: Option<StoreError> = None;
    let mut jobs = batch.into_iter();
    for job in jobs.by_ref() {
        if let Err(e) = savepoint(conn, "SAVEPOINT job") {
            let error = StoreError::from(e);
            job.fail(duplicate(&error));
            broken = Some(error);
            break;
        }
        // A panicking job drops its reply sender, so its caller still gets an error.
        let outcome = catch_unwind(AssertUnwindSafe(|| job.run(conn))).ok();
        let keep = outcome.as_ref().is_some_and(|r| r.succeeded());
        ran.extend(outcome);
        let end = if keep {
            savepoint(conn, "RELEASE job")
        } else {
            savepoint(conn, "ROLLBACK TO job").and_then(|()| savepoint(conn, "RELEASE job"))
        };
        if let Err(e) = end {
            broken = Some(StoreError::from(e));
            break;
        }
        if conn.is_autocommit() {
            broken = Some(StoreError::Internal("SQLite rolled the batch's transaction back".into()));
            break;
        }
    }

    let commit = match broken {
        Some(error) => Err(error),
        None => conn.execute_batch("COMMIT").map_err(StoreError::from),
    };
    if commit.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    let result = |commit: &Result<(), StoreError>| commit.as_ref().map(|_| ()).map_err(duplicate);
    for done in ran {
        done.finish(result(&commit));
    }
    if let Err(error) = &commit {
        for job in jobs {
            job.fail(duplicate(error));
        }
    }
}

/// A savepoint statement, prepared once (two of them run per job: parsing them each time costs
/// more than many a job).
fn savepoint(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// The same error again, for every job of a failed batch.
fn duplicate(error: &StoreError) -> StoreError {
    match error {
        StoreError::NotFound(what) => StoreError::NotFound(what),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Duplicate(d, m) => StoreError::Duplicate(*d, m.clone()),
        StoreError::UnknownCursor => StoreError::UnknownCursor,
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Exhausted(m) => StoreError::Exhausted(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("w.db")).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (k TEXT PRIMARY KEY)").unwrap();
        (dir, Writer::start(conn).unwrap())
    }

    fn insert(key: &'static str) -> impl FnOnce(&Connection) -> StoreResult<usize> + Send + 'static {
        move |conn| Ok(conn.prepare_cached("INSERT INTO t (k) VALUES (?1)")?.execute([key])?)
    }

    #[tokio::test]
    async fn a_failing_job_loses_only_its_own_writes() {
        let (_dir, writer) = writer();
        let failing = |conn: &Connection| -> StoreResult<()> {
            conn.execute("INSERT INTO t (k) VALUES ('doomed')", [])?;
            Err(StoreError::Conflict("no".into()))
        };
        let (a, b, c, d) = tokio::join!(
            writer.submit(insert("a")),
            writer.submit(failing),
            writer.submit(insert("a")),
            writer.submit(insert("b"))
        );
        assert_eq!(a.unwrap(), 1);
        assert!(matches!(b, Err(StoreError::Conflict(m)) if m == "no"));
        assert!(matches!(c, Err(StoreError::Conflict(_))), "{c:?}");
        assert_eq!(d.unwrap(), 1);
        let keys = writer
            .submit(|conn| {
                let mut stmt = conn.prepare_cached("SELECT k FROM t ORDER BY k")?;
                let keys = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
                Ok(keys)
            })
            .await
            .unwrap();
        assert_eq!(keys, ["a", "b"]);
    }

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_writer_survives() {
        let (_dir, writer) = writer();
        let panicking = |_: &Connection| -> StoreResult<()> { panic!("boom") };
        assert!(matches!(writer.submit(panicking).await, Err(StoreError::Internal(_))));
        assert_eq!(writer.submit(insert("after")).await.unwrap(), 1);
    }
}
