//! Card-token webhooks end to end: subscriptions over HTTP, signed deliveries to a receiver on
//! 127.0.0.1, a retry after the receiver fails, a delivery after a server restart, and Dintero's
//! deliveries API (every attempt recorded), pings, giving up after 5 attempts, deleting a
//! subscription after consecutive failures, and resending. Every test runs on SQLite and on
//! PostgreSQL (skipped with a notice when PostgreSQL is unreachable, unless
//! `TOKENVAULT_REQUIRE_POSTGRES=1`).

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
    deliveries_never_reach_internal_addresses,
    deliveries_show_every_attempt,
    ping_sends_a_ping_now,
    deliveries_give_up_after_five_attempts,
    subscriptions_are_deleted_after_consecutive_failures,
    resend_queues_the_event_again,
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
    /// straight from the database, ordered by the subscription's URL; pings left out.
    async fn outbox_attempts(&self) -> Vec<(String, i64, Option<String>, bool)> {
        const SELECT: &str = "SELECT s.url, o.attempts, o.last_error, o.delivered_at IS NOT NULL \
                              FROM webhook_outbox o JOIN hook_subscriptions s ON s.id = o.subscription_id \
                              WHERE o.event <> 'ping' ORDER BY s.url";
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
        self.count("SELECT count(*) FROM webhook_outbox").await
    }

    /// Attempt records whose delivery is no longer in the outbox (there must be none).
    async fn orphaned_attempts(&self) -> i64 {
        self.count("SELECT count(*) FROM webhook_attempts WHERE delivery_id NOT IN (SELECT id FROM webhook_outbox)")
            .await
    }

    async fn count(&self, sql: &str) -> i64 {
        match &self._dir {
            Some(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("tokenvault.db")).unwrap();
                conn.query_row(sql, [], |row| row.get(0)).unwrap()
            }
            None => {
                let client = pg::connect_plain(self.config.database_url.expose()).await.unwrap();
                client.query_one(sql, &[]).await.unwrap().get(0)
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

    fn is_ping(&self) -> bool {
        self.headers.get("event").is_some_and(|event| event == "ping")
    }
}

/// Records every request; answers 500 to the first `failures` of them that are not pings (every
/// new subscription is pinged first, as Dintero does), then 200.
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
    let ping = received.is_ping();
    receiver.requests.lock().unwrap().push(received);
    let fail =
        !ping && receiver.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
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

    /// The events that reached `path`, pings left out.
    fn received(&self, path: &str) -> Vec<Received> {
        self.receiver.requests.lock().unwrap().iter().filter(|r| r.path == path && !r.is_ping()).cloned().collect()
    }

    /// The pings that reached `path`.
    fn pings(&self, path: &str) -> Vec<Received> {
        self.receiver.requests.lock().unwrap().iter().filter(|r| r.path == path && r.is_ping()).cloned().collect()
    }

    /// Waits until `count` pings reached `path`; fails the test after [`PATIENCE`].
    async fn wait_for_pings(&self, path: &str, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let received = self.pings(path);
            if received.len() >= count {
                return received;
            }
            assert!(Instant::now() < deadline, "{count} pings to {path} expected, got {received:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every event request (pings left out), wherever it went.
    fn events(&self) -> usize {
        self.receiver.requests.lock().unwrap().iter().filter(|r| !r.is_ping()).count()
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
    assert_eq!(status, StatusCode::OK, "{all}");
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
    assert_eq!(status, StatusCode::OK, "{deletes}");
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
    assert_eq!(receiver.events(), 4);

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
    assert_eq!(status, StatusCode::OK);

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

async fn delivery_survives_a_restart(mut db: TestDb) {
    // However long the restart takes, the delivery must not run out of attempts meanwhile.
    db.config.webhooks.max_attempts = 20;
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
    assert_eq!(status, StatusCode::OK);
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
    // The deliveries to the closed port stay pending throughout.
    db.config.webhooks.max_attempts = 1000;
    let receiver = RunningReceiver::start(0).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let server = db.start().await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    for url in [format!("{}/hook", receiver.url), format!("http://{closed}/never")] {
        let (status, _) = admin.subscribe(json!({"config": {"url": url}, "events": ["checkout_token_add"]})).await;
        assert_eq!(status, StatusCode::OK);
    }
    receiver.wait_for_pings("/hook", 1).await;
    admin.create_card("ct-1").await;
    receiver.wait_for("/hook", 1).await;
    // Each subscription's ping and card event: two delivered, two still retrying against the
    // closed port; the worker pruned only at start.
    assert_eq!(db.outbox_rows().await, 4);
    server.shutdown().await;

    let server = db.start().await;
    let mut rows = db.outbox_rows().await;
    let waited = std::time::Instant::now();
    while rows != 2 && waited.elapsed() < PATIENCE {
        tokio::time::sleep(Duration::from_millis(20)).await;
        rows = db.outbox_rows().await;
    }
    assert_eq!(rows, 2, "the delivered rows are pruned at start, the pending ones stay");
    // Their attempt records went with them.
    assert_eq!(db.orphaned_attempts().await, 0);
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
    // Nothing was stored; a public name is accepted (one that does not resolve, so that the ping
    // every new subscription gets leaves this machine for nowhere).
    let (status, listed) = admin.call(Method::GET, &subscriptions_path(), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([])));
    let (status, created) = production
        .call(
            Method::POST,
            path,
            Some(json!({"config": {"url": "https://hooks.tokenvault.invalid/hook"}, "events": ["checkout_token_add"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
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
        assert_eq!(status, StatusCode::OK, "{body}");
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
    // (Pings of the first run, with private targets allowed, may have reached it.)
    assert_eq!(receiver.events(), 0, "the receiver was reached");
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

// ---- deliveries, pings, give-up, deletion, resend (issue 17 item 8, issue 18 part 4) ----------

fn deliveries_path(hid: &str) -> String {
    format!("{}/{hid}/deliveries", subscriptions_path())
}

/// Subscribes `url` with `secret` to `checkout_token_add`; returns the subscription as created.
async fn subscribe_to(api: &Api, url: &str, secret: &str) -> Value {
    let (status, created) =
        api.subscribe(json!({"config": {"url": url, "secret": secret}, "events": ["checkout_token_add"]})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created
}

/// Polls the delivery's detail until `done` holds; fails the test after [`PATIENCE`].
async fn wait_for_detail(api: &Api, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, detail) = api.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        if done(&detail) {
            return detail;
        }
        assert!(Instant::now() < deadline, "{path}: {detail}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn not_found(message: &str) -> Value {
    json!({"error": {"code": "NOT FOUND", "message": message, "errors": []}})
}

/// aid_source_hooks_hid_deliveries_get (`HookDelivery[]`: `id`, `event_delivery`, `created_at`,
/// `status`) and aid_source_hooks_hid_deliveries_did_get (`HookDeliveryDetail`: `url`,
/// `request.headers`/`body`, `response.headers`/`body`, `details.delivery_at`/
/// `delivery_duration`/`delivery_success`): every attempt of the worker is recorded with its
/// outcome; another account sees nothing; scopes admin:hooks/read:hooks.
async fn deliveries_show_every_attempt(db: TestDb) {
    let server = db.start().await;
    // The card event fails once (500), then is taken; the ping is taken at once.
    let receiver = RunningReceiver::start(1).await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let reader = Api::login(&server, &["read:hooks"]).await;
    let checkout_only = Api::login(&server, &["admin:checkout"]).await;
    let secret = "deliveries-secret";
    let created = subscribe_to(&admin, &format!("{}/hook", receiver.url), secret).await;
    let hid = created["id"].as_str().unwrap().to_owned();

    // Dintero pings a new subscription: `event: ping`, signed, the subscription as the body.
    let pings = receiver.wait_for_pings("/hook", 1).await;
    let ping = &pings[0];
    assert_eq!(ping.method, Method::POST);
    assert_eq!(ping.header("content-type"), "application/json");
    assert_eq!(ping.header("event-signature"), hmac_sha1_hex(secret, &ping.body));
    assert!(ping.header("user-agent").starts_with("Dintero-Hook/"));
    assert_eq!(ping.json(), without_secret(&created));
    let ping_id = ping.header("event-delivery").to_owned();

    let card = admin.create_card("ct-1").await;
    let received = receiver.wait_for("/hook", 2).await;
    let delivery = assert_delivery(&received[1], "checkout_token_add", secret, &card).to_string();
    let path = format!("{}/{delivery}", deliveries_path(&hid));
    let detail = wait_for_detail(&admin, &path, |d| d["state"] == "DELIVERED").await;

    // The list: newest first, each with its latest attempt's status.
    let (status, listed) = reader.call(Method::GET, &deliveries_path(&hid), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let created_at = |i: usize| listed[i]["created_at"].as_str().unwrap().to_owned();
    assert!(created_at(0).ends_with('Z') && created_at(1).ends_with('Z'), "{listed}");
    assert_eq!(
        listed,
        json!([
            {"id": delivery, "event_delivery": delivery, "created_at": created_at(0), "status": 200},
            {"id": ping_id, "event_delivery": ping_id, "created_at": created_at(1), "status": 200},
        ])
    );

    // The detail: Dintero's fields for the latest attempt, and every attempt.
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{detail}");
    let at = |i: usize, field: &str| attempts[i][field].clone();
    for i in 0..2 {
        assert!(at(i, "attempted_at").as_str().unwrap().ends_with('Z'));
        assert!(at(i, "duration").as_i64().unwrap() >= 0);
    }
    assert_eq!(
        detail["attempts"],
        json!([
            {"attempted_at": at(0, "attempted_at"), "duration": at(0, "duration"), "status": 500,
             "error": "the receiver answered 500 Internal Server Error", "success": false},
            {"attempted_at": at(1, "attempted_at"), "duration": at(1, "duration"), "status": 200, "success": true},
        ])
    );
    let sent = &received[1];
    let response_date = detail["response"]["headers"]["date"].clone();
    assert!(response_date.is_string(), "{detail}");
    assert_eq!(
        detail,
        json!({
            "id": delivery,
            "event_delivery": delivery,
            "created_at": created_at(0),
            "status": 200,
            "url": format!("{}/hook", receiver.url),
            "request": {
                "headers": {
                    "content-type": "application/json",
                    "event": "checkout_token_add",
                    "event-delivery": delivery,
                    "event-signature": sent.header("event-signature"),
                    "user-agent": sent.header("user-agent"),
                },
                "body": sent.json(),
            },
            "response": {"headers": {"content-length": "0", "date": response_date}, "body": ""},
            "details": {
                "delivery_at": at(1, "attempted_at"),
                "delivery_duration": at(1, "duration"),
                "delivery_success": true,
            },
            "event": "checkout_token_add",
            "state": "DELIVERED",
            "attempts": detail["attempts"].clone(),
        })
    );
    assert!(!detail.to_string().contains(secret), "the secret is never shown");

    // Paging (limit, starting_after, total: tokenvault's additions).
    let response = reader
        .http
        .get(format!("{}{}?limit=1&total=true", reader.base, deliveries_path(&hid)))
        .bearer_auth(&reader.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["paging-token"], delivery.as_str());
    assert_eq!(response.headers()["total-count"], "2");
    let (status, next) =
        reader.call(Method::GET, &format!("{}?limit=1&starting_after={delivery}", deliveries_path(&hid)), None).await;
    assert_eq!((status, next[0]["id"].as_str()), (StatusCode::OK, Some(ping_id.as_str())));
    let (status, error) = reader.call(Method::GET, &format!("{}?limit=0", deliveries_path(&hid)), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("BAD REQUEST")));
    let (status, error) =
        reader.call(Method::GET, &format!("{}?starting_after=nope", deliveries_path(&hid)), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("BAD REQUEST")));

    // Scopes: admin:hooks or read:hooks.
    let (status, error) = checkout_only.call(Method::GET, &deliveries_path(&hid), None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
    assert_eq!(checkout_only.call(Method::GET, &path, None).await.0, StatusCode::FORBIDDEN);

    // Unknown and malformed ids, and another account's subscription: 404 in Dintero's body.
    let other = Api::login_to(&server, "T87654321", &["admin:hooks"]).await;
    let foreign_path = |p: &str| p.replace(ACCOUNT, "T87654321");
    for (api, path, message) in [
        (&admin, format!("{}/{}", deliveries_path(&hid), Uuid::new_v4()), "delivery not found"),
        (&admin, format!("{}/not-a-uuid", deliveries_path(&hid)), "delivery not found"),
        (&admin, deliveries_path(&Uuid::new_v4().to_string()), "subscription not found"),
        (&admin, deliveries_path("not-a-uuid"), "subscription not found"),
        (&admin, format!("{}/x/deliveries/{delivery}", subscriptions_path()), "subscription not found"),
        (&other, foreign_path(&deliveries_path(&hid)), "subscription not found"),
        (&other, foreign_path(&path), "subscription not found"),
    ] {
        let (status, body) = api.call(Method::GET, &path, None).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found(message)), "{path}");
    }
    // Another account's path with this account's token: 403.
    assert_eq!(admin.call(Method::GET, &foreign_path(&path), None).await.0, StatusCode::FORBIDDEN);
    server.shutdown().await;
}

/// aid_source_hooks_hid_ping_post: 204, a `ping` sent now and listed as a delivery; scopes
/// admin:hooks/write:hooks; 404 for an unknown or another account's subscription.
async fn ping_sends_a_ping_now(db: TestDb) {
    let server = db.start().await;
    let receiver = RunningReceiver::start(0).await;
    let writer = Api::login(&server, &["write:hooks"]).await;
    let reader = Api::login(&server, &["read:hooks"]).await;
    let secret = "ping-secret-value";
    let created = subscribe_to(&writer, &format!("{}/hook", receiver.url), secret).await;
    let hid = created["id"].as_str().unwrap().to_owned();
    receiver.wait_for_pings("/hook", 1).await;
    let ping_path = format!("{}/{hid}/ping", subscriptions_path());

    let response =
        writer.http.post(format!("{}{ping_path}", writer.base)).bearer_auth(&writer.access_token).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.text().await.unwrap(), "");
    let pings = receiver.wait_for_pings("/hook", 2).await;
    let again = &pings[1];
    assert_eq!(again.header("event-signature"), hmac_sha1_hex(secret, &again.body));
    assert_eq!(again.json(), without_secret(&created));
    let id = again.header("event-delivery").to_owned();
    assert_ne!(id, pings[0].header("event-delivery"));
    let detail =
        wait_for_detail(&reader, &format!("{}/{id}", deliveries_path(&hid)), |d| d["state"] == "DELIVERED").await;
    assert_eq!(
        (detail["event"].as_str(), detail["request"]["headers"]["event"].as_str()),
        (Some("ping"), Some("ping"))
    );
    let (status, listed) = reader.call(Method::GET, &deliveries_path(&hid), None).await;
    assert_eq!(
        (status, listed.as_array().unwrap().len(), listed[0]["id"].as_str()),
        (StatusCode::OK, 2, Some(id.as_str()))
    );

    // Scopes, unknown and foreign subscriptions.
    let (status, error) = reader.call(Method::POST, &ping_path, None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
    let other = Api::login_to(&server, "T87654321", &["admin:hooks"]).await;
    for (api, path) in [
        (&writer, format!("{}/{}/ping", subscriptions_path(), Uuid::new_v4())),
        (&writer, format!("{}/not-a-uuid/ping", subscriptions_path())),
        (&other, ping_path.replace(ACCOUNT, "T87654321")),
    ] {
        let (status, body) = api.call(Method::POST, &path, None).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found("subscription not found")), "{path}");
    }
    receiver.assert_exactly("/hook", 0).await;
    assert_eq!(receiver.pings("/hook").len(), 2);
    server.shutdown().await;
}

/// Dintero retries "to a total of 5 times" (the `webhook_max_attempts` default): a receiver that
/// always fails gets exactly 5 attempts of a delivery, then the delivery is `FAILED`.
async fn deliveries_give_up_after_five_attempts(mut db: TestDb) {
    db.config.webhooks.max_attempts = WebhookSettings::default().max_attempts;
    assert_eq!(db.config.webhooks.max_attempts, 5);
    let server = db.start().await;
    let receiver = RunningReceiver::start(usize::MAX).await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let created = subscribe_to(&admin, &format!("{}/hook", receiver.url), "give-up-secret").await;
    let hid = created["id"].as_str().unwrap();
    admin.create_card("ct-1").await;
    let received = receiver.wait_for("/hook", 1).await;
    let delivery = received[0].header("event-delivery").to_owned();
    let detail =
        wait_for_detail(&admin, &format!("{}/{delivery}", deliveries_path(hid)), |d| d["state"] == "FAILED").await;
    let statuses: Vec<&Value> = detail["attempts"].as_array().unwrap().iter().map(|a| &a["status"]).collect();
    assert_eq!(statuses, [&json!(500); 5], "{detail}");
    assert_eq!(detail["details"]["delivery_success"], json!(false));
    assert!(detail.get("next_attempt_at").is_none(), "{detail}");
    // Given up: no sixth attempt.
    assert_eq!(receiver.received("/hook").len(), 5);
    receiver.assert_exactly("/hook", 5).await;
    server.shutdown().await;
}

/// "A webhook will be deleted if there are consecutive failures" (aid_source_hooks_post): after
/// `webhook_delete_after_failures` deliveries given up in a row the subscription is gone; one
/// that is delivered to is not touched.
async fn subscriptions_are_deleted_after_consecutive_failures(mut db: TestDb) {
    db.config.webhooks.max_attempts = 1;
    db.config.webhooks.delete_after_failures = 2;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let receiver = RunningReceiver::start(0).await;
    let server = db.start().await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let failing = subscribe_to(&admin, &format!("http://{closed}/never"), "failing-secret").await;
    let working = subscribe_to(&admin, &format!("{}/hook", receiver.url), "working-secret").await;
    let failing_path = format!("{}/{}", subscriptions_path(), failing["id"].as_str().unwrap());
    receiver.wait_for_pings("/hook", 1).await;
    // Its ping failed: one failure, still there.
    let failing_deliveries = deliveries_path(failing["id"].as_str().unwrap());
    let listed = wait_for_detail(&admin, &failing_deliveries, |listed| listed[0]["id"].is_string()).await;
    let ping_detail = format!("{failing_deliveries}/{}", listed[0]["id"].as_str().unwrap());
    wait_for_detail(&admin, &ping_detail, |d| d["state"] == "FAILED").await;
    assert_eq!(admin.call(Method::GET, &failing_path, None).await.0, StatusCode::OK);

    // The card event fails too: the second in a row, and the subscription is deleted.
    admin.create_card("ct-1").await;
    receiver.wait_for("/hook", 1).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = admin.call(Method::GET, &failing_path, None).await;
        if status == StatusCode::NOT_FOUND {
            assert_eq!(body, not_found("subscription not found"));
            break;
        }
        assert!(Instant::now() < deadline, "still there: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, listed) = admin.call(Method::GET, &subscriptions_path(), None).await;
    assert_eq!((status, listed), (StatusCode::OK, json!([without_secret(&working)])));
    server.shutdown().await;
}

/// Issue 18 part 4 (extension `…/deliveries/{delivery_id}/resend`): the event goes out again
/// through the outbox, signed as usual, byte for byte the same, under the original
/// `event-delivery`, as a new delivery; 202 with it.
async fn resend_queues_the_event_again(db: TestDb) {
    let server = db.start().await;
    let receiver = RunningReceiver::start(0).await;
    let admin = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let reader = Api::login(&server, &["read:hooks"]).await;
    let secret = "resend-secret-value";
    let created = subscribe_to(&admin, &format!("{}/hook", receiver.url), secret).await;
    let hid = created["id"].as_str().unwrap().to_owned();
    let card = admin.create_card("ct-1").await;
    let first = receiver.wait_for("/hook", 1).await;
    let original = assert_delivery(&first[0], "checkout_token_add", secret, &card).to_string();
    let resend_path = format!("{}/{original}/resend", deliveries_path(&hid));

    let (status, queued) = admin.call(Method::POST, &resend_path, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let new_id = queued["id"].as_str().unwrap().to_owned();
    assert_ne!(new_id, original);
    let created_at = queued["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'));
    assert_eq!(queued, json!({"id": new_id, "event_delivery": original, "created_at": created_at}));

    let again = receiver.wait_for("/hook", 2).await;
    assert_eq!(assert_delivery(&again[1], "checkout_token_add", secret, &card).to_string(), original);
    assert_eq!(again[1].body, first[0].body);
    assert_eq!(again[1].header("event-signature"), first[0].header("event-signature"));
    let detail =
        wait_for_detail(&reader, &format!("{}/{new_id}", deliveries_path(&hid)), |d| d["state"] == "DELIVERED").await;
    assert_eq!((detail["event_delivery"].as_str(), detail["status"].as_u64()), (Some(original.as_str()), Some(200)));
    let (status, listed) = reader.call(Method::GET, &deliveries_path(&hid), None).await;
    let ids: Vec<&str> = listed.as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!((status, &ids[..2]), (StatusCode::OK, &[new_id.as_str(), original.as_str()][..]));
    assert_eq!(ids.len(), 3, "the resend, the original and the ping: {listed}");

    // Scopes admin:hooks/write:hooks; unknown ids and other accounts: 404.
    let (status, error) = reader.call(Method::POST, &resend_path, None).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("FORBIDDEN")));
    let other = Api::login_to(&server, "T87654321", &["admin:hooks"]).await;
    for (api, path, message) in [
        (&admin, format!("{}/{}/resend", deliveries_path(&hid), Uuid::new_v4()), "delivery not found"),
        (&admin, format!("{}/not-a-uuid/resend", deliveries_path(&hid)), "delivery not found"),
        (
            &admin,
            format!("{}/{original}/resend", deliveries_path(&Uuid::new_v4().to_string())),
            "subscription not found",
        ),
        (&other, resend_path.replace(ACCOUNT, "T87654321"), "subscription not found"),
    ] {
        let (status, body) = api.call(Method::POST, &path, None).await;
        assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found(message)), "{path}");
    }
    receiver.assert_exactly("/hook", 2).await;
    server.shutdown().await;
}
