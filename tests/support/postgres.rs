//! PostgreSQL plumbing shared by the integration tests that manage databases of their own
//! (`tests/postgres_ops.rs`, `tests/postgres_tls.rs`): a plain connection, and creating and
//! dropping a per-test database. Included with `#[path = "support/postgres.rs"] mod …;`.

#![allow(dead_code)] // each test crate uses its part

use std::time::Duration;

use tokio_postgres::NoTls;

/// The server tests create their databases on: `TOKENVAULT_TEST_POSTGRES_URL`, or the local one.
pub fn admin_url() -> String {
    std::env::var("TOKENVAULT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
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

/// The admin connection, or `None` after a notice when the server is unreachable; a panic
/// instead under `TOKENVAULT_REQUIRE_POSTGRES=1` (CI must not skip).
pub async fn admin_or_skip(what: &str) -> Option<tokio_postgres::Client> {
    match connect_plain(&admin_url()).await {
        Ok(client) => Some(client),
        Err(e) => {
            let notice = format!("PostgreSQL unreachable at {}: {e}", admin_url());
            if std::env::var("TOKENVAULT_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("{notice} (TOKENVAULT_REQUIRE_POSTGRES=1)");
            }
            eprintln!("skipping {what}: {notice}");
            None
        }
    }
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
