//! API clients and the JWT signing keys their tokens are signed with.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::{AccountId, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Inserts a client, or replaces the secret hash and scopes of one with the same id.
    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()>;

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;

    /// Every client, or one account's, by client id (`tokenvault clients list`).
    async fn list_clients(&self, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>>;

    /// Removes the client, audited as `client.revoke` in its account; NotFound("client") when
    /// there is none. Its tokens are refused from then on (the key ring checks `sub`).
    async fn revoke_client(&self, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord>;

    /// Replaces the client's secret hash and increments its secret generation, audited as
    /// `client.rotate_secret`; returns the client as it now is. NotFound("client") when there is
    /// none.
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ClientRecord>;

    /// All JWT signing keys, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;

    /// Writes `new` as the private key of `kid` where the row still holds `old` (start-up seals
    /// clear keys in place this way: of several instances doing it at once, one wins and the
    /// others find the key sealed); returns whether it wrote.
    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;
}
