//! Issue 19's whole flow in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven through WebDriver, opens a payment-token session's `url` on a real
//! tokenvault, picks a published test card, submits, and is redirected to a local receiver's
//! `return_url`; the test then reads the transaction and the card token over the API and checks
//! the signed `checkout_token_add` webhook and the `callback_url` call the receiver got. The
//! page's accessibility basics (a label for every field, named buttons) and the decline button's
//! error redirect are checked in the same browser.
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the test prints `SKIPPED: …` and
//! passes, unless `TOKENVAULT_REQUIRE_BROWSER=1` (as `.ci/run` sets), where it fails.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{Method, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;
use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;
use thirtyfour::session::http::{Body, HttpClient};
use tokenvault::domain::AccountId;
use tokenvault::service::webhook_worker::WebhookSettings;
use tokenvault::settings::ServeConfig;

#[path = "support/receiver.rs"]
mod receiver;
use receiver::RunningReceiver;

const ACCOUNT: &str = "T12345678";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const REQUIRE: &str = "TOKENVAULT_REQUIRE_BROWSER";
/// Every wait (a page, a redirect, a delivery) gives up after this.
const PATIENCE: Duration = Duration::from_secs(30);
const HOOK_SECRET: &str = "browser-test-hook-secret";

/// Whether the browser is installed; prints the notice (or fails under `REQUIRE=1`) when not.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!("no {} (Debian packages chromium, chromium-driver)", missing.join(" and "));
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!("the browser test cannot run: {reason} ({REQUIRE}=1)");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED: the browser test: {reason} (set {REQUIRE}=1 to require it)");
    false
}

// ---- a receiver for return_url, callback_url and the webhook --------------------------------

// ---- chromedriver and the WebDriver client --------------------------------------------------

/// chromedriver on a free loopback port, killed (by its own process id) when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start(log: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let driver = Self { child, url };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(response) = http.get(format!("{}/status", driver.url)).send().await {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == json!(true) {
                    return driver;
                }
            }
            assert!(Instant::now() < deadline, "chromedriver did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// thirtyfour's HTTP client, lent by the reqwest the suite already has (thirtyfour's own is
/// reqwest of another major version).
#[derive(Clone)]
struct Lent(reqwest::Client);

#[async_trait::async_trait]
impl HttpClient for Lent {
    async fn send(&self, request: axum::http::Request<Body<'_>>) -> WebDriverResult<axum::http::Response<Bytes>> {
        let (parts, body) = request.into_parts();
        let mut outgoing = self.0.request(parts.method, parts.uri.to_string()).headers(parts.headers);
        if let Body::Json(json) = body {
            outgoing = outgoing.json(json);
        }
        let response = outgoing.send().await.map_err(|e| WebDriverError::RequestFailed(e.to_string()))?;
        let mut builder = axum::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            builder = builder.header(name, value);
        }
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| WebDriverError::UnknownResponse(status, e.to_string()))?;
        builder.body(bytes).map_err(|e| WebDriverError::UnknownResponse(status, e.to_string()))
    }

    async fn new(&self) -> Arc<dyn HttpClient> {
        Arc::new(self.clone())
    }
}

/// A headless Chromium session with a fresh profile in `profile`.
async fn browser(driver: &Chromedriver, profile: &Path) -> WebDriver {
    let mut capabilities = DesiredCapabilities::chrome();
    capabilities.set_binary(CHROMIUM).unwrap();
    for arg in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        &format!("--user-data-dir={}", profile.display()),
    ] {
        capabilities.add_arg(arg).unwrap();
    }
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let config = thirtyfour::common::config::WebDriverConfig::builder().build().unwrap();
    WebDriver::new_with_config_and_client(driver.url.clone(), capabilities, config, Lent(http))
        .await
        .expect("a Chromium session")
}

/// Waits until the browser's address starts with `prefix`, and returns it.
async fn wait_for_url(browser: &WebDriver, prefix: &str) -> url::Url {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let current = browser.current_url().await.unwrap();
        if current.as_str().starts_with(prefix) {
            return current;
        }
        assert!(Instant::now() < deadline, "the browser stayed at {current}, expected {prefix}…");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn query_of(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs().into_owned().collect()
}

// ---- the API ----------------------------------------------------------------------------------

struct Api {
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Api {
    async fn login(server: &tokenvault::app::RunningServer, scopes: &[&str]) -> Self {
        let account = AccountId::parse("aid", ACCOUNT).unwrap();
        let scopes = scopes.iter().map(|s| (*s).to_owned()).collect();
        let credentials =
            tokenvault::auth::clients::create_client(server.store.as_ref(), &account, scopes).await.unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let response = http
            .post(format!("{}/v1/accounts/{ACCOUNT}/auth/token", server.url()))
            .basic_auth(&credentials.client_id, Some(&credentials.client_secret))
            .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        Self { base: server.url(), http, token: body["access_token"].as_str().unwrap().to_owned() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    /// A new session whose return and callback URLs point at the receiver; returns `{id, url}`.
    async fn create_session(&self, receiver: &RunningReceiver, reference: &str) -> Value {
        let body = json!({
            "session": {
                "order": {"currency": "NOK", "merchant_reference": reference},
                "url": {"return_url": format!("{}/return", receiver.url), "callback_url": format!("{}/callback", receiver.url)},
                "customer": {"customer_id": "browser-customer"},
            },
            "token_provider": {"payment_product_type": "dintero_psp.creditcard"},
        });
        let (status, created) = self.call(Method::POST, "/v1/sessions/payment-token", Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{created}");
        created
    }
}

fn hmac_sha1_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Every form control of the page has a label the browser associates with it, every button has
/// an accessible name, and the document says its language and has a heading.
async fn assert_accessibility_basics(browser: &WebDriver) {
    let report = browser
        .execute(
            r#"
            const controls = Array.from(document.querySelectorAll('input, select, textarea'));
            return {
                lang: document.documentElement.lang,
                title: document.title,
                h1: document.querySelectorAll('h1').length,
                controls: controls.map(c => ({id: c.id, labels: Array.from(c.labels).map(l => l.textContent.trim())})),
                buttons: Array.from(document.querySelectorAll('button')).map(b => b.textContent.trim()),
            };
            "#,
            Vec::new(),
        )
        .await
        .unwrap();
    let report = report.json().clone();
    assert_eq!(report["lang"], json!("en"), "{report}");
    assert_eq!(report["h1"], json!(1), "{report}");
    assert!(!report["title"].as_str().unwrap().is_empty(), "{report}");
    let controls = report["controls"].as_array().unwrap();
    let ids: Vec<&str> = controls.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["pick", "number", "expiry", "cvc"], "{report}");
    for control in controls {
        let labels = control["labels"].as_array().unwrap();
        assert!(
            labels.len() == 1 && !labels[0].as_str().unwrap().is_empty(),
            "{}: no label the browser associates with it ({report})",
            control["id"]
        );
    }
    assert_eq!(report["buttons"], json!(["Approve", "Decline", "Fail", "Cancel"]), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_saved_in_headless_chromium_reaches_the_api_the_webhook_and_the_callback() {
    if !browser_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig::new(format!("sqlite://{}/tokenvault.db", dir.path().display()).parse().unwrap());
    // The receiver listens on 127.0.0.1, as a developer's would.
    config.webhooks =
        WebhookSettings { poll_interval: Duration::from_millis(50), allow_private_targets: true, ..Default::default() };
    let server = tokenvault::app::start(config).await.expect("tokenvault starts");
    let receiver = RunningReceiver::start().await;
    let api = Api::login(&server, &["admin:checkout", "admin:hooks"]).await;
    let (status, hook) = api
        .call(
            Method::POST,
            &format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"),
            Some(json!({"config": {"url": format!("{}/hook", receiver.url), "secret": HOOK_SECRET}, "events": ["checkout_token_add"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{hook}");

    let session = api.create_session(&receiver, "browser-order-1").await;
    let session_id = session["id"].as_str().unwrap().to_owned();
    let session_url = session["url"].as_str().unwrap().to_owned();
    assert_eq!(session_url, format!("{}/v1/view/{session_id}", server.url()));

    let driver = Chromedriver::start(&dir.path().join("chromedriver.log")).await;
    let profile = tempfile::tempdir().unwrap();
    let browser = browser(&driver, profile.path()).await;

    // The session page: accessible, and a published card picked from the list fills the number.
    browser.goto(&session_url).await.unwrap();
    assert_eq!(browser.title().await.unwrap(), "tokenvault test card");
    assert_accessibility_basics(&browser).await;
    let pick = SelectElement::new(&browser.find(By::Id("pick")).await.unwrap()).await.unwrap();
    pick.select_by_value("4111111111111111").await.unwrap();
    let number = browser.find(By::Id("number")).await.unwrap();
    assert_eq!(number.prop("value").await.unwrap().as_deref(), Some("4111111111111111"));
    browser.find(By::Id("expiry")).await.unwrap().send_keys("12/39").await.unwrap();
    browser.find(By::Id("cvc")).await.unwrap().send_keys("123").await.unwrap();
    browser.find(By::Css("button[value='approve']")).await.unwrap().click().await.unwrap();

    // Redirected to the merchant's return_url with Dintero's query.
    let landed = wait_for_url(&browser, &format!("{}/return?", receiver.url)).await;
    let query = query_of(&landed);
    let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["transaction_id", "merchant_reference", "session_id"], "{landed}");
    let transaction_id = query[0].1.clone();
    assert!(transaction_id.starts_with(&format!("{ACCOUNT}.")), "{landed}");
    assert_eq!(query[1].1, "browser-order-1");
    assert_eq!(query[2].1, session_id);
    let returned = receiver.wait_for("/return", 1).await;
    assert_eq!(returned[0].method, Method::GET);
    assert!(browser.source().await.unwrap().contains("back at the shop"));

    // The transaction, with its payment token, and the card token over the API.
    let (status, transaction) =
        api.call(Method::GET, &format!("/v1/transactions/{transaction_id}?includes=card.payment_token"), None).await;
    assert_eq!(status, StatusCode::OK, "{transaction}");
    assert_eq!(transaction["id"], json!(transaction_id));
    assert_eq!(transaction["session_id"], json!(session_id));
    assert_eq!(transaction["status"], json!("AUTHORIZED"));
    assert_eq!(transaction["card"]["masked_pan"], json!("411111******1111"));
    assert_eq!(transaction["card"]["expiry_date"], json!("12/2039"));
    let payment_token = transaction["card"]["payment_token"].as_str().expect("card.payment_token").to_owned();
    let token_id = transaction["card"]["payment_token_id"].as_str().unwrap().to_owned();
    let (status, cards) = api.call(Method::GET, "/v1/card-tokens", None).await;
    assert_eq!(status, StatusCode::OK, "{cards}");
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 1, "{cards:?}");
    let card = &cards[0];
    assert_eq!(card["id"], json!(token_id));
    assert_eq!(card["token"], json!(payment_token));
    assert_eq!(card["status"], json!("ACTIVE"));
    assert_eq!(card["card_brand"], json!("visa"));
    assert_eq!(card["masked_pan"], json!("411111******1111"));
    assert_eq!(card["pan_expiry_date"], json!("12/2039"));
    assert_eq!(card["transaction_id"], json!(transaction_id));
    assert_eq!(card["customer_id"], json!("browser-customer"));

    // The signed checkout_token_add webhook, carrying the card token without its secret.
    let delivery = receiver.wait_for("/hook", 1).await.remove(0);
    assert_eq!(delivery.method, Method::POST);
    assert_eq!(delivery.headers["event"], "checkout_token_add");
    assert_eq!(delivery.headers["event-signature"].to_str().unwrap(), hmac_sha1_hex(HOOK_SECRET, &delivery.body));
    let event: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(event["account_id"], json!(ACCOUNT));
    assert_eq!(event["event"], json!("checkout_token_add"));
    let mut expected = card.clone();
    expected.as_object_mut().unwrap().shift_remove("token");
    assert_eq!(event["token"], expected);
    assert!(!String::from_utf8_lossy(&delivery.body).contains(&payment_token));

    // The callback_url call: GET with Dintero's query.
    let callback = receiver.wait_for("/callback", 1).await.remove(0);
    assert_eq!(callback.method, Method::GET);
    let mut keys = callback.keys();
    keys.sort_unstable();
    assert_eq!(keys, ["merchant_reference", "session_id", "time", "transaction_id"]);
    assert_eq!(callback.param("transaction_id"), transaction_id);
    assert_eq!(callback.param("session_id"), session_id);
    assert_eq!(callback.param("merchant_reference"), "browser-order-1");

    // The decline button: Dintero's error redirect, no token.
    let declined = api.create_session(&receiver, "browser-order-2").await;
    let declined_id = declined["id"].as_str().unwrap().to_owned();
    browser.goto(declined["url"].as_str().unwrap()).await.unwrap();
    browser.find(By::Css("button[value='decline']")).await.unwrap().click().await.unwrap();
    let landed = wait_for_url(&browser, &format!("{}/return?", receiver.url)).await;
    assert_eq!(
        query_of(&landed),
        [
            ("error".to_owned(), "authorization".to_owned()),
            ("merchant_reference".to_owned(), "browser-order-2".to_owned()),
            ("session_id".to_owned(), declined_id),
        ]
    );
    let (_, cards) = api.call(Method::GET, "/v1/card-tokens", None).await;
    assert_eq!(cards.as_array().unwrap().len(), 1, "a decline stores no card: {cards}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received("/hook").len(), 1, "a decline announces nothing");
    assert_eq!(receiver.received("/callback").len(), 1, "no callback for a decline without report_error");

    browser.quit().await.unwrap();
    drop(driver);
    server.shutdown().await;
}
