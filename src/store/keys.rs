//! The data-encryption keys and the walk over sealed values that re-encryption makes after a rotation.

use async_trait::async_trait;

use super::{DataKeyRecord, Resealed, SealedColumn, SealedValue, StoreResult};
use crate::domain::sealed::RewrappedKeys;
use crate::domain::Timestamp;

/// The `vault_settings` entry that holds the root secret wrapped under the master key (base64),
/// absent while the master key is the root itself.
pub const MASTER_ROOT_SETTING: &str = "master_key_root";

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// The data-encryption keys, oldest first.
    async fn data_keys(&self) -> StoreResult<Vec<DataKeyRecord>>;

    /// Adds a data key, audited as `encryption_key.add` (account `""`: the whole installation);
    /// Conflict when its id is taken (a concurrent rotation won).
    async fn insert_data_key(&self, key: &DataKeyRecord) -> StoreResult<()>;

    /// Up to `limit` non-null values of `column` in rows after `after_row` (by `seq`) that do not
    /// start with `unless_prefix` (the active key's): what a re-encryption still has to do.
    async fn sealed_values(
        &self,
        column: SealedColumn,
        after_row: i64,
        unless_prefix: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>>;

    /// The root secret wrapped under the master key, when the database keeps one.
    async fn master_root(&self) -> StoreResult<Option<Vec<u8>>>;

    /// Keeps the first root secret, audited as `master_key.root_created`; Conflict when there is
    /// one already (another instance made it first: use that one).
    async fn insert_master_root(&self, wrapped: &[u8], master: &str, actor: &str, at: Timestamp) -> StoreResult<()>;

    /// Writes every key wrapped under a new master key, and the root, in one transaction audited
    /// as `master_key.rotate`. Conflict, writing nothing, when the root is no longer `old_root`,
    /// or the data keys or signing keys are not exactly those in `keys` (one was added meanwhile:
    /// re-wrap again).
    async fn rewrap_master_key(
        &self,
        old_root: Option<&[u8]>,
        keys: &RewrappedKeys,
        from: &str,
        to: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// Writes each new value where the row still holds the old one (a row changed meanwhile is
    /// left as it is), in one transaction; returns how many were replaced.
    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64>;
}
