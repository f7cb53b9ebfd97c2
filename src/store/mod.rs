//! Persistence behind one trait. The HTTP layer depends only on [`Store`]; SQLite (embedded,
//! the zero-set-up default) and PostgreSQL (many instances, one database) implement it with
//! the same behaviour, enforced by database constraints rather than in-process locks.

#[cfg(test)]
mod conformance;
pub mod dataset;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::audit::AuditRecord;
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus, DeleteRequestor};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::customer::{Customer, CustomerFilter, NewCustomer};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue};
use crate::domain::webhook::{DeliveryResult, HookSubscription, WebhookDelivery};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

/// The unique value a create clashed with: a customer's `customer_id`, `email` or
/// `phone_number`, a customer's live `token_id`, or a live token `type`+`value` of the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicate {
    CustomerId,
    Email,
    PhoneNumber,
    TokenId,
    TokenTypeValue,
}

impl Duplicate {
    /// The error `code` naming the duplicate.
    pub fn code(self) -> &'static str {
        match self {
            Self::CustomerId => "DUPLICATE_CUSTOMER_ID",
            Self::Email => "DUPLICATE_EMAIL",
            Self::PhoneNumber => "DUPLICATE_PHONE_NUMBER",
            Self::TokenId => "DUPLICATE_TOKEN_ID",
            Self::TokenTypeValue => "DUPLICATE_TOKEN",
        }
    }

    /// The request fields that hold the duplicate.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Self::CustomerId => &["customer_id"],
            Self::Email => &["email"],
            Self::PhoneNumber => &["phone_number"],
            Self::TokenId => &["token_id"],
            Self::TokenTypeValue => &["type", "value"],
        }
    }
}

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

/// A card token's `token` as it is kept: AES-256-GCM ciphertext (bound to the account and id)
/// and a keyed fingerprint that lets imports recognise a token they already hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedToken {
    pub ciphertext: Vec<u8>,
    pub fingerprint: String,
}

/// A data-encryption key as the database keeps it: wrapped (AES-256-GCM) under the master key,
/// so the database alone never reveals it. Ids start at 1 (0 is the master key's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub id: u32,
    pub wrapped: Vec<u8>,
    pub created_at: Timestamp,
    pub created_by: String,
}

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

/// How customer token values are kept (`serve --seal-token-values`), a setting of the database
/// so that every instance on it agrees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenValueMode {
    Plain,
    /// New values are sealed; stored ones are being converted.
    Converting,
    Sealed,
}

impl TokenValueMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenValueMode::Plain => "plain",
            TokenValueMode::Converting => "converting",
            TokenValueMode::Sealed => "sealed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [TokenValueMode::Plain, TokenValueMode::Converting, TokenValueMode::Sealed]
            .into_iter()
            .find(|mode| mode.as_str() == text)
    }
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

/// A stored card token: its fields (with `token` left `None`) and the sealed secret.
#[derive(Debug, Clone, PartialEq)]
pub struct CardTokenRecord {
    pub card: CardToken,
    pub sealed_token: Option<Vec<u8>>,
}

/// Why and by whom a card token is deleted (seed 001), kept in the audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardTokenDeletion {
    pub actor: String,
    pub reason: Option<String>,
    pub requestor: DeleteRequestor,
    pub at: Timestamp,
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
}

impl ResetParts {
    /// Every part: the whole account's data.
    pub const ALL: ResetParts = ResetParts { customers: true, card_tokens: true, hooks: true };
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

/// What [`Store::begin_idempotent`] found.
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

/// The persistence contract. Every method is one transaction; every mutation appends its audit
/// record in that same transaction; a returned `Ok` means the write is durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the database answers; drives `/health`.
    async fn ping(&self) -> StoreResult<()>;

    /// Inserts a client, or replaces the secret hash and scopes of one with the same id.
    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()>;
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;

    /// Every client, or one account's, by client id (`tokenvault clients list`).
    async fn list_clients(&self, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>>;
    /// Removes the client, audited as `client.revoke` in its account; NotFound("client") when
    /// there is none. Its tokens are refused from then on (the key ring checks `sub`).
    async fn revoke_client(&self, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord>;
    /// Replaces the client's secret hash and increments its secret generation, audited as
    /// `client.rotate_secret`; returns the client as it now is. NotFound("client") when there is
    /// none.
    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ClientRecord>;

    /// All JWT signing keys, newest first.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()>;
    /// Writes `new` as the private key of `kid` where the row still holds `old` (start-up seals
    /// clear keys in place this way: of several instances doing it at once, one wins and the
    /// others find the key sealed); returns whether it wrote.
    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool>;

    /// The data-encryption keys, oldest first.
    async fn data_keys(&self) -> StoreResult<Vec<DataKeyRecord>>;
    /// Adds a data key, audited as `encryption_key.add` (account `""`: the whole installation);
    /// Conflict when its id is taken (a concurrent rotation won).
    async fn insert_data_key(&self, key: &DataKeyRecord) -> StoreResult<()>;
    /// Up to `limit` non-null values of `column` in rows after `after_row` (by `seq`) that do not
    /// start with `unless_prefix` (the active key's): what a re-encryption still has to do.
    async fn sealed_values(
        &self,
        column: SealedColumn,
        after_row: i64,
        unless_prefix: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>>;
    /// Writes each new value where the row still holds the old one (a row changed meanwhile is
    /// left as it is), in one transaction; returns how many were replaced.
    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64>;

    /// How customer token values are kept.
    async fn token_value_mode(&self) -> StoreResult<TokenValueMode>;
    /// Records the mode, audited as `token_values.mode` (account `""`).
    async fn set_token_value_mode(&self, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()>;
    /// Up to `limit` rows of `table` after `after_row` (by `seq`), oldest first.
    async fn token_values(&self, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>>;
    /// Writes each new value where the row still holds the old one, in one transaction; returns
    /// how many were replaced.
    async fn replace_token_values(&self, table: ValueTable, values: &[ReplacedValue]) -> StoreResult<u64>;

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

    /// Looks up a token type/value and, when `event` is given, records it first.
    async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<TokenDetail>;
    /// Type/values with events, oldest first; with `since`, only those updated at or after it,
    /// ordered by that update time.
    async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>>;
    /// Type/values whose events were deleted (cleared, or by `delete_token_events`) at or after
    /// `deleted_since`, in the order of their latest deletion (`?deleted_since=`).
    async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>>;
    /// Removes the events of a type/value; a given `delete_event` is then recorded alone.
    async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()>;

    /// Conflict when the account already has a card token with this `id` or fingerprint.
    async fn create_card_token(&self, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord>;
    /// Stores a batch in one transaction, skipping tokens already present.
    async fn import_card_tokens(&self, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>>;
    async fn get_card_token(&self, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>>;
    async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CardTokenRecord>>;
    /// Marks the token `DELETED` and erases its secret (the sealed `token` and its fingerprint)
    /// in the same transaction, keeping the record; deleting a deleted token returns it
    /// unchanged.
    async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> StoreResult<CardTokenRecord>;
    /// Conflict when [`CardTokenStatus::can_become`] refuses the move; setting the current
    /// status again is a no-op
    /// (but nothing, not even `DELETED`, may be set on a deleted token).
    async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CardTokenRecord>;

    /// Audit records after `after_seq`, oldest first, optionally of one account.
    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>>;

    /// Stores a webhook subscription with its sealed signing secret. Card-token mutations then
    /// write one outbox row per interested subscription in their own transaction:
    /// `checkout_token_add` for a create and each imported token, `checkout_token_update` for a
    /// status that actually changes, `checkout_token_delete` for a delete that actually deletes.
    async fn create_hook_subscription(&self, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()>;
    /// The account's subscriptions, oldest first.
    async fn list_hook_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<HookSubscription>>;
    async fn get_hook_subscription(&self, account: &AccountId, id: uuid::Uuid)
        -> StoreResult<Option<HookSubscription>>;
    /// NotFound("subscription") when absent; its pending deliveries are dropped with it.
    async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<HookSubscription>;
    /// Takes up to `limit` deliveries due at `now` (pending, `next_attempt_at <= now`), oldest
    /// first, and leases them until `lease_until`, so that no other worker (or instance) sends
    /// them meanwhile; a crashed worker's lease runs out and the delivery is retried. Each
    /// delivery's `attempts` counts the attempts made before this one.
    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>>;
    /// Records an attempt's result: delivered rows leave the outbox, failed ones are rescheduled
    /// or given up. A delivery no longer pending (its subscription deleted meanwhile) is left
    /// alone.
    async fn complete_webhook_delivery(&self, id: uuid::Uuid, result: &DeliveryResult) -> StoreResult<()>;
    /// Deletes up to `limit` deliveries delivered or given up before `finished_before`, oldest
    /// first, and returns how many; pending ones are never touched. Keeps the outbox from
    /// growing with every card-token change ever announced.
    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64>;

    /// Wipes the `parts` of a (test) account's data in one transaction: customers, customer
    /// tokens and token events; card tokens; webhook subscriptions and their deliveries. Clients,
    /// signing keys and the audit trail stay; a `sandbox.reset` audit record with the counts is
    /// appended. The account's finished idempotency keys are forgotten too (claims in progress
    /// stay).
    async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ResetCounts>;

    /// Figures for `/metrics`: connection pool use and webhook deliveries waiting.
    async fn stats(&self) -> StoreResult<StoreStats>;

    /// Claims an idempotency key, atomically: a key never used, or expired (`expires_at <= now`),
    /// is claimed (`Started`); a key of a different fingerprint is `Mismatch`; a finished one
    /// `Replay`s its response; an unfinished one is `InProgress` while its lease holds and is
    /// taken over (`Started`, with the new `attempt` and lease, keeping its expiry) after. Also
    /// purges a few expired keys. A separate transaction from the request's own writes.
    async fn begin_idempotent(&self, request: &IdempotentRequest) -> StoreResult<IdempotencyStart>;
    /// Stores the response of the claim `attempt` for replay; does nothing when the claim is no
    /// longer held (taken over after its lease ran out, or abandoned).
    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: uuid::Uuid,
        response: &StoredResponse,
    ) -> StoreResult<()>;
    /// Releases the claim `attempt` without a response (the request failed in a way a retry may
    /// fix): the key is free again. Does nothing when the claim is no longer held.
    async fn abandon_idempotent(&self, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()>;
}

/// Opens the store a database URL names: `sqlite://PATH` (relative or, with a third slash,
/// absolute) or `postgres://…` / `postgresql://…`. Migrations run before it is returned.
pub async fn open(database_url: &str, options: &StoreOptions) -> StoreResult<Arc<dyn Store>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::connect(database_url, options).await?))
    } else if let Some(path) = crate::config::sqlite_path(database_url) {
        Ok(Arc::new(sqlite::SqliteStore::open(&path, options).await?))
    } else {
        Err(StoreError::Internal(format!(
            "unsupported database URL (expected sqlite://PATH or postgres://…): {}",
            crate::config::redact_url(database_url)
        )))
    }
}

/// `tokenvault migrate`: applies the pending migrations of the database a URL names (creating an
/// SQLite file if needed) and returns the versions applied, oldest first (empty when the schema
/// was up to date). Safe to run while servers are running, and several times.
pub async fn migrate(database_url: &str) -> StoreResult<Vec<i64>> {
    if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        postgres::migrate(database_url).await
    } else if let Some(path) = crate::config::sqlite_path(database_url) {
        tokio::task::spawn_blocking(move || sqlite::migrate(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("the migration task failed: {e}")))?
    } else {
        Err(StoreError::Internal(format!(
            "unsupported database URL (expected sqlite://PATH or postgres://…): {}",
            crate::config::redact_url(database_url)
        )))
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
