//! Sandbox conveniences for test accounts (`T…` only).

use super::{test_accounts_only, ServiceResult, Vault};
use crate::domain::{AccountId, Timestamp};
pub use crate::store::{ResetCounts, ResetParts};

impl Vault {
    /// Wipes the `parts` of a test account's data (see [`ResetParts`]); production accounts are
    /// refused.
    pub async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
    ) -> ServiceResult<ResetCounts> {
        test_accounts_only(account, "sandbox operations")?;
        Ok(self.store.reset_account(account, parts, actor, Timestamp::now()).await?)
    }
}
