//! Customers (`/v1/accounts/{aid}/customers/users`): the owners of customer tokens.

use super::{ServiceError, ServiceResult, Vault};
use crate::domain::customer::{Customer, CustomerFilter, NewCustomer};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

impl Vault {
    /// Refused when a live customer of the account already has this `customer_id`, e-mail or
    /// phone number.
    pub async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> ServiceResult<Customer> {
        Ok(self.store.create_customer(account, customer).await?)
    }

    /// The live customer with this `customer_id`.
    pub async fn customer(&self, account: &AccountId, customer_id: &str) -> ServiceResult<Customer> {
        self.store.get_customer(account, customer_id).await?.ok_or(ServiceError::NotFound("customer"))
    }

    /// E-mail prefixes match case-insensitively; a token filter's value is looked up in the form
    /// the database keeps it (sealed when values are sealed).
    pub async fn list_customers(
        &self,
        account: &AccountId,
        mut filter: CustomerFilter,
        page: &PageRequest,
    ) -> ServiceResult<Page<Customer>> {
        filter.email_prefix = filter.email_prefix.map(|email| email.to_lowercase());
        if let Some((token_type, value)) = filter.token.take() {
            let value = self.cipher.stored_value(account, &token_type, &value);
            filter.token = Some((token_type, value));
        }
        Ok(self.store.list_customers(account, &filter, page).await?)
    }

    /// Soft-deletes the live customer (and, with `delete_tokens`, its live tokens).
    pub async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
    ) -> ServiceResult<Customer> {
        Ok(self.store.delete_customer(account, customer_id, delete_tokens, actor, Timestamp::now()).await?)
    }
}
