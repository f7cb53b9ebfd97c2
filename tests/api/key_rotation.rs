//! Encryption at rest with rotation (issue 5, item 3): `tokenvault keys rotate` run beside a
//! serving server re-encrypts every sealed value under a new key; data written before, during
//! and after rotations stays readable, through the running server and after a restart, and no
//! plain token reaches the database.

use std::process::Command;

use serde_json::{json, Value};

use super::card_tokens::full_body;
use crate::helpers::*;

backend_tests!(backend: rotation_reencrypts_everything_and_keeps_it_readable, a_wrong_master_key_is_refused);

/// Runs `tokenvault keys …` on the app's database; returns (exit success, stdout, stderr).
fn keys(app: &TestApp, args: &[&str], key: Option<&str>) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tokenvault"));
    command.arg("keys").args(args).args(["--database-url", &app.database_url]).env_remove("TOKENVAULT_ENCRYPTION_KEY");
    let pg_key = pg_encryption_key();
    match (key, app.backend) {
        (Some(key), _) => {
            command.args(["--encryption-key", key]);
        }
        (None, Backend::Postgres) => {
            command.args(["--encryption-key", &pg_key]);
        }
        // SQLite: the key file beside the database, as the server uses.
        (None, Backend::Sqlite) => {}
    }
    let output = command.output().expect("tokenvault runs");
    (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

fn run_keys(app: &TestApp, args: &[&str]) -> String {
    let (ok, stdout, stderr) = keys(app, args, None);
    assert!(ok, "tokenvault keys {args:?} failed: {stderr}");
    stdout
}

/// The sealed values of both sealed columns, straight from the database.
async fn sealed_values(app: &TestApp) -> Vec<Vec<u8>> {
    let queries = [
        "SELECT token_sealed FROM card_tokens WHERE token_sealed IS NOT NULL",
        "SELECT sealed_secret FROM hook_subscriptions",
    ];
    match app.backend {
        Backend::Sqlite => {
            let path = app.dir.as_ref().unwrap().path().join("tokenvault.db");
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut values = Vec::new();
            for sql in queries {
                let mut statement = conn.prepare(sql).unwrap();
                let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0)).unwrap();
                values.extend(rows.map(Result::unwrap));
            }
            values
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let mut values = Vec::new();
            for sql in queries {
                values.extend(client.query(sql, &[]).await.unwrap().iter().map(|row| row.get::<_, Vec<u8>>(0)));
            }
            values
        }
    }
}

/// What every value sealed under data key `id` starts with: format 2, then the id (big-endian).
fn prefix(id: u32) -> Vec<u8> {
    let mut prefix = vec![2];
    prefix.extend_from_slice(&id.to_be_bytes());
    prefix
}

async fn assert_all_sealed_under(app: &TestApp, expected: &[u8], count: usize) {
    let values = sealed_values(app).await;
    assert_eq!(values.len(), count);
    for value in values {
        assert!(
            value.starts_with(expected),
            "a value starts with {:?}, not {expected:?}",
            &value[..5.min(value.len())]
        );
    }
}

async fn assert_cards_read_back(app: &TestApp, token: &str, cards: &[(String, String)]) {
    for (id, secret) in cards {
        let card = app.get(&format!("/v1/card-tokens/{id}"), token).await.expect_json(200);
        assert_eq!(card["token"], json!(secret), "card {id}");
    }
    let listed = app.get("/v1/card-tokens?limit=100", token).await.expect_json(200);
    let mut listed: Vec<(String, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|card| (card["id"].as_str().unwrap().to_owned(), card["token"].as_str().unwrap().to_owned()))
        .collect();
    let mut expected = cards.to_vec();
    listed.sort();
    expected.sort();
    assert_eq!(listed, expected);
}

async fn create_card(app: &TestApp, token: &str, cards: &mut Vec<(String, String)>) {
    let secret = format!("tok_ROTATE_{}", uuid::Uuid::new_v4().simple());
    let created = app.create_card_token(token, &full_body(&secret)).await;
    assert_eq!(created["token"], json!(secret));
    cards.push((created["id"].as_str().unwrap().to_owned(), secret));
}

async fn rotation_reencrypts_everything_and_keeps_it_readable(backend: Backend) {
    // The webhook subscription below names 127.0.0.1: allowed, as for local development.
    let mut app = spawn_app_with(backend, |config| config.webhooks.allow_private_targets = true).await;
    let token = app.token_for(ACCOUNT, &["admin:checkout", "admin:hooks"]).await;
    let mut cards = Vec::new();
    for _ in 0..3 {
        create_card(&app, &token, &mut cards).await;
    }
    let subscription = json!({
        "config": {"url": "http://127.0.0.1:9/hook", "content_type": "application/json", "secret": "hook-secret-1"},
        "events": ["checkout_token_add"]
    });
    app.post_json(&format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"), &token, &subscription).await.expect_json(200);
    // Before any rotation: the original format, key 0.
    assert_all_sealed_under(&app, &[1], 4).await;
    assert_eq!(run_keys(&app, &["list"]), "");

    // Rotate while the server runs; it has never seen key 1 and loads it on first sight.
    let report: Value = serde_json::from_str(&run_keys(&app, &["rotate", "--grace-seconds", "0"])).unwrap();
    assert_eq!(report, json!({"key_id": 1, "resealed": 4, "remaining": 0}));
    assert_all_sealed_under(&app, &prefix(1), 4).await;
    assert_cards_read_back(&app, &token, &cards).await;
    // New values are sealed with the new key.
    create_card(&app, &token, &mut cards).await;
    assert_all_sealed_under(&app, &prefix(1), 5).await;

    // A second rotation; the server picks key 2 up during the grace period.
    let report: Value = serde_json::from_str(&run_keys(&app, &["rotate", "--grace-seconds", "3"])).unwrap();
    assert_eq!(report, json!({"key_id": 2, "resealed": 5, "remaining": 0}));
    create_card(&app, &token, &mut cards).await;
    assert_cards_read_back(&app, &token, &cards).await;
    // Nothing is left to do under older keys.
    let report: Value = serde_json::from_str(&run_keys(&app, &["reencrypt"])).unwrap();
    assert_eq!(report, json!({"key_id": 2, "resealed": 0, "remaining": 0}));
    assert_all_sealed_under(&app, &prefix(2), 6).await;

    let listed: Vec<Value> =
        run_keys(&app, &["list"]).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(listed.len(), 2);
    for (key, (id, active)) in listed.iter().zip([(1, false), (2, true)]) {
        assert_eq!(
            (&key["id"], &key["active"], &key["created_by"]),
            (&json!(id), &json!(active), &json!("cli:keys rotate"))
        );
        assert_timestamp(key["created_at"].as_str().unwrap());
    }

    // A restarted server loads the ring at start.
    app.restart().await;
    let token = app.token_for(ACCOUNT, &["admin:checkout"]).await;
    assert_cards_read_back(&app, &token, &cards).await;

    // Each rotation is in the audit trail, as an installation-wide record.
    let audit = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["audit", "--database-url", &app.database_url])
        .output()
        .unwrap();
    assert!(audit.status.success());
    let added: Vec<Value> = String::from_utf8(audit.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|record| record["action"] == "encryption_key.add")
        .map(|record| json!([record["account_id"], record["actor"], record["resource_type"], record["resource_id"]]))
        .collect();
    assert_eq!(
        added,
        vec![
            json!(["", "cli:keys rotate", "encryption_key", "1"]),
            json!(["", "cli:keys rotate", "encryption_key", "2"])
        ]
    );

    // No plain token in the database files (SQLite: every byte of the directory but the key file).
    if app.backend == Backend::Sqlite {
        app.stop().await;
        let dir = app.dir.as_ref().unwrap().path();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            for (_, secret) in &cards {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in {}", path.display());
            }
        }
    }
}

/// A master key other than the database's cannot unwrap its data keys: key commands refuse to
/// run and a server refuses to start, rather than failing on each read later.
async fn a_wrong_master_key_is_refused(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let token = app.token_for(ACCOUNT, &["admin:checkout"]).await;
    let mut cards = Vec::new();
    create_card(&app, &token, &mut cards).await;
    run_keys(&app, &["rotate", "--grace-seconds", "0"]);

    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0x11u8; 32]);
    let (ok, stdout, stderr) = keys(&app, &["rotate", "--grace-seconds", "0"], Some(&wrong));
    assert!(!ok);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "tokenvault: encryption key: encryption key 1 in the database does not open with this master key (is \
         --encryption-key the one the database was created with?)\n"
    );
    assert_eq!(run_keys(&app, &["list"]).lines().count(), 1, "the failed rotation added no key");

    app.stop().await;
    let mut config = tokenvault::settings::ServeConfig::new(app.database_url.clone().parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret(wrong));
    let error = tokenvault::app::start(config).await.err().expect("the server refuses to start");
    assert_eq!(
        error.to_string(),
        "encryption key: encryption key 1 in the database does not open with this master key (is --encryption-key \
         the one the database was created with?)"
    );
}
