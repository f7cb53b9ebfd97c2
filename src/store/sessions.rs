//! Payment-token sessions and the transactions their approval creates.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::session::PaymentTokenSession;
use crate::domain::AccountId;

/// Part of the [`Store`](super::Store) contract: every method is one transaction.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn create_session(&self, session: &PaymentTokenSession) -> StoreResult<()>;

    async fn get_session(&self, account: &AccountId, id: &str) -> StoreResult<Option<PaymentTokenSession>>;

    /// The session whose approval created transaction `transaction_id`.
    async fn get_session_by_transaction(
        &self,
        account: &AccountId,
        transaction_id: &str,
    ) -> StoreResult<Option<PaymentTokenSession>>;

    /// Writes a completed session (status, transaction, card token) only if it is still
    /// `OPEN`; Conflict otherwise, so that a session is completed once.
    async fn complete_session(&self, session: &PaymentTokenSession) -> StoreResult<()>;
}
