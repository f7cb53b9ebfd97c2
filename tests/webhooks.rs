//! Card-token webhooks end to end: subscriptions over HTTP, signed deliveries to a receiver on
//! 127.0.0.1, a retry after the receiver fails, and a delivery after a server restart. Every
//! test runs on SQLite and on PostgreSQL (skipped with a notice when PostgreSQL is unreachable,
//! unless `TOKENVAULT_REQUIRE_POSTGRES=1`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use tempfile::TempDir;
use tokenvault::app::RunningServer;
use tokenvault::domain::AccountId;
use tokenvault::service::webhook_worker::WebhookSettings;
use tokenvault::settings::ServeConfig;
use uuid::Uuid;

#[path = "support/postgres.rs"]
mod pg;

const ACCOUNT: &str = "T12345678";
const ALL_EVENTS: [&str; 3] = ["checkout_token_add", "checkout_token_update", "checkout_token_delete"];
/// Every wait for a delivery gives up after this.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long "nothing more arrives" is watched for.
const QUIET: Duration = Duration::from_millis(400);
const RETRY_BASE: Duration = Duration::from_millis(100);

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::TestDb::create(super::Backend::Sqlite).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(db) = super::TestDb::create(super::Backend::Postgres).await {
                        super::$name(db).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    subscriptions_and_signed_deliveries,
    failed_deliveries_are_retried_with_backoff,
    delivery_survives_a_restart,
    finished_deliveries_are_pruned_after_the_retention,
    internal_targets_are_refused_at_subscription,
    deliveries_never_reach_internal_addresses
);

// ---- databases and servers ------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database: a SQLite file in a temp dir, or a `tv_<uuid>` PostgreSQL database that is
/// dropped afterwards.
struct TestDb {
    config: ServeConfig,
    _dir: Option<TempDir>,
    _pg_database: Option<pg::TempDatabase>,
}

impl TestDb {
    async fn create(backend: Backend) -> Option<Self> {
        let (url, dir, pg_database, key) = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                (format!("sqlite://{}/tokenvault.db", dir.path().display()), Some(dir), None, None)
            }
            Backend::Postgres => {
                if !pg::reachable_or_skip() {
                    return None;
                }
                let database = pg::TempDatabase::create().await;
                (database.url.clone(), None, Some(database), Some(STANDARD.encode([0x5au8; 32])))
            }
        };
        let mut config = ServeConfig::new(url.parse().unwrap());
        config.encryption_key = key.map(tokenvault::settings::Secret);
        // The receivers of these tests listen on 127.0.0.1: allowed explicitly, as for local
        // development (the tests of the refusal turn it off).
        config.webhooks = WebhookSettings {
            retry_base: RETRY_BASE,
            poll_interval: Duration::from_millis(50),
            allow_private_targets: true,
            ..Default::default()
        };
        Some(Self { config, _dir: dir, _pg_database: pg_database })
    }

    async fn start(&self) -> RunningServer {
        tokenvault::app::start(self.config.clone()).await.expect("the server starts")
    }

    /// Each outbox row's URL path, attempts, last error and whether it was delivered, read
    /// straight from the database, ordered by the subscription's URL.
    async fn outbox_attempts(&self) -> Vec<(String, i64, Option<String>, bool)> {
        const SELECT: &str = "SELECT s.url, o.attempts, o.last_error, o.delivered_at IS NOT NULL \
                              FROM webhook_outbox o JOIN hook_subscriptions s ON s.id = o.subscription_id ORDER BY s.url";
        match &self._dir {
            Some(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("tokenvault.db")).unwrap();
                let mut statement = conn.prepare(SELECT).unwrap();
                let rows = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
                    .unwrap()
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap();
                rows
            }
            None => {
                let client = pg::connect_plain(self.config.database_url.expose()).await.unwrap();
                let rows = client.query(SELECT, &[]).await.unwrap();
                rows.iter().map(|row| (row.get(0), i64::from(row.get::<_, i32>(1)), row.get(2), row.get(3))).collect()
            }
        }
    }

    /// Rows in the webhook outbox, pending or finished, read straight from the database.
    async fn outbox_rows(&self) -> i64 {
        const COUNT: &str = "SELECT count(*) FROM webhook_outbox";
        match &self._dir {
            Some(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("tokenvault.db")).unwrap();
                conn.query_row(COUNT, [], |row| row.get(0)).unwrap()
            }
            None => {
                let client = pg::connect_plain(self.config.database_url.expose()).await.unwrap();
                client.query_one(COUNT, &[]).await.unwrap().get(0)
            }
        }
    }
}

// ---- an API client --------------------------------------------------------------------------

struct Api {
    base: String,
    http: reqwest::Client,
    client_id: String,
    access_token: String,
}

impl Api {
    /// A new client of `ACCOUNT` with `scopes`, logged in with client credentials.
    async fn login(server: &RunningServer, scopes: &[&str]) -> Self {
        Self::login_to(server, ACCOUNT, scopes).await
    }

    /// A new client of `account` with `scopes`, logged in with client credentials.
    async fn login_to(server: &RunningServer, account: &str, scopes: &[&str]) -> Self {
        let account = AccountId::parse("aid", account).unwrap();
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let credentials =
            tokenvault::auth::clients::create_client(server.store.as_ref(), &account, scopes).await.unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let response = http
            .post(format!("{}/v1/accounts/{account}/auth/token", server.url()))
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .json(&json!({
                "grant_type": "client_credentials",
                "audience": format!("https://api.dintero.com/v1/accounts/{account}")
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        Self {
            base: server.url(),
            http,
            client_id: credentials.client_id,
            access_token: body["access_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.access_token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        (status, body)
    }

    async fn subscribe(&self, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, &format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"), Some(body)).await
    }

    async fn create_card(&self, id: &str) -> Value {
        let body = json!({
            "id": id, "token": format!("psp-secret-{id}"), "card_brand": "visa", "payment_product_type": "bambora.creditcard",
            "masked_pan": "476173******0416", "pan_expiry_date": "12/2030", "customer_id": "cust-1"
        });
        let (status, card) = self.call(Method::POST, "/v1/card-tokens", Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{card}");
        assert_eq!(card["token"], format!("psp-secret-{id}"));
        card
    }
}

fn subscriptions_path() -> String {
    format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions")
}

/// A subscription as listed: as created, without the secret.
fn without_secret(created: &Value) -> Value {
    let mut shown = created.clone();
    shown["config"].as_object_mut().unwrap().remove("secret");
    shown
}

/// A card token as a webhook carries it: as the API returned it, without the secret `token`.
fn without_token(card: &Value) -> Value {
    let mut shown = card.clone();
    shown.as_object_mut().unwrap().remove("token");
    shown
}

fn error_fields(body: &Value) -> Vec<&str> {
    body["error"]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect()
}

// ---- a webhook receiver ---------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Records every request; answers 500 to the first `failures` of them, then 200.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<Received>>>,
    failures: Arc<AtomicUsize>,
}

async fn record(
    State(receiver): State<Receiver>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let received = Received { method, path: uri.path().to_owned(), headers, body, at: Instant::now() };
    receiver.requests.lock().unwrap().push(received);
    let fail = receiver.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

struct RunningReceiver {
    url: String,
    receiver: Receiver,
    task: tokio::task::JoinHandle<()>,
}

impl RunningReceiver {
    async fn start(failures: usize) -> Self {
        Self::start_on(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(), failures)
    }

    fn start_on(listener: tokio::net::TcpListener, failures: usize) -> Self {
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver { failures: Arc::new(AtomicUsize::new(failures)), ..Receiver::default() };
        let router = axum::Router::new().fallback(record).with_state(receiver.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Self { url, receiver, task }
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.receiver.requests.lock().unwrap().iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Waits until `count` requests to `path` arrived; fails the test after [`PATIENCE`].
    async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.received(path);
            if received.len() >= count {
                return received;
            }
            assert!(Instant::now() < deadline, "{count} requests to {path} expected, got {received:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits a moment and checks that exactly `count` requests reached `path`.
    async fn assert_exactly(&self, path: &str, count: usize) -> Vec<Received> {
        tokio::time::sleep(QUIET).await;
        let received = self.received(path);
        assert_eq!(received.len(), count, "{received:?}");
        received
    }
}

impl Drop for RunningReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hmac_sha1_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks one delivery: method, headers, signature and the exact body; returns its
/// `event-delivery` id.
fn assert_delivery(received: &Received, event: &str, secret: &str, card: &Value) -> Uuid {
    assert_eq!(received.method, Method::POST);
    assert_eq!(received.header("content-type"), "application/json");
    assert_eq!(received.header("event"), event);
    let delivery = Uuid::parse_str(received.header("event-delivery")).unwrap();
    assert_eq!(delivery.get_version_num(), 4);
    assert_eq!(received.header("event-signature"), hmac_sha1_hex(secret, &received.body));
    assert!(received.header("user-agent").starts_with("Dintero-Hook/"), "{:?}", received.headers);
    let body = received.json();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["account_id", "event_delivery", "event", "token"]);
    assert_eq!(
        body,
        json!({"account_id": ACCOUNT, "event_delivery": delivery.to_string(), "event": event, "token": without_token(card)})
    );
    assert!(!String::from_utf8_lossy(&received.body).contains("psp-secret"));
    delivery
}

// ---- tests ----------------------------------------------------------------------------------

async fn subscriptions_and_signed_deliveries(db: TestDb) {
    let server = db.start().await;
    let receiver = RunningReceiver::start(0).await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let writer = Api::login(&server, &["write:hooks"]).await;
    let reader = Api::login(&server, &["read:hooks"]).await;
    let checkout_only = Api::login(&server, &["admin:checkout"]).await;
    let valid = json!({"config": {"url": format!("{}/hook", receiver.url)}, "events": ["checkout_token_add"]});

    // Scopes: admin:hooks or write:hooks to subscribe; admin:hooks or read:hooks to look.
    let (status, body) = checkout_only.subscribe(valid.clone()).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
    assert_eq!(reader.subscribe(valid.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(checkout_only.call(Method::GET, &subscriptions_path(), None).await.0, StatusCode::FORBIDDEN);
    assert_eq!(writer.call(Method::GET, &subscriptions_path(), None).await.0, StatusCode::FORBIDDEN);

    // Bad bodies are refused field by field.
    let bad = [
        (json!({}), vec!["config", "events"]),
        (
            json!({"config": {"url": "ftp://example.com/x", "content_type": "text/xml", "secret": "short"}, "events": []}),
            vec!["config.url", "config.content_type", "config.secret", "events"],
        ),
        (json!({"config": "http://127.0.0.1/x", "events": "checkout_token_add"}), vec!["config", "events"]),
        (
            json!({"config": {"url": "http://127.0.0.1/x"}, "events": ["checkout_token_add", "checkout_transaction"]}),
            vec!["events[1]"],
        ),
    ];
    for (body, fields) in bad {
        let (status, error) = admin.subscribe(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error["error"]["code"], "BAD REQUEST");
        assert_eq!(error_fields(&error), fields, "{body}");
    }
    let (status, _) = admin.subscribe(json!(["not", "an", "object"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, listed) = reader.call(Method::GET, &subscriptions_path(), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])));

    // Subscribe with a secret of our own: it is shown once, on creation.
    let secret = "s3cr3t-for-the-tests";
    let (status, all) = admin
        .subscribe(json!({
            "config": {"url": format!("{}/hook", receiver.url), "content_type": "application/json", "secret": secret},
            "events": ALL_EVENTS
        }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{all}");
    let id = Uuid::parse_str(all["id"].as_str().unwrap()).unwrap();
    let created_at = all["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'), "{created_at}");
    assert_eq!(
        all,
        json!({
            "id": id.to_string(), "account_id": ACCOUNT, "events": ALL_EVENTS,
            "config": {"url": format!("{}/hook", receiver.url), "content_type": "application/json", "secret": secret},
            "active": true, "created_at": created_at, "created_by": admin.client_id, "updated_at": created_at
        })
    );
    // Without one, a secret is generated.
    let (status, deletes) = writer
        .subscribe(json!({"config": {"url": format!("{}/other", receiver.url)}, "events": ["checkout_token_delete"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{deletes}");
    let generated = deletes["config"]["secret"].as_str().unwrap().to_owned();
    assert_eq!(generated.len(), 32);
    assert!(generated.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{generated}");
    assert_eq!(deletes["created_by"], writer.client_id.as_str());
    assert_eq!(deletes["events"], json!(["checkout_token_delete"]));

    let (status, listed) = reader.call(Method::GET, &subscriptions_path(), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([without_secret(&all), without_secret(&deletes)])));
    let (status, got) = admin.call(Method::GET, &format!("{}/{id}", subscriptions_path()), None).await;
    assert_eq!((status, got), (StatusCode::OK, without_secret(&all)));
    for missing in [Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let (status, error) = reader.call(Method::GET, &format!("{}/{missing}", subscriptions_path()), None).await;
        assert_eq!(
            (status, error["error"]["message"].as_str()),
            (StatusCode::NOT_FOUND, Some("subscription not found"))
        );
    }

    // A new card token: exactly one signed POST to the subscription that wants it.
    let card = admin.create_card("ct-1").await;
    let received = receiver.wait_for("/hook", 1).await;
    let added = assert_delivery(&received[0], "checkout_token_add", secret, &card);

    // A status change, and a repeat of it that changes nothing.
    let status_path = "/v1/card-tokens/ct-1/status";
    let (status, suspended) = admin.call(Method::PUT, status_path, Some(json!({"status": "SUSPENDED"}))).await;
    assert_eq!((status, suspended["status"].as_str()), (StatusCode::OK, Some("SUSPENDED")));
    let received = receiver.wait_for("/hook", 2).await;
    let updated = assert_delivery(&received[1], "checkout_token_update", secret, &suspended);
    let (status, _) = admin.call(Method::PUT, status_path, Some(json!({"status": "SUSPENDED"}))).await;
    assert_eq!(status, StatusCode::OK);

    // A delete reaches both subscriptions; deleting again announces nothing.
    let (status, deleted) = admin.call(Method::DELETE, "/v1/card-tokens/ct-1", None).await;
    assert_eq!((status, deleted["status"].as_str()), (StatusCode::OK, Some("DELETED")));
    let received = receiver.wait_for("/hook", 3).await;
    let deleted_all = assert_delivery(&received[2], "checkout_token_delete", secret, &deleted);
    let other = receiver.wait_for("/other", 1).await;
    let deleted_other = assert_delivery(&other[0], "checkout_token_delete", &generated, &deleted);
    assert_eq!(admin.call(Method::DELETE, "/v1/card-tokens/ct-1", None).await.0, StatusCode::OK);

    let ids = [added, updated, deleted_all, deleted_other];
    assert!(ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id)), "delivery ids repeat: {ids:?}");
    receiver.assert_exactly("/hook", 3).await;
    receiver.assert_exactly("/other", 1).await;
    assert_eq!(receiver.receiver.requests.lock().unwrap().len(), 4);

    // Unsubscribing: the subscription is returned, and it receives nothing more.
    let path = format!("{}/{}", subscriptions_path(), deletes["id"].as_str().unwrap());
    assert_eq!(reader.call(Method::DELETE, &path, None).await.0, StatusCode::FORBIDDEN);
    let (status, gone) = writer.call(Method::DELETE, &path, None).await;
    assert_eq!((status, gone), (StatusCode::OK, without_secret(&deletes)));
    assert_eq!(writer.call(Method::DELETE, &path, None).await.0, StatusCode::NOT_FOUND);
    let (status, listed) = admin.call(Method::GET, &subscriptions_path(), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([without_secret(&all)])));
    admin.create_card("ct-2").await;
    let (status, _) = admin.call(Method::DELETE, "/v1/card-tokens/ct-2", None).await;
    assert_eq!(status, StatusCode::OK);
    receiver.wait_for("/hook", 5).await;
    receiver.assert_exactly("/other", 1).await;
    server.shutdown().await;
}

async fn failed_deliveries_are_retried_with_backoff(db: TestDb) {
    let server = db.start().await;
    // The receiver fails twice before it accepts.
    let receiver = RunningReceiver::start(2).await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let secret = "retry-secret-value";
    let (status, _) = admin
        .subscribe(json!({"config": {"url": format!("{}/hook", receiver.url), "secret": secret}, "events": ["checkout_token_add"]}))
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let card = admin.create_card("ct-1").await;
    let received = receiver.wait_for("/hook", 3).await;
    // The same delivery each time, byte for byte, signed the same way.
    let delivery = assert_delivery(&received[0], "checkout_token_add", secret, &card);
    for again in &received[1..] {
        assert_eq!(assert_delivery(again, "checkout_token_add", secret, &card), delivery);
        assert_eq!(again.body, received[0].body);
        assert_eq!(again.header("event-signature"), received[0].header("event-signature"));
    }
    // Back-off: the base delay, then twice that (less a little for whole-millisecond times).
    let slack = Duration::from_millis(2);
    let first_gap = received[1].at - received[0].at;
    let second_gap = received[2].at - received[1].at;
    assert!(first_gap >= RETRY_BASE - slack, "{first_gap:?}");
    assert!(second_gap >= RETRY_BASE * 2 - slack, "{second_gap:?}");
    // Accepted on the third attempt: nothing more is sent.
    receiver.assert_exactly("/hook", 3).await;
    server.shutdown().await;
}

async fn delivery_survives_a_restart(db: TestDb) {
    // The subscription's URL is fixed when it is created: reserve a port, then close it, so that
    // deliveries fail until the receiver comes up on it after the restart.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = reserved.local_addr().unwrap();
    drop(reserved);

    let server = db.start().await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let secret = "restart-secret-value";
    let (status, _) = admin
        .subscribe(json!({"config": {"url": format!("http://{addr}/hook"), "secret": secret}, "events": ALL_EVENTS}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let card = admin.create_card("ct-1").await;
    // Let the first attempts fail against the closed port, then stop the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.shutdown().await;

    let server = db.start().await;
    let listener = tokio::net::TcpListener::bind(addr).await.expect("the reserved port is free again");
    let receiver = RunningReceiver::start_on(listener, 0);
    let received = receiver.wait_for("/hook", 1).await;
    assert_delivery(&received[0], "checkout_token_add", secret, &card);
    receiver.assert_exactly("/hook", 1).await;

    // The restarted server announces new changes too.
    let admin = Api::login(&server, &["admin:checkout"]).await;
    let (status, deleted) = admin.call(Method::DELETE, "/v1/card-tokens/ct-1", None).await;
    assert_eq!(status, StatusCode::OK);
    let received = receiver.wait_for("/hook", 2).await;
    assert_delivery(&received[1], "checkout_token_delete", secret, &deleted);
    server.shutdown().await;
}

/// Finished deliveries leave the outbox once older than the retention (the worker prunes at
/// start and hourly); pending ones stay, whatever their age.
async fn finished_deliveries_are_pruned_after_the_retention(mut db: TestDb) {
    db.config.webhooks.retention = Duration::ZERO;
    let receiver = RunningReceiver::start(0).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = db.start().await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    for url in [format!("{}/hook", receiver.url), format!("http://{closed}/never")] {
        let (status, _) = admin.subscribe(json!({"config": {"url": url}, "events": ["checkout_token_add"]})).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    admin.create_card("ct-1").await;
    receiver.wait_for("/hook", 1).await;
    // One delivered, one still retrying against the closed port; the worker pruned only at start.
    assert_eq!(db.outbox_rows().await, 2);
    server.shutdown().await;

    let server = db.start().await;
    let mut rows = db.outbox_rows().await;
    let waited = std::time::Instant::now();
    while rows != 1 && waited.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        rows = db.outbox_rows().await;
    }
    assert_eq!(rows, 1, "the delivered row is pruned at start, the pending one stays");
    receiver.assert_exactly("/hook", 1).await;
    server.shutdown().await;
}

/// Without `allow_private_targets`, a subscription to a loopback, private, link-local or
/// metadata address, or to a name resolving to one, is refused with 400 naming `config.url`;
/// production accounts must use https.
async fn internal_targets_are_refused_at_subscription(mut db: TestDb) {
    db.config.webhooks.allow_private_targets = false;
    let server = db.start().await;
    let admin = Api::login(&server, &["admin:hooks"]).await;
    let refused = json!({"error": {
        "code": "BAD REQUEST",
        "message": "config.url: must not point to a loopback, private, link-local or other internal address",
        "errors": [{"field": "config.url", "message": "must not point to a loopback, private, link-local or other internal address"}]
    }});
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.5/hook",
        "http://172.16.1.1/hook",
        "http://192.168.0.1/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:8080/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "http://[fe80::1]/hook",
        "https://224.0.0.1/hook",
    ] {
        let (status, body) = admin.subscribe(json!({"config": {"url": url}, "events": ["checkout_token_add"]})).await;
        assert_eq!((status, &body), (StatusCode::BAD_REQUEST, &refused), "{url}");
    }
    // Production accounts: https only, and the same addresses refused.
    let production = Api::login_to(&server, "P12345678", &["admin:hooks"]).await;
    let path = "/v1/accounts/P12345678/hooks/subscriptions";
    let (status, body) = production
        .call(
            Method::POST,
            path,
            Some(json!({"config": {"url": "http://1.1.1.1/hook"}, "events": ["checkout_token_add"]})),
        )
        .await;
    let https = "must be an https URL (http is allowed only for test accounts)";
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": {"code": "BAD REQUEST", "message": format!("config.url: {https}"), "errors": [{"field": "config.url", "message": https}]}})
        )
    );
    let (status, body) = production
        .call(
            Method::POST,
            path,
            Some(json!({"config": {"url": "https://127.0.0.1/hook"}, "events": ["checkout_token_add"]})),
        )
        .await;
    assert_eq!((status, body), (StatusCode::BAD_REQUEST, refused.clone()));
    // Nothing was stored; a public address is accepted (no card token changes: nothing is sent).
    let (status, listed) = admin.call(Method::GET, &subscriptions_path(), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])));
    let (status, created) = production
        .call(
            Method::POST,
            path,
            Some(json!({"config": {"url": "https://1.1.1.1/hook"}, "events": ["checkout_token_add"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    server.shutdown().await;
}

/// Deliveries check the target again, after DNS resolution: a subscription made while private
/// targets were allowed (or whose name has since come to resolve to an internal address) gets
/// nothing sent once they are not, by name (`localhost`) or by IP literal. The attempts are
/// recorded as failed.
async fn deliveries_never_reach_internal_addresses(mut db: TestDb) {
    let receiver = RunningReceiver::start(0).await;
    let port = receiver.url.rsplit(':').next().unwrap().to_owned();
    let server = db.start().await;
    let admin = Api::login(&server, &["admin:hooks"]).await;
    for url in [format!("http://localhost:{port}/by-name"), format!("http://127.0.0.1:{port}/by-address")] {
        let (status, body) = admin.subscribe(json!({"config": {"url": url}, "events": ["checkout_token_add"]})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    server.shutdown().await;

    db.config.webhooks.allow_private_targets = false;
    let server = db.start().await;
    let admin = Api::login(&server, &["admin:checkout"]).await;
    admin.create_card("ct-1").await;
    let deadline = Instant::now() + PATIENCE;
    let mut rows = db.outbox_attempts().await;
    while !(rows.len() == 2 && rows.iter().all(|row| row.1 >= 2 || row.3)) {
        assert!(Instant::now() < deadline, "two attempts per delivery expected: {rows:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        rows = db.outbox_attempts().await;
    }
    server.shutdown().await;
    assert_eq!(receiver.receiver.requests.lock().unwrap().len(), 0, "the receiver was reached");
    let (by_address, by_name) = (&rows[0], &rows[1]);
    assert_eq!(by_address.0, format!("http://127.0.0.1:{port}/by-address"));
    assert_eq!(
        (by_address.2.as_deref(), by_address.3),
        (Some("refused before sending: the URL must not point to a loopback, private, link-local or other internal address"), false)
    );
    assert_eq!(by_name.0, format!("http://localhost:{port}/by-name"));
    assert!(!by_name.3, "{by_name:?}");
    // Refused by the delivery client's resolver, after resolution (the error's outer layers are
    // the HTTP client's).
    let error = by_name.2.as_deref().unwrap_or_default();
    assert!(
        error.ends_with("the host name resolves only to loopback, private, link-local or other internal addresses"),
        "{error}"
    );
}
