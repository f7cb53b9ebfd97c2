//! `tokenvault listen` (as Stripe CLI's `listen`): receive a test account's webhook deliveries
//! on this machine and forward each to a local URL, with the headers and signature tokenvault
//! sent. The command runs a receiver on a loopback port, subscribes it through a running
//! server's hooks API (over HTTP, with an API client's credentials, as any integration would),
//! prints one line per delivery with the local receiver's status, answers tokenvault with that
//! status (so a failing receiver sees tokenvault's retries), and deletes its subscription on
//! SIGINT or SIGTERM. The subscription's signing secret is kept in a file and reused by the
//! next run, so the receiver's configuration stays valid, unless `--new-secret`.
//!
//! The server must be allowed to deliver to loopback addresses (`serve --dev` or
//! `--webhook-allow-private-targets`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use serde_json::{json, Value};

use tokenvault::domain::webhook::EVENTS;
use tokenvault::domain::AccountId;

/// Forward a test account's webhook deliveries to a local URL until interrupted.
#[derive(clap::Args)]
pub struct ListenArgs {
    /// The test account (`T…`).
    #[arg(long)]
    account: String,
    /// Where each delivery is POSTed, with tokenvault's headers (`event`, `event-delivery`,
    /// `event-signature`) and body.
    #[arg(long)]
    forward_to: String,
    /// The running server.
    #[arg(long, env = "TOKENVAULT_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// An API client of the account with `admin:hooks` or `write:hooks`.
    #[arg(long, env = "TOKENVAULT_CLIENT_ID")]
    client_id: String,
    #[arg(long, env = "TOKENVAULT_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// The events to receive [default: every card-token event].
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// Where the receiver listens (a loopback address; port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The file keeping the signing secret between runs [default:
    /// `$XDG_CONFIG_HOME/tokenvault/listen-<account>.secret`, or under `~/.config`].
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Make a new signing secret instead of reusing the kept one.
    #[arg(long)]
    new_secret: bool,
}

pub async fn run(args: ListenArgs) -> Result<(), String> {
    let account = AccountId::parse("account", &args.account).map_err(|e| format!("--account {}", e.message))?;
    if !account.is_test() {
        return Err(format!("listen is only for test accounts (T…), not {account}"));
    }
    let events = if args.events.is_empty() { EVENTS.iter().map(|e| (*e).to_owned()).collect() } else { args.events };
    let secret_file = match args.secret_file {
        Some(path) => path,
        None => default_secret_file(&account)?,
    };
    let secret = signing_secret(&secret_file, args.new_secret)?;
    let server = args.url.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| format!("listen: {e}"))?;

    let listener =
        tokio::net::TcpListener::bind(args.listen).await.map_err(|e| format!("listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let forward = Forward { http: http.clone(), to: args.forward_to.clone() };
    let router = axum::Router::new().fallback(receive).with_state(forward);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let receiver = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });

    // Listened for before the subscription exists, so that a signal right after it is never
    // missed (the default action would leave the subscription behind).
    let stop_signal = StopSignal::install()?;
    let api = Api { http, server, account: account.clone() };
    let token = api.access_token(&args.client_id, &args.client_secret).await?;
    let subscription = api.subscribe(&token, &format!("http://{local}/"), &secret, &events).await?;
    println!(
        "Ready: forwarding {} of {account} to {} (subscription {subscription}; receiver http://{local}/; signing secret in {}). Ctrl-C to stop.",
        events.join(", "),
        args.forward_to,
        secret_file.display(),
    );

    stop_signal.wait().await;
    let removed = api.unsubscribe(&token, &subscription).await;
    let _ = stop.send(());
    let _ = receiver.await;
    removed?;
    println!("Removed subscription {subscription}.");
    Ok(())
}

/// The kept secret, or a new one (written owner-only) when there is none or one is asked for.
fn signing_secret(path: &Path, new: bool) -> Result<String, String> {
    if !new {
        match std::fs::read_to_string(path) {
            Ok(text) if (8..=256).contains(&text.trim().len()) => return Ok(text.trim().to_owned()),
            Ok(_) => return Err(format!("{} does not hold a signing secret (8 to 256 characters)", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        }
    }
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    write_private(path, &secret).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(secret)
}

/// Writes a file only its owner can read (replacing one that exists).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn default_secret_file(account: &AccountId) -> Result<PathBuf, String> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or("neither XDG_CONFIG_HOME nor HOME is set; give --secret-file")?,
        )
        .join(".config"),
    };
    Ok(base.join("tokenvault").join(format!("listen-{account}.secret")))
}

/// The running server's API, as this command uses it.
struct Api {
    http: reqwest::Client,
    server: String,
    account: AccountId,
}

impl Api {
    async fn access_token(&self, client_id: &str, client_secret: &str) -> Result<String, String> {
        let url = format!("{}/v1/accounts/{}/auth/token", self.server, self.account);
        let audience = format!("{}/v1/accounts/{}", self.server, self.account);
        let response = self
            .http
            .post(&url)
            .basic_auth(client_id, Some(client_secret))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json!({"grant_type": "client_credentials", "audience": audience}).to_string())
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let body = answer(response, &url).await?;
        body["access_token"].as_str().map(str::to_owned).ok_or_else(|| format!("POST {url}: no access_token"))
    }

    async fn subscribe(&self, token: &str, target: &str, secret: &str, events: &[String]) -> Result<String, String> {
        let url = format!("{}/v1/accounts/{}/hooks/subscriptions", self.server, self.account);
        let body = json!({"config": {"url": target, "secret": secret}, "events": events});
        let request = self.http.post(&url).bearer_auth(token).header(reqwest::header::CONTENT_TYPE, "application/json");
        let response = request.body(body.to_string()).send().await.map_err(|e| format!("POST {url}: {e}"))?;
        let created = answer(response, &url).await.map_err(|error| {
            if error.contains("config.url") {
                format!("{error} (start the server with --dev or --webhook-allow-private-targets)")
            } else {
                error
            }
        })?;
        created["id"].as_str().map(str::to_owned).ok_or_else(|| format!("POST {url}: no subscription id"))
    }

    async fn unsubscribe(&self, token: &str, id: &str) -> Result<(), String> {
        let url = format!("{}/v1/accounts/{}/hooks/subscriptions/{id}", self.server, self.account);
        let response =
            self.http.delete(&url).bearer_auth(token).send().await.map_err(|e| format!("DELETE {url}: {e}"))?;
        answer(response, &url).await.map(|_| ())
    }
}

/// The JSON body of a 2xx answer, or the server's error message.
async fn answer(response: reqwest::Response, url: &str) -> Result<Value, String> {
    let status = response.status();
    let bytes = response.bytes().await.unwrap_or_default();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status.is_success() {
        Ok(body)
    } else {
        let message = body["error"]["message"].as_str().unwrap_or("no error message");
        Err(format!("{url} answered {status}: {message}"))
    }
}

/// Where deliveries go on.
#[derive(Clone)]
struct Forward {
    http: reqwest::Client,
    to: String,
}

/// The headers a delivery carries that are the transport's, not tokenvault's.
const HOP_BY_HOP: [&str; 5] = ["host", "content-length", "connection", "transfer-encoding", "accept-encoding"];

/// One delivery: forwarded, printed, and answered with the local receiver's status (502 when it
/// could not be reached).
async fn receive(State(forward): State<Forward>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut request = forward.http.post(&forward.to).body(body);
    for (name, value) in &headers {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            request = request.header(name, value);
        }
    }
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
    let (event, delivery) = (text("event"), text("event-delivery"));
    let at = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            println!("{at} {event} {delivery} -> {} {}", forward.to, status.as_u16());
            StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        Err(error) => {
            println!("{at} {event} {delivery} -> {} failed: {error}", forward.to);
            StatusCode::BAD_GATEWAY
        }
    }
}

/// SIGINT (ctrl-c) or SIGTERM, listened for from [`StopSignal::install`] on.
struct StopSignal {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl StopSignal {
    fn install() -> Result<Self, String> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let interrupt = signal(SignalKind::interrupt()).map_err(|e| format!("listen: SIGINT: {e}"))?;
            let terminate = signal(SignalKind::terminate()).map_err(|e| format!("listen: SIGTERM: {e}"))?;
            Ok(Self { interrupt, terminate })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
