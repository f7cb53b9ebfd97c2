//! `tokenvault unseal`: one share of the master key entered into a sealed server, as an operator
//! (a client holding `admin:vault`) over its API.

use std::io::Read;
use std::time::Duration;

/// Enter one share into a server started with `--unseal-with-shares`.
#[derive(clap::Args)]
pub struct UnsealArgs {
    /// The server's base URL.
    #[arg(long, env = "TOKENVAULT_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A file holding the share (as `keys split` wrote it); without it, the share is read from
    /// stdin, so that it appears in no command line.
    #[arg(long)]
    share_file: Option<std::path::PathBuf>,
    /// An operator client's id (it must hold `admin:vault`).
    #[arg(long, env = "TOKENVAULT_CLIENT_ID")]
    client_id: String,
    /// That client's secret.
    #[arg(long, env = "TOKENVAULT_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
}

pub async fn run(args: UnsealArgs) -> Result<(), String> {
    let share = match &args.share_file {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
        None => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).map_err(|e| format!("stdin: {e}"))?;
            text
        }
    };
    let url = format!("{}/v1/admin/unseal", args.url.trim_end_matches('/'));
    let client =
        reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().map_err(|e| e.to_string())?;
    let response = client
        .post(&url)
        .basic_auth(&args.client_id, Some(&args.client_secret))
        .header("content-type", "application/json")
        .body(serde_json::json!({"share": share.trim()}).to_string())
        .send()
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = response.status();
    let body = response.text().await.map_err(|e| format!("POST {url}: {e}"))?;
    if !status.is_success() {
        return Err(format!("POST {url} answered {status}: {body}"));
    }
    println!("{body}");
    Ok(())
}
