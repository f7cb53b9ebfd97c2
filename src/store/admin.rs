//! The store as a whole: its health, the audit trail, sandbox resets and its figures.

use async_trait::async_trait;

use super::{ResetCounts, ResetParts, StoreResult, StoreStats};
use crate::domain::audit::{AuditRecord, ChainLink, NewAuditRecord};
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

    /// Appends one record on its own (the audit trail's reads; changes append theirs with the
    /// change).
    async fn append_audit(&self, record: NewAuditRecord) -> StoreResult<()>;

    /// Records not yet in the hash chain, oldest first.
    async fn unsealed_audit(&self, limit: u32) -> StoreResult<Vec<AuditRecord>>;

    /// The chain's last link; `None` before the first.
    async fn audit_chain_head(&self) -> StoreResult<Option<ChainLink>>;

    /// Gives the records `links` names (by `seq`) their links, in one transaction, if the chain
    /// still ends at `head` (position) and none of them has a link yet; `false` (nothing changed)
    /// when another sealer got there first. Sealers take turns; requests never wait for them.
    async fn extend_audit_chain(&self, head: Option<i64>, links: Vec<(i64, ChainLink)>) -> StoreResult<bool>;

    /// Chained records after position `after`, in chain order.
    async fn audit_chain(&self, after: i64, limit: u32) -> StoreResult<Vec<(AuditRecord, ChainLink)>>;

    /// How many records the chain does not hold yet.
    async fn count_unsealed_audit(&self) -> StoreResult<u64>;

    /// Wipes the `parts` of a (test) account's data in one transaction: customers, customer
    /// tokens and token events; card tokens; webhook subscriptions and their deliveries; fault rules. Clients,
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
