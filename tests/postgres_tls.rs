//! TLS to PostgreSQL, configured by libpq's `sslmode` / `sslrootcert` in the database URL, end
//! to end against the local server on 127.0.0.1:5432 with Debian's snakeoil certificate
//! (self-signed, CN and SAN `localhost`).
//!
//! Without a reachable server these tests print a notice and pass, unless
//! `TOKENVAULT_REQUIRE_POSTGRES=1`. A server with `ssl = off`, or a machine without the snakeoil
//! certificate, is a notice and a skip either way: the reason is printed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tokenvault::settings::ServeConfig;
use tokenvault::store::{self, StoreOptions};

#[path = "support/postgres.rs"]
mod pg;

const BIN: &str = env!("CARGO_BIN_EXE_tokenvault");
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
/// A CA certificate that signed nothing the server shows.
const UNRELATED_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tls/unrelated-ca.pem");
const ACCOUNT: &str = "T00000001";

/// A database of its own on a server that speaks TLS with the snakeoil certificate, dropped when
/// it goes; `None` (after a notice) when the test cannot run here.
struct TestDb {
    name: String,
    /// A plain connection to the maintenance database, for looking at the test database's sessions.
    admin: tokio_postgres::Client,
}

impl TestDb {
    async fn create() -> Option<Self> {
        let admin = pg::admin_or_skip("PostgreSQL TLS test").await?;
        if !Path::new(SNAKEOIL).exists() {
            eprintln!("skipping PostgreSQL TLS test: {SNAKEOIL} is missing (apt-get install ssl-cert)");
            return None;
        }
        let ssl: String = admin.query_one("SHOW ssl", &[]).await.expect("SHOW ssl").get(0);
        if ssl != "on" {
            eprintln!("skipping PostgreSQL TLS test: the server at {} has ssl = {ssl}", pg::admin_url());
            return None;
        }
        let name = pg::fresh_database_name();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        Some(Self { name, admin })
    }

    /// The test database's URL on `host` with these query parameters.
    fn url(&self, host: &str, query: &str) -> String {
        format!("postgres://postgres@{host}:5432/{}?{query}", self.name)
    }

    /// (sessions on the test database, whether every one of them is encrypted).
    async fn sessions(&self) -> (i64, Option<bool>) {
        let row = self
            .admin
            .query_one(
                "SELECT COUNT(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.datname = $1",
                &[&self.name],
            )
            .await
            .expect("pg_stat_ssl");
        (row.get(0), row.get(1))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        pg::drop_database(&self.name);
    }
}

fn serve_config(url: &str) -> ServeConfig {
    let mut config = ServeConfig::new(url.parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret("dG9rZW52YXVsdC10ZXN0LWtleS0zMi1ieXRlcy0tLS0=".into()));
    config.store.pool_size = 4;
    config
}

/// The message of a store that could not be opened.
async fn open_error(url: &str) -> String {
    match store::open(&parsed(url), &StoreOptions::default()).await {
        Ok(_) => panic!("{url} connected"),
        Err(e) => e.to_string(),
    }
}

/// `tokenvault clients create`, then a token and a customer through the server at `base`.
async fn some_work(database_url: &str, base: &str) {
    let output = Command::new(BIN)
        .args(["clients", "create", "--account", ACCOUNT, "--scopes", "admin:customers"])
        .args(["--database-url", database_url])
        .env("TOKENVAULT_LOG", "warn")
        .output()
        .expect("run tokenvault clients create");
    assert!(output.status.success(), "clients create: {}", String::from_utf8_lossy(&output.stderr));
    let created: Value = serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(15)).build().unwrap();
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(created["client_id"].as_str().unwrap(), created["client_secret"].as_str())
        .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let token: Value = response.json().await.unwrap();
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/customers/users"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"customer_id": "tls-customer"}))
        .send()
        .await
        .expect("create customer");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_encrypts_every_session() {
    let Some(db) = TestDb::create().await else { return };
    let url = db.url("localhost", &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"));

    // `tokenvault migrate` (one connection of its own), a server (the pool), the CLI, and an
    // export/import connection held open beside them.
    assert!(!store::migrate(&parsed(&url)).await.expect("migrate over verify-full").is_empty());
    let server = tokenvault::app::start(serve_config(&url)).await.expect("serve over verify-full");
    some_work(&url, &server.url()).await;
    let dataset = store::dataset::open(&parsed(&url)).await.expect("export/import connection over verify-full");

    let (sessions, encrypted) = db.sessions().await;
    assert!(sessions >= 2, "{sessions} sessions");
    assert_eq!(encrypted, Some(true), "a session of {} is not encrypted", db.name);
    drop(dataset);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_decides_whether_sessions_are_encrypted() {
    let Some(db) = TestDb::create().await else { return };
    // The control: with `disable` the same query sees plain sessions.
    let plain =
        store::open(&parsed(db.url("localhost", "sslmode=disable")), &StoreOptions::default()).await.expect("disable");
    plain.ping().await.unwrap();
    let (sessions, encrypted) = db.sessions().await;
    assert!(sessions >= 1, "{sessions} sessions");
    assert_eq!(encrypted, Some(false));
    drop(plain);
    tokio::time::timeout(Duration::from_secs(10), async {
        while db.sessions().await.0 > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the plain sessions end");

    // Saying nothing means `prefer`: encrypted, as the server offers TLS (no longer plain text).
    let preferred = store::open(&parsed(db.url("localhost", "application_name=tv-tls")), &StoreOptions::default())
        .await
        .expect("default sslmode");
    preferred.ping().await.unwrap();
    // `require` without a root: encrypted, any certificate accepted (libpq's require), even for
    // a host name the certificate does not have.
    let required =
        store::open(&parsed(db.url("127.0.0.1", "sslmode=require")), &StoreOptions::default()).await.expect("require");
    required.ping().await.unwrap();
    // `verify-ca` checks the chain but not the name: 127.0.0.1 is fine.
    let verify_ca = db.url("127.0.0.1", &format!("sslmode=verify-ca&sslrootcert={SNAKEOIL}"));
    let chain_only = store::open(&parsed(verify_ca), &StoreOptions::default()).await.expect("verify-ca");
    chain_only.ping().await.unwrap();
    let (sessions, encrypted) = db.sessions().await;
    assert!(sessions >= 3, "{sessions} sessions");
    assert_eq!(encrypted, Some(true));

    // A Unix socket has no TLS: `prefer` (the default) connects in plain text there.
    if Path::new("/var/run/postgresql/.s.PGSQL.5432").exists() {
        let url = format!("postgres://postgres@%2Fvar%2Frun%2Fpostgresql/{}", db.name);
        let local = store::open(&parsed(url), &StoreOptions::default()).await.expect("Unix socket, default sslmode");
        local.ping().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_checks_refuse_the_wrong_server() {
    let Some(db) = TestDb::create().await else { return };

    // verify-full to 127.0.0.1: the certificate is for localhost only. Every way in refuses.
    let wrong_name = db.url("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={SNAKEOIL}"));
    for error in [
        open_error(&wrong_name).await,
        store::migrate(&parsed(&wrong_name)).await.expect_err("migrate connected").to_string(),
        store::dataset::open(&parsed(&wrong_name)).await.err().expect("export connected").to_string(),
    ] {
        assert!(error.contains("certificate") && error.contains("name") && error.contains("127.0.0.1"), "{error}");
    }

    // A root that did not sign the server's certificate: refused by verify-ca and verify-full,
    // and by require, which a root file turns into verify-ca (as libpq).
    for mode in ["verify-ca", "verify-full", "require"] {
        let error = open_error(&db.url("localhost", &format!("sslmode={mode}&sslrootcert={UNRELATED_CA}"))).await;
        assert!(error.contains("certificate") && error.contains("UnknownIssuer"), "{mode}: {error}");
    }
    // The public web PKI does not vouch for a self-signed certificate either.
    let error = open_error(&db.url("localhost", "sslrootcert=system")).await;
    assert!(error.contains("UnknownIssuer"), "{error}");

    let (sessions, _) = db.sessions().await;
    assert_eq!(sessions, 0, "a refused connection is still open");
}

/// Bad TLS parameters stop `tokenvault` at start-up with a message naming them, before any
/// connection is tried (no server needed).
#[test]
fn bad_tls_parameters_are_startup_errors() {
    let missing = std::env::temp_dir().join(format!("tv-missing-{}.pem", uuid::Uuid::new_v4().simple()));
    let cases = [
        ("sslmode=verify_full".to_owned(), "sslmode: unknown value \"verify_full\""),
        ("sslmode=verify-full".to_owned(), "sslmode=verify-full needs sslrootcert"),
        (format!("sslmode=verify-ca&sslrootcert={}", missing.display()), "sslrootcert"),
        ("sslmode=require&sslcert=/tmp/c.pem".to_owned(), "sslcert and sslkey must be given together"),
        ("sslmode=prefer&sslrootcert=system".to_owned(), "may not be used with sslrootcert=system"),
    ];
    for (query, expected) in cases {
        let url = format!("postgres://postgres:hunter2@127.0.0.1:9/tv?{query}");
        for command in ["migrate", "export"] {
            let output = Command::new(BIN)
                .args([command, "--database-url", &url])
                .env("TOKENVAULT_LOG", "warn")
                .output()
                .expect("run tokenvault");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{command} {query}: {stderr}");
            assert!(stderr.contains(expected), "{command} {query}: {stderr}");
            assert!(!stderr.contains("panicked") && !stderr.contains("hunter2"), "{command} {query}: {stderr}");
        }
    }
}

/// A database URL as the store takes it.
fn parsed(url: impl AsRef<str>) -> tokenvault::store::DatabaseUrl {
    url.as_ref().parse().expect("a PostgreSQL URL")
}
