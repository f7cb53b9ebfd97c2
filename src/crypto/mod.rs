//! Card `token` values at rest: AES-256-GCM with a random nonce, the account and token id as
//! associated data (so a ciphertext cannot be moved to another row), and a keyed fingerprint
//! for recognising a token already held without decrypting anything.
//!
//! Keys form a ring ([`keyring`]): key 0 and the keyed digests are derived from the root secret;
//! `tokenvault keys rotate` adds random data keys, kept in the database wrapped under the master
//! key, and re-encrypts everything under the newest (`service::keys`). Every sealed value names
//! its key, so values under any key of the ring stay readable. JWT signing keys are wrapped under
//! the master key like data keys ([`signing`]).
//!
//! The master key (`--encryption-key`, the SQLite key file, shares of it, or a key inside an
//! HSM: [`MasterKeyMaterial`]) wraps; the root secret derives. A database that never rotated its
//! master key and never used an HSM has no stored root: its root is the master key itself, as in
//! every version before these existed. Otherwise the database keeps the root wrapped under the
//! master key ([`TokenCipher::unlock`]), so that rotating the master key ([`TokenCipher::rewrap`])
//! re-wraps a handful of keys and changes no sealed value and no fingerprint.

pub mod backup_stream;
pub mod digest;
pub mod hsm;
pub mod keyring;
pub mod shares;
pub mod signing;
pub mod values;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::RwLock;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::sealed::{RewrappedKeys, SealedToken};
use crate::domain::AccountId;

/// Format tag of values sealed under key 0: `[1][nonce][ciphertext]` (the format before key
/// rotation existed, still written while no data key has been added).
const SEALED_V1: u8 = 1;
/// Format tag of values sealed under a data key: `[2][key id, u32 big-endian][nonce][ciphertext]`.
const SEALED_V2: u8 = 2;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("could not read or create the key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("a stored card token could not be decrypted (wrong key or tampered data)")]
    Undecryptable,
    /// The value names a key this process has not loaded (another instance or `tokenvault keys
    /// rotate` added it since): refresh the ring from the store and try again.
    #[error("a stored value is sealed with encryption key {0}, which this process does not have")]
    UnknownKey(u32),
    #[error("encryption key {0} in the database does not open with this master key (is --encryption-key the one the database was created with?)")]
    WrongMasterKey(u32),
    #[error("JWT signing key {0} in the database does not open with this master key (is --encryption-key the one the database was created with?)")]
    WrongMasterKeyForSigningKey(String),
    /// A signing key still in the clear form of older versions, where a sealed one is needed.
    #[error("JWT signing key {0} is stored in clear; start a server on the database once to seal it")]
    SigningKeyInClear(String),
    #[error("the database's root key does not open with this master key (it was rotated to {0}; is this the current master key?)")]
    WrongMasterKeyForRoot(String),
    #[error("HSM: {0}")]
    Hsm(String),
}

/// Where the master key is: its bytes (given, from a key file, or rebuilt from shares), or a key
/// inside an HSM that never leaves it.
pub enum MasterKeyMaterial {
    Bytes([u8; 32]),
    Hsm(hsm::HsmKey),
}

impl MasterKeyMaterial {
    /// How logs, errors and the audit trail name the key: a check value for bytes (see
    /// [`shares::key_check`]), the label for an HSM key.
    pub fn describe(&self) -> String {
        match self {
            Self::Bytes(bytes) => format!("key {}", shares::key_check(bytes)),
            Self::Hsm(key) => key.describe(),
        }
    }

    fn into_wrapping(self) -> Wrapping {
        match self {
            Self::Bytes(master) => {
                Wrapping::Local(Box::new(Aes256Gcm::new(&derive(&master, b"tokenvault data-key wrapping v1").into())))
            }
            Self::Hsm(key) => Wrapping::Hsm(std::sync::Arc::new(key)),
        }
    }
}

/// The master key at work: wraps and unwraps the keys the database keeps.
#[derive(Clone)]
enum Wrapping {
    Local(Box<Aes256Gcm>),
    Hsm(std::sync::Arc<hsm::HsmKey>),
}

impl Wrapping {
    fn wrap(&self, context: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        match self {
            Self::Local(aead) => {
                let mut nonce = [0u8; NONCE_LEN];
                rand::rngs::OsRng.fill_bytes(&mut nonce);
                let ciphertext = aead
                    .encrypt(Nonce::from_slice(&nonce), Payload { msg: key, aad: context })
                    .expect("AES-GCM encryption of a key cannot fail");
                let mut wrapped = nonce.to_vec();
                wrapped.extend_from_slice(&ciphertext);
                Ok(wrapped)
            }
            Self::Hsm(key_in_token) => key_in_token.wrap(context, key),
        }
    }

    fn unwrap(&self, context: &[u8], wrapped: &[u8]) -> Result<Option<Vec<u8>>, CryptoError> {
        match self {
            Self::Local(aead) => {
                if wrapped.len() < NONCE_LEN {
                    return Ok(None);
                }
                let (nonce, ciphertext) = wrapped.split_at(NONCE_LEN);
                Ok(aead.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context }).ok())
            }
            Self::Hsm(key_in_token) => key_in_token.unwrap(context, wrapped),
        }
    }
}

/// The associated data of the root secret wrapped under the master key.
const ROOT_CONTEXT: &[u8] = b"tokenvault root key v1";

fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Seals and opens card `token` values (and webhook secrets, and responses kept for idempotent
/// replay) with the key ring; keyed digests come from the master key and never rotate (they
/// are lookup keys: rotating them would orphan every stored fingerprint).
pub struct TokenCipher {
    /// Wraps the data keys kept in the database: the master key.
    wrapping: Wrapping,
    /// How the master key is named ([`MasterKeyMaterial::describe`]).
    master: String,
    /// What key 0 and the keyed digests derive from.
    root: [u8; 32],
    ring: RwLock<Ring>,
    fingerprint_key: [u8; 32],
    request_key: [u8; 32],
    audit_chain_key: [u8; 32],
    value_key: Aes256Gcm,
    value_nonce_key: [u8; 32],
    /// Whether customer token values are sealed: the database's mode, followed by `refresh`.
    seals_values: AtomicBool,
}

/// The keys this process can open with, and the one it seals with (the newest).
struct Ring {
    keys: HashMap<u32, Aes256Gcm>,
    active: u32,
}

impl TokenCipher {
    /// The cipher of a database with no stored root: the master key is the root too.
    pub fn from_master_key(master: &[u8; 32]) -> Self {
        let material = MasterKeyMaterial::Bytes(*master);
        let described = material.describe();
        Self::with_root(material.into_wrapping(), described, *master)
    }

    /// How the master key is named in logs and the audit trail (never anything of its bytes but
    /// a check value).
    pub fn master_description(&self) -> String {
        self.master.clone()
    }

    fn with_root(wrapping: Wrapping, master: String, root: [u8; 32]) -> Self {
        let derive = |label: &[u8]| derive(&root, label);
        let aead_key = derive(b"tokenvault card-token encryption v1");
        Self {
            wrapping,
            master,
            root,
            ring: RwLock::new(Ring { keys: HashMap::from([(0, Aes256Gcm::new(&aead_key.into()))]), active: 0 }),
            fingerprint_key: derive(b"tokenvault card-token fingerprint v1"),
            request_key: derive(b"tokenvault idempotency request digest v1"),
            audit_chain_key: derive(b"tokenvault audit chain v1"),
            value_key: Aes256Gcm::new(&derive(b"tokenvault customer-token value encryption v1").into()),
            value_nonce_key: derive(b"tokenvault customer-token value index v1"),
            seals_values: AtomicBool::new(false),
        }
    }

    /// The cipher of `master` on a database that keeps `stored_root` (the root secret wrapped
    /// under its master key), or none. Without one, key bytes are the root themselves (every
    /// database before roots existed); an HSM key, whose bytes are out of reach, gets a new random
    /// root, returned wrapped for the caller to store.
    pub fn unlock(
        master: MasterKeyMaterial,
        stored_root: Option<&[u8]>,
    ) -> Result<(Self, Option<Vec<u8>>), CryptoError> {
        let described = master.describe();
        match (master, stored_root) {
            (master, Some(wrapped)) => {
                let wrapping = master.into_wrapping();
                let root = wrapping
                    .unwrap(ROOT_CONTEXT, wrapped)?
                    .and_then(|root| <[u8; 32]>::try_from(root).ok())
                    .ok_or_else(|| CryptoError::WrongMasterKeyForRoot(described.clone()))?;
                Ok((Self::with_root(wrapping, described, root), None))
            }
            (MasterKeyMaterial::Bytes(master), None) => Ok((Self::from_master_key(&master), None)),
            (master, None) => {
                let mut root = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut root);
                let wrapping = master.into_wrapping();
                let wrapped = wrapping.wrap(ROOT_CONTEXT, &root)?;
                Ok((Self::with_root(wrapping, described, root), Some(wrapped)))
            }
        }
    }

    /// This cipher's master key with the root a copied database keeps (`wrapped_root`, found in
    /// an export or a backup): what checks the copy's sealed values. The data keys loaded so far
    /// come along (they are wrapped under the master key, not the root).
    pub fn with_root_of(&self, wrapped_root: &[u8]) -> Result<Self, CryptoError> {
        let root = self
            .wrapping
            .unwrap(ROOT_CONTEXT, wrapped_root)?
            .and_then(|root| <[u8; 32]>::try_from(root).ok())
            .ok_or_else(|| CryptoError::WrongMasterKeyForRoot("the master key given".to_owned()))?;
        let rooted = Self::with_root(self.wrapping.clone(), self.master.clone(), root);
        {
            let ring = self.ring.read().expect("the key ring lock is never poisoned");
            let mut new_ring = rooted.ring.write().expect("the key ring lock is never poisoned");
            for (id, key) in ring.keys.iter().filter(|(id, _)| **id != 0) {
                new_ring.keys.insert(*id, key.clone());
            }
            new_ring.active = ring.active;
        }
        rooted.set_seals_values(self.seals_values.load(std::sync::atomic::Ordering::Relaxed));
        Ok(rooted)
    }

    /// The database's keys (`data_keys`, `signing_keys` as stored) and the root wrapped under
    /// `new_master` instead: what rotating the master key writes. Every key is opened here first,
    /// so a key this cipher cannot open stops the rotation before anything is written.
    pub fn rewrap(
        &self,
        new_master: MasterKeyMaterial,
        data_keys: &[(u32, Vec<u8>)],
        signing_keys: &[(String, Vec<u8>)],
    ) -> Result<RewrappedKeys, CryptoError> {
        let described = new_master.describe();
        let new = Self::with_root(new_master.into_wrapping(), described, self.root);
        let data_keys = data_keys
            .iter()
            .map(|(id, wrapped)| {
                let plain = self
                    .unwrap_key(&keyring::wrapping_context(*id), wrapped)?
                    .ok_or(CryptoError::WrongMasterKey(*id))?;
                Ok((*id, new.wrap_key(&keyring::wrapping_context(*id), &plain)?))
            })
            .collect::<Result<_, CryptoError>>()?;
        let signing_keys = signing_keys
            .iter()
            .map(|(kid, sealed)| Ok((kid.clone(), new.seal_signing_key(kid, &self.open_signing_key(kid, sealed)?)?)))
            .collect::<Result<_, CryptoError>>()?;
        Ok(RewrappedKeys { root: new.wrapping.wrap(ROOT_CONTEXT, &self.root)?, data_keys, signing_keys })
    }

    /// Parses a base64-encoded 32-byte key (`--encryption-key`).
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        Ok(Self::from_master_key(&master_key_from_base64(encoded)?))
    }

    /// Reads the key file beside an embedded database, creating it (mode 0600) on first start.
    pub fn from_key_file(path: &Path) -> Result<Self, CryptoError> {
        Ok(Self::from_master_key(&master_key_from_file(path)?))
    }

    pub(crate) fn associated_data(account: &AccountId, id: &str) -> Vec<u8> {
        format!("{}\0{}", account, id).into_bytes()
    }

    /// Encrypts a card's `token`, bound to its account and id.
    pub fn seal(&self, account: &AccountId, id: &str, token: &str) -> SealedToken {
        let ciphertext = self.seal_bytes(&Self::associated_data(account, id), token.as_bytes());
        SealedToken { ciphertext, fingerprint: self.fingerprint(account, token) }
    }

    pub fn open(&self, account: &AccountId, id: &str, sealed: &[u8]) -> Result<String, CryptoError> {
        let plain = self.open_bytes(&Self::associated_data(account, id), sealed)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)
    }

    /// Encrypts any bytes bound to `context` (the associated data): opening needs the same
    /// context. Card tokens use `account\0id`; other uses start their context with a label of
    /// their own, so a ciphertext of one kind never opens as another.
    pub fn seal_bytes(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let ring = self.ring.read().expect("the key ring lock is never poisoned");
        let key = &ring.keys[&ring.active];
        let header = sealed_prefix(ring.active);
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = key
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: context })
            .expect("AES-GCM encryption cannot fail below its 64 GiB message limit");
        let mut sealed = Vec::with_capacity(header.len() + NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&header);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open_bytes(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let key_id = sealed_key_id(sealed).ok_or(CryptoError::Undecryptable)?;
        let rest = &sealed[sealed_prefix(key_id).len()..];
        if rest.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let ring = self.ring.read().expect("the key ring lock is never poisoned");
        let key = ring.keys.get(&key_id).ok_or(CryptoError::UnknownKey(key_id))?;
        key.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context })
            .map_err(|_| CryptoError::Undecryptable)
    }

    /// Whether this process holds the key `sealed` names (a value of an unknown format counts as
    /// known: opening it fails for its own reason).
    pub fn can_open(&self, sealed: &[u8]) -> bool {
        match sealed_key_id(sealed) {
            Some(id) => self.ring.read().expect("the key ring lock is never poisoned").keys.contains_key(&id),
            None => true,
        }
    }

    /// The key new values are sealed with.
    pub fn active_key_id(&self) -> u32 {
        self.ring.read().expect("the key ring lock is never poisoned").active
    }

    /// A keyed digest (HMAC-SHA256, hex) of `parts`, each length-prefixed so that no two lists
    /// of parts digest alike; used to recognise a repeated request without storing it.
    pub fn request_digest(&self, parts: &[&[u8]]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.request_key).expect("HMAC takes any key length");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        hex::encode(mac.finalize().into_bytes())
    }

    /// The audit chain's next link: a keyed hash over the previous link's hash and a record's
    /// bytes. Derived from the master key (like the fingerprints, it never rotates): without it
    /// nobody can forge a link, so an edited, removed or moved record shows.
    pub fn audit_link(&self, previous: &[u8], record: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.audit_chain_key).expect("HMAC takes any key length");
        mac.update(previous);
        mac.update(record);
        mac.finalize().into_bytes().to_vec()
    }

    /// A keyed hash of a token within its account: equal tokens, equal fingerprints.
    pub fn fingerprint(&self, account: &AccountId, token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key).expect("HMAC takes any key length");
        mac.update(account.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The 32 bytes of a base64-encoded master key (`--encryption-key`).
pub fn master_key_from_base64(encoded: &str) -> Result<[u8; 32], CryptoError> {
    let bytes = STANDARD.decode(encoded.trim()).map_err(|_| CryptoError::BadKey)?;
    bytes.try_into().map_err(|_| CryptoError::BadKey)
}

/// The master key in a key file, which is created (mode 0600, a random key) when missing.
pub fn master_key_from_file(path: &Path) -> Result<[u8; 32], CryptoError> {
    let io_error = |source| CryptoError::KeyFile { path: path.display().to_string(), source };
    match std::fs::read_to_string(path) {
        Ok(encoded) => master_key_from_base64(&encoded),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            write_private_file(path, &format!("{}\n", STANDARD.encode(key))).map_err(io_error)?;
            Ok(key)
        }
        Err(error) => Err(io_error(error)),
    }
}

/// The bytes every value sealed under `key_id` starts with.
pub fn sealed_prefix(key_id: u32) -> Vec<u8> {
    if key_id == 0 {
        vec![SEALED_V1]
    } else {
        let mut prefix = vec![SEALED_V2];
        prefix.extend_from_slice(&key_id.to_be_bytes());
        prefix
    }
}

/// The key a sealed value names, or `None` for bytes of no known format.
pub fn sealed_key_id(sealed: &[u8]) -> Option<u32> {
    match *sealed.first()? {
        SEALED_V1 => Some(0),
        SEALED_V2 => Some(u32::from_be_bytes(sealed.get(1..5)?.try_into().ok()?)).filter(|&id| id != 0),
        _ => None,
    }
}

fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_tokens_open_only_in_their_row() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let account = AccountId::parse("aid", "T12345678").unwrap();
        let sealed = cipher.seal(&account, "card-1", "psp-secret");
        assert!(!sealed.ciphertext.windows(10).any(|w| w == b"psp-secret"));
        assert_eq!(cipher.open(&account, "card-1", &sealed.ciphertext).unwrap(), "psp-secret");
        assert!(cipher.open(&account, "card-2", &sealed.ciphertext).is_err());
        let other = AccountId::parse("aid", "T87654321").unwrap();
        assert!(cipher.open(&other, "card-1", &sealed.ciphertext).is_err());
        assert_eq!(sealed.fingerprint, cipher.fingerprint(&account, "psp-secret"));
        assert_ne!(sealed.fingerprint, cipher.fingerprint(&other, "psp-secret"));
    }

    #[test]
    fn sealed_bytes_open_only_in_their_context_and_digests_separate_parts() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let sealed = cipher.seal_bytes(b"idempotency\0a", b"{\"token\":\"psp-secret\"}");
        assert!(!sealed.windows(10).any(|w| w == b"psp-secret"));
        assert_eq!(cipher.open_bytes(b"idempotency\0a", &sealed).unwrap(), b"{\"token\":\"psp-secret\"}");
        assert!(cipher.open_bytes(b"idempotency\0b", &sealed).is_err());
        assert!(TokenCipher::from_master_key(&[8; 32]).open_bytes(b"idempotency\0a", &sealed).is_err());

        let digest = cipher.request_digest(&[b"POST", b"/a", b"b"]);
        assert_eq!(digest.len(), 64);
        assert_eq!(digest, cipher.request_digest(&[b"POST", b"/a", b"b"]));
        assert_ne!(digest, cipher.request_digest(&[b"POST", b"/ab", b""]));
        assert_ne!(digest, TokenCipher::from_master_key(&[8; 32]).request_digest(&[b"POST", b"/a", b"b"]));
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tv.db.key");
        let account = AccountId::parse("aid", "T12345678").unwrap();
        let sealed = TokenCipher::from_key_file(&path).unwrap().seal(&account, "c", "secret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert_eq!(
            TokenCipher::from_key_file(&path).unwrap().open(&account, "c", &sealed.ciphertext).unwrap(),
            "secret"
        );
        assert!(matches!(TokenCipher::from_base64("c2hvcnQ="), Err(CryptoError::BadKey)));
    }
}
