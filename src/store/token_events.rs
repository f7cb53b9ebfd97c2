//! Events recorded against token type/values.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait TokenEventStore: Send + Sync {
    /// Looks up a token type/value and, when `event` is given, records it first.
    async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<TokenDetail>;

    /// Type/values with events, oldest first; with `since`, only those updated at or after it,
    /// ordered by that update time.
    async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>>;
    /// Type/values whose events were deleted (cleared, or by `delete_token_events`) at or after
    /// `deleted_since`, in the order of their latest deletion (`?deleted_since=`).
    async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>>;

    /// Removes the events of a type/value; a given `delete_event` is then recorded alone.
    async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()>;
}
