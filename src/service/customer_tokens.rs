//! Customer tokens (seeds 000, 002, 003): their `value` kept as the database keeps values (sealed
//! with `--seal-token-values`) and always shown as the client gave it.

use super::{ServiceResult, Vault};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::{AccountId, Page, PageRequest};

impl Vault {
    /// Seed 003: stores a token for a live customer; `delete_token_events` clears the
    /// type/value's events in the same transaction.
    pub async fn create_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        mut token: NewCustomerToken,
        delete_token_events: bool,
    ) -> ServiceResult<CustomerToken> {
        token.value = self.cipher.stored_value(account, &token.token_type, &token.value);
        let stored = self.store.create_customer_token(account, customer_id, &token, delete_token_events).await?;
        Ok(self.cipher.shown_token(account, stored)?)
    }

    /// Seed 002: the customer's tokens, deleted ones included unless the filter says otherwise.
    pub async fn list_customer_tokens(
        &self,
        account: &AccountId,
        customer_id: &str,
        filter: &CustomerTokenFilter,
        page: &PageRequest,
    ) -> ServiceResult<Page<CustomerToken>> {
        let tokens = self.store.list_customer_tokens(account, customer_id, filter, page).await?;
        Ok(Page {
            items: tokens.items.into_iter().map(|t| self.cipher.shown_token(account, t)).collect::<Result<_, _>>()?,
            has_more: tokens.has_more,
            total: tokens.total,
        })
    }

    /// Seed 000: soft-deletes the token; repeating it returns the deleted token again.
    pub async fn delete_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token_id: &str,
        actor: &str,
    ) -> ServiceResult<CustomerToken> {
        let token =
            self.store.delete_customer_token(account, customer_id, token_id, actor, self.now(account).await?).await?;
        Ok(self.cipher.shown_token(account, token)?)
    }
}
