//! A server started sealed (`serve --unseal-with-shares`): it holds no master key until enough
//! shares of it are entered (`tokenvault unseal`, or `POST /v1/admin/unseal` with an operator's
//! client credentials). Each entry is audited with the share's number, never its text. The shares
//! are checked against each other as they come (same key, not entered twice); once the threshold
//! is reached the key they rebuild must open the database, else every share is forgotten and
//! entry starts over.

use std::future::Future;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::Mutex;

use super::keys::MasterKey;
use super::{ServiceError, ServiceResult, Vault};
use crate::auth::clients::{authenticate, CredentialChecks};
use crate::auth::{AuthError, Permission};
use crate::crypto::shares::{self, KeyShare, ShareError};
use crate::domain::audit::NewAuditRecord;
use crate::domain::validation::ValidationError;
use crate::domain::Timestamp;
use crate::store::Store;

/// Where unsealing stands: what `/health` and the unseal endpoint answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SealStatus {
    pub sealed: bool,
    /// Shares needed (known once the first is entered).
    pub threshold: Option<u8>,
    /// Shares entered so far.
    pub progress: usize,
    /// The check value of the master key being rebuilt (see `crypto::shares::key_check`).
    pub key: Option<String>,
}

#[derive(Default)]
struct Entered {
    shares: Vec<KeyShare>,
    unsealed: bool,
}

impl Entered {
    fn status(&self) -> SealStatus {
        SealStatus {
            sealed: !self.unsealed,
            threshold: self.shares.first().map(|share| share.threshold),
            progress: self.shares.len(),
            key: self.shares.first().map(|share| share.set.clone()),
        }
    }
}

/// The shares entered so far into one sealed server.
pub struct Unsealer {
    store: Arc<dyn Store>,
    entered: Mutex<Entered>,
}

/// The client id of an operator: a client whose secret is `secret` and that holds `admin:vault`.
/// Checked against the store directly: a sealed server cannot open its JWT signing keys, so the
/// unseal endpoint takes client credentials (HTTP Basic), not tokens.
async fn operator(
    store: &dyn Store,
    checks: &CredentialChecks,
    client_id: &str,
    secret: &str,
) -> Result<String, AuthError> {
    let client = authenticate(store, checks, client_id, secret).await?;
    if client.scopes.iter().any(|scope| Permission::VAULT_ADMIN.0.contains(&scope.as_str())) {
        Ok(client.client_id)
    } else {
        Err(AuthError::MissingScope(Permission::VAULT_ADMIN.describe()))
    }
}

impl Vault {
    /// [`operator`] on a server that was not started sealed (its unseal endpoint only reports).
    pub async fn operator(
        &self,
        checks: &CredentialChecks,
        client_id: &str,
        secret: &str,
    ) -> Result<String, AuthError> {
        operator(self.store.as_ref(), checks, client_id, secret).await
    }
}

/// A share as `POST /v1/admin/unseal` takes it: `{"share": "tokenvault-share-v1:…"}`.
pub fn share_of(body: &serde_json::Map<String, serde_json::Value>) -> ServiceResult<String> {
    match (body.get("share"), body.len()) {
        (Some(serde_json::Value::String(share)), 1) => Ok(share.clone()),
        _ => Err(refused("a JSON object {\"share\": \"tokenvault-share-v1:…\"} is expected")),
    }
}

/// What a server started with a master key reports: nothing to unseal.
pub const UNSEALED: SealStatus = SealStatus { sealed: false, threshold: None, progress: 0, key: None };

fn refused(error: impl std::fmt::Display) -> ServiceError {
    ServiceError::Invalid(ValidationError::single("share", error.to_string()))
}

impl Unsealer {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store, entered: Mutex::new(Entered::default()) }
    }

    /// [`operator`] on a server started sealed.
    pub async fn operator(
        &self,
        checks: &CredentialChecks,
        client_id: &str,
        secret: &str,
    ) -> Result<String, AuthError> {
        operator(self.store.as_ref(), checks, client_id, secret).await
    }

    pub async fn status(&self) -> SealStatus {
        self.entered.lock().await.status()
    }

    /// Takes one share from `actor`. When it completes the threshold, `open` is given the
    /// rebuilt master key and finishes the server's start; if it fails (the key is not the
    /// database's), entry starts over and its error is returned. Entries after unsealing change
    /// nothing and report the unsealed status.
    pub async fn enter<F, Fut>(&self, text: &str, actor: &str, open: F) -> ServiceResult<SealStatus>
    where
        F: FnOnce(MasterKey) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        // Held through `open`, so that two completing entries cannot both start the server.
        let mut entered = self.entered.lock().await;
        if entered.unsealed {
            return Ok(entered.status());
        }
        let share = match KeyShare::parse(text) {
            Ok(share) => share,
            Err(error) => {
                self.audit("unknown", 0, &entered, &format!("refused: {error}"), actor).await?;
                return Err(refused(error));
            }
        };
        let (set, index, threshold) = (share.set.clone(), share.index(), share.threshold);
        entered.shares = match shares::accept(&entered.shares, share) {
            Ok(shares) => shares,
            Err(error) => {
                self.audit(&set, index, &entered, &format!("refused: {error}"), actor).await?;
                return Err(refused(error));
            }
        };
        if entered.shares.len() < usize::from(threshold) {
            self.audit(&set, index, &entered, "accepted", actor).await?;
            return Ok(entered.status());
        }
        let outcome = match shares::combine(&entered.shares) {
            Ok(master) => open(MasterKey::Rebuilt(master)).await,
            Err(ShareError::WrongKey(key)) => Err(ShareError::WrongKey(key).to_string()),
            Err(error) => Err(error.to_string()),
        };
        match outcome {
            Ok(()) => {
                entered.unsealed = true;
                self.audit(&set, index, &entered, "unsealed", actor).await?;
                tracing::info!(key = %set, "unsealed: the master key was rebuilt from its shares");
                Ok(entered.status())
            }
            Err(why) => {
                let status = entered.status();
                entered.shares.clear();
                let outcome = format!("refused: {why}; entry starts over");
                self.audit_status(&set, index, &status, &outcome, actor).await?;
                tracing::warn!(key = %set, %why, "the shares entered did not unseal; entry starts over");
                Err(refused(format!("{why}; every share must be entered again")))
            }
        }
    }

    async fn audit(&self, set: &str, index: u8, entered: &Entered, outcome: &str, actor: &str) -> ServiceResult<()> {
        self.audit_status(set, index, &entered.status(), outcome, actor).await
    }

    async fn audit_status(
        &self,
        set: &str,
        index: u8,
        status: &SealStatus,
        outcome: &str,
        actor: &str,
    ) -> ServiceResult<()> {
        let threshold = status.threshold.unwrap_or(0);
        let record = NewAuditRecord::master_key_share_entered(
            set,
            index,
            status.progress,
            threshold,
            outcome,
            actor,
            Timestamp::now(),
        );
        Ok(self.store.append_audit(record).await?)
    }
}
