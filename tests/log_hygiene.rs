//! Logs never contain secrets: the real server runs with debug logging (both formats, on SQLite
//! and on PostgreSQL, whose driver logs bound parameters at debug) while a client authenticates,
//! stores card tokens, customer tokens and a webhook secret, and makes failing calls; its whole
//! log output is then searched for every secret it saw.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/postgres.rs"]
mod pg;

const ACCOUNT: &str = "T12345678";
const ENCRYPTION_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Published test card numbers (and a Luhn-invalid one) entered for payment-token sessions.
const CARD_NUMBER: &str = "5555555555554444";
const BAD_CARD_NUMBER: &str = "5555555555554445";
const PAGE_CARD_NUMBER: &str = "4111111111111111";
/// A CVC: too short to search for alone, so searched for in the forms a log would show it.
const CVC: &str = "987";

async fn run_and_collect_logs(log_format: &str, database_url: &str) -> (String, Vec<String>) {
    let created = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["clients", "create", "--account", ACCOUNT, "--scopes", "admin:customers admin:checkout admin:hooks"])
        .args(["--database-url", database_url])
        .output()
        .unwrap();
    let credentials: Value = serde_json::from_slice(&created.stdout).unwrap();
    let (client_id, client_secret) = (
        credentials["client_id"].as_str().unwrap().to_owned(),
        credentials["client_secret"].as_str().unwrap().to_owned(),
    );

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--database-url", database_url])
        .args(["--encryption-key", ENCRYPTION_KEY, "--log-format", log_format])
        // The webhook subscription below names 127.0.0.1.
        .arg("--webhook-allow-private-targets")
        .env("TOKENVAULT_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read while the server runs: a full pipe would block its log writes, and with them the server.
    let mut stderr = server.stderr.take().unwrap();
    let log_reader = std::thread::spawn(move || {
        let mut logs = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut logs);
        logs
    });
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{url}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let audience = format!("https://api.dintero.com/v1/accounts/{ACCOUNT}");
    let token_body = json!({"grant_type": "client_credentials", "audience": audience});
    let response = http
        .post(format!("{url}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(&client_id, Some(&client_secret))
        .json(&token_body)
        .send()
        .await
        .unwrap();
    let access_token = response.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    // A wrong secret and a wrong bearer token must not be logged either.
    let wrong_secret = "wrong-secret-that-must-not-appear";
    http.post(format!("{url}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(&client_id, Some(wrong_secret))
        .json(&token_body)
        .send()
        .await
        .unwrap();
    let wrong_bearer = "eyJhbGciOiJub25lIn0.bogus-bearer-that-must-not-appear.";
    http.get(format!("{url}/v1/card-tokens")).bearer_auth(wrong_bearer).send().await.unwrap();

    let card_secret = "psp-card-token-that-must-not-appear";
    let customer_value = "customer-token-value-that-must-not-appear";
    let hook_secret = "webhook-secret-that-must-not-appear";
    let calls = [
        (
            "/v1/card-tokens".to_owned(),
            json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard", "token": card_secret}),
        ),
        (format!("/v1/accounts/{ACCOUNT}/customers/users"), json!({"customer_id": "c1"})),
        (
            format!("/v1/accounts/{ACCOUNT}/customers/users/c1/tokens"),
            json!({"type": "sha1:email", "value": customer_value}),
        ),
        (
            format!("/v1/accounts/{ACCOUNT}/customers/users/c1/tokens?x={customer_value}"),
            json!({"type": "", "value": customer_value}),
        ),
        (
            format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"),
            json!({"config": {"url": "http://127.0.0.1:9/hook", "secret": hook_secret}, "events": ["checkout_token_add"]}),
        ),
        (
            "/v1/card-tokens".to_owned(),
            json!({"card_brand": "visa", "payment_product_type": "x", "token": card_secret}),
        ),
    ];
    for (path, body) in calls {
        let status =
            http.post(format!("{url}{path}")).bearer_auth(&access_token).json(&body).send().await.unwrap().status();
        assert!(status.as_u16() < 500, "{path}: {status}");
    }
    // Card numbers and CVCs entered for payment-token sessions: through the completion call
    // (approved, and refused for a bad number) and through the session page's form.
    let session_body = json!({
        "session": {"order": {"currency": "NOK", "merchant_reference": "log-order"}, "url": {"return_url": "https://shop.example.com/r"}},
        "token_provider": {"payment_product_type": "dintero_psp.creditcard"},
    });
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let response = http
            .post(format!("{url}/v1/sessions/payment-token"))
            .bearer_auth(&access_token)
            .json(&session_body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        sessions.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    for (id, number) in [(&sessions[0], CARD_NUMBER), (&sessions[1], BAD_CARD_NUMBER)] {
        let card = json!({"number": number, "expiry": "12/39", "cvc": CVC});
        let status = http
            .post(format!("{url}/v1/sessions/{id}/complete"))
            .bearer_auth(&access_token)
            .json(&json!({"outcome": "approve", "card": card}))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status == 200 || status == 400, "{status}");
    }
    let page = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let submitted = page
        .post(format!("{url}/v1/view/{}", sessions[2]))
        .form(&[("outcome", "approve"), ("number", PAGE_CARD_NUMBER), ("expiry", "11/38"), ("cvc", CVC)])
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303);

    // The webhook worker tries (and fails) to deliver to the closed port in the meantime.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let _ = server.kill();
    let _ = server.wait();
    let logs = String::from_utf8_lossy(&log_reader.join().unwrap()).into_owned();
    let secrets = [
        client_secret,
        access_token,
        wrong_secret.to_owned(),
        wrong_bearer.to_owned(),
        card_secret.to_owned(),
        customer_value.to_owned(),
        hook_secret.to_owned(),
        ENCRYPTION_KEY.to_owned(),
        CARD_NUMBER.to_owned(),
        BAD_CARD_NUMBER.to_owned(),
        PAGE_CARD_NUMBER.to_owned(),
    ];
    (logs, secrets.to_vec())
}

async fn assert_no_secret_in_logs(log_format: &str, database_url: &str) {
    let (logs, secrets) = run_and_collect_logs(log_format, database_url).await;
    // The logs did record the traffic, so their silence about secrets means something.
    assert!(logs.contains("/v1/card-tokens") && logs.contains("starting tokenvault"), "{log_format}: {logs}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "{log_format} logs contain a secret ({}…):\n{logs}", &secret[..8]);
    }
    assert!(logs.contains("/v1/sessions/") && logs.contains("/v1/view/"), "{log_format}: the card calls are logged");
    for shown in [format!("\"{CVC}\""), format!("cvc={CVC}"), format!("cvc: {CVC}"), format!("cvc\\\":\\\"{CVC}")] {
        assert!(!logs.contains(&shown), "{log_format} logs contain the CVC ({shown}):\n{logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    for format in ["pretty", "json"] {
        let dir = tempfile::tempdir().unwrap();
        assert_no_secret_in_logs(format, &format!("sqlite://{}/tv.db", dir.path().display())).await;
    }
}

/// tokio-postgres logs each statement with its bound parameters (e-mails, phone numbers, token
/// values) at debug: the server keeps that target at info whatever `TOKENVAULT_LOG` says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_on_postgres() {
    if !pg::reachable_or_skip() {
        return;
    }
    let database = pg::TempDatabase::create().await;
    assert_no_secret_in_logs("json", &database.url).await;
}
