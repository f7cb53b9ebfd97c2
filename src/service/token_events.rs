//! Token events (`/v1/accounts/{aid}/customers/tokens/events`): what is known about a token
//! type/value, with or without a customer.

use super::{ServiceResult, Vault};
use crate::domain::customer_settings::EventExpiry;
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue, DELETED_STATUS};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

impl Vault {
    /// Find / add: the type/value's details, recording `event` first when one is given.
    pub async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        now: Timestamp,
    ) -> ServiceResult<TokenDetail> {
        let token = self.cipher.stored_token(account, token);
        let mut detail = self.store.token_detail(account, &token, event, actor, now).await?;
        detail.token = detail.token.map(|token| self.cipher.shown_token(account, token)).transpose()?;
        let expiry = self.customer_settings(account).await?.event_expiry();
        EventExpiry::retain_live(&expiry, &mut detail.events, now);
        Ok(detail)
    }

    /// The account's `tokens.event_expiry` applied to a page of entries.
    async fn expire_events(
        &self,
        account: &AccountId,
        mut entries: Page<TokenEventEntry>,
    ) -> ServiceResult<Page<TokenEventEntry>> {
        let expiry = self.customer_settings(account).await?.event_expiry();
        let now = self.now(account).await?;
        for entry in &mut entries.items {
            EventExpiry::retain_live(&expiry, &mut entry.events, now);
        }
        Ok(entries)
    }

    /// Type/values with events, oldest first; with `since`, those updated at or after it.
    pub async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> ServiceResult<Page<TokenEventEntry>> {
        let entries = self.store.list_token_events(account, since, page).await?;
        self.expire_events(account, entries).await
    }

    /// Type/values whose events were deleted at or after `deleted_since` (`?deleted_since=`), in
    /// the order of their latest deletion.
    pub async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> ServiceResult<Page<TokenEventEntry>> {
        let entries = self.store.list_deleted_token_events(account, deleted_since, page).await?;
        self.expire_events(account, entries).await
    }

    /// Removes the events of a type/value; a given `event` is then recorded alone, as the
    /// `DELETED` event.
    pub async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<TokenEvent>,
        actor: &str,
        now: Timestamp,
    ) -> ServiceResult<()> {
        let token = self.cipher.stored_token(account, token);
        let delete_event = event.map(|event| TokenEvent { status: Some(DELETED_STATUS.to_owned()), ..event });
        Ok(self.store.clear_token_events(account, &token, delete_event.as_ref(), actor, now).await?)
    }
}
