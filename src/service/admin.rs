//! What an operator does from the command line without the encryption key: API clients and the
//! audit trail.

use std::sync::Arc;

use super::ServiceResult;
use crate::auth::clients::{self, ClientCredentials, ClientSummary};
use crate::auth::AuthError;
use crate::domain::audit::{AuditRecord, NewAuditRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::Store;

/// Audit records read per query.
const AUDIT_PAGE: u32 = 500;

/// The store alone: clients and the audit trail need no cipher.
pub struct Admin {
    pub(super) store: Arc<dyn Store>,
}

impl Admin {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Creates a client with a fresh random id and secret; the secret is shown this once.
    pub async fn create_client(
        &self,
        account: &AccountId,
        scopes: Vec<String>,
    ) -> Result<ClientCredentials, AuthError> {
        clients::create_client(self.store.as_ref(), account, scopes).await
    }

    /// Stores (or replaces) the client `client_id` with `secret` or a fresh one (`serve --dev`).
    pub async fn store_client(
        &self,
        client_id: String,
        account: &AccountId,
        scopes: Vec<String>,
        secret: Option<&str>,
    ) -> Result<ClientCredentials, AuthError> {
        crate::auth::check_scopes(&scopes)?;
        clients::store_client(self.store.as_ref(), client_id, account, scopes, secret).await
    }

    pub async fn list_clients(&self, account: Option<&AccountId>) -> Result<Vec<ClientSummary>, AuthError> {
        clients::list_clients(self.store.as_ref(), account).await
    }

    pub async fn revoke_client(&self, client_id: &str, actor: &str) -> Result<ClientSummary, AuthError> {
        clients::revoke_client(self.store.as_ref(), client_id, actor).await
    }

    pub async fn rotate_client_secret(&self, client_id: &str, actor: &str) -> Result<ClientCredentials, AuthError> {
        clients::rotate_secret(self.store.as_ref(), client_id, actor).await
    }

    /// Every audit record (of one account, or all), oldest first, handed to `each` a page at a
    /// time so that a long trail never sits in memory whole. The read itself is recorded first
    /// (`audit.read`, by `actor`): who looked at the trail is on it too.
    pub async fn walk_audit(
        &self,
        account: Option<&AccountId>,
        actor: &str,
        mut each: impl FnMut(&AuditRecord) -> Result<(), String>,
    ) -> Result<(), String> {
        let read = NewAuditRecord::audit_read(account, actor, Timestamp::now());
        self.store.append_audit(read).await.map_err(|e| e.to_string())?;
        let mut after = 0;
        loop {
            let records = self.audit_page(account, after).await.map_err(|e| e.to_string())?;
            let Some(last) = records.last() else { return Ok(()) };
            after = last.seq;
            records.iter().try_for_each(&mut each)?;
        }
    }

    async fn audit_page(&self, account: Option<&AccountId>, after: i64) -> ServiceResult<Vec<AuditRecord>> {
        Ok(self.store.list_audit(account, after, AUDIT_PAGE).await?)
    }
}
