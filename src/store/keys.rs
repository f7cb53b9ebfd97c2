//! The data-encryption keys and the walk over sealed values that re-encryption makes after a rotation.

use async_trait::async_trait;

use super::{DataKeyRecord, Resealed, SealedColumn, SealedValue, StoreResult};

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

    /// Writes each new value where the row still holds the old one (a row changed meanwhile is
    /// left as it is), in one transaction; returns how many were replaced.
    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64>;
}
