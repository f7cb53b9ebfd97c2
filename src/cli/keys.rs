//! `tokenvault keys`: rotation of the encryption key ring, beside running servers.

use std::time::Duration;

use tokenvault::app;
use tokenvault::settings::ServeConfig;

use super::progress::ProgressBar;

/// Who the audit trail names for a rotation made from the command line.
const ACTOR: &str = "cli:keys rotate";

pub enum Action {
    Rotate { grace_seconds: u64 },
    Reencrypt,
    List,
}

pub async fn run(action: Action, config: ServeConfig) -> Result<(), String> {
    let vault = app::open_vault(&config).await.map_err(|e| e.to_string())?;
    match action {
        Action::List => {
            for key in vault.data_keys().await.map_err(|e| e.to_string())? {
                println!("{}", serde_json::to_string(&key).map_err(|e| e.to_string())?);
            }
            return Ok(());
        }
        Action::Rotate { grace_seconds } => {
            let id = vault.add_data_key(ACTOR).await.map_err(|e| e.to_string())?;
            eprintln!("added encryption key {id}; re-encrypting in {grace_seconds} s, once running servers use it");
            tokio::time::sleep(Duration::from_secs(grace_seconds)).await;
        }
        Action::Reencrypt => {}
    }
    let mut bar = ProgressBar::new();
    let report = vault
        .reencrypt(|done| {
            bar.draw(done, done, &format!("re-encrypted {done} values"));
        })
        .await;
    bar.finish();
    let report =
        report.map_err(|e| format!("re-encryption stopped: {e} (run `tokenvault keys reencrypt` to finish)"))?;
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    if report.remaining > 0 {
        return Err(format!(
            "{} values changed under every pass and are still under older keys: run `tokenvault keys reencrypt`",
            report.remaining
        ));
    }
    Ok(())
}
