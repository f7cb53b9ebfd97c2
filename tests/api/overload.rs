//! Overload: beyond `max_in_flight` concurrent requests the server answers 503 at once instead of
//! queueing (but `/health` is never shed), a request that outlasts the request timeout is answered
//! 503, and both release their place (nothing leaks). Requests are held inside the limit deterministically: they send
//! `Expect: 100-continue` and no body, and the server's `100 Continue` (sent when the handler
//! first reads the body, i.e. after the concurrency limit and authentication let it through)
//! proves the request is in progress.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

backend_tests!(
    backend: requests_beyond_max_in_flight_are_shed_with_503_at_once,
    a_request_that_outlasts_the_request_timeout_is_503_and_frees_its_place,
    one_address_cannot_take_every_place,
    a_trickling_body_is_408_at_its_deadline_and_frees_its_place,
);

/// A connection from `source` (any 127.0.0.0/8 address reaches a server on 127.0.0.1).
async fn connect_from(app: &TestApp, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).expect("bind the source address");
    socket.connect(app.addr).await.expect("connect")
}

/// A `POST …/customers/users` whose handler is waiting for its body.
struct HeldRequest {
    stream: TcpStream,
    body: Vec<u8>,
}

impl HeldRequest {
    /// Sends the head with `Expect: 100-continue` and waits for `100 Continue`.
    async fn open(app: &TestApp, token: &str, customer_id: &str) -> Self {
        Self::open_from(app, "127.0.0.1", token, customer_id).await
    }

    async fn open_from(app: &TestApp, source: &str, token: &str, customer_id: &str) -> Self {
        let body = serde_json::to_vec(&json!({"customer_id": customer_id})).unwrap();
        let mut stream = connect_from(app, source).await;
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            customers_path(ACCOUNT),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("send head");
        let interim = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream))
            .await
            .expect("100 Continue within 10 s: the request did not get in");
        assert_eq!(interim, "HTTP/1.1 100 Continue", "instead of 100 Continue");
        Self { stream, body }
    }

    /// Sends the body and reads the whole response.
    async fn finish(mut self) -> TestResponse {
        self.stream.write_all(&self.body).await.expect("send body");
        read_response(self.stream).await
    }

    /// Sends nothing more and reads the whole response (the server has to end the request).
    async fn wait(self) -> TestResponse {
        read_response(self.stream).await
    }
}

/// Reads one response head (up to the blank line) byte by byte, so nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = vec![];
    while !head.ends_with(b"\r\n\r\n") {
        let byte = stream.read_u8().await.expect("read a response head");
        head.push(byte);
    }
    String::from_utf8(head).expect("ASCII head").trim_end().to_owned()
}

/// Reads until the server closes the connection (`Connection: close`) and parses the response.
async fn read_response(mut stream: TcpStream) -> TestResponse {
    let mut bytes = vec![];
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut bytes))
        .await
        .expect("a response within 30 s")
        .expect("read the response");
    parse_raw_response(&bytes)
}

/// Exactly the answer of a shed or timed-out request: 503, `Retry-After: 1`, the request id,
/// Dintero's error body and no other header (but `connection: close` answering a request that
/// asked for it).
#[track_caller]
fn assert_unavailable(response: &TestResponse, message: &str) {
    assert_unavailable_with(response, message, &[]);
}

#[track_caller]
fn assert_unavailable_with(response: &TestResponse, message: &str, extra: &[(&str, &str)]) {
    assert_error(response, 503, message, json!([]));
    assert_eq!(response.header("retry-after"), Some("1"));
    assert_uuid_v4(response.header("request-id").expect("request-id"));
    assert_eq!(response.header("content-length"), Some(response.text.len().to_string().as_str()));
    for (name, value) in extra {
        assert_eq!(response.header(name), Some(*value), "{name}");
    }
    let mut names: Vec<&str> = response.headers.keys().map(|name| name.as_str()).collect();
    names.sort_unstable();
    let mut expected = vec!["content-length", "content-type", "date", "request-id", "retry-after"];
    expected.extend(extra.iter().map(|(name, _)| *name));
    expected.sort_unstable();
    assert_eq!(names, expected);
}

/// The `/metrics` counters of requests the limits answered: (overloaded, timeout).
async fn rejected_counts(app: &TestApp) -> (u64, u64) {
    let metrics = app.send(reqwest::Method::GET, "/metrics", None, None, &[]).await;
    assert_eq!(metrics.status, 200);
    let count = |reason: &str| {
        let prefix = format!("tokenvault_http_requests_rejected_total{{reason=\"{reason}\"}} ");
        let line = metrics.text.lines().find(|line| line.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("no {prefix:?} in:\n{}", metrics.text))[prefix.len()..].parse().unwrap()
    };
    (count("overloaded"), count("timeout"))
}

async fn assert_healthy(app: &TestApp) {
    let response = app.send(reqwest::Method::GET, "/health", None, None, &[]).await;
    assert_json_eq(&response.expect_json(200), &json!({"status": "ok"}));
}

async fn requests_beyond_max_in_flight_are_shed_with_503_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.requests.max_in_flight = 2).await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;
    // Below the limit, requests are served.
    assert_healthy(&app).await;

    let first = HeldRequest::open(&app, &token, "held-1").await;
    // One place left: a request still gets through while one is held.
    assert_healthy(&app).await;
    let second = HeldRequest::open(&app, &token, "held-2").await;

    // Both places taken: every further request, on any route but `/health`, authenticated or
    // not, is refused at once. Queued, they would wait until a held request ends (when its body
    // comes, or at the 30 s request timeout) and then be served: both the status and the time
    // bound catch that. `/health` still answers, so a load balancer keeps a busy instance.
    for attempt in 0..3 {
        let started = Instant::now();
        assert_healthy(&app).await;
        let list = app.get(&customers_path(ACCOUNT), &token).await;
        assert_unavailable(&list, "the server is overloaded; retry shortly");
        let create = app.post_json(&customers_path(ACCOUNT), &token, &json!({"customer_id": "shed"})).await;
        assert_unavailable(&create, "the server is overloaded; retry shortly");
        assert!(started.elapsed() < Duration::from_secs(10), "attempt {attempt} took {:?}", started.elapsed());
    }
    // A request sent over a connection of its own (no pooled connection) is shed as well.
    let raw = app.raw(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").await;
    assert_unavailable_with(&raw, "the server is overloaded; retry shortly", &[("connection", "close")]);

    // The held requests were not disturbed: given their bodies, both complete.
    for (held, id) in [(first, "held-1"), (second, "held-2")] {
        let response = held.finish().await;
        let body = response.expect_json(200);
        assert_eq!(body["customer_id"], id, "{body}");
    }
    // Their places are free again (no leak): requests are served, up to the limit again.
    assert_healthy(&app).await;
    let list = app.get(&format!("{}?total=true", customers_path(ACCOUNT)), &token).await;
    let customers = list.expect_json(200);
    assert_eq!(list.header("total-count"), Some("2"));
    let ids: Vec<&str> = customers.as_array().unwrap().iter().map(|c| c["customer_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["held-1", "held-2"], "the shed create must not have run");
    let first = HeldRequest::open(&app, &token, "held-3").await;
    let second = HeldRequest::open(&app, &token, "held-4").await;
    let jwks = app.send(reqwest::Method::GET, "/.well-known/jwks.json", None, None, &[]).await;
    assert_unavailable(&jwks, "the server is overloaded; retry shortly");
    first.finish().await.expect_json(200);
    second.finish().await.expect_json(200);
    assert_healthy(&app).await;
    // Operators see the shedding: 3 × 2 requests, the raw one and the JWKS request.
    assert_eq!(rejected_counts(&app).await, (8, 0));
}

async fn a_request_that_outlasts_the_request_timeout_is_503_and_frees_its_place(backend: Backend) {
    const TIMEOUT: Duration = Duration::from_millis(1500);
    let app = spawn_app_with(backend, |config| {
        config.requests.max_in_flight = 1;
        config.requests.request_timeout = TIMEOUT;
    })
    .await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;

    let started = Instant::now();
    let held = HeldRequest::open(&app, &token, "slow").await;
    // The one place is taken meanwhile.
    let jwks = app.send(reqwest::Method::GET, "/.well-known/jwks.json", None, None, &[]).await;
    assert_unavailable(&jwks, "the server is overloaded; retry shortly");

    // The body never comes: the timeout ends the request with 503 (not a hang, not a 408/500).
    let response = held.wait().await;
    let waited = started.elapsed();
    assert_unavailable_with(&response, "the request took too long", &[("connection", "close")]);
    assert!(waited >= TIMEOUT, "answered after {waited:?}, before the {TIMEOUT:?} timeout");
    assert!(waited < TIMEOUT + Duration::from_secs(15), "answered only after {waited:?}");

    // The timed-out request gave its place back, and created nothing.
    assert_healthy(&app).await;
    let list = app.get(&format!("{}?total=true", customers_path(ACCOUNT)), &token).await;
    assert_json_eq(&list.expect_json(200), &json!([]));
    assert_eq!(list.header("total-count"), Some("0"));
    assert_eq!(rejected_counts(&app).await, (1, 1));
}

async fn one_address_cannot_take_every_place(backend: Backend) {
    let app = spawn_app_with(backend, |config| {
        config.requests.max_in_flight = 4;
        config.requests.max_in_flight_per_address = 2;
    })
    .await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;
    let first = HeldRequest::open_from(&app, "127.0.0.2", &token, "held-1").await;
    let second = HeldRequest::open_from(&app, "127.0.0.2", &token, "held-2").await;

    // 127.0.0.2 has its share: its next request is shed at once…
    let mut stream = connect_from(&app, "127.0.0.2").await;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
        customers_path(ACCOUNT)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let shed = read_response(stream).await;
    assert_unavailable_with(&shed, "the server is overloaded; retry shortly", &[("connection", "close")]);
    // …while another address is served (two places are left for everyone else).
    let list = app.get(&customers_path(ACCOUNT), &token).await;
    assert_json_eq(&list.expect_json(200), &json!([]));

    for (held, id) in [(first, "held-1"), (second, "held-2")] {
        assert_eq!(held.finish().await.expect_json(200)["customer_id"], id);
    }
    // Its places are back.
    let third = HeldRequest::open_from(&app, "127.0.0.2", &token, "held-3").await;
    assert_eq!(third.finish().await.expect_json(200)["customer_id"], "held-3");
    assert_eq!(rejected_counts(&app).await, (1, 0));
}

async fn a_trickling_body_is_408_at_its_deadline_and_frees_its_place(backend: Backend) {
    const DEADLINE: Duration = Duration::from_millis(1500);
    let app = spawn_app_with(backend, |config| {
        config.requests.max_in_flight = 1;
        config.requests.body_read_timeout = DEADLINE;
    })
    .await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;
    let body = br#"{"customer_id": "trickled", "email": "slow@example.com", "first_name": "Slow"}"#;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        customers_path(ACCOUNT),
        body.len()
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    // A byte every 100 ms: never idle, never done in time (the whole body would take 8 s).
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        for byte in body {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        writer
    });
    let mut bytes = vec![];
    tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut bytes)).await.expect("an answer").ok();
    let waited = started.elapsed();
    trickle.abort();
    let response = parse_raw_response(&bytes);
    assert_error(&response, 408, "the request body did not arrive in time", json!([]));
    assert!(waited >= DEADLINE && waited < DEADLINE + Duration::from_secs(5), "answered after {waited:?}");

    // Nothing was created and the one place is free again.
    let list = app.get(&customers_path(ACCOUNT), &token).await;
    assert_json_eq(&list.expect_json(200), &json!([]));
}
