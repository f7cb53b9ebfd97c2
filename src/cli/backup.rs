//! `tokenvault backup`, `backup verify`, `backup new-key` and `restore`: messages on stderr, a JSON
//! result on stdout.

use std::path::Path;

use tokenvault::service::backup::{self, BackupError, BackupKey};
use tokenvault::service::keys::MasterKey;
use tokenvault::settings::{DatabaseUrl, ServeConfig};

use super::progress::ProgressBar;

/// `tokenvault backup --output FILE`.
pub async fn take(database_url: &DatabaseUrl, key: &BackupKey, output: &Path) -> Result<(), String> {
    let header = backup::backup_database(database_url, key, output)
        .await
        .map_err(|e| format!("backup failed (nothing was written to {}): {e}", output.display()))?;
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "backed up {} rows from {database_url} to {} ({bytes} bytes, backup key {})",
        header.rows(),
        output.display(),
        header.sealing.backup_key_id
    );
    print_json(&header)
}

/// `tokenvault backup verify FILE`.
pub async fn verify(file: &Path, key: Option<&BackupKey>, master: Option<&MasterKey>) -> Result<(), String> {
    let verified = backup::verify_backup(file, key, master).await.map_err(|e| failed("verify", file, e))?;
    let what = match (verified.opened, verified.master_key_checked) {
        (false, _) => "whole (checksum only: give --backup-key-file to open it)",
        (true, false) => "whole and opens with the backup key (give --encryption-key to check the master key too)",
        (true, true) => "whole, opens with the backup key, and its keys and sealed values open with the master key",
    };
    eprintln!("{}: {} rows, {what}", file.display(), verified.header.rows());
    print_json(&verified)
}

/// `tokenvault backup new-key --output FILE`.
pub fn new_key(output: &Path) -> Result<(), String> {
    let (key, text) = BackupKey::generate();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(output).map_err(|e| format!("cannot create {}: {e}", output.display()))?;
    std::io::Write::write_all(&mut file, format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    eprintln!("wrote backup key {} to {}", key.id(), output.display());
    Ok(())
}

/// `tokenvault restore FILE`.
pub async fn restore(file: &Path, key: &BackupKey, config: ServeConfig) -> Result<(), String> {
    let database_url = &config.database_url;
    let mut bar = ProgressBar::new();
    let restored = backup::restore_backup(file, key, database_url, config.master_key().as_ref(), |p| {
        bar.draw(p.done, p.total, &format!("restored {} of {} rows ({:<20})", p.done, p.total, p.table))
    })
    .await;
    bar.finish();
    let (header, summary, checked) = restored.map_err(|e| failed("restore", file, e))?;
    eprintln!(
        "restored {} rows from {} (taken {} from {}) into {database_url}",
        summary.rows,
        file.display(),
        header.sealing.created_at,
        header.source
    );
    if !checked && header.tables.get("card_tokens").and_then(|n| n.as_u64()).unwrap_or(0) > 0 {
        eprintln!(
            "note: the master key was not checked; start servers on this database with the source's \
             --encryption-key"
        );
    }
    print_json(&serde_json::json!({"rows": summary.rows, "tables": header.tables, "master_key_checked": checked}))
}

fn failed(what: &str, file: &Path, error: BackupError) -> String {
    format!("{what} of {} failed: {error}", file.display())
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    println!("{}", serde_json::to_string(value).map_err(|e| e.to_string())?);
    Ok(())
}
