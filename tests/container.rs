//! The container image, built from the repository's Dockerfile, run as a newcomer would: a named
//! volume for `/data`, a port published on 127.0.0.1, a client made inside the container, a
//! token and customer data through the published port, then a new container on the same volume
//! that finds the data again, and the image's health check.
//!
//! Needs podman. The image is `TOKENVAULT_CONTAINER_IMAGE` when set (`.ci/run` builds it first),
//! else `.ci/image` builds it (offline, on stand-in base images made from Debian packages).
//! Skips with a notice where podman is not installed, unless `TOKENVAULT_REQUIRE_CONTAINER=1`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/optional.rs"]
mod optional;

const ACCOUNT: &str = "T12345678";

fn podman(args: &[&str]) -> Output {
    Command::new("podman").args(args).output().expect("podman runs")
}

/// `podman ARGS`, which must succeed; its stdout.
fn podman_ok(args: &[&str]) -> String {
    let output = podman(args);
    assert!(
        output.status.success(),
        "podman {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Removes what the test made, whatever happens.
struct Cleanup {
    container: String,
    volume: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "--force", "--time", "2", &self.container]);
        let _ = podman(&["volume", "rm", "--force", &self.volume]);
    }
}

fn image() -> String {
    if let Ok(image) = std::env::var("TOKENVAULT_CONTAINER_IMAGE") {
        return image;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/image");
    let output = Command::new(script).stderr(std::process::Stdio::inherit()).output().expect(".ci/image runs");
    assert!(output.status.success(), ".ci/image failed ({})", output.status);
    String::from_utf8(output.stdout).unwrap().lines().last().expect("the image name").to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a container of `image` named `name` on `volume`, published on a free port of 127.0.0.1;
/// returns the base URL once `GET /health` answers 200.
async fn start(image: &str, name: &str, volume: &str, http: &reqwest::Client) -> String {
    let port = free_port();
    podman_ok(&[
        "run",
        "--detach",
        "--pull",
        "never",
        "--name",
        name,
        "--volume",
        &format!("{volume}:/data"),
        "--publish",
        &format!("127.0.0.1:{port}:8080"),
        image,
    ]);
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = http.get(format!("{base}/health")).send().await {
            assert_eq!(response.status(), 200);
            assert_eq!(response.text().await.unwrap(), r#"{"status":"ok"}"#);
            return base;
        }
        if Instant::now() > deadline {
            let logs = podman(&["logs", name]);
            panic!(
                "the container did not answer on {base} within 60 s:\n{}{}",
                String::from_utf8_lossy(&logs.stdout),
                String::from_utf8_lossy(&logs.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn token(http: &reqwest::Client, base: &str, client: &Value) -> String {
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/auth/token"))
        .basic_auth(client["client_id"].as_str().unwrap(), client["client_secret"].as_str())
        .json(&json!({"grant_type": "client_credentials", "audience": format!("https://api.dintero.com/v1/accounts/{ACCOUNT}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 86400);
    body["access_token"].as_str().unwrap().to_owned()
}

/// The customer's tokens as listed, with the server-set fields checked and blanked.
async fn list_tokens(http: &reqwest::Client, base: &str, token: &str, client_id: &str) -> Value {
    let response = http
        .get(format!("{base}/v1/accounts/{ACCOUNT}/customers/users/c1/tokens?total=true"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["total-count"], "1");
    let mut list: Value = response.json().await.unwrap();
    for item in list.as_array_mut().unwrap() {
        blank(item, &["id", "created_at", "updated_at"]);
        assert_eq!(item["created_by"], client_id);
    }
    list
}

/// Replaces each named field, which must be a non-empty string, with `"<field>"`.
fn blank(value: &mut Value, fields: &[&str]) {
    for field in fields {
        assert!(value[field].as_str().is_some_and(|s| !s.is_empty()), "{field} in {value}");
        value[field] = json!(format!("<{field}>"));
    }
}

#[tokio::test]
async fn the_image_serves_keeps_its_data_on_its_volume_and_reports_healthy() {
    if Command::new("podman").arg("--version").output().is_err() {
        optional::skip_or_require("TOKENVAULT_REQUIRE_CONTAINER", "the container test", "podman is not installed");
        return;
    }
    let image = image();
    let unique = format!(
        "tokenvault-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().as_millis()
    );
    let cleanup = Cleanup { container: unique.clone(), volume: unique.clone() };
    podman_ok(&["volume", "create", &cleanup.volume]);
    let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(10)).build().unwrap();
    let base = start(&image, &cleanup.container, &cleanup.volume, &http).await;

    // The server runs as the image's non-root user.
    assert_eq!(podman_ok(&["exec", &cleanup.container, "id", "-un"]), "tokenvault\n");

    // A client, made inside the container on the server's own database.
    let created = podman_ok(&[
        "exec",
        &cleanup.container,
        "tokenvault",
        "clients",
        "create",
        "--account",
        ACCOUNT,
        "--scopes",
        "admin:customers admin:checkout",
    ]);
    let mut client: Value = serde_json::from_str(&created).unwrap();
    let credentials = client.clone();
    let client_id = credentials["client_id"].as_str().unwrap();
    blank(&mut client, &["client_id", "client_secret"]);
    assert_eq!(
        client,
        json!({"client_id": "<client_id>", "client_secret": "<client_secret>", "account_id": ACCOUNT, "scopes": ["admin:customers", "admin:checkout"]})
    );

    // Through the published port: a token, a customer, a customer token, the list.
    let access = token(&http, &base, &credentials).await;
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/customers/users"))
        .bearer_auth(&access)
        .json(&json!({"customer_id": "c1", "email": "ada@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let customer: Value = response.json().await.unwrap();
    assert_eq!((&customer["customer_id"], &customer["email"]), (&json!("c1"), &json!("ada@example.com")));
    let stored = json!({"type": "sha1:email", "value": "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92", "token_id": "t1"});
    let response = http
        .post(format!("{base}/v1/accounts/{ACCOUNT}/customers/users/c1/tokens"))
        .bearer_auth(&access)
        .json(&stored)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let expected = json!([{
        "type": "sha1:email",
        "value": "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92",
        "id": "<id>",
        "created_at": "<created_at>",
        "created_by": client_id,
        "updated_at": "<updated_at>",
        "token_id": "t1"
    }]);
    assert_eq!(list_tokens(&http, &base, &access, client_id).await, expected);

    // The image's health check, as podman runs it, and the command behind it.
    let healthcheck: Value =
        serde_json::from_str(&podman_ok(&["image", "inspect", "--format", "{{json .Config.Healthcheck}}", &image]))
            .unwrap();
    assert_eq!(healthcheck["Test"], json!(["CMD", "tokenvault", "health"]));
    podman_ok(&["healthcheck", "run", &cleanup.container]);
    assert_eq!(podman_ok(&["inspect", "--format", "{{.State.Health.Status}}", &cleanup.container]), "healthy\n");
    assert_eq!(podman_ok(&["exec", &cleanup.container, "tokenvault", "health"]), "ok\n");

    // A new container on the same volume: the client, its token (the signing keys) and the data
    // are all still there.
    podman_ok(&["rm", "--force", "--time", "10", &cleanup.container]);
    let base = start(&image, &cleanup.container, &cleanup.volume, &http).await;
    assert_eq!(list_tokens(&http, &base, &access, client_id).await, expected);
    let fresh = token(&http, &base, &credentials).await;
    assert_eq!(list_tokens(&http, &base, &fresh, client_id).await, expected);
    podman_ok(&["healthcheck", "run", &cleanup.container]);
    drop(cleanup);
}
