//! Fault rules of test accounts (`sandbox/faults`): kept by the store so that every instance on
//! one database applies the same rules, and counted by it, so that "the next N matches" and a
//! seeded probability's sequence hold across instances.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::fault::FaultRule;
use crate::domain::{AccountId, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every
/// change of the rules appends its audit record in that same transaction (counting a match does
/// not: it is the rule at work, not a change of it).
#[async_trait]
pub trait FaultStore: Send + Sync {
    /// Adds a rule; the account's rules expired by `rule.created_at` are deleted with it.
    async fn add_fault(&self, rule: &FaultRule) -> StoreResult<()>;

    /// The account's rules that have not expired at `now`, oldest first (used-up `times` rules
    /// included, with `remaining` 0).
    async fn list_faults(&self, account: &AccountId, now: Timestamp) -> StoreResult<Vec<FaultRule>>;

    /// Deletes one rule; `false` when the account has no rule of this id.
    async fn delete_fault(&self, account: &AccountId, id: Uuid, actor: &str, at: Timestamp) -> StoreResult<bool>;

    /// Deletes every rule of the account (expired ones too) and returns how many were live.
    async fn delete_faults(&self, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<u64>;

    /// Counts one matching request against a rule, atomically, in one statement: `matched` goes
    /// up by one and, for a `times` rule, `remaining` down by one, only while the rule exists, has
    /// not expired at `now` and (for `times`) has faults left. Returns the new `matched` (this
    /// request's number among the rule's matches, from 1), or `None` when nothing was counted.
    async fn count_fault_match(&self, account: &AccountId, id: Uuid, now: Timestamp) -> StoreResult<Option<i64>>;
}
