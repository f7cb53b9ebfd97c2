//! A local HTTP receiver for what tokenvault sends out (webhook deliveries, session callbacks, a
//! browser's redirect to `return_url`): it records every request and answers 200 with a small
//! page. Included with `#[path]` by `tests/api/main.rs` and `tests/browser.rs`.

#![allow(dead_code)] // each test crate uses its part

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};

/// Every wait for a request gives up after this.
const PATIENCE: Duration = Duration::from_secs(30);

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    /// The query's pairs, in order.
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    /// The query's names, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.query.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The value of the query parameter `name`; fails the test when there is none.
    pub fn param(&self, name: &str) -> &str {
        self.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name}"))
    }
}

#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

async fn record(State(receiver): State<Receiver>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
    let query = url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()).into_owned().collect();
    receiver.0.lock().unwrap().push(Received { method, path: uri.path().to_owned(), query, headers, body });
    // A browser lands here after a redirect: a page it can show.
    "<!doctype html><title>merchant</title><p>back at the shop</p>".to_owned()
}

/// The receiver on a free loopback port, stopped when dropped.
pub struct RunningReceiver {
    pub url: String,
    receiver: Receiver,
    task: tokio::task::JoinHandle<()>,
}

impl RunningReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        let router = axum::Router::new().fallback(record).with_state(receiver.clone());
        let task = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Self { url, receiver, task }
    }

    /// What reached `path`, pings left out (every new subscription is pinged first).
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.receiver
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path && r.headers.get("event").is_none_or(|e| e != "ping"))
            .cloned()
            .collect()
    }

    /// Waits until `count` requests reached `path`; fails the test after 30 s.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
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
}

impl Drop for RunningReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
