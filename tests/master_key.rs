//! Keys no single person holds, on SQLite and on PostgreSQL: a server started sealed stays sealed
//! (`/health` 503, every call 503 with `Retry-After`) until enough shares of its master key are
//! entered by operators, each entry audited without the share; a share missing, repeated, or of
//! another key does not unseal it. Rotating the master key re-wraps every key beside a running
//! server, which keeps serving, and the old key no longer opens the database.

#[path = "support/postgres.rs"]
mod pg;

use serde_json::{json, Value};
use tokenvault::app::{self, RunningServer};
use tokenvault::auth::clients::{create_client, ClientCredentials};
use tokenvault::domain::AccountId;
use tokenvault::service::keys::{self, MasterKey};
use tokenvault::settings::{Secret, ServeConfig};

const ACCOUNT: &str = "T00000001";
const KEY: &str = "dG9rZW52YXVsdC10ZXN0LWtleS0zMi1ieXRlcy0tLS0=";
const OTHER_KEY: &str = "b3RoZXItdG9rZW52YXVsdC1rZXktMzItYnl0ZXMtLS0=";
const SEALED: &str =
    "the server is sealed: its master key's shares are being entered (tokenvault unseal); retry once it is unsealed";

fn config(database_url: &str, key: Option<&str>) -> ServeConfig {
    let mut config = ServeConfig::new(database_url.parse().unwrap());
    config.encryption_key = key.map(|key| Secret(key.to_owned()));
    config
}

async fn client(server: &RunningServer, scopes: &[&str]) -> ClientCredentials {
    let account = AccountId::parse("account", ACCOUNT).unwrap();
    create_client(server.store.as_ref(), &account, scopes.iter().map(|s| (*s).to_owned()).collect()).await.unwrap()
}

async fn token(url: &str, client: &ClientCredentials) -> String {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(&client.client_id, Some(&client.client_secret))
        .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned()
}

async fn get(url: &str, path: &str, token: &str) -> (u16, Value) {
    let response = reqwest::Client::new().get(format!("{url}{path}")).bearer_auth(token).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

async fn create_card(url: &str, token: &str, psp_token: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/card-tokens"))
        .bearer_auth(token)
        .json(&json!({"token": psp_token, "card_brand": "visa", "payment_product_type": "dintero_psp.creditcard"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// A call to a sealed server: status, `Retry-After`, body.
async fn sealed_call(url: &str, bearer: &str) -> (u16, Option<String>, Value) {
    let response = reqwest::Client::new().get(url).bearer_auth(bearer).send().await.unwrap();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after, response.json::<Value>().await.unwrap())
}

async fn unseal(url: &str, operator: &ClientCredentials, share: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/admin/unseal"))
        .basic_auth(&operator.client_id, Some(&operator.client_secret))
        .json(&json!({"share": share}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The audit records of `action`, oldest first.
async fn audit(server: &RunningServer, action: &str) -> Vec<Value> {
    let admin = tokenvault::service::admin::Admin::new(server.store.clone());
    let mut found = Vec::new();
    admin
        .walk_audit(None, "test", |record| {
            if record.action == action {
                found.push(serde_json::to_value(record).unwrap());
            }
            Ok(())
        })
        .await
        .unwrap();
    found
}

async fn shares_unseal_a_sealed_server(database_url: &str) {
    // A database in use: a card token stored under the master key.
    let server = app::start(config(database_url, Some(KEY))).await.unwrap();
    let checkout = client(&server, &["admin:checkout"]).await;
    let operator = client(&server, &["admin:vault"]).await;
    let bearer = token(&server.url(), &checkout).await;
    let card = create_card(&server.url(), &bearer, "psp-secret-1").await;
    let card_path = format!("/v1/card-tokens/{}", card["id"].as_str().unwrap());
    let (_, before) = get(&server.url(), &card_path, &bearer).await;
    server.shutdown().await;

    let (key, shares) = keys::split_master_key(&MasterKey::Given(KEY.to_owned()), 2, 3).unwrap();
    let (_, foreign) = keys::split_master_key(&MasterKey::Given(OTHER_KEY.to_owned()), 2, 2).unwrap();
    let mut sealed_config = config(database_url, None);
    sealed_config.unseal_with_shares = true;
    let server = app::start(sealed_config).await.unwrap();
    let url = server.url();
    let http = reqwest::Client::new();

    let health = http.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "sealed", "threshold": null, "progress": 0, "key": null})
    );
    let body = json!({"error": {"code": "SERVICE UNAVAILABLE", "message": SEALED, "errors": []}});
    assert_eq!(sealed_call(&format!("{url}{card_path}"), &bearer).await, (503, Some("10".to_owned()), body.clone()));
    // The token endpoint too: the signing keys do not open without the master key.
    let response = http.post(format!("{url}/v1/accounts/{ACCOUNT}/auth/token")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 503);

    // Shares only from operators, with their client credentials.
    let response = http.post(format!("{url}/v1/admin/unseal")).json(&json!({"share": shares[0]})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(unseal(&url, &checkout, &shares[0]).await.0, 403);
    let wrong = ClientCredentials { client_secret: "not-the-secret".to_owned(), ..operator.clone() };
    assert_eq!(unseal(&url, &wrong, &shares[0]).await.0, 401);

    let progress =
        |progress: usize, sealed: bool| json!({"sealed": sealed, "threshold": 2, "progress": progress, "key": key});
    assert_eq!(unseal(&url, &operator, &shares[0]).await, (200, progress(1, true)));
    let (status, body) = unseal(&url, &operator, &shares[0]).await;
    assert_eq!((status, body["error"]["message"].clone()), (400, json!("share: share 1 was entered already")));
    let (status, body) = unseal(&url, &operator, &foreign[1]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("the shares belong to master key"), "{body}");
    let mut mistyped = shares[1].clone().into_bytes();
    let digit = mistyped.len() - 12; // within the share's hex, before its check
    mistyped[digit] = if mistyped[digit] == b'0' { b'1' } else { b'0' };
    assert_eq!(unseal(&url, &operator, &String::from_utf8(mistyped).unwrap()).await.0, 400);
    // One share of two: still sealed.
    assert_eq!(sealed_call(&format!("{url}{card_path}"), &bearer).await.0, 503);
    let health: Value = http.get(format!("{url}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "sealed", "threshold": 2, "progress": 1, "key": key}));

    assert_eq!(unseal(&url, &operator, &shares[2]).await, (200, progress(2, false)));
    assert_eq!(http.get(format!("{url}/health")).send().await.unwrap().status(), 200);
    let bearer = token(&url, &checkout).await;
    assert_eq!(get(&url, &card_path, &bearer).await, (200, before));
    // Unsealed stays unsealed.
    assert_eq!(unseal(&url, &operator, &shares[1]).await, (200, progress(2, false)));

    // Every entry is on the audit trail, never a share's text.
    let entries = audit(&server, "master_key.share").await;
    let outcomes: Vec<&str> = entries.iter().map(|record| record["details"]["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.len(), 5, "{entries:?}");
    assert_eq!(outcomes[0], "accepted");
    assert_eq!(outcomes[1], "refused: share 1 was entered already");
    assert!(outcomes[2].starts_with("refused: the shares belong to master key"), "{outcomes:?}");
    assert_eq!(outcomes[3], "refused: the share's check does not match: it was mistyped or cut short");
    assert_eq!(outcomes[4], "unsealed");
    assert!(entries.iter().all(|record| record["actor"] == operator.client_id.as_str()));
    let trail = serde_json::to_string(&entries).unwrap();
    for share in &shares {
        let hex = share.split(':').nth(3).unwrap();
        assert!(!trail.contains(hex), "a share's value is on the audit trail");
    }
    server.shutdown().await;

    // Shares of another key (a whole, consistent set) do not open the database: refused, entry
    // starts over, still sealed.
    let mut sealed_config = config(database_url, None);
    sealed_config.unseal_with_shares = true;
    let server = app::start(sealed_config).await.unwrap();
    let url = server.url();
    assert_eq!(unseal(&url, &operator, &foreign[0]).await.0, 200);
    let (status, body) = unseal(&url, &operator, &foreign[1]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().ends_with("every share must be entered again"), "{body}");
    let health: Value = http.get(format!("{url}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health, json!({"status": "sealed", "threshold": null, "progress": 0, "key": null}));
    assert_eq!(unseal(&url, &operator, &shares[1]).await.0, 200);
    assert_eq!(unseal(&url, &operator, &shares[0]).await, (200, progress(2, false)));
    server.shutdown().await;
}

#[tokio::test]
async fn shares_unseal_a_sealed_server_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    shares_unseal_a_sealed_server(&format!("sqlite://{}", dir.path().join("tv.db").display())).await;
}

#[tokio::test]
async fn shares_unseal_a_sealed_server_on_postgres() {
    let Some(admin) = pg::admin_or_skip("unsealing with shares on PostgreSQL").await else { return };
    let db = pg::TempDatabase::create_on(&admin).await;
    shares_unseal_a_sealed_server(&db.url).await;
}

async fn the_master_key_rotates_beside_a_running_server(database_url: &str) {
    let server = app::start(config(database_url, Some(KEY))).await.unwrap();
    let checkout = client(&server, &["admin:checkout"]).await;
    let bearer = token(&server.url(), &checkout).await;
    let first = create_card(&server.url(), &bearer, "psp-secret-1").await;
    // A data key beside key 0, so that both kinds are re-wrapped.
    let vault = app::open_vault(&config(database_url, Some(KEY))).await.unwrap();
    vault.add_data_key("test").await.unwrap();
    let second = create_card(&server.url(), &bearer, "psp-secret-2").await;

    let dir = tempfile::tempdir().unwrap();
    let new_key_file = dir.path().join("new.key");
    let rotation = vault.rotate_master_key(&MasterKey::File(new_key_file.clone()), "test").await.unwrap();
    let new_key = std::fs::read_to_string(&new_key_file).unwrap().trim().to_owned();
    let rotation = serde_json::to_value(rotation).unwrap();
    assert_eq!(rotation["data_keys"], 1);
    assert_eq!(rotation["signing_keys"], 1);
    assert_ne!(rotation["from"], rotation["to"]);
    // The running server keeps serving, reading and writing.
    for card in [&first, &second] {
        let path = format!("/v1/card-tokens/{}", card["id"].as_str().unwrap());
        assert_eq!(get(&server.url(), &path, &bearer).await, (200, card.clone()));
    }
    let third = create_card(&server.url(), &bearer, "psp-secret-3").await;
    assert_eq!(audit(&server, "master_key.rotate").await.len(), 1);
    // A server started with its key has nothing to unseal, and says so to operators only.
    let operator = client(&server, &["admin:vault"]).await;
    let unsealed = json!({"sealed": false, "threshold": null, "progress": 0, "key": null});
    assert_eq!(unseal(&server.url(), &operator, "tokenvault-share-v1:anything").await, (200, unsealed));
    assert_eq!(unseal(&server.url(), &checkout, "tokenvault-share-v1:anything").await.0, 403);
    let response = reqwest::Client::new()
        .post(format!("{}/v1/admin/unseal", server.url()))
        .basic_auth(&operator.client_id, Some(&operator.client_secret))
        .json(&json!({"shares": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    server.shutdown().await;

    // The old key opens nothing any more; the new one opens everything, tokens issued before
    // included (the signing keys are the same keys).
    let refused = app::start(config(database_url, Some(KEY))).await.err().expect("the old key is refused").to_string();
    assert!(refused.contains("does not open with this master key"), "{refused}");
    let server = app::start(config(database_url, Some(&new_key))).await.unwrap();
    for card in [&first, &second, &third] {
        let path = format!("/v1/card-tokens/{}", card["id"].as_str().unwrap());
        assert_eq!(get(&server.url(), &path, &bearer).await, (200, card.clone()));
    }
    // And once more, from a database that keeps a root already.
    let vault = app::open_vault(&config(database_url, Some(&new_key))).await.unwrap();
    vault.rotate_master_key(&MasterKey::Given(OTHER_KEY.to_owned()), "test").await.unwrap();
    let same = vault.rotate_master_key(&MasterKey::Given(OTHER_KEY.to_owned()), "test").await;
    assert!(same.is_err(), "the vault still holds the key it opened with, which is no longer the database's");
    server.shutdown().await;
    let server = app::start(config(database_url, Some(OTHER_KEY))).await.unwrap();
    let path = format!("/v1/card-tokens/{}", first["id"].as_str().unwrap());
    assert_eq!(get(&server.url(), &path, &bearer).await, (200, first.clone()));
    server.shutdown().await;

    // A backup carries the root: it verifies with the current master key (its card tokens,
    // sealed under key 0 and key 1, open), not with a former one.
    let backup_key = dir.path().join("backup.key");
    let backup = dir.path().join("rotated.tvbackup");
    let bin = env!("CARGO_BIN_EXE_tokenvault");
    let run =
        |args: &[&str]| std::process::Command::new(bin).args(args).env("TOKENVAULT_LOG", "warn").output().unwrap();
    assert!(run(&["backup", "new-key", "--output", backup_key.to_str().unwrap()]).status.success());
    let taken = run(&[
        "backup",
        "--database-url",
        database_url,
        "--output",
        backup.to_str().unwrap(),
        "--backup-key-file",
        backup_key.to_str().unwrap(),
    ]);
    assert!(taken.status.success(), "{}", String::from_utf8_lossy(&taken.stderr));
    let verify = |key: &str| {
        let (backup, backup_key) = (backup.to_str().unwrap(), backup_key.to_str().unwrap());
        run(&["backup", "verify", backup, "--backup-key-file", backup_key, "--encryption-key", key])
    };
    let verified = verify(OTHER_KEY);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stderr));
    let refused = verify(KEY);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("does not open"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[tokio::test]
async fn the_master_key_rotates_beside_a_running_server_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_master_key_rotates_beside_a_running_server(&format!("sqlite://{}", dir.path().join("tv.db").display())).await;
}

#[tokio::test]
async fn the_master_key_rotates_beside_a_running_server_on_postgres() {
    let Some(admin) = pg::admin_or_skip("master-key rotation on PostgreSQL").await else { return };
    let db = pg::TempDatabase::create_on(&admin).await;
    the_master_key_rotates_beside_a_running_server(&db.url).await;
}

#[test]
fn the_command_line_cuts_a_key_and_rotates_from_shares() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("tv.db").display());
    let bin = env!("CARGO_BIN_EXE_tokenvault");
    let run =
        |args: &[&str]| std::process::Command::new(bin).args(args).env("TOKENVAULT_LOG", "warn").output().unwrap();
    let shares = dir.path().join("shares");
    let split = run(&[
        "keys",
        "split",
        "--database-url",
        &database_url,
        "--threshold",
        "2",
        "--shares",
        "3",
        "--output-dir",
        shares.to_str().unwrap(),
    ]);
    assert!(split.status.success(), "{}", String::from_utf8_lossy(&split.stderr));
    let printed: Value = serde_json::from_slice(&split.stdout).unwrap();
    assert_eq!((printed["threshold"].clone(), printed["shares"].clone()), (json!(2), json!(3)));
    let share = |n: u8| shares.join(format!("share-{n}.txt")).display().to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(share(2)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(share(1)).unwrap();
    assert!(text.starts_with(&format!("tokenvault-share-v1:{}:2:", printed["key"].as_str().unwrap())), "{text}");

    let new_key = dir.path().join("master-2.key").display().to_string();
    let rotate = |files: &[String]| {
        let mut args = vec!["keys", "rotate-master", "--database-url", &database_url, "--new-key-file", &new_key];
        for file in files {
            args.extend(["--share-file", file.as_str()]);
        }
        run(&args)
    };
    let one = rotate(&[share(1)]);
    assert!(!one.status.success());
    assert!(
        String::from_utf8_lossy(&one.stderr).contains("2 shares are needed, 1 were given"),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );
    let two = rotate(&[share(3), share(1)]);
    assert!(two.status.success(), "{}", String::from_utf8_lossy(&two.stderr));
    let rotation: Value = serde_json::from_slice(&two.stdout).unwrap();
    assert_eq!(rotation["from"], format!("key {}", printed["key"].as_str().unwrap()));
    // The shares of the old key open nothing now.
    let again = rotate(&[share(2), share(3)]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("does not open with this master key"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
}
