//! Customer token `value`s at rest (`serve --seal-token-values`): encrypted, yet still usable for
//! `type`+`value` lookups and uniqueness. The nonce is an HMAC of account, type and value (the
//! blind index, as in a synthetic-IV construction), so equal values seal to equal strings and
//! the database compares them as it compared plain values, while a string reveals nothing but
//! equality. The key is derived from the master key and does not rotate: these strings are
//! lookup keys. Token event values (the same type/value pairs) are sealed the same way.

use std::sync::atomic::Ordering;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::Nonce;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{CryptoError, TokenCipher, NONCE_LEN};
use crate::domain::customer_token::CustomerToken;
use crate::domain::token_event::TokenTypeValue;
use crate::domain::AccountId;

/// What every sealed value starts with.
pub const SEALED_VALUE_PREFIX: &str = "sv1:";

fn context(account: &AccountId, token_type: &str) -> Vec<u8> {
    format!("{account}\0{token_type}").into_bytes()
}

impl TokenCipher {
    /// The sealed form of a customer token's `value`: the same for the same account, type and
    /// value, different otherwise.
    pub fn seal_value(&self, account: &AccountId, token_type: &str, value: &str) -> String {
        let aad = context(account, token_type);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.value_nonce_key).expect("HMAC takes any key length");
        mac.update(&aad);
        mac.update(b"\0");
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let nonce = Nonce::from_slice(&digest[..NONCE_LEN]);
        let ciphertext = self
            .value_key
            .encrypt(nonce, Payload { msg: value.as_bytes(), aad: &aad })
            .expect("AES-GCM encryption cannot fail below its 64 GiB message limit");
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&ciphertext);
        format!("{SEALED_VALUE_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The plain value of a sealed one.
    pub fn open_value(&self, account: &AccountId, token_type: &str, sealed: &str) -> Result<String, CryptoError> {
        let encoded = sealed.strip_prefix(SEALED_VALUE_PREFIX).ok_or(CryptoError::Undecryptable)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| CryptoError::Undecryptable)?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .value_key
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &context(account, token_type) })
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)
    }

    /// Whether the database keeps customer token values sealed (as of the last refresh).
    pub fn seals_values(&self) -> bool {
        self.seals_values.load(Ordering::SeqCst)
    }

    /// Follows the database's token-value mode: seal new values from now on, or not.
    pub fn set_seals_values(&self, on: bool) {
        self.seals_values.store(on, Ordering::SeqCst);
    }

    /// A value as the store keeps it: sealed when the database seals values.
    pub fn stored_value(&self, account: &AccountId, token_type: &str, value: &str) -> String {
        if self.seals_values() {
            self.seal_value(account, token_type, value)
        } else {
            value.to_owned()
        }
    }

    /// A type/value as the store keeps it, for lookups.
    pub fn stored_token(&self, account: &AccountId, token: &TokenTypeValue) -> TokenTypeValue {
        TokenTypeValue {
            token_type: token.token_type.clone(),
            value: self.stored_value(account, &token.token_type, &token.value),
        }
    }

    /// A stored value as clients see it. A value that does not open is shown as it is when the
    /// database keeps values in clear (a client's value may start with the prefix) and is an
    /// error when it seals them (every value with the prefix was sealed here).
    pub fn shown_value(&self, account: &AccountId, token_type: &str, stored: String) -> Result<String, CryptoError> {
        if !stored.starts_with(SEALED_VALUE_PREFIX) {
            return Ok(stored);
        }
        match self.open_value(account, token_type, &stored) {
            Ok(plain) => Ok(plain),
            Err(_) if !self.seals_values() => Ok(stored),
            Err(error) => Err(error),
        }
    }

    pub fn shown_token(&self, account: &AccountId, mut token: CustomerToken) -> Result<CustomerToken, CryptoError> {
        token.value = self.shown_value(account, &token.token_type, token.value)?;
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_are_deterministic_per_account_and_type_and_open_only_there() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let account = AccountId::parse("aid", "T12345678").unwrap();
        let other = AccountId::parse("aid", "T87654321").unwrap();
        let sealed = cipher.seal_value(&account, "sha1:email", "a1b7c3");
        assert!(sealed.starts_with(SEALED_VALUE_PREFIX));
        assert!(!sealed.contains("a1b7c3"));
        assert_eq!(sealed, cipher.seal_value(&account, "sha1:email", "a1b7c3"));
        assert_ne!(sealed, cipher.seal_value(&account, "sha1:email", "a1b7c4"));
        assert_ne!(sealed, cipher.seal_value(&account, "sha1:phone", "a1b7c3"));
        assert_ne!(sealed, cipher.seal_value(&other, "sha1:email", "a1b7c3"));
        assert_ne!(sealed, TokenCipher::from_master_key(&[8; 32]).seal_value(&account, "sha1:email", "a1b7c3"));
        assert_eq!(cipher.open_value(&account, "sha1:email", &sealed).unwrap(), "a1b7c3");
        assert!(cipher.open_value(&account, "sha1:phone", &sealed).is_err());
        assert!(cipher.open_value(&other, "sha1:email", &sealed).is_err());
        assert!(cipher.open_value(&account, "sha1:email", "a1b7c3").is_err());
        assert!(cipher.open_value(&account, "sha1:email", "sv1:!!").is_err());

        // In clear mode a client's value that merely looks sealed is shown as it is.
        assert!(!cipher.seals_values());
        assert_eq!(cipher.stored_value(&account, "t", "v"), "v");
        assert_eq!(cipher.shown_value(&account, "t", "sv1:abc".into()).unwrap(), "sv1:abc");
        assert_eq!(cipher.shown_value(&account, "sha1:email", sealed.clone()).unwrap(), "a1b7c3");
        cipher.seals_values.store(true, Ordering::SeqCst);
        assert_eq!(cipher.stored_value(&account, "sha1:email", "a1b7c3"), sealed);
        assert!(cipher.shown_value(&account, "t", "sv1:abc".into()).is_err());
        assert_eq!(cipher.shown_value(&account, "t", "plain".into()).unwrap(), "plain");
    }
}
