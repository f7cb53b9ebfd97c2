//! Customers and their tokens.

use async_trait::async_trait;
use serde_json::{Map, Value};

use super::StoreResult;
use crate::domain::customer::{Customer, CustomerFilter, CustomerUpdate, NewCustomer};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// Part of the [`Store`](super::Store) contract: every method is one transaction, and every mutation
/// appends its audit record in that same transaction.
#[async_trait]
pub trait CustomerStore: Send + Sync {
    /// Duplicate when a live customer of the account already has this `customer_id`, e-mail (per
    /// customer type, case-insensitive) or phone number. The customer's `auto_tokens` are added
    /// in the same transaction (one whose type/value is live on another customer is left out).
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

    /// Applies a partial update (aid_customers_cid_put) to the live customer: merges the
    /// changes, keeps the derived columns in step, deletes `retired_auto_tokens` of the customer
    /// and adds its `auto_tokens` (one whose type/value is live on another customer is left
    /// out). NotFound("customer") without a live customer; Duplicate as for a create when the new
    /// e-mail (per type) or phone number is another live customer's.
    async fn update_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        update: &CustomerUpdate,
    ) -> StoreResult<Customer>;

    /// Gives the live customer `new_customer_id` (aid_customers_cid_change_customer_id_post) and
    /// records the change in its `metadata`; its tokens follow, as they belong to the customer
    /// row, not to the id. NotFound("customer") without a live customer; Duplicate(CustomerId)
    /// when a live customer (itself included) already has the new id.
    async fn change_customer_id(
        &self,
        account: &AccountId,
        customer_id: &str,
        new_customer_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer>;

    /// The account's customer settings as last put (aid_customers_atributes_get), if ever.
    async fn customer_settings(&self, account: &AccountId) -> StoreResult<Option<Map<String, Value>>>;

    /// Replaces the account's customer settings (aid_customers_atributes_put).
    async fn put_customer_settings(
        &self,
        account: &AccountId,
        settings: &Map<String, Value>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()>;

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
