//! Card `token` values at rest: AES-256-GCM with a random nonce, the account and token id as
//! associated data (so a ciphertext cannot be moved to another row), and a keyed fingerprint
//! for recognising a token already held without decrypting anything.
//!
//! Keys form a ring ([`keyring`]): key 0 is derived from the master key (`--encryption-key` or
//! the SQLite key file); `tokenvault keys rotate` adds random data keys, kept in the database
//! wrapped under the master key, and re-encrypts everything under the newest (`service::keys`).
//! Every sealed value names its key, so values under any key of the ring stay readable. JWT
//! signing keys are wrapped under the master key like data keys ([`signing`]).

pub mod backup_stream;
pub mod digest;
pub mod keyring;
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

use crate::domain::sealed::SealedToken;
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
}

/// Seals and opens card `token` values (and webhook secrets, and responses kept for idempotent
/// replay) with the key ring; keyed digests come from the master key and never rotate (they
/// are lookup keys: rotating them would orphan every stored fingerprint).
pub struct TokenCipher {
    /// Wraps the data keys kept in the database.
    wrapping: Aes256Gcm,
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
    pub fn from_master_key(master: &[u8; 32]) -> Self {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let aead_key = derive(b"tokenvault card-token encryption v1");
        let wrapping_key = derive(b"tokenvault data-key wrapping v1");
        Self {
            wrapping: Aes256Gcm::new(&wrapping_key.into()),
            ring: RwLock::new(Ring { keys: HashMap::from([(0, Aes256Gcm::new(&aead_key.into()))]), active: 0 }),
            fingerprint_key: derive(b"tokenvault card-token fingerprint v1"),
            request_key: derive(b"tokenvault idempotency request digest v1"),
            audit_chain_key: derive(b"tokenvault audit chain v1"),
            value_key: Aes256Gcm::new(&derive(b"tokenvault customer-token value encryption v1").into()),
            value_nonce_key: derive(b"tokenvault customer-token value index v1"),
            seals_values: AtomicBool::new(false),
        }
    }

    /// Parses a base64-encoded 32-byte key (`--encryption-key`).
    pub fn from_base64(encoded: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| CryptoError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::from_master_key(&key))
    }

    /// Reads the key file beside an embedded database, creating it (mode 0600) on first start.
    pub fn from_key_file(path: &Path) -> Result<Self, CryptoError> {
        let io_error = |source| CryptoError::KeyFile { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(encoded) => Self::from_base64(&encoded),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                write_private_file(path, &format!("{}\n", STANDARD.encode(key))).map_err(io_error)?;
                Ok(Self::from_master_key(&key))
            }
            Err(error) => Err(io_error(error)),
        }
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
