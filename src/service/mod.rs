//! The use cases, each written once: what happens when a customer token is stored, a card token
//! deleted, a webhook subscribed, a fixture file loaded. `http` and `cli` only translate requests
//! and commands into these calls and their results back; the store and the cipher are reached
//! only from here (and from `auth`), so sealing and revealing secrets happen in this one floor.
//!
//! [`Vault`] is the handle on everything a use case needs: the store, the cipher, the bell that
//! wakes the webhook worker, and the webhook target policy. [`admin::Admin`] is the smaller
//! handle of the commands that need no encryption key (clients, audit trail).

pub mod admin;
pub mod audit_chain;
pub mod backup;
pub mod card_tokens;
pub mod clock;
pub mod customer_tokens;
pub mod customers;
pub mod faults;
pub mod hooks;
pub mod idempotency;
pub mod import;
pub mod journal;
pub mod keys;
pub mod sandbox;
pub mod seed;
pub mod sessions;
pub mod token_events;
pub mod transfer;
pub mod unseal;
pub mod webhook_targets;
pub mod webhook_worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::crypto::{CryptoError, TokenCipher};
use crate::domain::validation::Duplicate;
use crate::domain::{AccountId, ValidationError};
use crate::store::{Store, StoreError};
pub use crate::store::{StoreOptions, StoreStats};
use webhook_targets::TargetPolicy;

/// What a use case can fail with, in terms the adapters turn into an answer. The store's and the
/// cipher's errors are converted here, once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The named resource (`"customer"`, `"card token"`, `"subscription"`) does not exist for this
    /// account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a state transition refused the change; the text says which.
    #[error("{0}")]
    Conflict(String),
    /// A live record already holds this unique value (Dintero: "duplicate field detected").
    #[error("{1}")]
    Duplicate(Duplicate, String),
    /// `starting_after` names no item of this list.
    #[error("starting_after does not name an item of this list")]
    UnknownCursor,
    /// The account's settings leave this operation off (aid_customers_head: 405 "Method not
    /// allowed by customer settings").
    #[error("{0}")]
    DisabledBySettings(&'static str),
    /// Sandbox operations and fixtures (`what`) never touch a production account.
    #[error("{what} are only for test accounts (T…), not {account}")]
    TestAccountsOnly { what: &'static str, account: String },
    /// The database cannot be reached right now; the request may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// The database is out of a resource (disk space, memory); retry once an operator made room.
    #[error("{0}")]
    Exhausted(String),
    /// A sealed value or key that does not open (another master key, altered data): logged,
    /// never shown to clients.
    #[error("encryption key: {0}")]
    Key(String),
    /// A bug or a broken database: logged, never shown to clients.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        let text = error.to_string();
        match error {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Conflict(message) => Self::Conflict(message),
            StoreError::Duplicate(duplicate, message) => Self::Duplicate(duplicate, message),
            StoreError::UnknownCursor => Self::UnknownCursor,
            StoreError::Unavailable(_) => Self::Unavailable(text),
            StoreError::Exhausted(_) => Self::Exhausted(text),
            StoreError::Internal(_) => Self::Internal(text),
        }
    }
}

impl From<CryptoError> for ServiceError {
    fn from(error: CryptoError) -> Self {
        Self::Key(error.to_string())
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Refuses a production account for an operation only test accounts may use.
fn test_accounts_only(account: &AccountId, what: &'static str) -> ServiceResult<()> {
    if account.is_test() {
        Ok(())
    } else {
        Err(ServiceError::TestAccountsOnly { what, account: account.to_string() })
    }
}

/// The store, the cipher and the outbox bell, shared by every use case.
pub struct Vault {
    store: Arc<dyn Store>,
    cipher: Arc<TokenCipher>,
    /// Rung after every change that writes to the webhook outbox, so that the worker delivers at
    /// once instead of at its next poll.
    outbox: Arc<Notify>,
    targets: TargetPolicy,
    /// The fault rules this instance read lately, per test account.
    fault_rules: faults::RulesCache,
    /// The clock offsets this instance read lately, per test account.
    clocks: clock::ClockCache,
}

impl Vault {
    /// `cipher` must have the store's key ring loaded (see [`keys::open_cipher`]).
    pub fn new(store: Arc<dyn Store>, cipher: Arc<TokenCipher>, targets: TargetPolicy) -> Self {
        Self {
            store,
            cipher,
            outbox: Arc::new(Notify::new()),
            targets,
            fault_rules: Default::default(),
            clocks: Default::default(),
        }
    }

    /// The handle for the commands that need no encryption key, on the same store.
    pub fn admin(&self) -> admin::Admin {
        admin::Admin::new(self.store.clone())
    }

    /// Succeeds when the database answers; drives `/health`.
    pub async fn ping(&self) -> ServiceResult<()> {
        Ok(self.store.ping().await?)
    }

    /// Connection pool use and webhook deliveries waiting, for `/metrics`.
    pub async fn stats(&self) -> ServiceResult<StoreStats> {
        Ok(self.store.stats().await?)
    }

    /// Wakes the webhook worker: something was written to the outbox.
    fn announce(&self) {
        self.outbox.notify_one();
    }
}
