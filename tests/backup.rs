//! Backups that restore (`tokenvault backup`, `backup verify`, `restore`, scheduled backups): each
//! guarantee is checked by breaking it on purpose — a flipped byte, an edited header, a wrong key,
//! a cut-off file — and the restore drill writes under load, backs up mid-load, rotates keys and
//! restores into the other backend, reading every acknowledged record back through the API.

#[path = "support/postgres.rs"]
mod pg;

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_tokenvault");
const ACCOUNT: &str = "T00000001";
/// The master key of every server here.
const KEY: &str = "dG9rZW52YXVsdC10ZXN0LWtleS0zMi1ieXRlcy0tLS0=";
const SCOPES: &str = "admin:customers admin:checkout admin:hooks";
/// The room the header has (`service::backup::HEADER_BYTES`).
const HEADER_BYTES: usize = 16 * 1024;

/// Runs the binary to completion: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).env("TOKENVAULT_LOG", "warn").output().expect("run tokenvault");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = run(args);
    assert!(ok, "tokenvault {args:?} failed: {stderr}");
    stdout
}

fn fails(args: &[&str]) -> String {
    let (ok, _, stderr) = run(args);
    assert!(!ok, "tokenvault {args:?} succeeded");
    stderr
}

fn sqlite_url(dir: &Path, name: &str) -> String {
    format!("sqlite://{}", dir.join(name).display())
}

/// An API client of the test account, created with the CLI: (client_id, client_secret).
fn create_client(database_url: &str) -> (String, String) {
    let stdout = ok(&["clients", "create", "--account", ACCOUNT, "--scopes", SCOPES, "--database-url", database_url]);
    let created: Value = serde_json::from_str(stdout.trim()).expect("one JSON object on stdout");
    (created["client_id"].as_str().unwrap().to_owned(), created["client_secret"].as_str().unwrap().to_owned())
}

async fn start(database_url: &str) -> tokenvault::app::RunningServer {
    let mut config = tokenvault::settings::ServeConfig::new(database_url.parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret(KEY.to_owned()));
    tokenvault::app::start(config).await.expect("start server")
}

struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn connect(base: String, client: &(String, String)) -> Self {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let response = http
            .post(format!("{base}/v1/accounts/{ACCOUNT}/auth/token"))
            .basic_auth(&client.0, Some(&client.1))
            .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let token = response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
        Self { http, base, token }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, response) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status == 200 || status == 201, "POST {path}: {status} {response}");
        response
    }

    async fn get(&self, path: &str) -> Value {
        let (status, response) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {response}");
        response
    }

    /// A customer with two tokens and a card token, all under `name`.
    async fn write_record(&self, name: &str) {
        let users = format!("/v1/accounts/{ACCOUNT}/customers/users");
        self.post(&users, json!({"customer_id": name, "email": format!("{name}@example.com")})).await;
        for t in 0..2 {
            self.post(
                &format!("{users}/{name}/tokens"),
                json!({"token_id": format!("t{t}"), "type": "email", "value": format!("{name}-{t}@example.com")}),
            )
            .await;
        }
        self.post(
            "/v1/card-tokens",
            json!({"id": format!("card-{name}"), "card_brand": "visa", "payment_product_type": "visa",
                   "token": format!("secret-{name}"), "customer_id": name}),
        )
        .await;
    }

    /// A record as the API shows it: the customer, its tokens, its card token with the decrypted
    /// `token`.
    async fn read_record(&self, name: &str) -> Value {
        let users = format!("/v1/accounts/{ACCOUNT}/customers/users");
        json!([
            self.get(&format!("{users}/{name}")).await,
            self.get(&format!("{users}/{name}/tokens")).await,
            self.get(&format!("/v1/card-tokens/card-{name}")).await,
        ])
    }
}

/// Rewrites a backup's header (the JSON in its first `HEADER_BYTES`) with `edit` applied.
fn edit_header(path: &Path, edit: impl FnOnce(&mut Value)) {
    let bytes = std::fs::read(path).unwrap();
    let mut header: Value = serde_json::from_slice(bytes[..HEADER_BYTES].trim_ascii_end()).unwrap();
    edit(&mut header);
    let mut line = serde_json::to_vec(&header).unwrap();
    line.resize(HEADER_BYTES - 1, b' ');
    line.push(b'\n');
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all(&line).unwrap();
}

fn copy_with(dir: &Path, from: &Path, name: &str, change: impl FnOnce(&Path)) -> String {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    change(&to);
    to.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_verifies_restores_and_every_fault_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = sqlite_url(d, "source.db");
    let client = create_client(&source);
    let server = start(&source).await;
    let api = Api::connect(server.url(), &client).await;
    for name in ["ada", "bob", "cyd"] {
        api.write_record(name).await;
    }
    let mut expected = Vec::new();
    for name in ["ada", "bob", "cyd"] {
        expected.push(api.read_record(name).await);
    }

    // A backup key of its own, never overwritten.
    let key = d.join("backup.key");
    let key = key.to_str().unwrap();
    ok(&["backup", "new-key", "--output", key]);
    assert!(fails(&["backup", "new-key", "--output", key]).contains("exists"));
    let mode = |path: &str| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(path).unwrap().permissions());
    assert_eq!(mode(key) & 0o777, 0o600);
    assert!(fails(&["backup", "--database-url", &source, "--output", "x"]).contains("a backup key is needed"));

    // Taken while the server serves.
    let backup = d.join("one.tvbackup");
    let file = backup.to_str().unwrap();
    let header: Value = serde_json::from_str(
        ok(&["backup", "--database-url", &source, "--output", file, "--backup-key-file", key]).trim(),
    )
    .unwrap();
    assert_eq!(mode(file) & 0o777, 0o600);
    assert!(!d.join("one.tvbackup.partial").exists());
    assert_eq!(header["format"], "tokenvault-backup");
    assert_eq!(header["source"], "sqlite");
    assert_eq!(header["tables"]["customers"], 3);
    assert_eq!(header["tables"]["customer_tokens"], 6);
    assert_eq!(header["tables"]["card_tokens"], 3);
    assert!(header["schema_version"].as_i64().unwrap() >= 12, "{header}");
    assert_eq!(header["data_key_ids"], json!([]), "no data key before a rotation");
    assert_eq!(header["backup_key_id"].as_str().unwrap().len(), 16);
    let on_disk = std::fs::read(file).unwrap();
    assert_eq!(on_disk.len() as u64, HEADER_BYTES as u64 + header["payload_bytes"].as_u64().unwrap());
    for secret in ["secret-ada", "ada-0@example.com", "ada@example.com"] {
        assert!(!on_disk.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} is in the backup in clear");
    }

    // Verify: the checksum alone, then opened, then with the master key.
    let verified: Value = serde_json::from_str(ok(&["backup", "verify", file]).trim()).unwrap();
    assert_eq!((verified["opened"].clone(), verified["master_key_checked"].clone()), (json!(false), json!(false)));
    let verified: Value =
        serde_json::from_str(ok(&["backup", "verify", file, "--backup-key-file", key]).trim()).unwrap();
    assert_eq!((verified["opened"].clone(), verified["master_key_checked"].clone()), (json!(true), json!(false)));
    let verified: Value =
        serde_json::from_str(ok(&["backup", "verify", file, "--backup-key-file", key, "--encryption-key", KEY]).trim())
            .unwrap();
    assert_eq!((verified["opened"].clone(), verified["master_key_checked"].clone()), (json!(true), json!(true)));
    assert_eq!(verified["header"]["tables"], header["tables"]);

    // Broken on purpose: each is found, and named.
    let flipped = copy_with(d, &backup, "flipped", |p| {
        let mut f = std::fs::OpenOptions::new().read(true).write(true).open(p).unwrap();
        f.seek(SeekFrom::Start(HEADER_BYTES as u64 + 100)).unwrap();
        let mut byte = [0u8];
        std::io::Read::read_exact(&mut f, &mut byte).unwrap();
        f.seek(SeekFrom::Start(HEADER_BYTES as u64 + 100)).unwrap();
        f.write_all(&[byte[0] ^ 0x01]).unwrap();
    });
    assert!(fails(&["backup", "verify", &flipped]).contains("is damaged"));
    let cut = copy_with(d, &backup, "cut", |p| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(on_disk.len() as u64 - 10).unwrap();
    });
    assert!(fails(&["backup", "verify", &cut, "--backup-key-file", key]).contains("is damaged"));
    // A count edited in the header: the checksum still holds, opening finds it.
    let counted = copy_with(d, &backup, "counted", |p| edit_header(p, |h| h["tables"]["card_tokens"] = json!(4)));
    ok(&["backup", "verify", &counted]);
    let stderr = fails(&["backup", "verify", &counted, "--backup-key-file", key]);
    assert!(
        stderr.contains("the header does not describe the sealed data") && stderr.contains("card_tokens"),
        "{stderr}"
    );
    // A sealed field edited: the payload no longer opens.
    let dated = copy_with(d, &backup, "dated", |p| edit_header(p, |h| h["created_at"] = json!("2020-01-01T00:00:00Z")));
    assert!(fails(&["backup", "verify", &dated, "--backup-key-file", key]).contains("does not open"));
    // Checksum and payload replaced together (a forged file that matches its header): still
    // refused, since the forger lacks the backup key.
    let forged = copy_with(d, &backup, "forged", |p| {
        let mut bytes = std::fs::read(p).unwrap();
        bytes[HEADER_BYTES + 100] ^= 1;
        let digest = sha256_hex(&bytes[HEADER_BYTES..]);
        std::fs::write(p, &bytes).unwrap();
        edit_header(p, |h| h["payload_sha256"] = json!(digest));
    });
    ok(&["backup", "verify", &forged]);
    assert!(fails(&["backup", "verify", &forged, "--backup-key-file", key]).contains("does not open"));
    // Another backup key, another master key.
    let other_key = d.join("other.key");
    ok(&["backup", "new-key", "--output", other_key.to_str().unwrap()]);
    let stderr = fails(&["backup", "verify", file, "--backup-key-file", other_key.to_str().unwrap()]);
    assert!(stderr.contains("was sealed with backup key"), "{stderr}");
    let wrong_master = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=";
    let stderr = fails(&["backup", "verify", file, "--backup-key-file", key, "--encryption-key", wrong_master]);
    assert!(stderr.contains("cannot open"), "{stderr}");
    assert!(fails(&["backup", "verify", key]).contains("is not a tokenvault backup"));

    // Restore: into an empty database it reads back as the API showed it; a damaged file or an
    // occupied database is refused and leaves the destination as it was.
    let restored = sqlite_url(d, "restored.db");
    assert!(fails(&[
        "restore",
        &flipped,
        "--database-url",
        &restored,
        "--backup-key-file",
        key,
        "--encryption-key",
        KEY
    ])
    .contains("is damaged"));
    let summary: Value = serde_json::from_str(
        ok(&["restore", file, "--database-url", &restored, "--backup-key-file", key, "--encryption-key", KEY]).trim(),
    )
    .unwrap();
    assert_eq!(summary["tables"], header["tables"]);
    assert_eq!(summary["master_key_checked"], true);
    assert!(fails(&["restore", file, "--database-url", &restored, "--backup-key-file", key]).contains("not empty"));
    server.shutdown().await;
    let server = start(&restored).await;
    let api = Api::connect(server.url(), &client).await;
    let mut seen = Vec::new();
    for name in ["ada", "bob", "cyd"] {
        seen.push(api.read_record(name).await);
    }
    assert_eq!(seen, expected);
    server.shutdown().await;
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The restore drill: writers keep writing while a backup is taken; the source's keys are rotated
/// after it; the backup is restored into PostgreSQL and every record acknowledged before the
/// backup began reads back exactly as the source showed it; and back into SQLite from a backup
/// of that PostgreSQL database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_drill_under_load_into_the_other_backend() {
    let Some(admin) = pg::admin_or_skip("the restore drill").await else { return };
    let postgres = pg::TempDatabase::create_on(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = sqlite_url(d, "source.db");
    let client = create_client(&source);
    let server = start(&source).await;
    let api = Arc::new(Api::connect(server.url(), &client).await);
    let key = d.join("backup.key");
    let key = key.to_str().unwrap().to_owned();
    ok(&["backup", "new-key", "--output", &key]);
    // A rotation before the backup too: the backup carries a data key.
    ok(&["keys", "rotate", "--grace-seconds", "0", "--database-url", &source, "--encryption-key", KEY]);

    // Two writers; each record is acknowledged once all its calls answered.
    let acknowledged: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (api, acknowledged, stop) = (api.clone(), acknowledged.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let name = format!("w{w}n{n}");
                    api.write_record(&name).await;
                    acknowledged.lock().unwrap().push((name, Instant::now()));
                    n += 1;
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 20 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let backup = d.join("drill.tvbackup");
    let file = backup.to_str().unwrap().to_owned();
    let began = Instant::now();
    let header: Value = {
        let (source, file, key) = (source.clone(), file.clone(), key.clone());
        let stdout = tokio::task::spawn_blocking(move || {
            ok(&["backup", "--database-url", &source, "--output", &file, "--backup-key-file", &key])
        })
        .await
        .unwrap();
        serde_json::from_str(stdout.trim()).unwrap()
    };
    // Writes went on during the backup, and after it.
    let during = acknowledged.lock().unwrap().len();
    while acknowledged.lock().unwrap().len() < during + 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let before: Vec<String> =
        acknowledged.lock().unwrap().iter().filter(|(_, at)| *at < began).map(|(name, _)| name.clone()).collect();
    assert!(before.len() >= 20);
    assert_eq!(header["data_key_ids"], json!([1]), "{header}");
    let mut expected = BTreeMap::new();
    for name in &before {
        expected.insert(name.clone(), api.read_record(name).await);
    }
    // Keys rotated after the backup: it still restores with the master key.
    ok(&["keys", "rotate", "--grace-seconds", "0", "--database-url", &source, "--encryption-key", KEY]);
    server.shutdown().await;
    ok(&["backup", "verify", &file, "--backup-key-file", &key, "--encryption-key", KEY]);

    // Into PostgreSQL.
    ok(&["restore", &file, "--database-url", &postgres.url, "--backup-key-file", &key, "--encryption-key", KEY]);
    let server = start(&postgres.url).await;
    let restored = Api::connect(server.url(), &client).await;
    for (name, record) in &expected {
        assert_eq!(&restored.read_record(name).await, record, "{name}");
    }
    // Nothing beyond what the writers had begun is there: at most one record in flight each.
    let customers = header["tables"]["customers"].as_u64().unwrap() as usize;
    let written = acknowledged.lock().unwrap().len();
    assert!(before.len() <= customers && customers <= written + 2, "{} ≤ {customers} ≤ {written} + 2", before.len());
    server.shutdown().await;

    // And from a backup of that PostgreSQL database back into SQLite.
    let again = d.join("again.tvbackup");
    let again = again.to_str().unwrap();
    let second: Value = serde_json::from_str(
        ok(&["backup", "--database-url", &postgres.url, "--output", again, "--backup-key-file", &key]).trim(),
    )
    .unwrap();
    assert_eq!(second["source"], "postgresql");
    let back = sqlite_url(d, "back.db");
    ok(&["restore", again, "--database-url", &back, "--backup-key-file", &key, "--encryption-key", KEY]);
    let server = start(&back).await;
    let back_api = Api::connect(server.url(), &client).await;
    for (name, record) in &expected {
        assert_eq!(&back_api.read_record(name).await, record, "{name}");
    }
    server.shutdown().await;
}

/// `serve --backup-dir`: a backup every interval, the newest `keep` kept, the outcome in
/// `/metrics`; a failure is counted and the next tick tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_scheduled_backups_and_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let source = sqlite_url(d, "source.db");
    let backups = d.join("backups");
    std::fs::create_dir(&backups).unwrap();
    let key_file = d.join("backup.key");
    ok(&["backup", "new-key", "--output", key_file.to_str().unwrap()]);
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    let mut config = tokenvault::settings::ServeConfig::new(source.parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret(KEY.to_owned()));
    config.backup_key = Some(tokenvault::settings::Secret(key_text.trim().to_owned()));
    config.backups = Some(tokenvault::service::backup::BackupSchedule {
        directory: backups.clone(),
        interval: Duration::from_millis(300),
        keep: 2,
    });
    let server = tokenvault::app::start(config).await.unwrap();
    let metrics = || async {
        let text = reqwest::get(format!("{}/metrics", server.url())).await.unwrap().text().await.unwrap();
        let gauge = |name: &str| -> u64 {
            text.lines()
                .find_map(|line| line.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
                .parse()
                .unwrap()
        };
        (
            gauge("tokenvault_backup_last_success_timestamp_seconds"),
            gauge("tokenvault_backup_last_size_bytes"),
            gauge("tokenvault_backup_failures_total"),
        )
    };
    let names = || {
        let mut names: Vec<String> =
            std::fs::read_dir(&backups).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    };
    // Three backups taken (their names differ by the millisecond), two kept.
    let started = tokenvault::domain::Timestamp::now().millis() as u64 / 1000;
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < 3 {
        assert!(Instant::now() < deadline, "three scheduled backups within 60 s; saw {seen:?}");
        seen.extend(names().into_iter().filter(|n| n.ends_with(".tvbackup")));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (last, size, failures) = metrics().await;
    assert!(last >= started, "{last} < {started}");
    assert_eq!(failures, 0);
    let kept: Vec<String> = names().into_iter().filter(|n| n.ends_with(".tvbackup")).collect();
    assert!(kept.len() <= 2, "{kept:?}");
    let newest = backups.join(kept.last().unwrap());
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), size);
    ok(&[
        "backup",
        "verify",
        newest.to_str().unwrap(),
        "--backup-key-file",
        key_file.to_str().unwrap(),
        "--encryption-key",
        KEY,
    ]);

    // The directory gone: failures are counted, the server keeps serving.
    std::fs::remove_dir_all(&backups).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics().await.2 == 0 {
        assert!(Instant::now() < deadline, "a failed backup is counted within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(reqwest::get(format!("{}/health", server.url())).await.unwrap().status(), 200);
    server.shutdown().await;

    // Settings: a directory without a key is refused, by name.
    let (ok_, _, stderr) = run(&["config", "--database-url", &source, "--backup-dir", d.to_str().unwrap()]);
    assert!(!ok_ && stderr.contains("backup_key"), "{stderr}");
}
