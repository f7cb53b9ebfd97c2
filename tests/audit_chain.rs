//! The audit trail's hash chain (`tokenvault audit verify`, `audit checkpoint`): a record edited,
//! deleted or moved in SQL, or a tail cut off after a checkpoint, is found and named, on SQLite
//! and on PostgreSQL; and reading the trail is itself on it.

#[path = "support/postgres.rs"]
mod pg;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tokenvault");
const ACCOUNT: &str = "T00000001";
const KEY: &str = "dG9rZW52YXVsdC10ZXN0LWtleS0zMi1ieXRlcy0tLS0=";

fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).env("TOKENVAULT_LOG", "warn").output().expect("run tokenvault");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs SQL against the test database, on whichever backend it is.
async fn execute(database_url: &str, sql: &str) {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute_batch(sql).unwrap();
    } else {
        let client = pg::connect_plain(database_url).await.unwrap();
        client.batch_execute(sql).await.unwrap();
    }
}

/// `audit verify` on the database: (exit success, the JSON report, stderr).
fn verify(database_url: &str, checkpoint: Option<&str>) -> (bool, Value, String) {
    let mut args = vec!["audit", "verify", "--database-url", database_url, "--encryption-key", KEY];
    if let Some(checkpoint) = checkpoint {
        args.extend(["--checkpoint", checkpoint]);
    }
    let (ok, stdout, stderr) = run(&args);
    (ok, serde_json::from_str(stdout.trim()).unwrap_or(Value::Null), stderr)
}

async fn the_chain_shows_tampering(database_url: &str) {
    // Changes through the API leave audit records; the server chains them in the background.
    let (ok, stdout, stderr) = run(&[
        "clients",
        "create",
        "--account",
        ACCOUNT,
        "--scopes",
        "admin:customers",
        "--database-url",
        database_url,
    ]);
    assert!(ok, "{stderr}");
    let client: Value = serde_json::from_str(stdout.trim()).unwrap();
    let mut config = tokenvault::settings::ServeConfig::new(database_url.parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret(KEY.to_owned()));
    let server = tokenvault::app::start(config).await.unwrap();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/v1/accounts/{ACCOUNT}/auth/token", server.url()))
        .basic_auth(client["client_id"].as_str().unwrap(), client["client_secret"].as_str())
        .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for i in 0..5 {
        let status = http
            .post(format!("{}/v1/accounts/{ACCOUNT}/customers/users", server.url()))
            .bearer_auth(token["access_token"].as_str().unwrap())
            .json(&json!({"customer_id": format!("c{i}")}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    // Chained within a second or so, and shown in /metrics.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.url())).await.unwrap().text().await.unwrap();
        if metrics.contains("\ntokenvault_audit_chain_head_position 5\n")
            && metrics.contains("\ntokenvault_audit_unchained 0\n")
        {
            break;
        }
        assert!(Instant::now() < deadline, "five records chained within 30 s:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.shutdown().await;

    let (ok, stdout, stderr) = run(&["audit", "checkpoint", "--database-url", database_url, "--encryption-key", KEY]);
    assert!(ok, "{stderr}");
    let checkpoint = stdout.trim().to_owned();
    let parsed: Value = serde_json::from_str(&checkpoint).unwrap();
    assert_eq!(parsed["position"], 5, "five customers: {checkpoint}");
    assert_eq!(parsed["hash"].as_str().unwrap().len(), 64);
    let (ok, report, stderr) = verify(database_url, Some(&checkpoint));
    assert!(ok, "{stderr}");
    assert_eq!(report, json!({"ok": true, "chained": 5, "unchained": 0, "head": parsed, "first_break": null}));

    // Reading the trail is on the trail (not chained until a server or `checkpoint` chains it).
    let (ok, stdout, stderr) = run(&["audit", "--database-url", database_url]);
    assert!(ok, "{stderr}");
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((last["action"].clone(), last["actor"].clone()), (json!("audit.read"), json!("cli:audit")));
    assert_eq!(last["resource_id"], "*");
    let (ok, report, _) = verify(database_url, Some(&checkpoint));
    assert!(ok);
    assert_eq!(report["unchained"], 1);

    // An edited record.
    execute(database_url, "UPDATE audit_log SET actor = 'mallory' WHERE chain_pos = 3").await;
    let (ok, report, stderr) = verify(database_url, None);
    assert!(!ok && stderr.contains("broken at position 3") && stderr.contains("does not match its hash"), "{stderr}");
    assert_eq!(report["first_break"]["position"], 3);
    assert!(report["first_break"]["seq"].is_i64());
    execute(
        database_url,
        "UPDATE audit_log SET actor = (SELECT actor FROM audit_log WHERE chain_pos = 4) WHERE chain_pos = 3",
    )
    .await;
    assert!(verify(database_url, None).0, "put back, it verifies again");

    // Two records swapped in the chain.
    execute(
        database_url,
        "UPDATE audit_log SET chain_pos = -2 WHERE chain_pos = 2; UPDATE audit_log SET chain_pos = 2 WHERE chain_pos = 3; \
         UPDATE audit_log SET chain_pos = 3 WHERE chain_pos = -2;",
    )
    .await;
    let (ok, _, stderr) = verify(database_url, None);
    assert!(!ok && stderr.contains("broken at position 2"), "{stderr}");
    execute(
        database_url,
        "UPDATE audit_log SET chain_pos = -2 WHERE chain_pos = 2; UPDATE audit_log SET chain_pos = 2 WHERE chain_pos = 3; \
         UPDATE audit_log SET chain_pos = 3 WHERE chain_pos = -2;",
    )
    .await;
    assert!(verify(database_url, None).0);

    // The tail cut off: a shorter chain is valid on its own; the checkpoint finds the cut.
    execute(database_url, "DELETE FROM audit_log WHERE chain_pos = 5").await;
    assert!(verify(database_url, None).0);
    let (ok, _, stderr) = verify(database_url, Some(&checkpoint));
    assert!(!ok && stderr.contains("ends at position 4, before the checkpoint's 5"), "{stderr}");
    // A forged checkpoint (another hash) is refused too.
    let (ok, _, stderr) = verify(database_url, Some(&json!({"position": 4, "hash": "00".repeat(32)}).to_string()));
    assert!(!ok && stderr.contains("the checkpoint holds another hash"), "{stderr}");

    // A record deleted from the middle.
    execute(database_url, "DELETE FROM audit_log WHERE chain_pos = 2").await;
    let (ok, _, stderr) = verify(database_url, None);
    assert!(!ok && stderr.contains("position 2 is missing"), "{stderr}");

    // Without the master key nothing verifies (and nothing can be forged).
    let (ok, _, stderr) = run(&[
        "audit",
        "verify",
        "--database-url",
        database_url,
        "--encryption-key",
        "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=",
    ]);
    assert!(!ok, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_shows_tampering_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_chain_shows_tampering(&format!("sqlite://{}", dir.path().join("audit.db").display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_shows_tampering_on_postgres() {
    let Some(admin) = pg::admin_or_skip("the audit chain on PostgreSQL").await else { return };
    let db = pg::TempDatabase::create_on(&admin).await;
    the_chain_shows_tampering(&db.url).await;
}
