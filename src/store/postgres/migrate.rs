//! Embedded schema migrations, applied at start-up by every instance. A transaction-scoped
//! advisory lock serialises instances that start at the same moment, so each migration runs
//! exactly once and a half-applied schema is never visible.

use super::tls;
use crate::domain::Timestamp;
use crate::store::StoreResult;

/// Versions in the order they apply; a version, once released, never changes.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../migrations/postgresql/0001_init.sql")),
    (2, include_str!("../../../migrations/postgresql/0002_webhooks.sql")),
    (3, include_str!("../../../migrations/postgresql/0003_idempotency.sql")),
    (4, include_str!("../../../migrations/postgresql/0004_encryption_keys.sql")),
    (5, include_str!("../../../migrations/postgresql/0005_fewer_token_indexes.sql")),
    (6, include_str!("../../../migrations/postgresql/0006_vault_settings.sql")),
    (7, include_str!("../../../migrations/postgresql/0007_customer_seq_lookup.sql")),
    (8, include_str!("../../../migrations/postgresql/0008_client_secret_generation.sql")),
    (9, include_str!("../../../migrations/postgresql/0009_shred_deleted_card_tokens.sql")),
    (10, include_str!("../../../migrations/postgresql/0010_dintero_conformance.sql")),
    (12, include_str!("../../../migrations/postgresql/0012_payment_token_sessions.sql")),
    (13, include_str!("../../../migrations/postgresql/0013_customer_filters_and_settings.sql")),
    (14, include_str!("../../../migrations/postgresql/0014_webhook_deliveries.sql")),
    (15, include_str!("../../../migrations/postgresql/0015_recurrence_tokens.sql")),
    (16, include_str!("../../../migrations/postgresql/0016_audit_chain.sql")),
    (18, include_str!("../../../migrations/postgresql/0018_request_journal.sql")),
    (19, include_str!("../../../migrations/postgresql/0019_sandbox_faults.sql")),
    (20, include_str!("../../../migrations/postgresql/0020_sandbox_clocks.sql")),
];

/// Key of the advisory lock that serialises migrations ("tokenvlt"). Advisory locks are scoped
/// to the current database, so other databases on the server are not affected.
const MIGRATION_LOCK: i64 = 0x746f_6b65_6e76_6c74;

/// Connects once and applies pending migrations: for `tokenvault migrate`, so that schema
/// changes can run before new instances are rolled out. Returns the versions applied (empty
/// when the schema was already up to date).
pub async fn migrate(url: &str) -> StoreResult<Vec<i64>> {
    let (mut client, driver) = connect_once(url).await?;
    let result = run(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

/// One plain connection (no pool) with its driver task; the driver ends when the client drops.
pub(super) async fn connect_once(url: &str) -> StoreResult<(tokio_postgres::Client, tokio::task::JoinHandle<()>)> {
    let (mut config, tls) = tls::parse_url(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(10));
    }
    let (client, connection) = config.connect(tls).await?;
    let driver = tokio::spawn(async move {
        // The error, if any, also surfaces on the client's next call.
        let _ = connection.await;
    });
    Ok((client, driver))
}

/// Applies each pending migration in its own transaction, under the advisory lock, and returns
/// the versions applied.
pub(super) async fn run(client: &mut tokio_postgres::Client) -> StoreResult<Vec<i64>> {
    let mut applied_now = Vec::new();
    for (version, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        // `IF NOT EXISTS` would otherwise log a NOTICE on every start.
        tx.batch_execute("SET LOCAL client_min_messages = warning").await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        let applied = tx.query_opt("SELECT 1 FROM schema_migrations WHERE version = $1", &[version]).await?.is_some();
        if !applied {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[version, &Timestamp::now().millis()],
            )
            .await?;
            applied_now.push(i64::from(*version));
        }
        tx.commit().await?;
    }
    Ok(applied_now)
}
