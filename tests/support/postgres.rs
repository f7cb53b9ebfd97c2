//! PostgreSQL plumbing shared by every integration test that uses PostgreSQL: where the server is,
//! a plain connection, skipping (or failing under `TOKENVAULT_REQUIRE_POSTGRES=1`) when it is
//! unreachable, and per-test databases that drop themselves. Included with
//! `#[path = "support/postgres.rs"] mod pg;` (from `tests/api/main.rs`: `"../support/postgres.rs"`;
//! the library's own PostgreSQL tests include it too, from `src/store/postgres/tests.rs`).

#![allow(dead_code)] // each test crate uses its part

use std::net::ToSocketAddrs;
use std::sync::{Once, OnceLock};
use std::time::Duration;

use tokio_postgres::NoTls;

/// The server tests create their databases on: `TOKENVAULT_TEST_POSTGRES_URL`, or the local one.
pub fn admin_url() -> String {
    std::env::var("TOKENVAULT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The admin server's URL naming another database (its query parameters kept).
pub fn database_url(database: &str) -> String {
    with_database(&admin_url(), database)
}

/// The same server's URL naming another database (its query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    format!("{base}/{database}{query}")
}

/// A plain (no TLS) connection with its driver spawned; gives up after 3 s.
pub async fn connect_plain(url: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    let (client, connection) = tokio::time::timeout(Duration::from_secs(3), config.connect(NoTls))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("{e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// What every skip goes through: a panic under `TOKENVAULT_REQUIRE_POSTGRES=1` (CI must not
/// skip), else a notice on stderr (only the first time when `once`).
fn skip_or_require(what: &str, reason: &str, once: bool) {
    if std::env::var("TOKENVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
        panic!("{reason} (TOKENVAULT_REQUIRE_POSTGRES=1)");
    }
    static NOTICE: Once = Once::new();
    let notice = || eprintln!("skipping {what}: {reason}");
    if once {
        NOTICE.call_once(notice);
    } else {
        notice();
    }
}

/// The admin connection, or `None` after a notice when no session can be opened (each call
/// tries, and tells).
pub async fn admin_or_skip(what: &str) -> Option<tokio_postgres::Client> {
    match connect_plain(&admin_url()).await {
        Ok(client) => Some(client),
        Err(e) => {
            skip_or_require(what, &format!("PostgreSQL unreachable at {}: {e}", admin_url()), false);
            None
        }
    }
}

/// Whether the admin server's port answers, probed once per test binary without a runtime (for
/// synchronous callers); `false` after a single notice when it does not.
pub fn reachable_or_skip() -> bool {
    static REACHABLE: OnceLock<(bool, String)> = OnceLock::new();
    let (reachable, address) = REACHABLE.get_or_init(|| {
        let config: tokio_postgres::Config = admin_url().parse().expect("TOKENVAULT_TEST_POSTGRES_URL");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let address = format!("{host}:{port}");
        let answers = (host.as_str(), port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok());
        (answers, address)
    });
    if !reachable {
        skip_or_require("the PostgreSQL half", &format!("PostgreSQL unreachable at {address}"), true);
    }
    *reachable
}

/// A fresh database name, `tv_<uuid>`.
pub fn fresh_database_name() -> String {
    format!("tv_{}", uuid::Uuid::new_v4().simple())
}

/// Drops a test database and its sessions from a `Drop` impl (on a runtime of its own, as the
/// test's may be gone); a failure is printed, not raised.
pub fn drop_database(name: &str) {
    let name = name.to_owned();
    let dropped = std::thread::spawn({
        let name = name.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let client = connect_plain(&admin_url()).await?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
                    .map_err(|e| e.to_string())
            })
        }
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        eprintln!("could not drop test database {name}: {dropped:?}");
    }
}

/// A database of a test's own on the admin server, dropped (sessions and all) when this goes,
/// also when the test panics.
pub struct TempDatabase {
    pub name: String,
    pub url: String,
}

impl TempDatabase {
    /// Creates one over a new admin connection; the caller has checked that the server is there.
    pub async fn create() -> Self {
        let admin = connect_plain(&admin_url()).await.unwrap_or_else(|e| panic!("PostgreSQL admin connection: {e}"));
        Self::create_on(&admin).await
    }

    /// Creates one over an admin connection the caller holds.
    pub async fn create_on(admin: &tokio_postgres::Client) -> Self {
        let name = fresh_database_name();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let url = database_url(&name);
        Self { name, url }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        drop_database(&self.name);
    }
}
