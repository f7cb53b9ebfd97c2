//! `tokenvault keys`: rotation of the encryption key ring and of the master key, beside running
//! servers; the master key cut into shares, or made inside an HSM.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokenvault::app;
use tokenvault::service::backup::create_private;
use tokenvault::service::keys::{self, MasterKey};
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

/// `tokenvault keys hsm-init`: the master key made inside the HSM (unless there), and what the
/// token says of it.
pub fn hsm_init(config: &ServeConfig) -> Result<(), String> {
    let hsm = config.hsm.as_ref().ok_or("--pkcs11-module and --pkcs11-pin name the HSM")?;
    let report = keys::init_hsm_key(hsm).map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    Ok(())
}

/// `tokenvault keys split`: one file per share (mode 0600) in a directory made for them.
pub fn split(config: &ServeConfig, threshold: u8, count: u8, directory: &Path) -> Result<(), String> {
    let master = config.master_key().ok_or("the master key to cut: --encryption-key, or the SQLite key file")?;
    let (key, shares) = keys::split_master_key(&master, threshold, count).map_err(|e| e.to_string())?;
    std::fs::create_dir(directory).map_err(|e| format!("cannot create {}: {e}", directory.display()))?;
    let mut files = Vec::new();
    for (number, share) in shares.iter().enumerate() {
        let path = directory.join(format!("share-{}.txt", number + 1));
        let mut file = create_private(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        writeln!(file, "{share}").and_then(|()| file.sync_all()).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(path.display().to_string());
    }
    println!("{}", serde_json::json!({"key": key, "threshold": threshold, "shares": count, "files": files}));
    Ok(())
}

/// `tokenvault keys rotate-master`: from the configured master key to a key file (made when
/// missing) or into the HSM the `--pkcs11-*` settings name.
pub async fn rotate_master(
    mut config: ServeConfig,
    new_key_file: Option<PathBuf>,
    to_pkcs11: bool,
) -> Result<(), String> {
    let new = match (new_key_file, to_pkcs11) {
        (Some(path), false) => MasterKey::File(path),
        (None, true) => MasterKey::Hsm(config.hsm.take().ok_or("--to-pkcs11 needs --pkcs11-module and --pkcs11-pin")?),
        _ => return Err("give --new-key-file or --to-pkcs11".to_owned()),
    };
    let vault = app::open_vault(&config).await.map_err(|e| e.to_string())?;
    let rotation = vault.rotate_master_key(&new, "cli:keys rotate-master").await.map_err(|e| e.to_string())?;
    println!("{}", serde_json::to_string(&rotation).map_err(|e| e.to_string())?);
    eprintln!("every key is now wrapped under {}; restart each server with it", rotation.to);
    Ok(())
}
