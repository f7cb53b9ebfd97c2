//! Read-only connections, lent out one per read and used on the blocking thread pool.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::store::{StoreError, StoreResult};

pub(super) struct ReadPool {
    inner: Arc<Inner>,
}

struct Inner {
    size: usize,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
}

/// Puts the connection back even when the read panics.
struct Lease<'a> {
    inner: &'a Inner,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
        }
    }
}

impl ReadPool {
    pub(super) fn new(connections: Vec<Connection>, acquire_timeout: Duration) -> Self {
        let permits = Arc::new(Semaphore::new(connections.len()));
        let size = connections.len();
        Self { inner: Arc::new(Inner { size, idle: Mutex::new(connections), permits, acquire_timeout }) }
    }

    /// (connections in the pool, connections idle now).
    pub(super) fn status(&self) -> (u64, u64) {
        let idle = self.inner.idle.lock().unwrap_or_else(PoisonError::into_inner).len() as u64;
        (self.inner.size as u64, idle)
    }

    /// Runs `work` inside one read transaction, so all its queries see the same snapshot.
    pub(super) async fn read<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let timeout = self.inner.acquire_timeout;
        let permit = tokio::time::timeout(timeout, self.inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| StoreError::Unavailable(format!("no read connection became free within {timeout:?}")))?
            .map_err(|_| StoreError::Unavailable("the read pool is closed".into()))?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = inner.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let lease = Lease { inner: &inner, conn };
            let conn =
                lease.conn.as_ref().ok_or_else(|| StoreError::Internal("read pool out of connections".into()))?;
            let snapshot = conn.unchecked_transaction()?;
            work(&snapshot)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }
}
