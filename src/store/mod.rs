//! Persistence behind one port. The services depend only on [`Store`], made of one role trait
//! per aggregate ([`CustomerStore`], [`CardTokenStore`], ...; callable on a `dyn Store` as they
//! are, and on a concrete store after `use crate::store::prelude::*;`); SQLite (embedded, the
//! zero-set-up default) and PostgreSQL (many instances, one database) implement each in the file
//! of the same name, with the same behaviour, enforced by database constraints rather than
//! in-process locks. The store keeps what it is given: it never seals, and reads no settings.

#[cfg(test)]
mod conformance;
pub mod dataset;
pub mod postgres;
pub mod sqlite;
pub mod url;

mod admin;
mod card_tokens;
mod clients;
mod clocks;
mod customers;
mod faults;
mod idempotency;
mod journal;
mod keys;
mod sessions;
mod token_events;
mod values;
mod webhooks;

pub use admin::AdminStore;
pub use card_tokens::CardTokenStore;
pub use clients::ClientStore;
pub use clocks::ClockStore;
pub use customers::CustomerStore;
pub use faults::FaultStore;
pub use idempotency::IdempotencyStore;
pub use journal::JournalStore;
pub use keys::{KeyStore, MASTER_ROOT_SETTING};
pub use sessions::SessionStore;
pub use token_events::TokenEventStore;
pub use values::TokenValueStore;
pub use webhooks::WebhookStore;

use std::sync::Arc;

use crate::domain::{AccountId, Timestamp};

/// What can go wrong below the HTTP layer, in terms a client can be told about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named resource (`"customer"`, `"token"`, `"card token"`) does not exist for this
    /// account.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule or a state transition refused the write; the text says which.
    #[error("{0}")]
    Conflict(String),
    /// A live record already holds this unique value (Dintero: "duplicate field detected", 400).
    #[error("{1}")]
    Duplicate(Duplicate, String),
    /// `starting_after` names no item of this list.
    #[error("starting_after does not name an item of this list")]
    UnknownCursor,
    /// The database cannot be reached right now; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database is out of a resource (disk space, memory, a configured limit) and refused the
    /// write; nothing was changed, and the request may be retried once an operator has made room.
    #[error("database out of resources: {0}")]
    Exhausted(String),
    /// Anything else: a bug or a broken database. Logged, never shown to clients in detail.
    #[error("database error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub use crate::domain::card_token::{CardTokenDeletion, CardTokenRecord};
pub use crate::domain::sealed::{DataKeyRecord, SealedToken, TokenValueMode};
pub use crate::domain::validation::Duplicate;
pub use url::DatabaseUrl;

/// The columns holding sealed values, which re-encryption walks after a key rotation. Each is
/// sealed with its row's `account_id` and `id` as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealedColumn {
    /// `card_tokens.token_sealed`.
    CardToken,
    /// `hook_subscriptions.sealed_secret`.
    HookSecret,
}

impl SealedColumn {
    pub const ALL: [SealedColumn; 2] = [SealedColumn::CardToken, SealedColumn::HookSecret];

    /// The table and column, for SQL (fixed names, never input).
    pub fn table_and_column(self) -> (&'static str, &'static str) {
        match self {
            SealedColumn::CardToken => ("card_tokens", "token_sealed"),
            SealedColumn::HookSecret => ("hook_subscriptions", "sealed_secret"),
        }
    }
}

/// One sealed value and what it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    /// The row's `seq`: re-encryption walks in this order.
    pub row: i64,
    pub account: AccountId,
    pub id: String,
    pub sealed: Vec<u8>,
}

/// A re-encrypted value, replacing `old` only if the row still holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resealed {
    pub row: i64,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

/// The tables holding customer token values, each with `seq`, `account_id`, `token_type`, `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueTable {
    CustomerTokens,
    TokenEventEntries,
}

impl ValueTable {
    pub const ALL: [ValueTable; 2] = [ValueTable::CustomerTokens, ValueTable::TokenEventEntries];

    /// The table name, for SQL (fixed names, never input).
    pub fn name(self) -> &'static str {
        match self {
            ValueTable::CustomerTokens => "customer_tokens",
            ValueTable::TokenEventEntries => "token_event_entries",
        }
    }
}

/// One stored token value, for converting values to their sealed form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTokenValue {
    pub row: i64,
    pub account: AccountId,
    pub token_type: String,
    pub value: String,
}

/// A stored token value's new form, written only where the row still holds `old`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplacedValue {
    pub row: i64,
    pub old: String,
    pub new: String,
}

/// Which parts of a test account a sandbox reset wipes. Each is wiped only for a caller who
/// administers it, so that a reset never deletes what the caller could not delete otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetParts {
    /// Customers, customer tokens and token events (`admin:customers`).
    pub customers: bool,
    /// Card tokens (`admin:checkout`).
    pub card_tokens: bool,
    /// Webhook subscriptions and their deliveries (`admin:hooks`).
    pub hooks: bool,
    /// Fault rules (`admin:customers` or `admin:checkout`, the scopes that manage them).
    pub faults: bool,
    /// The account's clock, back to real time (the same scopes as fault rules).
    pub clock: bool,
}

impl ResetParts {
    /// Every part: the whole account's data.
    pub const ALL: ResetParts =
        ResetParts { customers: true, card_tokens: true, hooks: true, faults: true, clock: true };
}

/// Rows a sandbox reset removed, per kind; `None` (left out when shown) for the parts it did not
/// reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ResetCounts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customers: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_events: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_subscriptions: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_deliveries: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_rules: Option<u64>,
    /// 1 when the account's clock was set (and now runs on real time again), else 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clocks: Option<u64>,
}

/// A snapshot of the store's resources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Connections the pool may hold (SQLite: read connections; the writer is extra).
    pub pool_size: u64,
    /// Connections idle right now.
    pub pool_idle: u64,
    /// Webhook deliveries neither delivered nor given up.
    pub webhook_outbox_pending: u64,
    /// The audit chain's last position (0 before the first), and records not chained yet.
    pub audit_chain_head: u64,
    pub audit_unchained: u64,
}

/// What an import did with one card token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Imported,
    /// Already present (same `id`, or the same `token` by fingerprint): re-running an import is
    /// harmless.
    AlreadyPresent,
}

/// Whose idempotency key it is: keys are scoped to the authenticated caller, so equal keys of
/// two clients (or accounts) never meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyScope {
    pub account: AccountId,
    pub client_id: String,
    /// The `Idempotency-Key` header: 1 to 255 printable ASCII characters.
    pub key: String,
}

/// One request's claim on an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    pub scope: IdempotencyScope,
    /// A keyed digest of method, path, query and body: a retry must repeat the request exactly.
    pub fingerprint: String,
    /// Identifies this request's claim: only the claim's holder can finish or abandon it.
    pub attempt: uuid::Uuid,
    pub now: Timestamp,
    /// Until when the claim holds while the request runs; after that (a crashed instance) a
    /// retry may take the key over.
    pub lease_until: Timestamp,
    /// When the key is forgotten (24 h after its first use); later, it counts as never used.
    pub expires_at: Timestamp,
}

/// A response kept for replay. `body` is stored as given (the HTTP layer seals it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    /// The headers that matter, in order, as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What [`IdempotencyStore::begin_idempotent`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyStart {
    /// The key is this request's now: run it, then finish or abandon.
    Started,
    /// The same request already ran to completion: answer with its response.
    Replay(StoredResponse),
    /// The key was used with a different request (while not expired).
    Mismatch,
    /// The same request is running right now (its lease has not run out).
    InProgress,
}

/// Declares [`Store`] as the sum of the role traits, implemented for every type that implements
/// them all, and the [`prelude`] that brings them into scope: one list for the three.
macro_rules! store_of_roles {
    ($($role:ident),+ $(,)?) => {
        /// The persistence contract, one role trait per aggregate (each declared in the file of
        /// its name, and implemented in the file of the same name in each backend). Every method
        /// is one transaction; every mutation appends its audit record in that same transaction;
        /// a returned `Ok` means the write is durable. On a `dyn Store` every method can be called
        /// without importing its role trait; on a concrete store, `use crate::store::prelude::*;`.
        ///
        /// Deliberately repeated: each backend's implementation restates the signatures its role
        /// trait declares (Rust requires it), so the multi-line signatures stand three times in
        /// `src/store/`.
        pub trait Store: $($role +)+ Send + Sync + 'static {}

        impl<T: $($role +)+ Send + Sync + 'static> Store for T {}

        /// The store and its role traits, for calling store methods on a concrete store
        /// ([`SqliteStore`](super::sqlite::SqliteStore), [`PostgresStore`](super::postgres::PostgresStore)).
        pub mod prelude {
            pub use super::{Store, $($role),+};
        }
    };
}

store_of_roles!(
    AdminStore,
    ClientStore,
    KeyStore,
    TokenValueStore,
    CustomerStore,
    TokenEventStore,
    CardTokenStore,
    WebhookStore,
    IdempotencyStore,
    SessionStore,
    FaultStore,
    ClockStore,
    JournalStore,
);

/// Opens the store a database URL names. Migrations run before it is returned.
pub async fn open(database_url: &DatabaseUrl, options: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    match database_url {
        DatabaseUrl::Postgres(url) => Ok(Arc::new(postgres::PostgresStore::connect(url, options).await?)),
        DatabaseUrl::Sqlite { path, .. } => Ok(Arc::new(sqlite::SqliteStore::open(path, options).await?)),
    }
}

/// `tokenvault migrate`: applies the pending migrations of the database a URL names (creating an
/// SQLite file if needed) and returns the versions applied, oldest first (empty when the schema
/// was up to date). Safe to run while servers are running, and several times.
pub async fn migrate(database_url: &DatabaseUrl) -> StoreResult<Vec<i64>> {
    match database_url {
        DatabaseUrl::Postgres(url) => postgres::migrate(url).await,
        DatabaseUrl::Sqlite { path, .. } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || sqlite::migrate(&path))
                .await
                .map_err(|e| StoreError::Internal(format!("the migration task failed: {e}")))?
        }
    }
}

/// Tuning shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (PostgreSQL) or read connections (SQLite).
    pub pool_size: usize,
    /// How long a request waits for a connection before failing with 503.
    pub acquire_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { pool_size: 8, acquire_timeout: std::time::Duration::from_secs(5) }
    }
}
