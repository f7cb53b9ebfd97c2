//! What a stolen database, backup or export must not buy, and how clients are cut off: signing
//! keys are sealed under the master key, files are private, a token's `sub` must be a live client
//! of its `aid` holding every scope it claims, and revoking a client or rotating its secret ends
//! its tokens within seconds. Each attack is also made with what an attacker could not have (the
//! master key), to prove that the refusals come from the checks and not from a broken forgery.

use std::time::{Duration, Instant};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    a_copied_database_holds_no_usable_signing_key,
    an_export_is_private_and_holds_no_usable_signing_key,
    signed_tokens_of_no_live_client_or_with_scopes_it_lacks_are_401,
    clients_list_prints_json_lines_without_secrets,
    a_revoked_client_gets_no_tokens_and_its_tokens_stop_working,
    a_rotated_secret_and_its_tokens_stop_working,
    a_cached_token_is_refused_from_the_second_of_its_exp,
);

mod configured {
    backend_tests!(backend: clear_signing_keys_are_sealed_at_start_and_a_wrong_master_key_is_refused);
    use super::*;
}

const INVALID_TOKEN: &str = "invalid or expired access token";
const INVALID_CLIENT: &str = "invalid client credentials";
/// How long a revocation or rotation may take to reach a running server: its client cache lives
/// 2 s; the rest is slack for a loaded machine.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(5);

fn claims(sub: &str, aid: &str, scope: &str) -> Value {
    json!({
        "iss": "tokenvault", "sub": sub, "aud": audience(aid), "aid": aid, "scope": scope,
        "iat": unix_now() - 10, "exp": unix_now() + 600, "jti": uuid::Uuid::new_v4().to_string()
    })
}

fn sign_with(pair: &SigningKey, kid: &str, claims: &Value) -> String {
    let der = pair.to_pkcs8_der().unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes())).unwrap()
}

/// One `signing_keys` row as read straight from the database.
struct StolenKey {
    kid: String,
    private_key: Vec<u8>,
    public_key: Vec<u8>,
}

/// What someone holding a copy of the database (and not the master key) has: SQLite, a copy of
/// the database file and its WAL, opened on its own; PostgreSQL, the rows read over SQL. Returns
/// the `signing_keys` rows and, for SQLite, the copied files' bytes.
async fn steal_database(app: &TestApp) -> (Vec<StolenKey>, Vec<Vec<u8>>) {
    match app.backend {
        Backend::Sqlite => {
            let live = app.dir.as_ref().unwrap().path();
            let copy = tempfile::tempdir().unwrap();
            let mut files = vec![];
            for name in ["tokenvault.db", "tokenvault.db-wal"] {
                if let Ok(bytes) = std::fs::read(live.join(name)) {
                    std::fs::write(copy.path().join(name), &bytes).unwrap();
                    files.push(bytes);
                }
            }
            let conn = rusqlite::Connection::open(copy.path().join("tokenvault.db")).unwrap();
            let mut statement = conn.prepare("SELECT kid, private_key, public_key FROM signing_keys").unwrap();
            let keys = statement
                .query_map([], |row| {
                    Ok(StolenKey { kid: row.get(0)?, private_key: row.get(1)?, public_key: row.get(2)? })
                })
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            (keys, files)
        }
        Backend::Postgres => {
            let sql = crate::pg::connect_plain(&app.database_url).await.unwrap();
            let rows = sql.query("SELECT kid, private_key, public_key FROM signing_keys", &[]).await.unwrap();
            let keys = rows
                .iter()
                .map(|row| StolenKey { kid: row.get(0), private_key: row.get(1), public_key: row.get(2) })
                .collect();
            (keys, vec![])
        }
    }
}

/// Every key pair `bytes` give away for one of `public_keys`: the bytes as PKCS#8 DER, and each
/// 32-byte window as an Ed25519 seed.
fn key_pairs_in(bytes: &[u8], public_keys: &[Vec<u8>]) -> Vec<SigningKey> {
    let publishes = |pair: &SigningKey| public_keys.iter().any(|key| key[..] == pair.verifying_key().to_bytes());
    let mut pairs: Vec<SigningKey> = SigningKey::from_pkcs8_der(bytes).into_iter().filter(publishes).collect();
    pairs.extend(
        bytes
            .windows(32)
            .map(|window| SigningKey::from_bytes(window.try_into().unwrap()))
            .filter(|pair| publishes(pair)),
    );
    pairs
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// Tries every key the stolen rows hold on a real client's behalf: each forgery must be refused,
/// and no row may hold one. Returns the published public keys.
async fn forge_with_stolen_keys(app: &TestApp, keys: &[StolenKey], client_id: &str) -> Vec<Vec<u8>> {
    let published: Vec<Vec<u8>> = keys.iter().map(|key| key.public_key.clone()).collect();
    let path = customers_path(ACCOUNT);
    for key in keys {
        let usable = key_pairs_in(&key.private_key, &published);
        for pair in &usable {
            let token = sign_with(pair, &key.kid, &claims(client_id, ACCOUNT, "admin:customers admin:checkout"));
            let response = app.get(&path, &token).await;
            assert_eq!(response.status.as_u16(), 401, "a token signed with key {} from the copy was accepted", key.kid);
        }
        assert!(usable.is_empty(), "signing key {} is readable in the copy ({} bytes)", key.kid, key.private_key.len());
    }
    published
}

async fn a_copied_database_holds_no_usable_signing_key(app: TestApp) {
    let admin = app.auth(ACCOUNT, ALL_SCOPES).await;
    app.create_customer(&admin.token, &json!({"customer_id": "c1"})).await;
    let (stolen, files) = steal_database(&app).await;
    assert_eq!(stolen.len(), 1);
    let published = forge_with_stolen_keys(&app, &stolen, &admin.client_id).await;

    // Control, with the master key the attacker lacks: the row does hold the key, the search
    // above finds a key in clear PKCS#8, and the same forgery signed with it is accepted.
    let (kid, der) = app.signing_key().await;
    assert_eq!(kid, stolen[0].kid);
    assert_eq!(key_pairs_in(&der, &published).len(), 2, "as PKCS#8 and as its seed window");
    let pair = SigningKey::from_pkcs8_der(&der).unwrap();
    let forged = sign_with(&pair, &kid, &claims(&admin.client_id, ACCOUNT, "admin:customers admin:checkout"));
    app.get(&customers_path(ACCOUNT), &forged).await.expect_json(200);
    // Nowhere in the SQLite files is the private key (its seed), in any form that embeds it.
    let seed = pair.to_bytes();
    for bytes in &files {
        assert!(!contains(bytes, &seed), "the private key is in the database files");
    }
    if app.backend == Backend::Sqlite {
        assert!(files.iter().any(|bytes| contains(bytes, &stolen[0].public_key)), "control: the files hold the row");
    }
}

async fn an_export_is_private_and_holds_no_usable_signing_key(app: TestApp) {
    let admin = app.auth(ACCOUNT, ALL_SCOPES).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.jsonl");
    let (ok, stdout, stderr) = app.cli(&["export", "--output", file.to_str().unwrap()]);
    assert!(ok && stdout.is_empty(), "{stderr}");
    assert_mode(&file, 0o600);

    let text = std::fs::read_to_string(&file).unwrap();
    let rows: Vec<Value> = text.lines().skip(1).map(|line| serde_json::from_str(line).unwrap()).collect();
    let decode = |value: &Value| {
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, value.as_str().unwrap()).unwrap()
    };
    let stolen: Vec<StolenKey> = rows
        .iter()
        .filter(|line| line["table"] == "signing_keys")
        .map(|line| StolenKey {
            kid: line["row"]["kid"].as_str().unwrap().to_owned(),
            private_key: decode(&line["row"]["private_key"]),
            public_key: decode(&line["row"]["public_key"]),
        })
        .collect();
    assert_eq!(stolen.len(), 1);
    forge_with_stolen_keys(&app, &stolen, &admin.client_id).await;
    let (_, der) = app.signing_key().await;
    let seed = SigningKey::from_pkcs8_der(&der).unwrap().to_bytes();
    assert!(!rows.iter().any(|line| line
        .to_string()
        .contains(&base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &der))));
    assert!(!contains(text.as_bytes(), &seed));

    // Imported elsewhere, the sealed key needs the source's master key: another is refused; with
    // the same one, a server on the copy accepts the source's tokens.
    let source_key = match app.config().encryption_key {
        Some(key) => key.0,
        None => {
            std::fs::read_to_string(app.config().database_url.sqlite_key_file().unwrap()).unwrap().trim().to_owned()
        }
    };
    let copy = format!("sqlite://{}/copy.db", dir.path().display());
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0x11u8; 32]);
    let import = |key: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenvault"))
            .args(["import", file.to_str().unwrap(), "--database-url", &copy, "--encryption-key", key])
            .output()
            .unwrap();
        (output.status.success(), String::from_utf8(output.stderr).unwrap())
    };
    let (ok, stderr) = import(&wrong);
    assert!(!ok);
    assert!(stderr.contains(&format!("cannot open the exported JWT signing key {}", stolen[0].kid)), "{stderr}");
    let (ok, stderr) = import(&source_key);
    assert!(ok, "{stderr}");
    let mut config = tokenvault::settings::ServeConfig::new(copy.clone().parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret(source_key));
    let server = tokenvault::app::start(config).await.expect("a server on the imported copy");
    let response = reqwest::Client::new()
        .get(format!("{}{}", server.url(), customers_path(ACCOUNT)))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    server.shutdown().await;

    // An existing file is narrowed to 0600 when an export overwrites it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (ok, _, stderr) = app.cli(&["export", "--output", file.to_str().unwrap()]);
        assert!(ok, "{stderr}");
        assert_mode(&file, 0o600);
    }
}

#[track_caller]
fn assert_mode(path: &std::path::Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let actual = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode();
        assert_eq!(actual & 0o777, mode, "mode of {}: {:o}", path.display(), actual & 0o777);
    }
}

/// The embedded database, its WAL and shared-memory files and its key file are the owner's
/// alone, whatever the umask (SQLite would create them 0644 under the usual 022).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_private() {
    let app = spawn_app(Backend::Sqlite).await;
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c1"})).await;
    let dir = app.dir.as_ref().unwrap().path();
    for name in ["tokenvault.db", "tokenvault.db-wal", "tokenvault.db-shm", "tokenvault.db.key"] {
        assert_mode(&dir.join(name), 0o600);
    }
    // `tokenvault migrate` creates a new database file private too.
    let fresh = dir.join("fresh.db");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["migrate", "--database-url", &format!("sqlite://{}", fresh.display())])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_mode(&fresh, 0o600);
}

async fn signed_tokens_of_no_live_client_or_with_scopes_it_lacks_are_401(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let other = app.new_client(OTHER_ACCOUNT, &["admin:customers"]).await;
    let path = customers_path(ACCOUNT);
    // Controls: the real key and a real client's claims pass, with its generation claim and
    // without (tokens issued before the claim existed).
    let genuine = claims(&client.client_id, ACCOUNT, "admin:customers");
    app.get(&path, &app.forge(&genuine).await).await.expect_json(200);
    let mut current_generation = genuine.clone();
    current_generation["gen"] = json!(1);
    app.get(&path, &app.forge(&current_generation).await).await.expect_json(200);

    let with = |key: &str, value: Value| {
        let mut claims = genuine.clone();
        claims[key] = value;
        claims
    };
    let cases = [
        ("no such client", claims("forger", ACCOUNT, "admin:customers")),
        ("a client of another account", claims(&other.client_id, ACCOUNT, "admin:customers")),
        ("a scope the client lacks", with("scope", json!("admin:customers admin:checkout"))),
        ("only a scope the client lacks", with("scope", json!("admin:checkout"))),
        ("an older secret generation", with("gen", json!(0))),
        ("a newer secret generation", with("gen", json!(2))),
    ];
    for (case, claims) in cases {
        let response = app.get(&path, &app.forge(&claims).await).await;
        assert_eq!(response.status.as_u16(), 401, "{case}: {}", response.text);
        assert_error(&response, 401, INVALID_TOKEN, json!([]));
    }
    // Card tokens too: a forged admin:checkout for a client without it.
    let card_scope = app.forge(&with("scope", json!("admin:checkout"))).await;
    assert_error(&app.get("/v1/card-tokens", &card_scope).await, 401, INVALID_TOKEN, json!([]));
}

/// `tokenvault clients list` on the app's database, one JSON object a line.
fn list_clients(app: &TestApp, account: Option<&str>) -> Vec<Value> {
    let mut args = vec!["clients", "list"];
    args.extend(account.map(|account| ["--account", account]).into_iter().flatten());
    let (ok, stdout, stderr) = app.cli(&args);
    assert!(ok, "{stderr}");
    stdout.lines().map(|line| serde_json::from_str(line).expect("a JSON object a line")).collect()
}

async fn clients_list_prints_json_lines_without_secrets(app: TestApp) {
    assert_eq!(list_clients(&app, None), Vec::<Value>::new());
    let mut created = vec![
        app.new_client(ACCOUNT, &["admin:customers"]).await,
        app.new_client(ACCOUNT, &["read:customers", "read:checkout"]).await,
        app.new_client(OTHER_ACCOUNT, &["admin:checkout"]).await,
    ];
    created.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let mut listed = list_clients(&app, None);
    assert_eq!(listed.len(), 3);
    for (line, client) in listed.iter_mut().zip(&created) {
        take_ts(line, "created_at");
        assert_json_eq(
            line,
            &json!({"client_id": client.client_id, "account_id": client.account_id, "scopes": client.scopes, "created_at": "<ts>"}),
        );
        assert!(!line.to_string().contains("argon2"), "{line}");
    }
    let other: Vec<Value> = list_clients(&app, Some(OTHER_ACCOUNT));
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["account_id"], OTHER_ACCOUNT);
    let (ok, _, stderr) = app.cli(&["clients", "list", "--account", "X1"]);
    assert!(!ok && stderr.starts_with("tokenvault: --account"), "{stderr}");
}

/// Polls with `token` until the server refuses it (401, the invalid-token body), which must
/// happen within [`REVOCATION_DEADLINE`]; until then it must be accepted.
async fn until_refused(app: &TestApp, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        let response = app.get(&customers_path(ACCOUNT), token).await;
        if response.status.as_u16() == 401 {
            assert_error(&response, 401, INVALID_TOKEN, json!([]));
            return started.elapsed();
        }
        assert_eq!(response.status.as_u16(), 200, "{}", response.text);
        assert!(started.elapsed() < REVOCATION_DEADLINE, "the token still works {:?} later", started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The newest audit record of `ACCOUNT`, from `tokenvault audit`.
fn last_audit_record(app: &TestApp) -> Value {
    let (ok, stdout, stderr) = app.cli(&["audit", "--account", ACCOUNT]);
    assert!(ok, "{stderr}");
    serde_json::from_str(stdout.lines().last().expect("an audit record")).unwrap()
}

async fn a_revoked_client_gets_no_tokens_and_its_tokens_stop_working(app: TestApp) {
    let revoked = app.auth(ACCOUNT, &["admin:customers"]).await;
    let kept = app.auth(ACCOUNT, &["read:customers"]).await;
    // Verified and cached before the revocation.
    app.get(&customers_path(ACCOUNT), &revoked.token).await.expect_json(200);

    let (ok, stdout, stderr) = app.cli(&["clients", "revoke", &revoked.client_id]);
    assert!(ok, "{stderr}");
    let mut printed: Value = serde_json::from_str(stdout.trim_end()).expect("one JSON object");
    take_ts(&mut printed, "created_at");
    assert_json_eq(
        &printed,
        &json!({"client_id": revoked.client_id, "account_id": ACCOUNT, "scopes": ["admin:customers"], "created_at": "<ts>"}),
    );
    let took = until_refused(&app, &revoked.token).await;
    assert!(took <= REVOCATION_DEADLINE, "{took:?}");
    for _ in 0..3 {
        assert_error(&app.get(&customers_path(ACCOUNT), &revoked.token).await, 401, INVALID_TOKEN, json!([]));
    }
    let response = app
        .request_token(
            ACCOUNT,
            Some(&basic(&revoked.client_id, &revoked.client_secret)),
            &json!({"grant_type": "client_credentials", "audience": audience(ACCOUNT)}),
        )
        .await;
    assert_error(&response, 401, INVALID_CLIENT, json!([]));
    app.get(&customers_path(ACCOUNT), &kept.token).await.expect_json(200);
    assert!(list_clients(&app, None).iter().all(|client| client["client_id"] != revoked.client_id.as_str()));

    let mut record = last_audit_record(&app);
    for key in ["seq", "at"] {
        record.as_object_mut().unwrap().shift_remove(key);
    }
    assert_json_eq(
        &record,
        &json!({
            "account_id": ACCOUNT, "actor": "cli:clients revoke", "action": "client.revoke",
            "resource_type": "client", "resource_id": revoked.client_id, "details": {"scopes": ["admin:customers"]}
        }),
    );
    let (ok, stdout, stderr) = app.cli(&["clients", "revoke", &revoked.client_id]);
    assert!(!ok && stdout.is_empty());
    assert_eq!(stderr, "tokenvault: client not found\n");
}

async fn a_rotated_secret_and_its_tokens_stop_working(app: TestApp) {
    let before = app.auth(ACCOUNT, &["admin:customers", "read:checkout"]).await;
    app.get(&customers_path(ACCOUNT), &before.token).await.expect_json(200);
    assert_eq!(decode_jwt(&before.token).1["gen"], json!(1));

    let (ok, stdout, stderr) = app.cli(&["clients", "rotate-secret", &before.client_id]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim_end().lines().count(), 1, "{stdout}");
    let printed: Value = serde_json::from_str(stdout.trim_end()).expect("one JSON object");
    let secret = printed["client_secret"].as_str().expect("client_secret").to_owned();
    assert!(secret.len() >= 16 && secret != before.client_secret, "{printed}");
    assert_json_eq(
        &printed,
        &json!({"client_id": before.client_id, "client_secret": secret, "account_id": ACCOUNT, "scopes": ["admin:customers", "read:checkout"]}),
    );

    let body = json!({"grant_type": "client_credentials", "audience": audience(ACCOUNT)});
    let old = app.request_token(ACCOUNT, Some(&basic(&before.client_id, &before.client_secret)), &body).await;
    assert_error(&old, 401, INVALID_CLIENT, json!([]));
    let took = until_refused(&app, &before.token).await;
    assert!(took <= REVOCATION_DEADLINE, "{took:?}");

    let fresh = app.request_token(ACCOUNT, Some(&basic(&before.client_id, &secret)), &body).await.expect_json(200);
    let token = fresh["access_token"].as_str().unwrap();
    assert_eq!(decode_jwt(token).1["gen"], json!(2));
    app.get(&customers_path(ACCOUNT), token).await.expect_json(200);
    assert_error(&app.get(&customers_path(ACCOUNT), &before.token).await, 401, INVALID_TOKEN, json!([]));

    let mut record = last_audit_record(&app);
    for key in ["seq", "at"] {
        record.as_object_mut().unwrap().shift_remove(key);
    }
    assert_json_eq(
        &record,
        &json!({
            "account_id": ACCOUNT, "actor": "cli:clients rotate-secret", "action": "client.rotate_secret",
            "resource_type": "client", "resource_id": before.client_id, "details": {"secret_generation": 2}
        }),
    );
    let (ok, _, stderr) = app.cli(&["clients", "rotate-secret", "no-such-client"]);
    assert!(!ok);
    assert_eq!(stderr, "tokenvault: client not found\n");
}

/// The verified-token cache answers a token seen before: it too refuses it once `exp <= now`.
async fn a_cached_token_is_refused_from_the_second_of_its_exp(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let mut short = claims(&client.client_id, ACCOUNT, "admin:customers");
    let exp = unix_now() + 2;
    short["exp"] = json!(exp);
    let token = app.forge(&short).await;
    app.get(&customers_path(ACCOUNT), &token).await.expect_json(200);
    while unix_now() < exp {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_error(&app.get(&customers_path(ACCOUNT), &token).await, 401, INVALID_TOKEN, json!([]));
}

/// Sets a signing key's stored private key, as a database of an older version held it.
async fn write_private_key(app: &TestApp, kid: &str, private_key: &[u8]) {
    match app.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(app.dir.as_ref().unwrap().path().join("tokenvault.db")).unwrap();
            let changed = conn
                .execute("UPDATE signing_keys SET private_key = ?1 WHERE kid = ?2", rusqlite::params![private_key, kid])
                .unwrap();
            assert_eq!(changed, 1);
        }
        Backend::Postgres => {
            let sql = crate::pg::connect_plain(&app.database_url).await.unwrap();
            let changed = sql
                .execute("UPDATE signing_keys SET private_key = $1 WHERE kid = $2", &[&private_key, &kid])
                .await
                .unwrap();
            assert_eq!(changed, 1);
        }
    }
}

async fn clear_signing_keys_are_sealed_at_start_and_a_wrong_master_key_is_refused(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let admin = app.admin().await;
    let (kid, der) = app.signing_key().await;
    let seed = SigningKey::from_pkcs8_der(&der).unwrap().to_bytes();
    app.stop().await;
    write_private_key(&app, &kid, &der).await;
    let (stolen, _) = steal_database(&app).await;
    assert_eq!(stolen[0].private_key, der, "control: the key is in clear now");

    // Two instances start on it at once: each seals it, one write wins, both sign and verify.
    let (first, second) = tokio::join!(tokenvault::app::start(app.config()), tokenvault::app::start(app.config()));
    let (first, second) = (first.expect("first instance starts"), second.expect("second instance starts"));
    let (stolen, _) = steal_database(&app).await;
    assert_eq!(stolen.len(), 1);
    let sealed = stolen[0].private_key.clone();
    assert_ne!(sealed, der);
    assert!(!contains(&sealed, &seed));
    assert_eq!(app.cipher().open_signing_key(&kid, &sealed).unwrap(), der);
    let http = reqwest::Client::new();
    for server in [&first, &second] {
        let response = http
            .get(format!("{}{}", server.url(), customers_path(ACCOUNT)))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "a token of the key before it was sealed");
    }
    first.shutdown().await;
    second.shutdown().await;
    if backend == Backend::Sqlite {
        // secure_delete: the clear bytes did not stay behind in the file's free space.
        let dir = app.dir.as_ref().unwrap().path();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            assert!(!contains(&std::fs::read(&path).unwrap(), &seed), "{} holds the clear key", path.display());
        }
    }

    // Idempotent: a restart leaves the sealed key as it is.
    app.start().await;
    app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200);
    app.stop().await;
    assert_eq!(steal_database(&app).await.0[0].private_key, sealed);

    // Another master key: the server refuses to start, and says why.
    let mut config = app.config();
    config.encryption_key = Some(tokenvault::settings::Secret(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [7u8; 32],
    )));
    let error = match tokenvault::app::start(config).await {
        Ok(_) => panic!("a server started with another master key"),
        Err(error) => error.to_string(),
    };
    assert_eq!(
        error,
        format!(
            "signing keys: JWT signing key {kid} in the database does not open with this master key (is --encryption-key the one the database was created with?)"
        )
    );
}
