//! The test harness: a fresh database and a port-0 server per test, on either backend, with a
//! client that keeps whole responses (status, headers, body) for exact assertions.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokenvault::app::RunningServer;
use tokenvault::auth::clients::{create_client, ClientCredentials};
use tokenvault::domain::AccountId;
use tokenvault::settings::ServeConfig;
use tokenvault::store::Store;

/// The account most tests act for, and a second one for isolation checks.
pub const ACCOUNT: &str = "T12345678";
pub const OTHER_ACCOUNT: &str = "T87654321";
pub const ALL_SCOPES: &[&str] = &["admin:customers", "admin:checkout"];
pub const JSON_UTF8: &str = "application/json; charset=utf-8";

/// Where a test's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates, for each named `async fn name(app: TestApp)`, a `#[tokio::test]` in `mod sqlite`
/// and one in `mod postgres`. With `backend:` first, the functions take a [`Backend`] instead
/// and start their servers themselves.
macro_rules! backend_tests {
    (backend: $($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::run_backend($crate::helpers::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::run_backend($crate::helpers::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        mod sqlite {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::run_app($crate::helpers::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                $(#[$attr])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::helpers::run_app($crate::helpers::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

/// Whether the PostgreSQL half can run. Unreachable is a failure with
/// `TOKENVAULT_REQUIRE_POSTGRES=1`, otherwise a single notice and a skip.
pub fn backend_available(backend: Backend) -> bool {
    backend == Backend::Sqlite || crate::pg::reachable_or_skip()
}

pub async fn run_app<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    if !backend_available(backend) {
        return;
    }
    let app = spawn_app(backend).await;
    test(app).await;
}

pub async fn run_backend<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    if backend_available(backend) {
        test(backend).await;
    }
}

type Customize = Arc<dyn Fn(&mut ServeConfig) + Send + Sync>;

/// The fixed card-token master key given to PostgreSQL servers.
pub fn pg_encryption_key() -> String {
    STANDARD.encode([0x5au8; 32])
}

/// A running tokenvault with its own database.
pub struct TestApp {
    pub url: String,
    pub addr: SocketAddr,
    pub server: Option<RunningServer>,
    pub http: reqwest::Client,
    pub backend: Backend,
    pub database_url: String,
    /// SQLite: the directory holding the database file (kept alive with the app).
    pub dir: Option<TempDir>,
    /// PostgreSQL: the test's database, dropped with the app (after the server, see `Drop`).
    _pg_database: Option<crate::pg::TempDatabase>,
    customize: Customize,
    credentials: Mutex<HashMap<(String, String), (ClientCredentials, String)>>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// A fresh database (SQLite file in a temp dir, or `tv_<uuid>` on PostgreSQL) and a server on
/// it; `customize` adjusts the configuration (also on every restart).
pub async fn spawn_app_with(backend: Backend, customize: impl Fn(&mut ServeConfig) + Send + Sync + 'static) -> TestApp {
    let (database_url, dir, pg_database) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}/tokenvault.db", dir.path().display());
            (url, Some(dir), None)
        }
        Backend::Postgres => {
            let database = crate::pg::TempDatabase::create().await;
            (database.url.clone(), None, Some(database))
        }
    };
    start_app(backend, database_url, dir, pg_database, Arc::new(customize)).await
}

/// A server on a fresh SQLite database in `dir` (a directory the test chose, such as one on a
/// small file system).
pub async fn spawn_sqlite_app_in(dir: TempDir) -> TestApp {
    let url = format!("sqlite://{}/tokenvault.db", dir.path().display());
    start_app(Backend::Sqlite, url, Some(dir), None, Arc::new(|_: &mut ServeConfig| {})).await
}

async fn start_app(
    backend: Backend,
    database_url: String,
    dir: Option<TempDir>,
    pg_database: Option<crate::pg::TempDatabase>,
    customize: Customize,
) -> TestApp {
    let mut app = TestApp {
        url: String::new(),
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        server: None,
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        backend,
        database_url,
        dir,
        _pg_database: pg_database,
        customize,
        credentials: Mutex::new(HashMap::new()),
    };
    app.start().await;
    app
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // The server goes before its database does.
        drop(self.server.take());
    }
}

/// One exchanged response, read in full.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} (status {})", self.text, self.status))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    /// Asserts the status and the JSON content type, then returns the body.
    #[track_caller]
    pub fn expect_json(&self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status; body: {}", self.text);
        assert_eq!(self.header("content-type"), Some(JSON_UTF8), "content-type of a {status}");
        self.json()
    }

    /// No paging headers: this is the last page.
    #[track_caller]
    pub fn assert_last_page(&self) {
        assert_eq!(self.header("paging-token"), None, "paging-token on the last page");
        assert_eq!(self.header("link"), None, "link on the last page");
    }
}

/// The upper-case reason phrase the error body carries as its `code`.
pub fn error_code(status: u16) -> &'static str {
    match status {
        400 => "BAD REQUEST",
        401 => "UNAUTHORIZED",
        403 => "FORBIDDEN",
        404 => "NOT FOUND",
        405 => "METHOD NOT ALLOWED",
        408 => "REQUEST TIMEOUT",
        409 => "CONFLICT",
        413 => "PAYLOAD TOO LARGE",
        414 => "URI TOO LONG",
        415 => "UNSUPPORTED MEDIA TYPE",
        422 => "UNPROCESSABLE ENTITY",
        429 => "TOO MANY REQUESTS",
        431 => "REQUEST HEADER FIELDS TOO LARGE",
        501 => "NOT IMPLEMENTED",
        503 => "SERVICE UNAVAILABLE",
        other => panic!("no error code for {other}"),
    }
}

/// Asserts an error response exactly: status, content type and the whole body.
#[track_caller]
pub fn assert_error(response: &TestResponse, status: u16, message: &str, errors: Value) {
    let body = response.expect_json(status);
    assert_json_eq(&body, &json!({"error": {"code": error_code(status), "message": message, "errors": errors}}));
}

/// A validation error naming each field; the message is the first one plus `(and N more)`.
#[track_caller]
pub fn assert_validation(response: &TestResponse, fields: &[(&str, &str)]) {
    assert!(!fields.is_empty());
    let (first_field, first_message) = fields[0];
    let mut message = format!("{first_field}: {first_message}");
    if fields.len() > 1 {
        message.push_str(&format!(" (and {} more)", fields.len() - 1));
    }
    let errors: Vec<Value> = fields.iter().map(|(f, m)| json!({"field": f, "message": m})).collect();
    assert_error(response, 400, &message, Value::Array(errors));
}

/// An error whose message the contract leaves open: exact status, code and `errors`, and a
/// non-empty message.
#[track_caller]
pub fn assert_error_status(response: &TestResponse, status: u16) -> String {
    let body = response.expect_json(status);
    let message = body["error"]["message"].as_str().unwrap_or_else(|| panic!("no message in {body}")).to_owned();
    assert!(!message.is_empty());
    assert_json_eq(&body, &json!({"error": {"code": error_code(status), "message": message, "errors": []}}));
    message
}

/// Equality of JSON values including the order of object keys (the seeds fix field order).
#[track_caller]
pub fn assert_json_eq(actual: &Value, expected: &Value) {
    assert_eq!(actual, expected);
    assert_eq!(
        serde_json::to_string(actual).unwrap(),
        serde_json::to_string(expected).unwrap(),
        "same fields, different order"
    );
}

/// Asserts a lowercase UUID v4.
#[track_caller]
pub fn assert_uuid_v4(value: &str) {
    let parsed = uuid::Uuid::parse_str(value).unwrap_or_else(|_| panic!("not a UUID: {value:?}"));
    assert_eq!(parsed.get_version_num(), 4, "not a v4 UUID: {value}");
    assert_eq!(parsed.hyphenated().to_string(), value, "not a lowercase hyphenated UUID: {value}");
}

/// Asserts RFC 3339 UTC with whole seconds and a `Z`: `YYYY-MM-DDTHH:MM:SSZ`, and returns it
/// as Unix seconds.
#[track_caller]
pub fn assert_timestamp(value: &str) -> i64 {
    let shape_ok = value.len() == 20
        && value.char_indices().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == 'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "not YYYY-MM-DDTHH:MM:SSZ: {value:?}");
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .unwrap_or_else(|e| panic!("not a date-time {value:?}: {e}"))
        .and_utc()
        .timestamp()
}

/// Checks that `value[key]` is a UUID v4, replaces it with `"<id>"` and returns it.
#[track_caller]
pub fn take_uuid(value: &mut Value, key: &str) -> String {
    let raw = value[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {value}")).to_owned();
    assert_uuid_v4(&raw);
    value[key] = json!("<id>");
    raw
}

/// Checks that `value[key]` is a timestamp close to now, replaces it with `"<ts>"` and returns it.
#[track_caller]
pub fn take_ts(value: &mut Value, key: &str) -> String {
    let raw = value[key].as_str().unwrap_or_else(|| panic!("no string {key:?} in {value}")).to_owned();
    let seconds = assert_timestamp(&raw);
    let now = chrono::Utc::now().timestamp();
    assert!((now - 300..=now + 5).contains(&seconds), "{key} {raw} is not recent");
    value[key] = json!("<ts>");
    raw
}

/// A client that can act for an account, with its access token.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token: String,
    pub client_id: String,
    pub client_secret: String,
}

pub fn basic(client_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")))
}

pub fn audience(account: &str) -> String {
    format!("https://api.dintero.com/v1/accounts/{account}")
}

impl TestApp {
    /// Starts (or restarts) the server on this app's database.
    pub async fn start(&mut self) {
        assert!(self.server.is_none(), "already running");
        let mut config = ServeConfig::new(self.database_url.clone().parse().unwrap());
        if self.backend == Backend::Postgres {
            config.encryption_key = Some(tokenvault::settings::Secret(pg_encryption_key()));
        }
        (self.customize)(&mut config);
        let server = tokenvault::app::start(config).await.expect("server starts");
        self.addr = server.addr;
        self.url = server.url();
        assert_eq!(self.url, format!("http://{}", server.addr));
        self.server = Some(server);
    }

    /// Graceful shutdown, which releases the database.
    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    /// PostgreSQL: another server on this app's database (as a second instance behind a load
    /// balancer), stopped with `shutdown`; SQLite: `None` (one server per database file).
    pub async fn second_server(&self) -> Option<RunningServer> {
        if self.backend != Backend::Postgres {
            return None;
        }
        let mut config = ServeConfig::new(self.database_url.parse().unwrap());
        config.encryption_key = Some(tokenvault::settings::Secret(pg_encryption_key()));
        Some(tokenvault::app::start(config).await.expect("the second server starts"))
    }

    pub fn store(&self) -> Arc<dyn Store> {
        self.server.as_ref().expect("running").store.clone()
    }

    /// A new API client for `account` (through the library, as `clients create` does).
    pub async fn new_client(&self, account: &str, scopes: &[&str]) -> ClientCredentials {
        let account = AccountId::parse("aid", account).expect("valid account");
        create_client(self.store().as_ref(), &account, scopes.iter().map(|s| s.to_string()).collect())
            .await
            .expect("client created")
    }

    /// `POST /v1/accounts/{oid}/auth/token` with Basic auth and a JSON body.
    pub async fn request_token(&self, oid: &str, authorization: Option<&str>, body: &Value) -> TestResponse {
        let mut headers = vec![];
        if let Some(authorization) = authorization {
            headers.push(("authorization", authorization.to_owned()));
        }
        self.send(Method::POST, &format!("/v1/accounts/{oid}/auth/token"), None, Some(body), &headers).await
    }

    /// A client for `account` with `scopes` and a fresh access token (cached per pair).
    pub async fn auth(&self, account: &str, scopes: &[&str]) -> Auth {
        let key = (account.to_owned(), scopes.join(" "));
        if let Some((credentials, token)) = self.credentials.lock().unwrap().get(&key).cloned() {
            return Auth { token, client_id: credentials.client_id, client_secret: credentials.client_secret };
        }
        let credentials = self.new_client(account, scopes).await;
        let response = self
            .request_token(
                account,
                Some(&basic(&credentials.client_id, &credentials.client_secret)),
                &json!({"grant_type": "client_credentials", "audience": audience(account)}),
            )
            .await;
        let body = response.expect_json(200);
        let token = body["access_token"].as_str().expect("access_token").to_owned();
        self.credentials.lock().unwrap().insert(key, (credentials.clone(), token.clone()));
        Auth { token, client_id: credentials.client_id, client_secret: credentials.client_secret }
    }

    pub async fn token_for(&self, account: &str, scopes: &[&str]) -> String {
        self.auth(account, scopes).await.token
    }

    /// The default caller: `ACCOUNT` with `admin:customers admin:checkout`.
    pub async fn admin(&self) -> Auth {
        self.auth(ACCOUNT, ALL_SCOPES).await
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> TestResponse {
        let mut request = self.http.request(method, format!("{}{}", self.url, path));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(serde_json::to_vec(body).unwrap());
        }
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).unwrap());
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        TestResponse { status, headers, text }
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }

    pub async fn post_json(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.send(Method::POST, path, Some(token), Some(body), &[]).await
    }

    pub async fn put_json(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.send(Method::PUT, path, Some(token), Some(body), &[]).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.send(Method::DELETE, path, Some(token), None, &[]).await
    }

    pub async fn delete_json(&self, path: &str, token: &str, body: &Value) -> TestResponse {
        self.send(Method::DELETE, path, Some(token), Some(body), &[]).await
    }

    /// Creates a customer in `ACCOUNT` (200) and returns the body.
    pub async fn create_customer(&self, token: &str, body: &Value) -> Value {
        let response = self.post_json(&customers_path(ACCOUNT), token, body).await;
        response.expect_json(200)
    }

    /// Creates a customer token for `customer_id` in `ACCOUNT` (201) and returns the body.
    pub async fn create_token(&self, token: &str, customer_id: &str, body: &Value) -> Value {
        let response = self.post_json(&tokens_path(ACCOUNT, customer_id), token, body).await;
        response.expect_json(201)
    }

    /// Creates a card token (201) and returns the body.
    pub async fn create_card_token(&self, token: &str, body: &Value) -> Value {
        let response = self.post_json("/v1/card-tokens", token, body).await;
        response.expect_json(201)
    }

    /// `POST …/customers/tokens/events` (200) and returns the TokenDetail.
    pub async fn token_detail(&self, token: &str, body: &Value) -> Value {
        let response = self.post_json(&events_path(ACCOUNT), token, body).await;
        response.expect_json(200)
    }

    /// Follows `link` headers from `path` and returns every page's response.
    pub async fn walk(&self, path: &str, token: &str) -> Vec<TestResponse> {
        let mut pages = vec![];
        let mut next = Some(path.to_owned());
        while let Some(path) = next {
            assert!(pages.len() < 200, "paging does not end");
            let response = self.get(&path, token).await;
            response.expect_json(200);
            next = response.header("link").map(|link| parse_next_link(link));
            if next.is_none() {
                assert_eq!(response.header("paging-token"), None, "paging-token without link");
            }
            pages.push(response);
        }
        pages
    }

    /// Sends raw bytes over a fresh connection and reads the whole response (`Connection:
    /// close`), for what reqwest cannot express (chunked request bodies).
    pub async fn raw(&self, request: &[u8]) -> TestResponse {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = tokio::net::TcpStream::connect(self.addr).await.expect("connect");
        let (mut reader, mut writer) = stream.into_split();
        // The server may answer (413) and close before it has read everything: keep writing in
        // the background, ignore a broken pipe, and read whatever response arrives.
        let request = request.to_vec();
        let write = tokio::spawn(async move {
            let _ = writer.write_all(&request).await;
            writer
        });
        let mut bytes = vec![];
        let mut buffer = [0u8; 16 * 1024];
        let read = async {
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => bytes.extend_from_slice(&buffer[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(30), read).await.expect("response within 30 s");
        write.abort();
        parse_raw_response(&bytes)
    }

    /// `POST path` with a body given as bytes and an explicit `Content-Length`, over [`raw`].
    pub async fn raw_post(&self, path: &str, token: &str, content_type: &str, body: &[u8]) -> TestResponse {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.raw(&request).await
    }
}

/// `<PATH?QUERY>; rel="next"` → `PATH?QUERY`, asserting the exact shape.
#[track_caller]
pub fn parse_next_link(link: &str) -> String {
    let inner = link
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix(">; rel=\"next\""))
        .unwrap_or_else(|| panic!("link is not <…>; rel=\"next\": {link:?}"));
    assert!(inner.starts_with('/'), "link is not a relative path: {inner}");
    inner.to_owned()
}

pub fn parse_raw_response(bytes: &[u8]) -> TestResponse {
    assert!(!bytes.is_empty(), "no response at all");
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("end of headers");
    let head = std::str::from_utf8(&bytes[..split]).expect("ASCII head");
    let mut body = bytes[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        headers.append(
            reqwest::header::HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    if headers.get("transfer-encoding").is_some_and(|v| v == "chunked") {
        body = dechunk(&body);
    }
    TestResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        text: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_text = std::str::from_utf8(&data[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A body sent with `Transfer-Encoding: chunked` (in chunks of at most 1000 bytes).
pub fn chunked_request(method: &str, path: &str, token: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(1000) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    request
}

pub fn customers_path(account: &str) -> String {
    format!("/v1/accounts/{account}/customers/users")
}

pub fn customer_path(account: &str, customer_id: &str) -> String {
    format!("/v1/accounts/{account}/customers/users/{customer_id}")
}

pub fn tokens_path(account: &str, customer_id: &str) -> String {
    format!("/v1/accounts/{account}/customers/users/{customer_id}/tokens")
}

pub fn events_path(account: &str) -> String {
    format!("/v1/accounts/{account}/customers/tokens/events")
}

/// Splits a JWT into its decoded header, claims and the raw signature segment.
pub fn decode_jwt(jwt: &str) -> (Value, Value, String) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three segments: {jwt}");
    let decode = |segment: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url segment")).expect("JSON segment")
    };
    (decode(parts[0]), decode(parts[1]), parts[2].to_owned())
}

/// Re-assembles a JWT from a header, claims and a signature segment (no signing).
pub fn encode_jwt(header: &Value, claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap()),
        signature
    )
}

impl TestApp {
    /// The configuration this app's server runs with (after `customize`).
    pub fn config(&self) -> ServeConfig {
        let mut config = ServeConfig::new(self.database_url.clone().parse().unwrap());
        if self.backend == Backend::Postgres {
            config.encryption_key = Some(tokenvault::settings::Secret(pg_encryption_key()));
        }
        (self.customize)(&mut config);
        config
    }

    /// The master key's cipher, as the server has it: what an attacker with only a copy of the
    /// database lacks.
    pub fn cipher(&self) -> tokenvault::crypto::TokenCipher {
        let config = self.config();
        match (&config.encryption_key, config.database_url.sqlite_key_file()) {
            (Some(key), _) => tokenvault::crypto::TokenCipher::from_base64(&key.0).expect("master key"),
            (None, Some(path)) => {
                assert!(path.exists(), "the server created its key file");
                tokenvault::crypto::TokenCipher::from_key_file(&path).expect("key file")
            }
            (None, None) => panic!("no master key"),
        }
    }

    /// The newest signing key's id and PKCS#8 DER, opened with the master key.
    pub async fn signing_key(&self) -> (String, Vec<u8>) {
        let newest = self.store().signing_keys().await.unwrap().remove(0);
        let der = self.cipher().open_signing_key(&newest.kid, &newest.private_key).expect("the key opens");
        (newest.kid, der)
    }

    /// A token with exactly `claims`, signed with the server's real key (a forgery only a holder of
    /// both the database and the master key can make).
    pub async fn forge(&self, claims: &Value) -> String {
        let (kid, der) = self.signing_key().await;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(&der)).unwrap()
    }

    /// Runs the `tokenvault` binary on this app's database (`--database-url` appended) and
    /// returns (success, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tokenvault"));
        command.args(args).args(["--database-url", &self.database_url]).env_remove("TOKENVAULT_DATABASE_URL");
        if self.backend == Backend::Postgres {
            command.env("TOKENVAULT_ENCRYPTION_KEY", pg_encryption_key());
        }
        let output = command.output().expect("tokenvault runs");
        (
            output.status.success(),
            String::from_utf8(output.stdout).expect("UTF-8 stdout"),
            String::from_utf8(output.stderr).expect("UTF-8 stderr"),
        )
    }
}

/// Seconds since the epoch, as the server reckons them.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}
