//! The data keys of the ring: made and wrapped under the master key when a rotation adds one,
//! unwrapped when a process loads them from the database (`service::keys` reloads them while
//! serving, so that a rotation made by another process is followed).

use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use rand::RngCore;

use super::{CryptoError, TokenCipher};
use crate::domain::sealed::DataKeyRecord;
use crate::domain::Timestamp;

pub(super) fn wrapping_context(id: u32) -> Vec<u8> {
    let mut context = b"tokenvault data key\0".to_vec();
    context.extend_from_slice(&id.to_be_bytes());
    context
}

impl TokenCipher {
    /// A new random data key with id `id`, wrapped under the master key and bound to its id.
    pub fn new_data_key(&self, id: u32, created_by: &str) -> Result<DataKeyRecord, CryptoError> {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let wrapped = self.wrap_key(&wrapping_context(id), &key)?;
        Ok(DataKeyRecord { id, wrapped, created_at: Timestamp::now(), created_by: created_by.to_owned() })
    }

    /// Key material wrapped under the master key: `[nonce][ciphertext]`, with `context` (which
    /// names the kind of key and its id) as associated data. Fails only where an HSM does.
    pub(super) fn wrap_key(&self, context: &[u8], key: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.wrapping.wrap(context, key)
    }

    /// The key [`TokenCipher::wrap_key`] wrapped with the same `context`, or `None` when it does
    /// not open (another master key, another context, or altered bytes).
    pub(super) fn unwrap_key(&self, context: &[u8], wrapped: &[u8]) -> Result<Option<Vec<u8>>, CryptoError> {
        self.wrapping.unwrap(context, wrapped)
    }

    /// Adds the keys not held yet and makes the newest one the sealing key. Fails, adding none,
    /// when a key does not unwrap: the master key is not the database's.
    pub fn install_data_keys(&self, keys: &[DataKeyRecord]) -> Result<(), CryptoError> {
        let missing: Vec<&DataKeyRecord> = {
            let ring = self.ring.read().expect("the key ring lock is never poisoned");
            keys.iter().filter(|key| !ring.keys.contains_key(&key.id)).collect()
        };
        let mut unwrapped = Vec::with_capacity(missing.len());
        for key in missing {
            if key.id == 0 {
                return Err(CryptoError::WrongMasterKey(key.id));
            }
            let plain =
                self.unwrap_key(&wrapping_context(key.id), &key.wrapped)?.ok_or(CryptoError::WrongMasterKey(key.id))?;
            let aead = Aes256Gcm::new_from_slice(&plain).map_err(|_| CryptoError::WrongMasterKey(key.id))?;
            unwrapped.push((key.id, aead));
        }
        let mut ring = self.ring.write().expect("the key ring lock is never poisoned");
        for (id, aead) in unwrapped {
            ring.keys.insert(id, aead);
        }
        ring.active = ring.keys.keys().copied().max().unwrap_or(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{sealed_key_id, sealed_prefix};
    use crate::domain::AccountId;

    #[test]
    fn values_sealed_under_any_key_of_the_ring_open_and_new_ones_use_the_newest() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let account = AccountId::parse("aid", "T12345678").unwrap();
        let before = cipher.seal(&account, "card-1", "psp-secret").ciphertext;
        assert_eq!(sealed_key_id(&before), Some(0));
        assert_eq!(before[0], 1, "an unrotated store keeps writing the original format");

        let key = cipher.new_data_key(1, "test").unwrap();
        assert!(!key.wrapped.is_empty());
        // Another process with the same master key loads the key from the database.
        let other = TokenCipher::from_master_key(&[7; 32]);
        let after_elsewhere = {
            cipher.install_data_keys(std::slice::from_ref(&key)).unwrap();
            cipher.seal(&account, "card-2", "psp-secret-2").ciphertext
        };
        assert_eq!(cipher.active_key_id(), 1);
        assert_eq!(sealed_key_id(&after_elsewhere), Some(1));
        assert!(after_elsewhere.starts_with(&sealed_prefix(1)));
        assert!(matches!(other.open(&account, "card-2", &after_elsewhere), Err(CryptoError::UnknownKey(1))));
        assert!(!other.can_open(&after_elsewhere));
        other.install_data_keys(&[key]).unwrap();
        assert_eq!(other.open(&account, "card-2", &after_elsewhere).unwrap(), "psp-secret-2");
        assert_eq!(other.open(&account, "card-1", &before).unwrap(), "psp-secret");
        assert_eq!(cipher.open(&account, "card-1", &before).unwrap(), "psp-secret");
    }

    #[test]
    fn a_data_key_does_not_unwrap_under_another_master_key_or_another_id() {
        let cipher = TokenCipher::from_master_key(&[7; 32]);
        let key = cipher.new_data_key(1, "test").unwrap();
        let stranger = TokenCipher::from_master_key(&[8; 32]);
        assert!(matches!(stranger.install_data_keys(std::slice::from_ref(&key)), Err(CryptoError::WrongMasterKey(1))));
        assert_eq!(stranger.active_key_id(), 0);
        let moved = DataKeyRecord { id: 2, ..key };
        assert!(matches!(cipher.install_data_keys(&[moved]), Err(CryptoError::WrongMasterKey(2))));
        assert_eq!(sealed_key_id(&[2, 0, 0, 0, 0]), None, "key 0 is never written in the v2 format");
        assert_eq!(sealed_key_id(&[9]), None);
    }
}
