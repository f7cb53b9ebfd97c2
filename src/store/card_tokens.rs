//! Card tokens, whose secret `token` the store only ever sees sealed.

use async_trait::async_trait;

use super::{CardTokenDeletion, CardTokenRecord, ImportOutcome, SealedToken, StoreResult};
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait CardTokenStore: Send + Sync {
    /// Conflict when the account already has a card token with this `id` or fingerprint.
    async fn create_card_token(&self, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord>;

    /// Stores a batch in one transaction, skipping tokens already present.
    async fn import_card_tokens(&self, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>>;

    async fn get_card_token(&self, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>>;

    async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CardTokenRecord>>;

    /// Marks the token `DELETED` and erases its secret (the sealed `token` and its fingerprint)
    /// in the same transaction, keeping the record; deleting a deleted token returns it
    /// unchanged.
    async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> StoreResult<CardTokenRecord>;

    /// Conflict when [`CardTokenStatus::can_become`] refuses the move; setting the current
    /// status again is a no-op
    /// (but nothing, not even `DELETED`, may be set on a deleted token).
    async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CardTokenRecord>;
}
