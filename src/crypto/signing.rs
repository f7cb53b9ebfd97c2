//! JWT signing keys at rest: each Ed25519 private key (PKCS#8) is wrapped under the master key
//! as data keys are ([`super::keyring`]), with its key id as associated data, so the database,
//! a backup or an export alone signs nothing, and a sealed key copied to another row does not
//! open.

use super::{CryptoError, TokenCipher};

/// Format tag of a sealed signing key: `[3][nonce][ciphertext]`. A key stored before keys were
/// sealed is its bare PKCS#8 DER, which starts with 0x30 (a DER SEQUENCE): the two never meet.
const SEALED_SIGNING_KEY: u8 = 3;

fn signing_key_context(kid: &str) -> Vec<u8> {
    let mut context = b"tokenvault signing key\0".to_vec();
    context.extend_from_slice(kid.as_bytes());
    context
}

/// Whether a stored `signing_keys.private_key` is sealed (else it is a clear key of an older
/// version, which start-up seals in place).
pub fn is_sealed_signing_key(stored: &[u8]) -> bool {
    stored.first() == Some(&SEALED_SIGNING_KEY)
}

impl TokenCipher {
    /// Seals a signing key's PKCS#8 DER for the database, bound to its key id.
    pub fn seal_signing_key(&self, kid: &str, pkcs8: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut sealed = vec![SEALED_SIGNING_KEY];
        sealed.extend_from_slice(&self.wrap_key(&signing_key_context(kid), pkcs8)?);
        Ok(sealed)
    }

    /// The PKCS#8 DER of a sealed signing key. Fails for a clear key, and for one that does not
    /// open with this master key (the database's is another) or under this key id.
    pub fn open_signing_key(&self, kid: &str, stored: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if !is_sealed_signing_key(stored) {
            return Err(CryptoError::SigningKeyInClear(kid.to_owned()));
        }
        self.unwrap_key(&signing_key_context(kid), &stored[1..])?
            .ok_or_else(|| CryptoError::WrongMasterKeyForSigningKey(kid.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_signing_key_opens_only_with_its_master_key_and_its_kid() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let pkcs8 = [0x30u8; 48];
        let sealed = cipher.seal_signing_key("kid-1", &pkcs8).unwrap();
        assert!(is_sealed_signing_key(&sealed));
        assert!(!is_sealed_signing_key(&pkcs8), "a clear PKCS#8 key is not taken for a sealed one");
        assert!(!sealed.windows(16).any(|window| window == &pkcs8[..16]));
        assert_eq!(cipher.open_signing_key("kid-1", &sealed).unwrap(), pkcs8);
        assert!(matches!(
            cipher.open_signing_key("kid-2", &sealed),
            Err(CryptoError::WrongMasterKeyForSigningKey(kid)) if kid == "kid-2"
        ));
        assert!(matches!(
            TokenCipher::from_master_key(&[8; 32]).open_signing_key("kid-1", &sealed),
            Err(CryptoError::WrongMasterKeyForSigningKey(_))
        ));
        assert!(matches!(cipher.open_signing_key("kid-1", &pkcs8), Err(CryptoError::SigningKeyInClear(_))));
        // A wrapped data key is not a signing key, even under the same master key.
        let data_key = cipher.new_data_key(1, "test").unwrap();
        let mut disguised = vec![SEALED_SIGNING_KEY];
        disguised.extend_from_slice(&data_key.wrapped);
        assert!(cipher.open_signing_key("1", &disguised).is_err());
    }
}
