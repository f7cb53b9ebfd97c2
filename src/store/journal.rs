//! The request journal of test accounts: appended in batches off the requests' path, listed
//! newest first, pruned by count and age. Diagnostic data: not audited, not exported.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::journal::{JournalEntry, JournalFilter};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction.
#[async_trait]
pub trait JournalStore: Send + Sync {
    /// Appends `entries` (already redacted) in one transaction.
    async fn append_journal(&self, entries: &[JournalEntry]) -> StoreResult<()>;

    /// An account's entries matching `filter`, newest first; `starting_after` names an entry id
    /// and leads to older ones.
    async fn list_journal(
        &self,
        account: &AccountId,
        filter: &JournalFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<JournalEntry>>;

    /// One entry of the account (`NotFound("request")` otherwise).
    async fn get_journal_entry(&self, account: &AccountId, id: &str) -> StoreResult<JournalEntry>;

    /// Removes every entry of the account; returns how many.
    async fn clear_journal(&self, account: &AccountId) -> StoreResult<u64>;

    /// Keeps the newest `max_entries` of each of `accounts` and removes every entry recorded
    /// before `older_than`; returns how many were removed.
    async fn prune_journal(&self, accounts: &[AccountId], max_entries: u64, older_than: Timestamp) -> StoreResult<u64>;
}
