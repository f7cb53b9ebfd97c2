//! Customers (`/v1/accounts/{aid}/customers/users`): the owners of customer tokens, and the
//! account's customer settings (`/v1/accounts/{aid}/customers/settings`).

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{ServiceError, ServiceResult, Vault};
use crate::crypto::digest::auto_token_value;
use crate::domain::customer::{Customer, CustomerFilter, CustomerUpdate, NewCustomer};
use crate::domain::customer_settings::{AutoTokenProperty, CustomerSettings};
use crate::domain::customer_token::NewCustomerToken;
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

impl Vault {
    /// Refused when a live customer of the account already has this `customer_id`, e-mail or
    /// phone number. The account's `auto_tokens` settings add tokens derived from the e-mail and
    /// phone number in the same transaction.
    pub async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> ServiceResult<Customer> {
        let settings = self.customer_settings(account).await?;
        let mut customer = customer.clone();
        for property in AutoTokenProperty::ALL {
            let source = customer.attributes.get(property.field()).and_then(Value::as_str);
            if let Some(source) = source {
                let tokens =
                    self.auto_tokens(account, &settings, property, source, &customer.created_by, customer.created_at);
                customer.auto_tokens.extend(tokens);
            }
        }
        Ok(self.store.create_customer(account, &customer).await?)
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

    /// aid_customers_head: whether a customer matches the `email` and `phone_number` prefixes
    /// (as the list would find it). `DisabledBySettings` unless the account's settings enable it
    /// (`users.head.enabled`).
    pub async fn customer_exists(&self, account: &AccountId, filter: CustomerFilter) -> ServiceResult<bool> {
        if !self.customer_settings(account).await?.head_enabled() {
            return Err(ServiceError::DisabledBySettings("Method not allowed by customer settings"));
        }
        let first = PageRequest { limit: 1, ..PageRequest::default() };
        Ok(!self.list_customers(account, filter, &first).await?.items.is_empty())
    }

    /// aid_customers_cid_put: a partial update of the live customer. A changed e-mail or phone
    /// number replaces its auto tokens (the account's `auto_tokens` settings).
    pub async fn update_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        mut update: CustomerUpdate,
    ) -> ServiceResult<Customer> {
        let settings = self.customer_settings(account).await?;
        for property in AutoTokenProperty::ALL {
            let Some(source) = update.changed_text(property.field()) else { continue };
            let source = source.map(str::to_owned);
            update.retired_auto_tokens.extend(property.token_ids());
            if let Some(source) = source {
                let tokens =
                    self.auto_tokens(account, &settings, property, &source, &update.updated_by, update.updated_at);
                update.auto_tokens.extend(tokens);
            }
        }
        Ok(self.store.update_customer(account, customer_id, &update).await?)
    }

    /// aid_customers_cid_change_customer_id_post: the live customer gets `new_customer_id`; its
    /// tokens follow it.
    pub async fn change_customer_id(
        &self,
        account: &AccountId,
        customer_id: &str,
        new_customer_id: &str,
        actor: &str,
    ) -> ServiceResult<Customer> {
        Ok(self
            .store
            .change_customer_id(account, customer_id, new_customer_id, actor, self.now(account).await?)
            .await?)
    }

    /// Soft-deletes the live customer (and, with `delete_tokens`, its live tokens).
    pub async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
    ) -> ServiceResult<Customer> {
        Ok(self.store.delete_customer(account, customer_id, delete_tokens, actor, self.now(account).await?).await?)
    }

    /// aid_customers_atributes_get: the account's settings as last put (empty before).
    pub async fn customer_settings(&self, account: &AccountId) -> ServiceResult<CustomerSettings> {
        let stored = self.store.customer_settings(account).await?;
        Ok(stored.map(CustomerSettings::from_stored).unwrap_or_default())
    }

    /// aid_customers_atributes_put: replaces the account's settings. Auto tokens and event
    /// expiry follow them from the next change on (existing tokens stay as they are).
    pub async fn put_customer_settings(
        &self,
        account: &AccountId,
        settings: &CustomerSettings,
        actor: &str,
    ) -> ServiceResult<Map<String, Value>> {
        self.store.put_customer_settings(account, settings.as_map(), actor, self.now(account).await?).await?;
        Ok(settings.as_map().clone())
    }

    /// The auto tokens `settings` derive from a customer's `property` (`source`), their values
    /// in the form the database keeps them. E-mails are digested lower-cased, as Dintero
    /// compares them case-insensitively.
    fn auto_tokens(
        &self,
        account: &AccountId,
        settings: &CustomerSettings,
        property: AutoTokenProperty,
        source: &str,
        actor: &str,
        at: Timestamp,
    ) -> Vec<NewCustomerToken> {
        let source = match property {
            AutoTokenProperty::Email => source.trim().to_lowercase(),
            AutoTokenProperty::PhoneNumber => source.to_owned(),
        };
        settings
            .auto_tokens(property)
            .iter()
            .map(|auto| {
                let token_type = auto.kind.token_type(property);
                let value = self.cipher.stored_value(account, &token_type, &auto_token_value(auto, &source));
                NewCustomerToken {
                    id: Uuid::new_v4(),
                    token_id: auto.kind.token_id(property),
                    token_type,
                    value,
                    metadata: None,
                    created_by: actor.to_owned(),
                    created_at: at,
                }
            })
            .collect()
    }
}
