//! `tokenvault health`: asks a running server's `GET /health` (the container image's
//! `HEALTHCHECK`, which needs no curl). Prints `ok` and exits 0 on 200; exits 1 otherwise.

use std::time::Duration;

/// Check that a server answers `GET /health` with 200 (exit 0), else exit 1.
#[derive(clap::Args)]
pub struct HealthArgs {
    /// The URL to ask [default: /health on the address TOKENVAULT_LISTEN names, 127.0.0.1 for a
    /// wildcard address, or http://127.0.0.1:8080/health].
    #[arg(long)]
    url: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
}

/// The default URL: the server's own listen address, asked on loopback when it is a wildcard.
fn default_url() -> String {
    let listen = std::env::var("TOKENVAULT_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listen = match listen.rsplit_once(':') {
        Some(("0.0.0.0" | "[::]" | "", port)) => format!("127.0.0.1:{port}"),
        _ => listen,
    };
    format!("http://{listen}/health")
}

pub async fn run(args: HealthArgs) -> Result<(), String> {
    let url = args.url.unwrap_or_else(default_url);
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(args.timeout))
        .build()
        .map_err(|e| format!("health: {e}"))?;
    let response = client.get(&url).send().await.map_err(|e| {
        let mut message = format!("health: GET {url} failed: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        message
    })?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("health: GET {url} answered {}", response.status()));
    }
    println!("ok");
    Ok(())
}
