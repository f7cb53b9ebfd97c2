//! Card `token` values at rest: AES-256-GCM with a random nonce, the account and token id as
//! associated data (so a ciphertext cannot be moved to another row), and a keyed fingerprint
//! for recognising a token already held without decrypting anything.

use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::domain::card_token::CardToken;
use crate::domain::AccountId;
use crate::store::{CardTokenRecord, SealedToken};

/// Format tag of sealed values, so a later key ring can tell versions apart.
const SEALED_V1: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the encryption key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("could not read or create the key file {path}: {source}")]
    KeyFile { path: String, source: std::io::Error },
    #[error("a stored card token could not be decrypted (wrong key or tampered data)")]
    Undecryptable,
}

/// Seals and opens card `token` values (and responses kept for idempotent replay) with keys
/// derived from one 32-byte master key.
pub struct TokenCipher {
    aead: Aes256Gcm,
    fingerprint_key: [u8; 32],
    request_key: [u8; 32],
}

impl TokenCipher {
    pub fn from_master_key(master: &[u8; 32]) -> Self {
        let derive = |label: &[u8]| -> [u8; 32] {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(master).expect("HMAC takes any key length");
            mac.update(label);
            mac.finalize().into_bytes().into()
        };
        let aead_key = derive(b"tokenvault card-token encryption v1");
        Self {
            aead: Aes256Gcm::new(&aead_key.into()),
            fingerprint_key: derive(b"tokenvault card-token fingerprint v1"),
            request_key: derive(b"tokenvault idempotency request digest v1"),
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

    fn associated_data(account: &AccountId, id: &str) -> Vec<u8> {
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
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: context })
            .expect("AES-GCM encryption cannot fail below its 64 GiB message limit");
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        sealed.push(SEALED_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    pub fn open_bytes(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != SEALED_V1 {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = sealed[1..].split_at(NONCE_LEN);
        self.aead
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context })
            .map_err(|_| CryptoError::Undecryptable)
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

    /// A keyed hash of a token within its account: equal tokens, equal fingerprints.
    pub fn fingerprint(&self, account: &AccountId, token: &str) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.fingerprint_key).expect("HMAC takes any key length");
        mac.update(account.as_str().as_bytes());
        mac.update(b"\0");
        mac.update(token.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Splits a new card into what the store keeps: the card without its secret, and the
    /// sealed secret.
    pub fn seal_card(&self, mut card: CardToken) -> (CardToken, Option<SealedToken>) {
        let sealed = card.token.take().map(|token| self.seal(&card.account_id, &card.id, &token));
        (card, sealed)
    }

    /// Puts the decrypted `token` back into a stored card for the response.
    pub fn reveal(&self, record: CardTokenRecord) -> Result<CardToken, CryptoError> {
        let mut card = record.card;
        if let Some(sealed) = record.sealed_token {
            card.token = Some(self.open(&card.account_id, &card.id, &sealed)?);
        }
        Ok(card)
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
