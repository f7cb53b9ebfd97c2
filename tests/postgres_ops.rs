//! Operations with PostgreSQL, end to end through the real binary: several server processes on
//! one database, connection loss under load, `migrate`, and `export` / `import` between SQLite
//! and PostgreSQL.
//!
//! Each PostgreSQL test creates its own database (`tv_<uuid>`) on the server named by
//! `TOKENVAULT_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`) and drops
//! it afterwards. Without a reachable server they print a notice and pass, unless
//! `TOKENVAULT_REQUIRE_POSTGRES=1`.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/postgres.rs"]
mod pg;

const BIN: &str = env!("CARGO_BIN_EXE_tokenvault");
const ACCOUNT: &str = "T00000001";
/// Base64 of 32 bytes: every process of a test shares it, as a real deployment must.
const KEY: &str = "dG9rZW52YXVsdC10ZXN0LWtleS0zMi1ieXRlcy0tLS0=";
const SCOPES: &str = "admin:customers admin:checkout admin:hooks";

// ---------------------------------------------------------------------------------------------
// A database of its own per test

struct TestDb {
    name: String,
    url: String,
    /// A connection to the maintenance database, for statements about the test database.
    admin: tokio_postgres::Client,
}

impl TestDb {
    async fn create() -> Option<Self> {
        let admin = pg::admin_or_skip("PostgreSQL test").await?;
        let name = pg::fresh_database_name();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        let url = pg::database_url(&name);
        Some(Self { name, url, admin })
    }

    /// Ends every session on the test database (what a PostgreSQL restart does to clients).
    async fn terminate_backends(&self) -> i64 {
        let row = self
            .admin
            .query_one(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .expect("terminate backends");
        row.get(0)
    }

    async fn allow_connections(&self, allow: bool) {
        self.admin
            .batch_execute(&format!("ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}", self.name))
            .await
            .expect("alter database");
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let client = pg::connect_plain(&self.url).await.expect("connect to the test database");
        client.query_one(sql, &[]).await.expect(sql).get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        pg::drop_database(&self.name);
    }
}

// ---------------------------------------------------------------------------------------------
// Server processes and the command line

/// A `tokenvault serve` process, killed when dropped.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    fn spawn(database_url: &str, log_dir: &Path, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let log = log_dir.join(format!("server-{port}.log"));
        let child = Command::new(BIN)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url])
            .args(["--encryption-key", KEY])
            .args(extra)
            .env("TOKENVAULT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start tokenvault serve");
        Self { child, url: format!("http://127.0.0.1:{port}"), log }
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = http.get(format!("{}/health", self.url)).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited with {status}: {}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "server not ready: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(BIN).args(args).env("TOKENVAULT_LOG", "warn").output().expect("run tokenvault");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `tokenvault clients create`: (client_id, client_secret).
fn create_client(database_url: &str) -> (String, String) {
    let (ok, stdout, stderr) =
        run(&["clients", "create", "--account", ACCOUNT, "--scopes", SCOPES, "--database-url", database_url]);
    assert!(ok, "clients create failed: {stderr}");
    let created: Value = serde_json::from_str(stdout.trim()).expect("one JSON object on stdout");
    (created["client_id"].as_str().unwrap().to_owned(), created["client_secret"].as_str().unwrap().to_owned())
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(15)).build().expect("HTTP client")
}

async fn access_token(http: &reqwest::Client, base: &str, client: &(String, String)) -> String {
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(&client.0, Some(&client.1))
        .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .expect("token request");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// One authorised call: (status, JSON body or Null).
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn tokens_url(base: &str, customer: &str) -> String {
    format!("{base}/v1/accounts/{ACCOUNT}/customers/users/{customer}/tokens")
}

/// Every item of a list, following `starting_after` page by page.
async fn list_all(http: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let separator = if url.contains('?') { '&' } else { '?' };
        let mut page_url = format!("{url}{separator}limit=100");
        if let Some(after) = &after {
            page_url.push_str(&format!("&starting_after={after}"));
        }
        let (status, body) = call(http, reqwest::Method::GET, page_url, token, None).await;
        assert_eq!(status, 200, "{body}");
        let page = body.as_array().expect("a list is an array").clone();
        let more = page.len() == 100;
        after = page.last().and_then(|item| item["id"].as_str()).map(str::to_owned);
        items.extend(page);
        if !more {
            return items;
        }
    }
}

fn is_unavailable_body(body: &Value) -> bool {
    body["error"]["code"] == "SERVICE UNAVAILABLE" && body["error"]["message"].is_string()
}

// ---------------------------------------------------------------------------------------------
// Point 3: two instances on one database

/// `n` concurrent calls spread over the servers; returns (status, body) of each, in order.
async fn burst(
    http: &reqwest::Client,
    bases: &[&str],
    n: usize,
    token: &str,
    make: impl Fn(usize, &str) -> (reqwest::Method, String, Option<Value>),
) -> Vec<(u16, Value)> {
    let calls = (0..n).map(|i| {
        let (method, url, body) = make(i, bases[i % bases.len()]);
        let (http, token) = (http.clone(), token.to_owned());
        tokio::spawn(async move { call(&http, method, url, &token, body).await })
    });
    let mut results = Vec::with_capacity(n);
    for handle in calls.collect::<Vec<_>>() {
        results.push(handle.await.expect("call task"));
    }
    results
}

fn count(results: &[(u16, Value)], status: u16) -> usize {
    results.iter().filter(|(s, _)| *s == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_database_stay_consistent() {
    let Some(db) = TestDb::create().await else { return };
    let logs = tempfile::tempdir().unwrap();
    // Both start (and migrate) at the same moment.
    let mut a = Server::spawn(&db.url, logs.path(), &[]);
    let mut b = Server::spawn(&db.url, logs.path(), &[]);
    let http = http_client();
    a.wait_ready(&http).await;
    b.wait_ready(&http).await;
    assert_eq!(db.scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = 1").await, 1);

    // A token issued by A is accepted by B (the signing keys live in the database).
    let client = create_client(&db.url);
    let token = access_token(&http, &a.url, &client).await;
    let customers = format!("{}/v1/accounts/{ACCOUNT}/customers/users", b.url);
    for customer in ["c1", "c2"] {
        let (status, body) =
            call(&http, reqwest::Method::POST, customers.clone(), &token, Some(json!({"customer_id": customer}))).await;
        assert_eq!(status, 200, "{body}");
    }
    let bases = [a.url.as_str(), b.url.as_str()];

    // The same token_id, 2×16 times at once: one 201, the rest 400 (aid_customers_cid_tokens_post
    // documents no 409: a duplicate is a BadRequest naming it).
    let same_id = burst(&http, &bases, 32, &token, |i, base| {
        let body = json!({"token_id": "tid-1", "type": "email", "value": format!("v{i}@example.com")});
        (reqwest::Method::POST, tokens_url(base, "c1"), Some(body))
    })
    .await;
    assert_eq!((count(&same_id, 201), count(&same_id, 400)), (1, 31), "{same_id:?}");
    let first = same_id.iter().find(|(s, _)| *s == 201).unwrap().1.clone();

    // The same type+value for two customers: one 201, the rest 400.
    let same_value = burst(&http, &bases, 32, &token, |i, base| {
        let body = json!({"token_id": format!("tv-{i}"), "type": "phone", "value": "+4799999999"});
        (reqwest::Method::POST, tokens_url(base, if i % 3 == 0 { "c1" } else { "c2" }), Some(body))
    })
    .await;
    assert_eq!((count(&same_value, 201), count(&same_value, 400)), (1, 31), "{same_value:?}");
    for (statuses, code) in [(&same_id, "DUPLICATE_TOKEN_ID"), (&same_value, "DUPLICATE_TOKEN")] {
        for (status, body) in statuses.iter() {
            if *status == 400 {
                assert_eq!(body["error"]["code"], code, "{body}");
            }
        }
    }

    // Concurrent deletes of it: all 200, all with the one deletion.
    let deletes = burst(&http, &bases, 32, &token, |_, base| {
        (reqwest::Method::DELETE, format!("{}/tid-1", tokens_url(base, "c1")), None)
    })
    .await;
    assert_eq!(count(&deletes, 200), 32, "{deletes:?}");
    let deleted_at: HashSet<String> = deletes.iter().map(|(_, body)| body["deleted_at"].to_string()).collect();
    assert_eq!(deleted_at.len(), 1, "{deleted_at:?}");
    assert!(deletes.iter().all(|(_, body)| body["id"] == first["id"]));

    // Re-created concurrently after the delete, mixed with unrelated creates: one 201 for the
    // contested token_id, every distinct one 201.
    let mixed = burst(&http, &bases, 32, &token, |i, base| {
        let body = if i % 2 == 0 {
            json!({"token_id": "tid-1", "type": "email", "value": format!("again{i}@example.com")})
        } else {
            json!({"token_id": format!("own-{i}"), "type": "email", "value": format!("own{i}@example.com")})
        };
        (reqwest::Method::POST, tokens_url(base, "c1"), Some(body))
    })
    .await;
    let contested: Vec<_> = mixed.iter().step_by(2).collect();
    assert_eq!(contested.iter().filter(|(s, _)| *s == 201).count(), 1, "{mixed:?}");
    assert_eq!(contested.iter().filter(|(s, _)| *s == 400).count(), 15, "{mixed:?}");
    assert!(mixed.iter().skip(1).step_by(2).all(|(s, _)| *s == 201), "{mixed:?}");
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM customer_tokens WHERE token_id = 'tid-1' AND deleted_at IS NULL").await,
        1
    );

    // Card tokens: the same id at once, then concurrent deletes.
    let cards = burst(&http, &bases, 32, &token, |i, base| {
        let body =
            json!({"id": "card-1", "card_brand": "visa", "payment_product_type": "visa", "token": format!("tok-{i}")});
        (reqwest::Method::POST, format!("{base}/v1/card-tokens"), Some(body))
    })
    .await;
    assert_eq!((count(&cards, 201), count(&cards, 409)), (1, 31), "{cards:?}");
    let card_deletes = burst(&http, &bases, 32, &token, |_, base| {
        (reqwest::Method::DELETE, format!("{base}/v1/card-tokens/card-1"), Some(json!({"reason": "test"})))
    })
    .await;
    assert_eq!(count(&card_deletes, 200), 32, "{card_deletes:?}");
    assert!(card_deletes.iter().all(|(_, body)| body["status"] == "DELETED"));

    // Every acknowledged write is there, seen alike from both instances.
    let acknowledged: HashSet<String> = same_id
        .iter()
        .chain(&same_value)
        .chain(&mixed)
        .filter(|(s, _)| *s == 201)
        .map(|(_, body)| body["id"].as_str().unwrap().to_owned())
        .collect();
    let mut seen = Vec::new();
    for base in bases {
        let mut ids = HashSet::new();
        for customer in ["c1", "c2"] {
            for item in list_all(&http, &tokens_url(base, customer), &token).await {
                ids.insert(item["id"].as_str().unwrap().to_owned());
            }
        }
        assert!(acknowledged.is_subset(&ids), "missing: {:?}", acknowledged.difference(&ids).collect::<Vec<_>>());
        seen.push(ids);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].len(), acknowledged.len());
}

// ---------------------------------------------------------------------------------------------
// Point 4: connections lost under load

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connections_under_load_give_503_and_the_server_recovers() {
    let Some(db) = TestDb::create().await else { return };
    let logs = tempfile::tempdir().unwrap();
    let acquire_timeout = Duration::from_millis(1000);
    let mut server = Server::spawn(&db.url, logs.path(), &["--pool-size", "4", "--acquire-timeout-ms", "1000"]);
    let http = http_client();
    server.wait_ready(&http).await;
    let client = create_client(&db.url);
    let token = access_token(&http, &server.url, &client).await;
    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/accounts/{ACCOUNT}/customers/users", server.url),
        &token,
        Some(json!({"customer_id": "c1"})),
    )
    .await;
    assert_eq!(status, 200);

    // Four workers write and read until told to stop; the database drops every connection
    // three times meanwhile.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let (http, token, base, stop) = (http.clone(), token.clone(), server.url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let started = Instant::now();
                    let (method, url, body) = if i % 3 == 0 {
                        (reqwest::Method::GET, format!("{}?limit=5", tokens_url(&base, "c1")), None)
                    } else {
                        let token_id = format!("w{worker}-{i}");
                        let body =
                            json!({"token_id": token_id, "type": "email", "value": format!("{token_id}@example.com")});
                        (reqwest::Method::POST, tokens_url(&base, "c1"), Some(body))
                    };
                    let (status, body) = call(&http, method, url, &token, body).await;
                    outcomes.push((status, body, started.elapsed()));
                }
                outcomes
            })
        })
        .collect();
    let mut terminated = 0;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        terminated += db.terminate_backends().await;
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.unwrap());
    }
    assert!(terminated > 0, "no server connection was terminated");

    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (status, body, elapsed) in &outcomes {
        *by_status.entry(*status).or_default() += 1;
        assert!(matches!(status, 200 | 201 | 503), "unexpected {status}: {body}");
        if *status == 503 {
            assert!(is_unavailable_body(body), "503 without Dintero's error body: {body}");
        }
        assert!(*elapsed < acquire_timeout * 4, "a request took {elapsed:?}");
    }
    assert!(by_status.get(&201).copied().unwrap_or(0) > 10, "{by_status:?}");
    eprintln!("under connection loss: {by_status:?}");

    // Every acknowledged create is stored.
    let stored: HashSet<String> = list_all(&http, &tokens_url(&server.url, "c1"), &token)
        .await
        .iter()
        .map(|item| item["token_id"].as_str().unwrap().to_owned())
        .collect();
    for (status, body, _) in &outcomes {
        if *status == 201 {
            assert!(stored.contains(body["token_id"].as_str().unwrap()), "lost an acknowledged write: {body}");
        }
    }

    // The database refuses connections: /health and requests fail fast with 503...
    db.allow_connections(false).await;
    db.terminate_backends().await;
    let health = format!("{}/health", server.url);
    for _ in 0..3 {
        let started = Instant::now();
        let response = http.get(&health).send().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(response.status(), 503);
        assert!(response.headers().contains_key("retry-after"));
        let body: Value = response.json().await.unwrap();
        assert!(is_unavailable_body(&body), "{body}");
        assert!(elapsed < acquire_timeout * 2, "/health took {elapsed:?}");
    }
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        tokens_url(&server.url, "c1"),
        &token,
        Some(json!({"type": "email", "value": "down@example.com"})),
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert!(is_unavailable_body(&body));

    // ...and the server recovers by itself once the database is back.
    db.allow_connections(true).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = http.get(&health).send().await.unwrap().status();
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "/health still {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        tokens_url(&server.url, "c1"),
        &token,
        Some(json!({"type": "email", "value": "back@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

// ---------------------------------------------------------------------------------------------
// Point 2: `tokenvault migrate`

#[tokio::test]
async fn migrate_applies_once_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}", dir.path().join("m.db").display());
    let db = TestDb::create().await;
    let mut urls = vec![sqlite];
    if let Some(db) = &db {
        urls.push(db.url.clone());
    }
    for url in &urls {
        let (ok, stdout, stderr) = run(&["migrate", "--database-url", url]);
        assert!(ok, "{stderr}");
        assert!(stdout.is_empty(), "stdout: {stdout}");
        assert!(stderr.contains("applied migration 1"), "{stderr}");
        let (ok, stdout, stderr) = run(&["migrate", "--database-url", url]);
        assert!(ok, "{stderr}");
        assert!(stdout.is_empty(), "stdout: {stdout}");
        assert!(stderr.contains("nothing to apply") && !stderr.contains("applied migration"), "{stderr}");
    }
    if let Some(db) = &db {
        assert!(db.scalar("SELECT COUNT(*) FROM schema_migrations").await >= 1);
    }
    let (ok, _, stderr) = run(&["migrate", "--database-url", "mysql://nope"]);
    assert!(!ok && stderr.contains("mysql://nope is neither sqlite://PATH nor postgres://"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Point 5: export / import between SQLite and PostgreSQL

/// An in-process server on `database_url` with the shared key. Failed webhook deliveries wait an
/// hour before their retry.
async fn start_in_process(database_url: &str) -> tokenvault::app::RunningServer {
    let mut config = tokenvault::settings::ServeConfig::new(database_url.parse().unwrap());
    config.encryption_key = Some(tokenvault::settings::Secret(KEY.to_owned()));
    config.webhooks.retry_base = Duration::from_secs(3600);
    // `populate` subscribes a URL on 127.0.0.1.
    config.webhooks.allow_private_targets = true;
    tokenvault::app::start(config).await.expect("start server")
}

/// Fills a database with every kind of row through the API.
async fn populate(http: &reqwest::Client, base: &str, token: &str) {
    let post = |url: String, body: Value| {
        let (http, token) = (http.clone(), token.to_owned());
        async move {
            let (status, response) = call(&http, reqwest::Method::POST, url, &token, Some(body)).await;
            assert!(status == 200 || status == 201, "{status} {response}");
            response
        }
    };
    // A webhook subscription (to a port nobody listens on): card-token changes queue deliveries.
    post(
        format!("{base}/v1/accounts/{ACCOUNT}/hooks/subscriptions"),
        json!({"config": {"url": "http://127.0.0.1:9/hook", "secret": "s3cr3t-value"}, "events": ["checkout_token_add", "checkout_token_delete"]}),
    )
    .await;
    let customers = format!("{base}/v1/accounts/{ACCOUNT}/customers/users");
    for i in 0..12 {
        post(customers.clone(), json!({"customer_id": format!("c{i}"), "email": format!("c{i}@example.com"), "attributes": {"z": 1, "a": [i]}})).await;
        for t in 0..3 {
            post(
                tokens_url(base, &format!("c{i}")),
                json!({"token_id": format!("t{t}"), "type": "email", "value": format!("c{i}-t{t}@example.com"), "metadata": {"n": t}}),
            )
            .await;
        }
    }
    let (status, _) = call(http, reqwest::Method::DELETE, format!("{}/t1", tokens_url(base, "c3")), token, None).await;
    assert_eq!(status, 200);
    let (status, _) =
        call(http, reqwest::Method::DELETE, format!("{customers}/c5?delete_tokens=true"), token, None).await;
    assert_eq!(status, 200);
    let events = format!("{base}/v1/accounts/{ACCOUNT}/customers/tokens/events");
    for i in 0..5 {
        for e in 0..2 {
            post(
                events.clone(),
                json!({"token": {"type": "phone", "value": format!("+47{i}")}, "event": {"event": format!("e{e}"), "status": "OPT_OUT", "metadata": {"k": e}}}),
            )
            .await;
        }
    }
    for i in 0..7 {
        post(
            format!("{base}/v1/card-tokens"),
            json!({"id": format!("card-{i}"), "card_brand": "visa", "payment_product_type": "visa", "token": format!("secret-{i}"), "customer_id": "c1"}),
        )
        .await;
    }
    let (status, _) = call(
        http,
        reqwest::Method::DELETE,
        format!("{base}/v1/card-tokens/card-2"),
        token,
        Some(json!({"reason": "gone"})),
    )
    .await;
    assert_eq!(status, 200);
}

/// What a client reads back: every list (deleted items included) and every card token with its
/// decrypted `token`.
async fn read_back(http: &reqwest::Client, base: &str, token: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    let customers =
        list_all(http, &format!("{base}/v1/accounts/{ACCOUNT}/customers/users?include_deleted=true"), token).await;
    // A deleted customer's tokens are not listed (404): its row is compared instead.
    for customer in customers.iter().filter(|c| c["deleted_at"].is_null()) {
        let id = customer["customer_id"].as_str().unwrap();
        seen.push(json!(list_all(http, &tokens_url(base, id), token).await));
    }
    seen.push(json!(customers));
    seen.push(json!(list_all(http, &format!("{base}/v1/accounts/{ACCOUNT}/customers/tokens/events"), token).await));
    let cards = list_all(http, &format!("{base}/v1/card-tokens?include_deleted=true"), token).await;
    for card in &cards {
        let (status, body) = call(
            http,
            reqwest::Method::GET,
            format!("{base}/v1/card-tokens/{}", card["id"].as_str().unwrap()),
            token,
            None,
        )
        .await;
        assert_eq!(status, 200);
        seen.push(body);
    }
    seen.push(json!(cards));
    let (status, hooks) =
        call(http, reqwest::Method::GET, format!("{base}/v1/accounts/{ACCOUNT}/hooks/subscriptions"), token, None)
            .await;
    assert_eq!(status, 200);
    seen.push(hooks);
    seen
}

/// The row lines of an export (the header differs by source and time), with booleans as 0/1
/// (SQLite has no boolean type; PostgreSQL exports `true`/`false`), and without the audit
/// records' chain links (a server chains the records it finds unchained, imported ones too).
fn rows_of(path: &Path) -> Vec<String> {
    fn normalise(value: &mut Value) {
        match value {
            Value::Bool(b) => *value = json!(i64::from(*b)),
            Value::Object(map) => {
                map.remove("chain_pos");
                map.remove("chain_hash");
                map.values_mut().for_each(normalise)
            }
            _ => {}
        }
    }
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let mut row: Value = serde_json::from_str(line).unwrap();
            normalise(&mut row);
            row.to_string()
        })
        .collect()
}

fn header_of(path: &Path) -> Value {
    serde_json::from_str(std::fs::read_to_string(path).unwrap().lines().next().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_import_round_trip_sqlite_postgres_sqlite() {
    let Some(db) = TestDb::create().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let source = format!("sqlite://{}", dir.path().join("source.db").display());
    let back = format!("sqlite://{}", dir.path().join("back.db").display());
    let http = http_client();

    let client = create_client(&source);
    let server = start_in_process(&source).await;
    let token = access_token(&http, &server.url(), &client).await;
    populate(&http, &server.url(), &token).await;
    let expected = read_back(&http, &server.url(), &token).await;
    server.shutdown().await;

    // SQLite → file → PostgreSQL.
    let first = dir.path().join("first.jsonl");
    let (ok, stdout, stderr) = run(&["export", "--database-url", &source, "--output", first.to_str().unwrap()]);
    assert!(ok && stdout.is_empty(), "{stderr}");
    let header = header_of(&first);
    assert_eq!(header["source"], "sqlite");
    assert_eq!(header["tables"]["customers"], 12);
    assert_eq!(header["tables"]["customer_tokens"], 36);
    assert_eq!(header["tables"]["card_tokens"], 7);
    assert_eq!(header["tables"]["hook_subscriptions"], 1);
    assert_eq!(header["tables"]["webhook_outbox"], 9, "the subscription's ping, 7 adds and a delete");
    for table in ["clients", "signing_keys", "token_event_entries", "token_events", "audit_log"] {
        assert!(header["tables"][table].as_u64().unwrap() > 0, "{table}: {header}");
    }
    let (ok, stdout, stderr) =
        run(&["import", first.to_str().unwrap(), "--database-url", &db.url, "--encryption-key", KEY]);
    assert!(ok, "{stderr}");
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["tables"], header["tables"]);
    // The import vacuumed and analyzed what it filled (`last_vacuum` is set by a manual VACUUM
    // only, not by autovacuum): statistics, hint bits and the visibility map are set once, not by
    // the first reads.
    let vacuumed = db
        .scalar(
            "SELECT COUNT(*) FROM pg_stat_user_tables WHERE relname IN ('customers', 'customer_tokens', \
             'card_tokens', 'audit_log') AND last_vacuum IS NOT NULL AND last_analyze IS NOT NULL",
        )
        .await;
    assert_eq!(vacuumed, 4);
    // Row for row what was exported, before any server touches it.
    let fresh = dir.path().join("fresh.jsonl");
    let (ok, _, stderr) = run(&["export", "--database-url", &db.url, "--output", fresh.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(rows_of(&fresh), rows_of(&first));

    // The same token, from the same keys, reads the same answers from PostgreSQL.
    let server = start_in_process(&db.url).await;
    assert_eq!(read_back(&http, &server.url(), &token).await, expected);
    // New rows continue after the imported ones.
    let (status, body) = call(
        &http,
        reqwest::Method::POST,
        tokens_url(&server.url(), "c0"),
        &token,
        Some(json!({"token_id": "new", "type": "email", "value": "new@example.com"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let tokens = list_all(&http, &tokens_url(&server.url(), "c0"), &token).await;
    assert_eq!(tokens.last().unwrap()["token_id"], "new");
    server.shutdown().await;

    // A non-empty destination is refused, and so is a wrong key.
    let (ok, _, stderr) = run(&["import", first.to_str().unwrap(), "--database-url", &db.url]);
    assert!(!ok && stderr.contains("not empty"), "{stderr}");
    let other_key = "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=";
    let wrong = format!("sqlite://{}", dir.path().join("wrong.db").display());
    let (ok, _, stderr) =
        run(&["import", first.to_str().unwrap(), "--database-url", &wrong, "--encryption-key", other_key]);
    assert!(!ok && stderr.contains("cannot open the exported card tokens"), "{stderr}");
    // What was stored before the key check was removed again: the same file with the right key
    // goes into the same database.
    let (ok, _, stderr) = run(&["import", first.to_str().unwrap(), "--database-url", &wrong, "--encryption-key", KEY]);
    assert!(ok, "{stderr}");

    // PostgreSQL → file → SQLite: the same rows as the first export, and the same answers.
    let second = dir.path().join("second.jsonl");
    let (ok, _, stderr) = run(&["export", "--database-url", &db.url, "-o", second.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(header_of(&second)["source"], "postgresql");
    let (ok, _, stderr) = run(&["import", second.to_str().unwrap(), "--database-url", &back, "--encryption-key", KEY]);
    assert!(ok, "{stderr}");
    let third = dir.path().join("third.jsonl");
    let (ok, _, stderr) = run(&["export", "--database-url", &back, "-o", third.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert_eq!(rows_of(&second), rows_of(&third));
    // Everything but the outbox (whose deliveries the PostgreSQL server worked on) is unchanged.
    let outbox = "{\"table\":\"webhook_outbox\"";
    let first_rows: Vec<String> = rows_of(&first).into_iter().filter(|row| !row.starts_with(outbox)).collect();
    let third_rows = rows_of(&third);
    assert!(third_rows.len() > first_rows.len(), "the row created on PostgreSQL travelled too");
    let third_set: HashSet<&String> = third_rows.iter().collect();
    assert!(first_rows.iter().all(|row| third_set.contains(row)), "every original row came back unchanged");

    let server = start_in_process(&back).await;
    let mut again = read_back(&http, &server.url(), &token).await;
    server.shutdown().await;
    // c0's token list has the token added on PostgreSQL; everything else is as it was.
    let grown = again.iter().position(|v| v.as_array().is_some_and(|l| l.iter().any(|t| t["token_id"] == "new")));
    let grown = grown.expect("the token added on PostgreSQL");
    again[grown].as_array_mut().unwrap().pop();
    assert_eq!(again, expected);
}

// ---------------------------------------------------------------------------------------------
// Paging while other transactions insert into the same list

/// Four writers insert 4×`per_writer` items while a reader follows the list's tail page by page
/// (`starting_after` = the last item it saw). The reader must end with every item, in order: a
/// row whose `seq` is below the cursor must never become visible after the cursor passed it.
async fn follow_while_writing<W, WF, L, LF>(per_writer: usize, write: W, list: L)
where
    W: Fn(usize, usize) -> WF + Clone + Send + Sync + 'static,
    WF: std::future::Future<Output = ()> + Send,
    L: Fn(Option<String>) -> LF,
    LF: std::future::Future<Output = Vec<String>>,
{
    let done = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let write = write.clone();
            tokio::spawn(async move {
                for i in 0..per_writer {
                    write(w, i).await;
                }
            })
        })
        .collect();
    let flag = done.clone();
    tokio::spawn(async move {
        for writer in writers {
            writer.await.expect("writer");
        }
        flag.store(true, Ordering::SeqCst);
    });
    let mut followed: Vec<String> = Vec::new();
    loop {
        let finished = done.load(Ordering::SeqCst);
        let page = list(followed.last().cloned()).await;
        let exhausted = page.is_empty();
        followed.extend(page);
        if finished && exhausted {
            break;
        }
    }
    let mut all: Vec<String> = Vec::new();
    loop {
        let page = list(all.last().cloned()).await;
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    assert_eq!(all.len(), 4 * per_writer + 1);
    let missed: Vec<&String> = all.iter().filter(|id| !followed.contains(id)).collect();
    assert!(missed.is_empty(), "the tail follower skipped {} of {}: {missed:?}", missed.len(), all.len());
    assert_eq!(followed, all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_never_skips_rows_committed_out_of_order() {
    use tokenvault::domain::card_token::{CardToken, CardTokenFilter};
    use tokenvault::domain::customer::{CustomerFilter, NewCustomer};
    use tokenvault::domain::customer_token::{CustomerTokenFilter, NewCustomerToken};
    use tokenvault::domain::token_event::{TokenEvent, TokenTypeValue};
    use tokenvault::domain::{AccountId, PageRequest, Timestamp};
    use tokenvault::store::{Store, StoreOptions};

    let Some(db) = TestDb::create().await else { return };
    let options = StoreOptions { pool_size: 8, acquire_timeout: Duration::from_secs(5) };
    let store: Arc<dyn Store> = tokenvault::store::open(&db.url.parse().unwrap(), &options).await.expect("store");
    let account = AccountId::parse("aid", ACCOUNT).unwrap();
    let object = |value: Value| value.as_object().unwrap().clone();
    let page = |after: Option<String>| PageRequest { limit: 3, starting_after: after, include_total: false };
    let customer = NewCustomer::from_body(object(json!({"customer_id": "owner"})), "t", Timestamp::now()).unwrap();
    store.create_customer(&account, &customer).await.unwrap();
    let first = CardToken::from_create_body(
        &object(json!({"id": "first", "card_brand": "visa", "payment_product_type": "visa"})),
        &account,
        "t",
        Timestamp::now(),
    )
    .unwrap();
    store.create_card_token(&first, None).await.unwrap();
    let first = NewCustomerToken::from_body(&object(json!({"type": "x", "value": "first"})), "t", Timestamp::now());
    store.create_customer_token(&account, "owner", &first.unwrap(), false).await.unwrap();

    // Card tokens of an account.
    let (s, a) = (store.clone(), account.clone());
    let write = move |w: usize, i: usize| {
        let (store, account) = (s.clone(), a.clone());
        async move {
            let body = object(json!({"id": format!("w{w}-{i}"), "card_brand": "visa", "payment_product_type": "visa"}));
            let card = CardToken::from_create_body(&body, &account, "t", Timestamp::now()).unwrap();
            store.create_card_token(&card, None).await.expect("create card token");
        }
    };
    let list = |after: Option<String>| {
        let (store, account) = (store.clone(), account.clone());
        async move {
            let found = store.list_card_tokens(&account, &CardTokenFilter::default(), &page(after)).await.unwrap();
            found.items.into_iter().map(|record| record.card.id).collect::<Vec<_>>()
        }
    };
    follow_while_writing(40, write, list).await;

    // A customer's tokens.
    let (s, a) = (store.clone(), account.clone());
    let write = move |w: usize, i: usize| {
        let (store, account) = (s.clone(), a.clone());
        async move {
            let body = object(json!({"token_id": format!("w{w}-{i}"), "type": "x", "value": format!("w{w}-{i}")}));
            let token = NewCustomerToken::from_body(&body, "t", Timestamp::now()).unwrap();
            store.create_customer_token(&account, "owner", &token, false).await.expect("create token");
        }
    };
    let list = |after: Option<String>| {
        let (store, account) = (store.clone(), account.clone());
        async move {
            let filter = CustomerTokenFilter { token_type: None, include_deleted: true };
            let found = store.list_customer_tokens(&account, "owner", &filter, &page(after)).await.unwrap();
            found.items.into_iter().map(|token| token.id.to_string()).collect::<Vec<_>>()
        }
    };
    follow_while_writing(40, write, list).await;

    // Customers of an account.
    let (s, a) = (store.clone(), account.clone());
    let write = move |w: usize, i: usize| {
        let (store, account) = (s.clone(), a.clone());
        async move {
            let body = object(json!({"customer_id": format!("w{w}-{i}")}));
            let customer = NewCustomer::from_body(body, "t", Timestamp::now()).unwrap();
            store.create_customer(&account, &customer).await.expect("create customer");
        }
    };
    let list = |after: Option<String>| {
        let (store, account) = (store.clone(), account.clone());
        async move {
            let found = store.list_customers(&account, &CustomerFilter::default(), &page(after)).await.unwrap();
            found.items.into_iter().map(|customer| customer.id.to_string()).collect::<Vec<_>>()
        }
    };
    follow_while_writing(40, write, list).await;

    // Token-event entries of an account.
    let event = |name: &str| TokenEvent {
        event: name.to_owned(),
        status: None,
        metadata: None,
        created_at: Timestamp::now(),
        expires_at: None,
    };
    let first = TokenTypeValue { token_type: "x".into(), value: "first".into() };
    store.token_detail(&account, &first, Some(&event("e")), "t", Timestamp::now()).await.unwrap();
    let (s, a) = (store.clone(), account.clone());
    let write = move |w: usize, i: usize| {
        let (store, account) = (s.clone(), a.clone());
        async move {
            let token = TokenTypeValue { token_type: "x".into(), value: format!("w{w}-{i}") };
            let recorded = TokenEvent {
                event: "e".into(),
                status: None,
                metadata: None,
                created_at: Timestamp::now(),
                expires_at: None,
            };
            store.token_detail(&account, &token, Some(&recorded), "t", Timestamp::now()).await.expect("record event");
        }
    };
    let list = |after: Option<String>| {
        let (store, account) = (store.clone(), account.clone());
        async move {
            let found = store.list_token_events(&account, None, &page(after)).await.unwrap();
            found.items.into_iter().map(|entry| entry.id.to_string()).collect::<Vec<_>>()
        }
    };
    follow_while_writing(40, write, list).await;
}

/// The request journal lives in the database: a request served by one process is listed by the
/// other, and `tokenvault journal` (not on a terminal: JSON Lines) prints it too, with its
/// secrets redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_journal_is_shared_by_server_processes() {
    let Some(db) = TestDb::create().await else { return };
    let logs = tempfile::tempdir().unwrap();
    let mut a = Server::spawn(&db.url, logs.path(), &[]);
    let mut b = Server::spawn(&db.url, logs.path(), &[]);
    let http = http_client();
    a.wait_ready(&http).await;
    b.wait_ready(&http).await;
    let client = create_client(&db.url);
    let token = access_token(&http, &a.url, &client).await;

    let (status, _) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/card-tokens", a.url),
        &token,
        Some(
            json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard", "token": "psp-secret-on-a"}),
        ),
    )
    .await;
    assert_eq!(status, 201);

    // Listed through the other process (written off the request's path: poll briefly).
    let journal = format!("{}/v1/accounts/{ACCOUNT}/sandbox/requests?method=POST&path_prefix=/v1/card-tokens", b.url);
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let (status, body) = call(&http, reqwest::Method::GET, journal.clone(), &token, None).await;
        assert_eq!(status, 200, "{body}");
        if body.as_array().is_some_and(|items| !items.is_empty()) || Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let entries = entries.as_array().expect("an array");
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry["status"], 201);
    assert_eq!(entry["path"], "/v1/card-tokens");
    assert_eq!(entry["client_id"], client.0.as_str());
    assert_eq!(entry["request"]["body"]["token"], "[redacted]");
    assert_eq!(entry["request"]["headers"]["authorization"], "[redacted]");
    assert_eq!(entry["response"]["body"]["card_brand"], "visa");

    // The command line reads the same journal: the token request and the card token, oldest first.
    let (ok, stdout, stderr) = run(&["journal", "--account", ACCOUNT, "--database-url", &db.url]);
    assert!(ok, "{stderr}");
    let lines: Vec<Value> = stdout.lines().map(|line| serde_json::from_str(line).expect("JSON Lines")).collect();
    let summary: Vec<(String, String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["method"].as_str().unwrap().to_owned(),
                l["path"].as_str().unwrap().to_owned(),
                l["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("POST".to_owned(), format!("/v1/accounts/{ACCOUNT}/auth/token"), 200),
            ("POST".to_owned(), "/v1/card-tokens".to_owned(), 201),
        ]
    );
    for secret in [client.1.as_str(), token.as_str(), "psp-secret-on-a"] {
        assert!(!stdout.contains(secret), "a secret in the journal: {stdout}");
    }
}
