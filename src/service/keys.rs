//! The key ring's life beside the store: the cipher a process opens (the master key, or the key
//! file kept beside an embedded database), the data keys it reloads while serving, key rotation
//! with re-encryption of every sealed value, and the conversion of customer token values to their
//! sealed form. Everything here is safe beside running servers: values under any key of the ring
//! stay readable (servers load a key they lack on first sight), and each re-encrypted value
//! replaces the old one only if the row still holds it, so a concurrent change always wins.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::{ServiceError, ServiceResult, Vault};
use crate::crypto::hsm::{HsmKey, HsmKeyReport, HsmSettings};
use crate::crypto::shares;
use crate::crypto::{
    master_key_from_base64, master_key_from_file, sealed_prefix, CryptoError, MasterKeyMaterial, TokenCipher,
};
use crate::domain::sealed::{DataKeyRecord, TokenValueMode};
use crate::domain::Timestamp;
use crate::store::{ReplacedValue, Resealed, SealedColumn, Store, StoreError, ValueTable};

/// Values re-encrypted or converted per transaction.
const BATCH: u32 = 500;
/// Walks over the store before giving up on values that keep changing under the walk.
const MAX_PASSES: u32 = 3;
/// How often a server reloads the ring. `tokenvault keys rotate` waits longer than this before it
/// re-encrypts, so that by then every running server seals with the new key.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKey {
    /// Base64 of 32 bytes (`--encryption-key`).
    Given(String),
    /// A file beside an embedded database, created with a random key on first use.
    File(std::path::PathBuf),
    /// A key inside an HSM, reached through PKCS#11 (`--pkcs11-*`).
    Hsm(HsmSettings),
    /// The bytes rebuilt from shares entered into a sealed server.
    Rebuilt([u8; 32]),
}

impl MasterKey {
    /// The key itself: its bytes, or a session on the HSM that holds it.
    pub fn material(&self) -> Result<MasterKeyMaterial, CryptoError> {
        Ok(match self {
            Self::Given(key) => MasterKeyMaterial::Bytes(master_key_from_base64(key)?),
            Self::File(path) => MasterKeyMaterial::Bytes(master_key_from_file(path)?),
            Self::Hsm(settings) => MasterKeyMaterial::Hsm(HsmKey::open(settings)?),
            Self::Rebuilt(bytes) => MasterKeyMaterial::Bytes(*bytes),
        })
    }
}

/// The cipher of `master` without the store (no stored root, no data keys): what checks a copy
/// of a database (see [`TokenCipher::with_root_of`]).
pub fn load_cipher(master: &MasterKey) -> Result<TokenCipher, CryptoError> {
    match master.material()? {
        MasterKeyMaterial::Bytes(bytes) => Ok(TokenCipher::from_master_key(&bytes)),
        hsm => TokenCipher::unlock(hsm, None).map(|(cipher, _)| cipher),
    }
}

/// The cipher of a key file that already exists, or `None` (never creates one: a fresh key
/// would be the wrong one for data sealed elsewhere).
pub fn existing_key_file(path: &Path) -> Result<Option<TokenCipher>, CryptoError> {
    if path.exists() {
        TokenCipher::from_key_file(path).map(Some)
    } else {
        Ok(None)
    }
}

/// The cipher with the store's whole key ring loaded: what every process that seals or opens
/// values uses, so that values sealed after a rotation open and new ones use the newest key.
pub async fn open_cipher(master: &MasterKey, store: &dyn Store) -> ServiceResult<Arc<TokenCipher>> {
    let cipher = rooted_cipher(master, store).await?;
    refresh(store, &cipher).await?;
    Ok(Arc::new(cipher))
}

/// The cipher of `master` with the root the database keeps. An HSM key on a database without
/// one makes the root, but only on a database that holds no key yet: on one that does, the
/// root is the key file's key, which must be moved into the HSM by rotating the master key.
async fn rooted_cipher(master: &MasterKey, store: &dyn Store) -> ServiceResult<TokenCipher> {
    for _ in 0..2 {
        let material = master.material()?;
        let described = material.describe();
        let stored = store.master_root().await?;
        if stored.is_none() && matches!(material, MasterKeyMaterial::Hsm(_)) && holds_keyed_data(store).await? {
            return Err(ServiceError::Conflict(format!(
                "this database's master key is a key file or --encryption-key, not {described}: move it into the HSM with `tokenvault keys rotate-master --to-pkcs11` first"
            )));
        }
        let (cipher, new_root) = TokenCipher::unlock(material, stored.as_deref())?;
        let Some(wrapped) = new_root else { return Ok(cipher) };
        match store.insert_master_root(&wrapped, &described, "serve", Timestamp::now()).await {
            Ok(()) => return Ok(cipher),
            // Another instance made the root first: open with that one.
            Err(StoreError::Conflict(_)) => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(ServiceError::Conflict("the database's root key kept changing while it was opened".to_owned()))
}

/// The master key cut into shares (`tokenvault keys split`): the key's check value and one text
/// per share. An HSM key cannot be cut: its bytes never leave the HSM.
pub fn split_master_key(master: &MasterKey, threshold: u8, count: u8) -> ServiceResult<(String, Vec<String>)> {
    let MasterKeyMaterial::Bytes(bytes) = master.material()? else {
        return Err(ServiceError::Conflict("a master key inside an HSM cannot be cut into shares".to_owned()));
    };
    let shares = shares::split(&bytes, threshold, count).map_err(|e| {
        ServiceError::Invalid(crate::domain::validation::ValidationError::single("threshold", e.to_string()))
    })?;
    Ok((shares::key_check(&bytes), shares))
}

/// The master key the share texts rebuild, as `--encryption-key` takes it (`--share-file` of the
/// `keys` commands: a database served with `--unseal-with-shares` has no key file or flag).
pub fn rebuild_master_key(texts: &[String]) -> ServiceResult<String> {
    let invalid = |e: shares::ShareError| {
        ServiceError::Invalid(crate::domain::validation::ValidationError::single("share", e.to_string()))
    };
    let mut entered = Vec::new();
    for text in texts {
        entered = shares::accept(&entered, shares::KeyShare::parse(text).map_err(invalid)?).map_err(invalid)?;
    }
    Ok(STANDARD.encode(shares::combine(&entered).map_err(invalid)?))
}

/// Makes the master key in the HSM unless it is there (`tokenvault keys hsm-init`).
pub fn init_hsm_key(settings: &HsmSettings) -> ServiceResult<HsmKeyReport> {
    Ok(HsmKey::generate(settings)?)
}

/// Whether anything in the database hangs off the master key already: signing or data keys, a
/// sealed card token or webhook secret, sealed customer token values. Clients and unsealed rows
/// do not (their fingerprints aside, which only sealed card tokens have).
async fn holds_keyed_data(store: &dyn Store) -> ServiceResult<bool> {
    if !store.signing_keys().await?.is_empty()
        || !store.data_keys().await?.is_empty()
        || store.token_value_mode().await? != TokenValueMode::Plain
    {
        return Ok(true);
    }
    for column in SealedColumn::ALL {
        // No sealed value starts with 0xff: every one is listed.
        if !store.sealed_values(column, 0, &[0xff], 1).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What rotating the master key did (`tokenvault keys rotate-master`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MasterRotation {
    pub from: String,
    pub to: String,
    pub data_keys: usize,
    pub signing_keys: usize,
}

/// Loads the database's data keys into the ring, and follows its token-value mode.
async fn refresh(store: &dyn Store, cipher: &TokenCipher) -> ServiceResult<()> {
    let keys = store.data_keys().await?;
    cipher.install_data_keys(&keys)?;
    let mode = store.token_value_mode().await?;
    cipher.set_seals_values(mode != TokenValueMode::Plain);
    Ok(())
}

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

/// A data key as `tokenvault keys list` shows it (never its material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataKeySummary {
    pub id: u32,
    pub created_at: Timestamp,
    pub created_by: String,
    pub active: bool,
}

impl Vault {
    /// Makes sure every value in `sealed` can be opened, reloading the ring once if one names a
    /// key added since the last load.
    pub(super) async fn ensure_keys<'a>(&self, sealed: impl IntoIterator<Item = &'a [u8]>) -> ServiceResult<()> {
        if sealed.into_iter().all(|value| self.cipher.can_open(value)) {
            Ok(())
        } else {
            refresh(self.store.as_ref(), &self.cipher).await
        }
    }

    /// Reloads the ring every [`REFRESH_INTERVAL`] until aborted; a failed load is logged and
    /// retried on the next tick (the ring in hand stays valid: keys are never removed).
    pub fn spawn_key_refresher(&self) -> JoinHandle<()> {
        let (store, cipher) = (self.store.clone(), self.cipher.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                if let Err(error) = refresh(store.as_ref(), &cipher).await {
                    tracing::warn!(%error, "could not reload the encryption keys");
                }
            }
        })
    }

    /// The data keys, oldest first, with the one new values are sealed with marked.
    pub async fn data_keys(&self) -> ServiceResult<Vec<DataKeySummary>> {
        let active = self.cipher.active_key_id();
        Ok(self
            .store
            .data_keys()
            .await?
            .into_iter()
            .map(|key: DataKeyRecord| DataKeySummary {
                id: key.id,
                created_at: key.created_at,
                created_by: key.created_by,
                active: key.id == active,
            })
            .collect())
    }

    /// Adds a data key with the next free id and makes it this process's sealing key.
    pub async fn add_data_key(&self, actor: &str) -> ServiceResult<u32> {
        loop {
            let existing = self.store.data_keys().await?;
            self.cipher.install_data_keys(&existing)?;
            let id = existing.iter().map(|key| key.id).max().unwrap_or(0) + 1;
            let key = self.cipher.new_data_key(id, actor)?;
            match self.store.insert_data_key(&key).await {
                Ok(()) => {
                    self.cipher.install_data_keys(&[key])?;
                    return Ok(id);
                }
                // Another rotation took the id first: take the next one.
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Re-wraps every key the database keeps (data keys, JWT signing keys, the root) from this
    /// vault's master key to `new`, in one transaction; retried when a key was added meanwhile.
    /// Sealed values and fingerprints do not change (they hang off the root), so servers keep
    /// serving with the keys they hold; they need the new master key at their next start (and
    /// to load a data key added after this).
    pub async fn rotate_master_key(&self, new: &MasterKey, actor: &str) -> ServiceResult<MasterRotation> {
        loop {
            let old_root = self.store.master_root().await?;
            let data_keys: Vec<(u32, Vec<u8>)> =
                self.store.data_keys().await?.into_iter().map(|key| (key.id, key.wrapped)).collect();
            let signing_keys: Vec<(String, Vec<u8>)> =
                self.store.signing_keys().await?.into_iter().map(|key| (key.kid, key.private_key)).collect();
            let material = new.material()?;
            let to = material.describe();
            let from = self.cipher.master_description();
            if from == to {
                return Err(ServiceError::Conflict(format!("the new master key is the current one ({to})")));
            }
            let keys = self.cipher.rewrap(material, &data_keys, &signing_keys)?;
            match self.store.rewrap_master_key(old_root.as_deref(), &keys, &from, &to, actor, Timestamp::now()).await {
                Ok(()) => {
                    return Ok(MasterRotation {
                        from,
                        to,
                        data_keys: keys.data_keys.len(),
                        signing_keys: keys.signing_keys.len(),
                    })
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Re-seals every value not under the newest key of the ring, in batches of [`BATCH`],
    /// calling `progress` with the running total after each batch.
    pub async fn reencrypt(&self, mut progress: impl FnMut(u64)) -> ServiceResult<ReencryptReport> {
        let (store, cipher) = (self.store.as_ref(), self.cipher.as_ref());
        refresh(store, cipher).await?;
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
                    self.ensure_keys(batch.iter().map(|value| value.sealed.as_slice())).await?;
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

    /// Whether stored customer token values are still to be sealed: sealing was asked for, or a
    /// conversion was interrupted.
    pub async fn token_values_need_sealing(&self, asked: bool) -> ServiceResult<bool> {
        Ok(asked || self.store.token_value_mode().await? == TokenValueMode::Converting)
    }

    /// Turns sealing on (`serve --seal-token-values`), or finishes a conversion a crash
    /// interrupted: marks the database `converting` (every instance then seals new values and
    /// looks up sealed ones within [`REFRESH_INTERVAL`]), waits for the other instances to follow,
    /// converts every stored value in batches (each replacing the old one only if the row still
    /// holds it), then marks it `sealed`. Returns how many values were converted; does nothing
    /// once `sealed`.
    pub async fn seal_stored_values(&self, actor: &str) -> ServiceResult<u64> {
        let (store, cipher) = (self.store.as_ref(), self.cipher.as_ref());
        match store.token_value_mode().await? {
            TokenValueMode::Sealed => return Ok(0),
            TokenValueMode::Plain => {
                store.set_token_value_mode(TokenValueMode::Converting, actor, Timestamp::now()).await?;
                refresh(store, cipher).await?;
                tokio::time::sleep(REFRESH_INTERVAL * 2).await;
            }
            TokenValueMode::Converting => refresh(store, cipher).await?,
        }
        let mut converted = 0;
        for table in ValueTable::ALL {
            let mut after_row = 0;
            loop {
                let batch = store.token_values(table, after_row, BATCH).await?;
                let Some(last) = batch.last() else { break };
                after_row = last.row;
                let changes: Vec<ReplacedValue> = batch
                    .into_iter()
                    .filter(|stored| cipher.open_value(&stored.account, &stored.token_type, &stored.value).is_err())
                    .map(|stored| ReplacedValue {
                        row: stored.row,
                        new: cipher.seal_value(&stored.account, &stored.token_type, &stored.value),
                        old: stored.value,
                    })
                    .collect();
                if !changes.is_empty() {
                    converted += store.replace_token_values(table, &changes).await?;
                }
            }
        }
        store.set_token_value_mode(TokenValueMode::Sealed, actor, Timestamp::now()).await?;
        Ok(converted)
    }
}
