//! Customers and their tokens.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::customer::{Customer, CustomerFilter, NewCustomer};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Conflict when a live customer of the account already has this `customer_id`, e-mail (per
    /// customer type, case-insensitive) or phone number.
    async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> StoreResult<Customer>;

    /// The live (not deleted) customer with this `customer_id`.
    async fn get_customer(&self, account: &AccountId, customer_id: &str) -> StoreResult<Option<Customer>>;

    async fn list_customers(
        &self,
        account: &AccountId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Customer>>;

    /// Soft-deletes the live customer (and, with `delete_tokens`, its live tokens). NotFound
    /// when there is no live customer with this id.
    async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer>;

    /// NotFound("customer") without a live customer; Conflict on a live duplicate `token_id`
    /// for the customer or `type`+`value` in the account. With `delete_token_events`, the
    /// events of `type`+`value` are cleared in the same transaction.
    async fn create_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token: &NewCustomerToken,
        delete_token_events: bool,
    ) -> StoreResult<CustomerToken>;

    /// NotFound("customer") without a live customer; UnknownCursor for a foreign cursor.
    async fn list_customer_tokens(
        &self,
        account: &AccountId,
        customer_id: &str,
        filter: &CustomerTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CustomerToken>>;

    /// Soft-deletes the live token with this `token_id`. When only deleted ones exist, returns
    /// the latest of them unchanged (a safe retry); NotFound("token") when none ever existed.
    async fn delete_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CustomerToken>;
}
