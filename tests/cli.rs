//! The command line's own outputs: shell completions and the man page, generated from the clap
//! definitions so they never fall behind the flags; `seed`, `config`, and what a failed `import`
//! leaves behind, on SQLite and PostgreSQL.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

#[path = "support/dataset.rs"]
mod made_up;
#[path = "support/postgres.rs"]
mod pg;

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault")).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_cover_the_subcommands_and_flags() {
    let bash = run(&["completions", "bash"]);
    assert!(bash.starts_with("_tokenvault() {\n"), "{}", &bash[..80.min(bash.len())]);
    for word in ["serve", "clients", "card-tokens", "audit", "--database-url", "--listen", "--dev"] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    assert!(run(&["completions", "zsh"]).starts_with("#compdef tokenvault\n"));
}

#[test]
fn the_man_page_documents_the_command() {
    let man = run(&["man"]);
    assert!(man.contains(".TH tokenvault 1"), "{man}");
    assert!(man.contains("Run the HTTP server"), "{man}");
    // One page per command, flags included.
    let dir = tempfile::tempdir().unwrap();
    run(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    let serve = std::fs::read_to_string(dir.path().join("tokenvault-serve.1")).unwrap();
    assert!(serve.contains("\\-\\-dev\\-client\\-secret"), "{serve}");
    let rotate = std::fs::read_to_string(dir.path().join("tokenvault-keys-rotate.1")).unwrap();
    assert!(rotate.contains("\\-\\-grace\\-seconds"), "{rotate}");
}

/// `TOKENVAULT_CONFIG` / `--config` is read by every command the way `serve` reads it, and the
/// commands that only read never create a database where a path was mistyped; `serve` and the
/// other writers create the file, never a missing directory.
#[test]
fn every_command_reads_the_config_file_and_read_only_commands_never_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("configured.db");
    let file = dir.path().join("tokenvault.toml");
    std::fs::write(&file, format!("database_url = \"sqlite://{}\"\n", db.display())).unwrap();
    let command = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
            .args(args)
            .current_dir(dir.path())
            .env("TOKENVAULT_CONFIG", &file)
            .env_remove("TOKENVAULT_DATABASE_URL")
            .env_remove("TOKENVAULT_ENCRYPTION_KEY")
            .output()
            .unwrap();
        (output.status.code(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
    };
    let (code, stdout, stderr) = command(&["clients", "create", "--account", "T12345678", "--scopes", "admin:hooks"]);
    assert_eq!(code, Some(0), "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert!(db.is_file(), "the client went into the configured database");
    assert!(!dir.path().join("tokenvault.db").exists(), "no database at the default path");
    let (code, listed, _) = command(&["clients", "list"]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(listed.trim()).unwrap()["client_id"], created["client_id"]);

    let missing = dir.path().join("mistyped.db");
    let missing_url = format!("sqlite://{}", missing.display());
    for args in [&["audit"][..], &["export"], &["keys", "list"], &["clients", "list"], &["config"]] {
        let (code, stdout, stderr) = command(&[args, &["--database-url", &missing_url]].concat());
        assert_eq!(code, Some(1), "{args:?}");
        assert_eq!(stdout, "", "{args:?}");
        assert_eq!(
            stderr,
            format!(
                "tokenvault: there is no database at {} (check --database-url; this command does not create one)\n",
                missing.display()
            ),
            "{args:?}"
        );
        assert!(!missing.exists(), "{args:?} created {}", missing.display());
    }

    let nowhere = dir.path().join("no-such-dir");
    let nowhere_url = format!("sqlite://{}/tv.db", nowhere.display());
    for args in [&["migrate"][..], &["clients", "create", "--account", "T12345678", "--scopes", "admin:hooks"]] {
        let (code, _, stderr) = command(&[args, &["--database-url", &nowhere_url]].concat());
        assert_eq!(code, Some(1), "{args:?}");
        assert!(
            stderr.contains(&format!(
                "the directory {} does not exist; create it first (tokenvault creates the database file, not its \
                 directory)",
                nowhere.display()
            )),
            "{args:?}: {stderr}"
        );
        assert!(!nowhere.exists(), "{args:?} created the directory");
    }
}

/// Scopes are Dintero's names, separated by spaces; anything else is refused, named.
#[test]
fn scopes_are_checked_against_the_ones_tokenvault_knows() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/tv.db", dir.path().display());
    let (ok, stdout, stderr) = tokenvault(&[
        "clients",
        "create",
        "--account",
        "T12345678",
        "--scopes",
        "admin:customers,admin:checkout",
        "--database-url",
        &url,
    ]);
    assert!(!ok);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "tokenvault: --scopes: unknown scope \"admin:customers,admin:checkout\" (scopes are separated by spaces; \
         known: admin:customers read:customers write:customers create:customers:/users public:customers admin:accounts admin:checkout read:checkout write:checkout \
         admin:hooks read:hooks write:hooks admin:vault)\n"
    );
    let (ok, _, stderr) =
        tokenvault(&["clients", "create", "--account", "T12345678", "--scopes", " ", "--database-url", &url]);
    assert!(!ok);
    assert_eq!(stderr, "tokenvault: --scopes: at least one scope is needed\n");
}

#[test]
fn seed_loads_fixtures_once_and_refuses_production_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/tv.db", dir.path().display());
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    let seed = |account: &str| {
        Command::new(env!("CARGO_BIN_EXE_tokenvault"))
            .args(["seed", fixtures, "--account", account, "--database-url", &database_url])
            .output()
            .unwrap()
    };

    let first = seed("T12345678");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(String::from_utf8(first.stdout).unwrap(), "{\"added\":9,\"already_present\":0}\n");
    let again = seed("T12345678");
    assert_eq!(String::from_utf8(again.stdout).unwrap(), "{\"added\":0,\"already_present\":9}\n");

    let production = seed("P12345678");
    assert_eq!(production.status.code(), Some(1));
    assert!(production.stdout.is_empty());
    assert_eq!(
        String::from_utf8(production.stderr).unwrap(),
        "tokenvault: fixtures are only for test accounts (T…), not P12345678\n"
    );
}

#[test]
fn config_layers_flags_environment_file_and_defaults_and_names_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenvault.toml");
    std::fs::write(
        &file,
        "pool_size = 3\nlisten = \"127.0.0.1:9999\"\nissuer = \"from-file\"\nrequest_timeout_ms = 2500\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["config", "--config"])
        .arg(&file)
        .args(["--issuer", "from-flag"])
        .env("TOKENVAULT_LISTEN", "127.0.0.1:7000")
        .env("TOKENVAULT_DATABASE_URL", "postgres://tv:hunter2@db/tv")
        .env("TOKENVAULT_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        // Its default depends on the machine's cores.
        .env("TOKENVAULT_CREDENTIAL_CHECKS", "2")
        .env("TOKENVAULT_PUBLIC_URL", "https://vault.example.com/")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "listen = \"127.0.0.1:7000\"  # from: flag or environment\n\
         database_url = \"postgres://tv:****@db/tv\"  # from: flag or environment\n\
         encryption_key = \"****\"  # from: flag or environment\n\
         # pkcs11_module not set  (from: default)\n\
         pkcs11_token = \"tokenvault\"  # from: default\n\
         # pkcs11_pin not set  (from: default)\n\
         pkcs11_key_label = \"tokenvault-master\"  # from: default\n\
         unseal_with_shares = false  # from: default\n\
         token_ttl = 86400  # from: default\n\
         issuer = \"from-flag\"  # from: flag or environment\n\
         public_url = \"https://vault.example.com\"  # from: flag or environment\n\
         pool_size = 3  # from: config file\n\
         acquire_timeout_ms = 5000  # from: default\n\
         dev = false  # from: default\n\
         token_rate_limit = 60  # from: default\n\
         rate_limit = 0  # from: default\n\
         max_in_flight = 1024  # from: default\n\
         request_timeout_ms = 2500  # from: config file\n\
         seal_token_values = false  # from: default\n\
         max_in_flight_per_address = 128  # from: default\n\
         body_read_timeout_ms = 10000  # from: default\n\
         header_read_timeout_ms = 10000  # from: default\n\
         idle_timeout_ms = 60000  # from: default\n\
         max_connections = 4096  # from: default\n\
         max_connections_per_address = 128  # from: default\n\
         token_endpoint_rate = 50  # from: default\n\
         credential_checks = 2  # from: flag or environment\n\
         webhook_allow_private_targets = false  # from: default\n\
         webhook_max_attempts = 5  # from: default\n\
         webhook_delete_after_failures = 10  # from: default\n\
         webhook_retention_hours = 168  # from: default\n\
         dev_client_id = \"tokenvault-dev-T00000001\"  # from: default\n\
         # dev_client_secret not set: a new one at every start  (from: default)\n\
         # backup_dir not set: no scheduled backups  (from: default)\n\
         backup_interval = 3600  # from: default\n\
         backup_keep = 168  # from: default\n\
         # backup_key not set  (from: default)\n\
         audit_checkpoint_interval = 3600  # from: default\n\
         journal = true  # from: default\n\
         journal_max_entries = 10000  # from: default\n\
         journal_max_age_hours = 24  # from: default\n\
         journal_max_per_second = 500  # from: default\n"
    );

    std::fs::write(&file, "max_in_flight = 0\n").unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_tokenvault")).args(["serve", "--config"]).arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "tokenvault: max_in_flight: must be at least 1\n");
}

/// Runs the command: (success, stdout, stderr).
fn tokenvault(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(args)
        .env_remove("TOKENVAULT_ENCRYPTION_KEY")
        .env_remove("TOKENVAULT_DATABASE_URL")
        .output()
        .unwrap();
    (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

/// The rows of every table as `export` counts them (its header).
fn stored(database_url: &str) -> Value {
    let (ok, stdout, stderr) = tokenvault(&["export", "--database-url", database_url, "--output", "-"]);
    assert!(ok, "{stderr}");
    let header: Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    header["tables"].clone()
}

/// The `seq` generators of the customer tables: `sqlite_sequence`, or the identity sequences'
/// `last_value` and `is_called`.
async fn generators(database_url: &str) -> Value {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut statement = conn.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name").unwrap();
        let rows = statement.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).unwrap();
        return rows.map(|row| json!(row.unwrap())).collect();
    }
    let client = pg::connect_plain(database_url).await.unwrap();
    let mut state = Vec::new();
    for table in ["customers", "customer_tokens"] {
        let sequence: String =
            client.query_one("SELECT pg_get_serial_sequence($1, 'seq')", &[&table]).await.unwrap().get(0);
        let row = client.query_one(&format!("SELECT last_value, is_called FROM {sequence}"), &[]).await.unwrap();
        state.push(json!([table, row.get::<_, i64>(0), row.get::<_, bool>(1)]));
    }
    Value::Array(state)
}

/// Moves the customers' `seq` generator to 700, as 700 customers created and deleted would.
async fn advance_generator(database_url: &str) {
    if let Some(path) = database_url.strip_prefix("sqlite://") {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('customers', 700)", []).unwrap();
        return;
    }
    let client = pg::connect_plain(database_url).await.unwrap();
    client.batch_execute("SELECT setval(pg_get_serial_sequence('customers', 'seq'), 700)").await.unwrap();
}

/// A broken line after several full batches, counts that differ from the header, and the latter
/// in an export that lacks a table (as from an older source): each import fails, and leaves the
/// database with no row and its generators as they were (one moved before, to 700, which the
/// import moves to 1200), so the correct file then imports into it with exactly its counts.
async fn a_failed_import_leaves_the_database_empty(database_url: &str, dir: &Path) {
    let (customers, tokens) = (1200, 800);
    let write = |name: &str, export: made_up::Export| {
        let path = dir.join(name);
        std::fs::write(&path, export.text()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let correct = made_up::Export::correct(customers, tokens);
    let expected = correct.counts();
    let correct = write("correct.jsonl", correct);
    let broken = made_up::Export { broken_after_tokens: Some(700), ..made_up::Export::correct(customers, tokens) };
    let broken = write("broken.jsonl", broken);
    let short = made_up::Export { claimed_tokens: tokens + 1, ..made_up::Export::correct(customers, tokens) };
    let short = write("short.jsonl", short);
    // As from an older source without the tokens' table (which references the customers), one
    // customer short.
    let older = made_up::Export::correct(customers, 0).text();
    let (header, rows) = older.split_once('\n').unwrap();
    let mut header: Value = serde_json::from_str(header).unwrap();
    header["tables"].as_object_mut().unwrap().remove("customer_tokens");
    header["tables"]["customers"] = json!(customers + 1);
    let older_path = dir.join("older.jsonl");
    std::fs::write(&older_path, format!("{header}\n{rows}")).unwrap();
    let older = older_path.to_str().unwrap().to_owned();

    // A new database, migrated: it is empty.
    let (ok, _, stderr) = tokenvault(&["migrate", "--database-url", database_url]);
    assert!(ok, "{stderr}");
    let empty = stored(database_url);
    assert!(empty.as_object().unwrap().values().all(|rows| rows == 0), "{empty}");
    advance_generator(database_url).await;
    let before = generators(database_url).await;
    let sqlite = database_url.starts_with("sqlite://");
    let expected_before = match sqlite {
        true => json!([["customers", 700]]),
        false => json!([["customers", 700, true], ["customer_tokens", 1, false]]),
    };
    assert_eq!(before, expected_before);

    let broken_line = 1 + 2 + customers + 700 + 1;
    for (file, failure) in [
        (&broken, format!("line {broken_line}: not a {{\"table\", \"row\"}} object")),
        (&short, format!("counts differ from the export's header: customer_tokens: header {}", tokens + 1)),
        (&older, format!("counts differ from the export's header: customers: header {}", customers + 1)),
    ] {
        let (ok, stdout, stderr) = tokenvault(&["import", file, "--database-url", database_url]);
        assert!(!ok && stdout.is_empty(), "{stdout}");
        assert!(stderr.contains(&format!("import failed: {failure}")), "{stderr}");
        assert!(stderr.contains("the import kept none of the rows it had stored"), "{stderr}");
        assert_eq!(stored(database_url), empty, "after {file}: {stderr}");
        assert_eq!(generators(database_url).await, before, "after {file}");
    }

    let (ok, stdout, stderr) = tokenvault(&["import", &correct, "--database-url", database_url]);
    assert!(ok, "{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary, json!({"rows": 2 + customers + tokens, "tables": expected}));
    let mut filled = empty.clone();
    for (table, rows) in expected.as_object().unwrap() {
        filled[table] = rows.clone();
    }
    assert_eq!(stored(database_url), filled);
    let moved = match sqlite {
        true => json!([["customer_tokens", 800], ["customers", 1200]]),
        false => json!([["customers", 1200, true], ["customer_tokens", 800, true]]),
    };
    assert_eq!(generators(database_url).await, moved);

    // A database holding rows (as a killed import leaves it) is refused, with what to do.
    let (ok, _, stderr) = tokenvault(&["import", &correct, "--database-url", database_url]);
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("import refused: the destination database is not empty (2 rows in clients"), "{stderr}");
    assert!(stderr.contains("empty the database (drop and re-create it, or delete the SQLite file)"), "{stderr}");
    assert_eq!(stored(database_url), filled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_leaves_sqlite_empty_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("tv.db").display());
    a_failed_import_leaves_the_database_empty(&database_url, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_import_leaves_postgres_empty_for_the_next() {
    let Some(admin) = pg::admin_or_skip("the PostgreSQL import test").await else { return };
    let database = pg::TempDatabase::create_on(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    a_failed_import_leaves_the_database_empty(&database.url, dir.path()).await;
}

/// `serve --dev` with a pinned client (`TOKENVAULT_DEV_CLIENT_ID`/`_SECRET`, so that a CI
/// pipeline can hard-code them): the client holds every scope tokenvault knows, and each request
/// is one log line at the default level, without colour codes where stderr is no terminal.
#[tokio::test]
async fn the_dev_client_can_be_pinned_has_every_scope_and_each_request_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let (id, secret) = ("ci-pipeline", "pinned-secret-for-ci-0000");
    let server = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--database-url", &format!("sqlite://{}/tv.db", dir.path().display())])
        .env("TOKENVAULT_DEV_CLIENT_ID", id)
        .env("TOKENVAULT_DEV_CLIENT_SECRET", secret)
        .env_remove("TOKENVAULT_LOG")
        .env_remove("TOKENVAULT_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _stop_on_failure = KillOnDrop(server.id());
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let token = http
        .post(format!("{base}/v1/accounts/T00000001/auth/token"))
        .basic_auth(id, Some(secret))
        .json(&json!({"grant_type": "client_credentials", "audience": format!("{base}/v1/accounts/T00000001")}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 200);
    let token: Value = token.json().await.unwrap();
    let claims = token["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["scope"],
        "admin:customers read:customers write:customers create:customers:/users public:customers admin:accounts admin:checkout read:checkout write:checkout \
         admin:hooks read:hooks write:hooks admin:vault"
    );
    let hooks = http
        .get(format!("{base}/v1/accounts/T00000001/hooks/subscriptions"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(hooks.status(), 200);
    assert_eq!(hooks.text().await.unwrap(), "[]");

    // SIGTERM: a graceful stop, after which stderr is whole.
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let output = server.wait_with_output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains(&format!("client_id:     {id}\n  client_secret: {secret}\n")), "{stdout}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains('\u{1b}'), "colour codes in a log that is no terminal: {stderr}");
    let line = stderr
        .lines()
        .find(|line| line.contains("path=/v1/accounts/T00000001/hooks/subscriptions"))
        .unwrap_or_else(|| panic!("no line for the request: {stderr}"));
    for part in [" INFO ", "method=GET", "request_id=", &format!("client_id={id}"), "answered status=200 latency_ms="] {
        assert!(line.contains(part), "{part:?} missing in {line:?}");
    }
}

/// Stops a spawned server when the test ends, also when it fails before stopping it itself.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-KILL", &self.0.to_string()]).stderr(std::process::Stdio::null()).status();
    }
}
