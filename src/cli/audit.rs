//! `tokenvault audit verify` and `tokenvault audit checkpoint`: the audit trail's hash chain.

use tokenvault::app;
use tokenvault::service::audit_chain::Checkpoint;
use tokenvault::settings::ServeConfig;

/// `tokenvault audit verify [--checkpoint C]`: exits 1, naming the first break, when the chain is
/// broken.
pub async fn verify(config: ServeConfig, checkpoint: Option<&str>) -> Result<(), String> {
    let checkpoint = checkpoint.map(read_checkpoint).transpose()?;
    let vault = app::open_vault(&config).await.map_err(|e| e.to_string())?;
    let report = vault.verify_audit_chain(checkpoint.as_ref()).await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    match &report.first_break {
        None => {
            eprintln!(
                "audit chain intact: {} records chained{}, {} newer ones not chained yet",
                report.chained,
                if checkpoint.is_some() { " up to and past the checkpoint" } else { "" },
                report.unchained
            );
            Ok(())
        }
        Some(problem) => Err(format!(
            "the audit chain is broken at position {}{}: {}",
            problem.position,
            problem.seq.map(|seq| format!(" (record seq {seq})")).unwrap_or_default(),
            problem.reason
        )),
    }
}

/// `tokenvault audit checkpoint`.
pub async fn checkpoint(config: ServeConfig) -> Result<(), String> {
    let vault = app::open_vault(&config).await.map_err(|e| e.to_string())?;
    let head = vault.audit_checkpoint().await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&head).map_err(|e| e.to_string())?);
    Ok(())
}

/// A checkpoint given as JSON, or as a file holding it.
fn read_checkpoint(given: &str) -> Result<Checkpoint, String> {
    let text = match std::fs::read_to_string(given) {
        Ok(text) => text,
        Err(_) => given.to_owned(),
    };
    serde_json::from_str(text.trim()).map_err(|e| format!("--checkpoint: not {{\"position\":N,\"hash\":\"…\"}}: {e}"))
}
