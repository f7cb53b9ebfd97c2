//! Key rotation: add a data key to the ring, then re-encrypt every sealed value under it while
//! servers keep serving. Both halves are safe beside running servers: values under any key of the
//! ring stay readable (servers load a key they lack on first sight), and each re-encrypted value
//! replaces the old one only if the row still holds it, so a concurrent change always wins.

use serde::Serialize;

use super::{sealed_prefix, CryptoError, TokenCipher};
use crate::store::{Resealed, SealedColumn, Store, StoreError};

/// Values re-encrypted per transaction.
const BATCH: u32 = 500;
/// Walks over the store before giving up on values that keep changing under the walk.
const MAX_PASSES: u32 = 3;

/// What a re-encryption did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReencryptReport {
    /// The key every value is now sealed with.
    pub key_id: u32,
    pub resealed: u64,
    /// Values still under older keys (changed on every pass by a server that had not loaded the
    /// new key yet); running `tokenvault keys reencrypt` again takes them.
    pub remaining: u64,
}

/// Adds a data key with the next free id and makes it this cipher's sealing key.
pub async fn add_key(store: &dyn Store, cipher: &TokenCipher, actor: &str) -> Result<u32, CryptoError> {
    loop {
        let existing = store.data_keys().await?;
        cipher.install_data_keys(&existing)?;
        let id = existing.iter().map(|key| key.id).max().unwrap_or(0) + 1;
        let key = cipher.new_data_key(id, actor);
        match store.insert_data_key(&key).await {
            Ok(()) => {
                cipher.install_data_keys(&[key])?;
                return Ok(id);
            }
            // Another rotation took the id first: take the next one.
            Err(StoreError::Conflict(_)) => continue,
            Err(error) => return Err(error.into()),
        }
    }
}

/// Re-seals every value not under the newest key of the ring, in batches of [`BATCH`], calling
/// `progress` with the running total after each batch.
pub async fn reencrypt(
    store: &dyn Store,
    cipher: &TokenCipher,
    mut progress: impl FnMut(u64),
) -> Result<ReencryptReport, CryptoError> {
    cipher.refresh(store).await?;
    let key_id = cipher.active_key_id();
    let prefix = sealed_prefix(key_id);
    let mut report = ReencryptReport { key_id, ..Default::default() };
    for pass in 1..=MAX_PASSES {
        let mut found = 0;
        let mut resealed = 0;
        for column in SealedColumn::ALL {
            let mut after_row = 0;
            loop {
                let batch = store.sealed_values(column, after_row, &prefix, BATCH).await?;
                let Some(last) = batch.last() else { break };
                after_row = last.row;
                cipher.ensure_keys(store, batch.iter().map(|value| value.sealed.as_slice())).await?;
                let changes = batch
                    .iter()
                    .map(|value| {
                        let context = TokenCipher::associated_data(&value.account, &value.id);
                        let plain = cipher.open_bytes(&context, &value.sealed)?;
                        Ok(Resealed {
                            row: value.row,
                            old: value.sealed.clone(),
                            new: cipher.seal_bytes(&context, &plain),
                        })
                    })
                    .collect::<Result<Vec<_>, CryptoError>>()?;
                found += changes.len() as u64;
                resealed += store.replace_sealed_values(column, &changes).await?;
                progress(report.resealed + resealed);
            }
        }
        report.resealed += resealed;
        report.remaining = found - resealed;
        if report.remaining == 0 || pass == MAX_PASSES {
            break;
        }
    }
    Ok(report)
}
