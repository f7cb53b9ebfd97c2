//! The PostgreSQL store: many tokenvault instances behind a load balancer, one shared database.
//!
//! Every invariant that must hold across instances (one live `token_id` per customer, one owner
//! per live token type/value, unique card token ids and fingerprints, ...) is a constraint or a
//! partial unique index in the schema, never an in-process lock; violations are mapped back to
//! the same friendly messages the SQLite store gives. Connection trouble of any kind becomes
//! [`StoreError::Unavailable`] (HTTP 503) quickly, and the pool heals itself once the database
//! is back.

/// Runs `$body` with a pooled connection bound to `$conn`, then settles the connection.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {{
        #[allow(unused_mut)]
        let mut $conn = $store.conn().await?;
        let result = async { $body }.await;
        $crate::store::postgres::settle($conn, result)
    }};
}

mod admin;
mod card_tokens;
mod clients;
mod clocks;
mod customers;
mod dataset;
mod faults;
mod idempotency;
mod journal;
mod keys;
mod migrate;
mod rows;
mod sessions;
mod sql;
#[cfg(test)]
mod tests;
mod tls;
mod token_events;
mod values;
mod webhooks;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};

use super::{StoreError, StoreOptions, StoreResult};

pub use dataset::PostgresDataset;
pub use migrate::migrate;

/// A pool of connections to one PostgreSQL database whose schema is up to date.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Builds the pool and applies pending migrations (safe when several instances start at
    /// once). Fails with `Unavailable` when the database cannot be reached.
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let (mut config, tls) = tls::parse_url(url)?;
        if config.get_connect_timeout().is_none() {
            // Without it a black-holed host hangs a request far beyond the acquire timeout.
            config.connect_timeout(options.acquire_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("tokenvault");
        }
        // `Fast` skips a round trip per checkout; connections that failed with a connection
        // error are discarded explicitly (see `settle`) and closed ones are dropped on recycle.
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .recycle_timeout(Some(options.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the PostgreSQL pool: {e}")))?;
        let store = Self { pool };
        let mut conn = store.conn().await?;
        let result = migrate::run(&mut conn).await;
        settle(conn, result.map(drop))?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }
}

/// Returns a connection to the pool, unless it just failed with a connection error: then it is
/// dropped so that the next request opens a fresh one instead of failing on a dead socket.
fn settle<T>(conn: Object, result: StoreResult<T>) -> StoreResult<T> {
    if matches!(result, Err(StoreError::Unavailable(_))) {
        drop(Object::take(conn));
    }
    result
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_connection_error(&error) {
            StoreError::Unavailable(describe(&error))
        } else if error.code().is_some_and(|code| is_insufficient_resources(code.code())) {
            StoreError::Exhausted(describe(&error))
        } else if let Some(constraint) = unique_violation(&error) {
            StoreError::Conflict(format!("a conflicting record already exists ({constraint})"))
        } else {
            StoreError::Internal(describe(&error))
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Timeout(kind) => {
                StoreError::Unavailable(format!("no database connection available ({kind:?} timeout)"))
            }
            // Whatever stops the pool from opening a connection makes the database unreachable
            // for us, transient or not: 503, and the message names the cause in the logs.
            PoolError::Backend(e) => StoreError::Unavailable(describe(&e)),
            PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// SQLSTATE classes that mean "the database is not there right now": connection exceptions
/// (08), shutdowns and start-ups (57P01-57P03), too many connections (53300).
fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    use std::error::Error as _;
    error.is_closed()
        || error.source().is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
        || error.to_string() == "timeout waiting for server"
}

/// SQLSTATE class 53, "insufficient resources": `53100 disk_full`, `53200 out_of_memory`,
/// `53400 configuration_limit_exceeded` (`53300 too_many_connections` is met when connecting, and
/// is a connection error). The statement failed and changed nothing; retrying later may work.
fn is_insufficient_resources(code: &str) -> bool {
    code.starts_with("53")
}

/// The constraint a unique violation (SQLSTATE 23505) names.
fn unique_violation(error: &tokio_postgres::Error) -> Option<&str> {
    let db = error.as_db_error()?;
    (db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        .then(|| db.constraint().unwrap_or("a unique constraint"))
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({}): {}", error, db.code().code(), db.message()),
        None => {
            use std::error::Error as _;
            match error.source() {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            }
        }
    }
}
