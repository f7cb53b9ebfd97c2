//! Secrets as they are kept: what sealing produces and the store keeps, without either knowing
//! how the other works. Sealing and opening happen only in the services (see `crate::service`).

use super::Timestamp;

/// A card token's `token` as it is kept: AES-256-GCM ciphertext (bound to the account and id)
/// and a keyed fingerprint that lets imports recognise a token they already hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub ciphertext: Vec<u8>,
    pub fingerprint: String,
}

/// A data-encryption key as the database keeps it: wrapped (AES-256-GCM) under the master key,
/// so the database alone never reveals it. Ids start at 1 (0 is the master key's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub id: u32,
    pub wrapped: Vec<u8>,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// The keys the database keeps, wrapped under a new master key: what rotating the master key
/// writes in one transaction (data keys by id, JWT signing keys by kid, and the root secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewrappedKeys {
    pub root: Vec<u8>,
    pub data_keys: Vec<(u32, Vec<u8>)>,
    pub signing_keys: Vec<(String, Vec<u8>)>,
}

impl RewrappedKeys {
    /// Whether these are exactly the keys the database holds (`data_key_ids`, `kids`, in any
    /// order): a key added since they were re-wrapped would be left under the old master key.
    pub fn cover(&self, data_key_ids: impl IntoIterator<Item = u32>, kids: impl IntoIterator<Item = String>) -> bool {
        fn sorted<T: Ord>(items: impl IntoIterator<Item = T>) -> Vec<T> {
            let mut items: Vec<T> = items.into_iter().collect();
            items.sort_unstable();
            items
        }
        sorted(data_key_ids) == sorted(self.data_keys.iter().map(|(id, _)| *id))
            && sorted(kids) == sorted(self.signing_keys.iter().map(|(kid, _)| kid.clone()))
    }
}

/// How customer token values are kept (`serve --seal-token-values`), a setting of the database
/// so that every instance on it agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenValueMode {
    Plain,
    /// New values are sealed; stored ones are being converted.
    Converting,
    Sealed,
}

impl TokenValueMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenValueMode::Plain => "plain",
            TokenValueMode::Converting => "converting",
            TokenValueMode::Sealed => "sealed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [TokenValueMode::Plain, TokenValueMode::Converting, TokenValueMode::Sealed]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
}
