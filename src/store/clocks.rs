//! The clocks of test accounts (`sandbox/clock`): kept by the store so that every instance on one
//! database gives an account the same "now".

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::clock::AccountClock;
use crate::domain::{AccountId, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every
/// change of a clock appends its audit record in that same transaction.
#[async_trait]
pub trait ClockStore: Send + Sync {
    /// The account's clock; `None` when it runs on real time.
    async fn account_clock(&self, account: &AccountId) -> StoreResult<Option<AccountClock>>;

    /// Sets (or replaces) the account's clock.
    async fn set_account_clock(&self, clock: &AccountClock) -> StoreResult<()>;

    /// Returns the account to real time; `false` when it ran on real time already (nothing is
    /// audited then).
    async fn clear_account_clock(&self, account: &AccountId, actor: &str, at: Timestamp) -> StoreResult<bool>;
}
