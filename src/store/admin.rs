//! The store as a whole: its health, the audit trail, sandbox resets and its figures.

use async_trait::async_trait;

use super::{ResetCounts, ResetParts, StoreResult, StoreStats};
use crate::domain::audit::AuditRecord;
use crate::domain::{AccountId, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait AdminStore: Send + Sync {
    /// Succeeds when the database answers; drives `/health`.
    async fn ping(&self) -> StoreResult<()>;

    /// Audit records after `after_seq`, oldest first, optionally of one account.
    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>>;

    /// Wipes the `parts` of a (test) account's data in one transaction: customers, customer
    /// tokens and token events; card tokens; webhook subscriptions and their deliveries. Clients,
    /// signing keys and the audit trail stay; a `sandbox.reset` audit record with the counts is
    /// appended. The account's finished idempotency keys are forgotten too (claims in progress
    /// stay).
    async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ResetCounts>;

    /// Figures for `/metrics`: connection pool use and webhook deliveries waiting.
    async fn stats(&self) -> StoreResult<StoreStats>;
}
