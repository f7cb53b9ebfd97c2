use super::{AccountId, Timestamp};

/// An API client as stored: its secret only as an Argon2id hash (PHC string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: String,
    pub account_id: AccountId,
    pub secret_hash: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    /// Incremented by each secret rotation; access tokens carry the generation they were issued
    /// under and are refused once it is no longer this one (SECURITY.md, "API clients").
    pub secret_generation: i64,
}

/// A JWT signing key pair kept in the database so every instance signs and verifies alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub kid: String,
    /// The Ed25519 private key (PKCS#8 DER), sealed under the master key
    /// (`crypto::signing`); databases of older versions hold it in clear until a server seals it.
    pub private_key: Vec<u8>,
    /// The raw 32-byte Ed25519 public key.
    pub public_key: Vec<u8>,
    pub created_at: Timestamp,
}
