//! How customer token values are kept, and the walk that converts stored values to that form.

use async_trait::async_trait;

use super::{ReplacedValue, StoreResult, StoredTokenValue, TokenValueMode, ValueTable};
use crate::domain::Timestamp;

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait TokenValueStore: Send + Sync {
    /// How customer token values are kept.
    async fn token_value_mode(&self) -> StoreResult<TokenValueMode>;

    /// Records the mode, audited as `token_values.mode` (account `""`).
    async fn set_token_value_mode(&self, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()>;

    /// Up to `limit` rows of `table` after `after_row` (by `seq`), oldest first.
    async fn token_values(&self, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>>;

    /// Writes each new value where the row still holds the old one, in one transaction; returns
    /// how many were replaced.
    async fn replace_token_values(&self, table: ValueTable, values: &[ReplacedValue]) -> StoreResult<u64>;
}
