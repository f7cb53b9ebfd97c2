//! `tokenvault listen`: the command subscribes a receiver of its own through a running server,
//! forwards every delivery to a local URL with tokenvault's headers and signature, prints each
//! with the local receiver's status, removes its subscription on SIGTERM, and keeps its signing
//! secret across runs unless `--new-secret`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use tokenvault::auth::clients::create_client;
use tokenvault::domain::AccountId;
use tokenvault::settings::ServeConfig;

#[path = "support/postgres.rs"]
mod pg;
#[path = "support/receiver.rs"]
mod receiver;

const ACCOUNT: &str = "T12345678";

/// A running `tokenvault listen`, its output read line by line; killed if the test fails.
struct Listen {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Everything the command wrote to stderr, once it has exited.
    errors: mpsc::Receiver<String>,
}

impl Listen {
    fn start(server: &str, client: &(String, String), forward_to: &str, secret_file: &str, new_secret: bool) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tokenvault"));
        command
            .args(["listen", "--account", ACCOUNT, "--forward-to", forward_to, "--url", server])
            // `=`: a generated secret may start with `-`.
            .arg(format!("--client-id={}", client.0))
            .arg(format!("--client-secret={}", client.1))
            .args(["--secret-file", secret_file])
            .env_remove("TOKENVAULT_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if new_secret {
            command.arg("--new-secret");
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        // Whatever the command complains about is shown where a test fails.
        let (errors_to, errors) = mpsc::channel();
        std::thread::spawn(move || {
            let lines: Vec<String> = BufReader::new(stderr).lines().map_while(Result::ok).collect();
            let _ = errors_to.send(lines.join("\n"));
        });
        Self { child, lines, errors }
    }

    /// The next line printed; fails the test after 30 s, with what the command wrote to stderr.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(error) => {
                let _ = self.child.kill();
                let status = self.child.wait().unwrap();
                let errors = self.errors.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!("no line from tokenvault listen ({error}; {status}): {errors}")
            }
        }
    }

    /// SIGTERM, then every line printed until the command exits; fails the test unless it exits
    /// 0.
    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        // Every line up to the end of its output (the reader ends there).
        let mut lines = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            lines.push(line);
        }
        let errors = self.errors.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
        assert!(status.success(), "tokenvault listen: {status}; printed {lines:?}; stderr: {errors}");
        lines
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hmac_sha1_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn subscriptions(http: &reqwest::Client, server: &str, token: &str) -> Vec<Value> {
    let url = format!("{server}/v1/accounts/{ACCOUNT}/hooks/subscriptions");
    http.get(url).bearer_auth(token).send().await.unwrap().json::<Vec<Value>>().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_forwards_signed_deliveries_and_unsubscribes_on_exit_on_sqlite() {
    listen_forwards_signed_deliveries_and_unsubscribes_on_exit(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_forwards_signed_deliveries_and_unsubscribes_on_exit_on_postgres() {
    if pg::reachable_or_skip() {
        listen_forwards_signed_deliveries_and_unsubscribes_on_exit(true).await;
    }
}

async fn listen_forwards_signed_deliveries_and_unsubscribes_on_exit(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let database = if postgres { Some(pg::TempDatabase::create().await) } else { None };
    let url = match &database {
        Some(database) => database.url.clone(),
        None => format!("sqlite://{}/tv.db", dir.path().display()),
    };
    let mut config = ServeConfig::new(url.parse().unwrap());
    if postgres {
        let key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0x5au8; 32]);
        config.encryption_key = Some(tokenvault::settings::Secret(key));
    }
    config.webhooks.allow_private_targets = true;
    let server = tokenvault::app::start(config).await.expect("server starts");
    let base = server.url();
    let account = AccountId::parse("aid", ACCOUNT).unwrap();
    let scopes = vec!["admin:hooks".to_owned(), "admin:checkout".to_owned()];
    let credentials = create_client(server.store.as_ref(), &account, scopes).await.unwrap();
    let client = (credentials.client_id.clone(), credentials.client_secret.clone());
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(&client.0, Some(&client.1))
        .json(&json!({"grant_type": "client_credentials", "audience": format!("{base}/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let local = receiver::RunningReceiver::start().await;
    let forward_to = format!("{}/hooks", local.url);
    let secret_file = dir.path().join("listen.secret");
    let secret_path = secret_file.to_str().unwrap();

    let mut listen = Listen::start(&base, &client, &forward_to, secret_path, false);
    let ready = listen.line();
    assert!(
        ready.starts_with(
            "Ready: forwarding checkout_token_add, checkout_token_update, checkout_token_delete of T12345678 to "
        ),
        "{ready}"
    );
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let subscribed = subscriptions(&http, &base, &token).await;
    assert_eq!(subscribed.len(), 1);
    let hid = subscribed[0]["id"].as_str().unwrap().to_owned();
    assert!(ready.contains(&format!("(subscription {hid};")), "{ready}");
    assert!(subscribed[0]["config"]["url"].as_str().unwrap().starts_with("http://127.0.0.1:"));

    // The new subscription's ping, forwarded like every delivery.
    let ping = listen.line();
    assert!(ping.contains(" ping ") && ping.ends_with(&format!("-> {forward_to} 200")), "{ping}");
    // A card-token event: forwarded with tokenvault's headers and signature.
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/sandbox/webhooks/trigger"))
        .bearer_auth(&token)
        .json(&json!({"event": "checkout_token_add"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let triggered: Value = response.json().await.unwrap();
    let forwarded = local.wait_for("/hooks", 1).await;
    let delivery = &forwarded[0];
    assert_eq!(delivery.headers["event"], "checkout_token_add");
    assert_eq!(delivery.headers["content-type"], "application/json");
    assert_eq!(delivery.headers["event-signature"].to_str().unwrap(), hmac_sha1_hex(&secret, &delivery.body));
    let body: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(body["token"]["id"], triggered["token_id"]);
    assert_eq!(body["event_delivery"], delivery.headers["event-delivery"].to_str().unwrap());
    let printed = listen.line();
    let event_delivery = delivery.headers["event-delivery"].to_str().unwrap();
    assert!(printed.ends_with(&format!(" checkout_token_add {event_delivery} -> {forward_to} 200")), "{printed}");

    // SIGTERM: the subscription is removed, and the command says so.
    let rest = listen.stop();
    assert_eq!(rest, [format!("Removed subscription {hid}.")]);
    assert_eq!(subscriptions(&http, &base, &token).await, Vec::<Value>::new());

    // The next run signs with the same secret; --new-secret makes another.
    let mut again = Listen::start(&base, &client, &forward_to, secret_path, false);
    again.line();
    assert_eq!(std::fs::read_to_string(&secret_file).unwrap(), secret);
    again.stop();
    let mut renewed = Listen::start(&base, &client, &forward_to, secret_path, true);
    renewed.line();
    let new_secret = std::fs::read_to_string(&secret_file).unwrap();
    assert_ne!(new_secret, secret);
    renewed.stop();
    assert_eq!(subscriptions(&http, &base, &token).await, Vec::<Value>::new());
    server.shutdown().await;
    drop(database);
}

#[test]
fn listen_refuses_production_accounts_and_missing_servers() {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["listen", "--account", "P12345678", "--forward-to", "http://127.0.0.1:9/x"])
        .args(["--client-id", "c", "--client-secret", "s", "--secret-file", "/nonexistent/x"])
        .env_remove("TOKENVAULT_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "tokenvault: listen is only for test accounts (T…), not P12345678\n"
    );
}
