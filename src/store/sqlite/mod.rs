//! The embedded SQLite store: one writer thread that group-commits (durable with
//! `synchronous=FULL`, yet one fsync per batch) and a small pool of read-only connections.

mod admin;
mod card_tokens;
mod checkpoint;
mod customers;
mod dataset;
mod idempotency;
mod keys;
mod migrate;
mod pool;
mod sql;
mod token_events;
mod values;
mod webhooks;
mod writer;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{
    CardTokenDeletion, CardTokenRecord, DataKeyRecord, IdempotencyScope, IdempotencyStart, IdempotentRequest,
    ImportOutcome, Resealed, ResetCounts, ResetParts, SealedColumn, SealedToken, SealedValue, Store, StoreError,
    StoreOptions, StoreResult, StoreStats, StoredResponse,
};
use super::{ReplacedValue, StoredTokenValue, TokenValueMode, ValueTable};
use crate::domain::audit::AuditRecord;
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::customer::{Customer, CustomerFilter, NewCustomer};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue};
use crate::domain::webhook::{DeliveryResult, HookSubscription, WebhookDelivery};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use checkpoint::Checkpointer;
pub use dataset::SqliteDataset;
pub use migrate::migrate;
use pool::ReadPool;
use writer::Writer;

/// How long a connection waits on another process's lock before giving up with `Unavailable`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const STATEMENT_CACHE: usize = 64;
/// Page cache of each read connection, in KiB, as `PRAGMA cache_size` takes it (negative): 512 KiB
/// holds the upper levels of the indexes a list searches; the rest comes from the OS page cache.
/// SQLite's default (2 MiB each) made the readers alone 16 MiB of the server's memory.
const READER_CACHE_KIB: i64 = -512;
/// Page cache of the checkpoint connection (SQLite keeps at least ten pages whatever it is told).
const CHECKPOINT_CACHE_KIB: i64 = -64;

pub struct SqliteStore {
    writer: Writer,
    readers: ReadPool,
    /// Declared last: dropped after the writer and the readers, its connection is the last to
    /// close, and closing it checkpoints and removes the WAL.
    _checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Creates the file (and its directory) if needed and brings the schema up to date.
    pub async fn open(path: &Path, options: &StoreOptions) -> StoreResult<Self> {
        let path = path.to_owned();
        let options = options.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, &options))
            .await
            .map_err(|e| StoreError::Internal(format!("opening the SQLite store failed: {e}")))?
    }

    fn open_blocking(path: &Path, options: &StoreOptions) -> StoreResult<Self> {
        let (conn, _) = migrate::open_migrated(path)?;

        let mut readers = Vec::with_capacity(options.pool_size.max(1));
        for _ in 0..options.pool_size.max(1) {
            let reader =
                Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
            configure(&reader)?;
            reader.pragma_update(None, "query_only", true)?;
            reader.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
            readers.push(reader);
        }
        // The writer's own automatic checkpoint is the short last step; the thread does the rest.
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::WRITER_CHECKPOINT_FRAMES)?;
        let checkpoints =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        configure(&checkpoints)?;
        // A checkpoint copies frames without the page cache; SQLite's default 2 MiB cache filled
        // anyway and showed as 4 MiB more peak RSS under the list load.
        checkpoints.pragma_update(None, "cache_size", CHECKPOINT_CACHE_KIB)?;
        Ok(Self {
            writer: Writer::start(conn)?,
            readers: ReadPool::new(readers, options.acquire_timeout)?,
            _checkpointer: Checkpointer::start(checkpoints)?,
        })
    }
}

/// Process-wide SQLite settings; call before the first connection opens (later, SQLite refuses
/// them and nothing changes). Turns off SQLite's memory statistics, which take a global mutex
/// on every allocation of every connection: the read connections contend on it under load.
pub fn configure_process() {
    // SAFETY: sqlite3_config with SQLITE_CONFIG_MEMSTATUS takes one int; called before
    // sqlite3_initialize it only sets a flag, afterwards it returns SQLITE_MISUSE and does nothing.
    unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int);
    }
}

fn configure(conn: &Connection) -> StoreResult<()> {
    // FULL, never NORMAL: an acknowledged write must survive power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Overwritten and deleted content is zeroed, in pages and in pages moved to the freelist, so
    // values converted to their sealed form do not linger in the file's free space.
    conn.pragma_update(None, "secure_delete", true)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error_code() {
            // The pre-checks give the friendly message; this is the guard behind them.
            Some(ErrorCode::ConstraintViolation)
                if matches!(
                    &error,
                    rusqlite::Error::SqliteFailure(e, _)
                        if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                            || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                StoreError::Conflict("the record conflicts with one that already exists".into())
            }
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen) => {
                StoreError::Unavailable(error.to_string())
            }
            // SQLITE_FULL: the file system has no room (SQLite turns ENOSPC from a write into it),
            // or the database reached `max_page_count`; SQLITE_NOMEM: no memory. The transaction
            // is rolled back, nothing is half-written, and a retry works once there is room.
            Some(ErrorCode::DiskFull | ErrorCode::OutOfMemory) => StoreError::Exhausted(error.to_string()),
            _ => StoreError::Internal(error.to_string()),
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers.read(|conn| sql::first(conn, "SELECT 1", [], |_| Ok(())).map(drop)).await
    }

    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let client = client.clone();
        self.writer.submit(move |conn| admin::upsert_client(conn, &client)).await
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let client_id = client_id.to_owned();
        self.readers.read(move |conn| admin::find_client(conn, &client_id)).await
    }

    async fn list_clients(&self, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
        let account = account.cloned();
        self.readers.read(move |conn| admin::list_clients(conn, account.as_ref())).await
    }

    async fn revoke_client(&self, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord> {
        let (client_id, actor) = (client_id.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| admin::revoke_client(conn, &client_id, &actor, at)).await
    }

    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ClientRecord> {
        let (client_id, secret_hash, actor) = (client_id.to_owned(), secret_hash.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| admin::rotate_client_secret(conn, &client_id, &secret_hash, &actor, at)).await
    }

    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let (kid, old, new) = (kid.to_owned(), old.to_vec(), new.to_vec());
        self.writer.submit(move |conn| admin::replace_signing_key(conn, &kid, &old, &new)).await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.readers.read(admin::signing_keys).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.writer.submit(move |conn| admin::insert_signing_key(conn, &key)).await
    }

    async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> StoreResult<Customer> {
        let (account, customer) = (account.clone(), customer.clone());
        self.writer.submit(move |conn| customers::create_customer(conn, &account, &customer)).await
    }

    async fn get_customer(&self, account: &AccountId, customer_id: &str) -> StoreResult<Option<Customer>> {
        let (account, customer_id) = (account.clone(), customer_id.to_owned());
        self.readers
            .read(move |conn| Ok(customers::live_customer(conn, &account, &customer_id)?.map(|(_, customer)| customer)))
            .await
    }

    async fn list_customers(
        &self,
        account: &AccountId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Customer>> {
        let (account, filter, page) = (account.clone(), filter.clone(), page.clone());
        self.readers.read(move |conn| customers::list_customers(conn, &account, &filter, &page)).await
    }

    async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer> {
        let (account, customer_id, actor) = (account.clone(), customer_id.to_owned(), actor.to_owned());
        self.writer
            .submit(move |conn| customers::delete_customer(conn, &account, &customer_id, delete_tokens, &actor, at))
            .await
    }

    async fn create_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token: &NewCustomerToken,
        delete_token_events: bool,
    ) -> StoreResult<CustomerToken> {
        let (account, customer_id, token) = (account.clone(), customer_id.to_owned(), token.clone());
        self.writer
            .submit(move |conn| customers::create_token(conn, &account, &customer_id, &token, delete_token_events))
            .await
    }

    async fn list_customer_tokens(
        &self,
        account: &AccountId,
        customer_id: &str,
        filter: &CustomerTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CustomerToken>> {
        let (account, customer_id, filter, page) =
            (account.clone(), customer_id.to_owned(), filter.clone(), page.clone());
        self.readers.read(move |conn| customers::list_tokens(conn, &account, &customer_id, &filter, &page)).await
    }

    async fn delete_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CustomerToken> {
        let (account, customer_id, token_id, actor) =
            (account.clone(), customer_id.to_owned(), token_id.to_owned(), actor.to_owned());
        self.writer
            .submit(move |conn| customers::delete_token(conn, &account, &customer_id, &token_id, &actor, at))
            .await
    }

    async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<TokenDetail> {
        let (account, token) = (account.clone(), token.clone());
        match event {
            Some(event) => {
                let (event, actor) = (event.clone(), actor.to_owned());
                self.writer
                    .submit(move |conn| {
                        token_events::record(conn, &account, &token, &event, &actor, at)?;
                        token_events::detail(conn, &account, &token)
                    })
                    .await
            }
            None => self.readers.read(move |conn| token_events::detail(conn, &account, &token)).await,
        }
    }

    async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        let (account, page) = (account.clone(), page.clone());
        self.readers.read(move |conn| token_events::list(conn, &account, since, &page)).await
    }

    async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        let (account, page) = (account.clone(), page.clone());
        self.readers.read(move |conn| token_events::list_deleted(conn, &account, deleted_since, &page)).await
    }

    async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (account, token, delete_event, actor) =
            (account.clone(), token.clone(), delete_event.cloned(), actor.to_owned());
        self.writer
            .submit(move |conn| token_events::clear(conn, &account, &token, delete_event.as_ref(), &actor, at))
            .await
    }

    async fn create_card_token(&self, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord> {
        let (card, sealed) = (card.clone(), sealed.cloned());
        self.writer.submit(move |conn| card_tokens::create(conn, &card, sealed.as_ref())).await
    }

    async fn import_card_tokens(&self, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>> {
        let batch = batch.to_vec();
        self.writer.submit(move |conn| card_tokens::import(conn, &batch)).await
    }

    async fn get_card_token(&self, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>> {
        let (account, id) = (account.clone(), id.to_owned());
        self.readers.read(move |conn| card_tokens::get(conn, &account, &id)).await
    }

    async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CardTokenRecord>> {
        let (account, filter, page) = (account.clone(), filter.clone(), page.clone());
        self.readers.read(move |conn| card_tokens::list(conn, &account, &filter, &page)).await
    }

    async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> StoreResult<CardTokenRecord> {
        let (account, id, deletion) = (account.clone(), id.to_owned(), deletion.clone());
        self.writer.submit(move |conn| card_tokens::delete(conn, &account, &id, &deletion)).await
    }

    async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CardTokenRecord> {
        let (account, id, actor) = (account.clone(), id.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| card_tokens::set_status(conn, &account, &id, status, &actor, at)).await
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        let account = account.map(|a| a.as_str().to_owned());
        self.readers.read(move |conn| admin::list_audit(conn, account.as_deref(), after_seq, limit)).await
    }

    async fn token_value_mode(&self) -> StoreResult<TokenValueMode> {
        self.readers.read(values::mode).await
    }

    async fn set_token_value_mode(&self, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()> {
        let actor = actor.to_owned();
        self.writer.submit(move |conn| values::set_mode(conn, mode, &actor, at)).await
    }

    async fn token_values(&self, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>> {
        self.readers.read(move |conn| values::values(conn, table, after_row, limit)).await
    }

    async fn replace_token_values(&self, table: ValueTable, replaced: &[ReplacedValue]) -> StoreResult<u64> {
        let replaced = replaced.to_vec();
        self.writer.submit(move |conn| values::replace(conn, table, &replaced)).await
    }

    async fn data_keys(&self) -> StoreResult<Vec<DataKeyRecord>> {
        self.readers.read(keys::data_keys).await
    }

    async fn insert_data_key(&self, key: &DataKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.writer.submit(move |conn| keys::insert_data_key(conn, &key)).await
    }

    async fn sealed_values(
        &self,
        column: SealedColumn,
        after_row: i64,
        unless_prefix: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>> {
        let prefix = unless_prefix.to_vec();
        self.readers.read(move |conn| keys::sealed_values(conn, column, after_row, &prefix, limit)).await
    }

    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64> {
        let values = values.to_vec();
        self.writer.submit(move |conn| keys::replace_sealed_values(conn, column, &values)).await
    }

    async fn create_hook_subscription(&self, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()> {
        let (subscription, sealed_secret) = (subscription.clone(), sealed_secret.to_vec());
        self.writer.submit(move |conn| webhooks::create_subscription(conn, &subscription, &sealed_secret)).await
    }

    async fn list_hook_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<HookSubscription>> {
        let account = account.clone();
        self.readers.read(move |conn| webhooks::list_subscriptions(conn, &account)).await
    }

    async fn get_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
    ) -> StoreResult<Option<HookSubscription>> {
        let account = account.clone();
        self.readers.read(move |conn| webhooks::get_subscription(conn, &account, id)).await
    }

    async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<HookSubscription> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| webhooks::delete_subscription(conn, &account, id, &actor, at)).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        // Polling reads first, so an idle outbox never takes a turn of the writer.
        if limit == 0 || !self.readers.read(move |conn| webhooks::any_due(conn, now)).await? {
            return Ok(Vec::new());
        }
        self.writer.submit(move |conn| webhooks::claim(conn, now, lease_until, limit)).await
    }

    async fn complete_webhook_delivery(&self, id: uuid::Uuid, result: &DeliveryResult) -> StoreResult<()> {
        let result = result.clone();
        self.writer.submit(move |conn| webhooks::complete(conn, id, &result)).await
    }

    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.writer.submit(move |conn| webhooks::prune(conn, finished_before, limit)).await
    }

    async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ResetCounts> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| admin::reset_account(conn, &account, parts, &actor, at)).await
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let (pool_size, pool_idle) = self.readers.status();
        let webhook_outbox_pending = self.readers.read(admin::pending_deliveries).await?;
        Ok(StoreStats { pool_size, pool_idle, webhook_outbox_pending })
    }

    async fn begin_idempotent(&self, request: &IdempotentRequest) -> StoreResult<IdempotencyStart> {
        let request = request.clone();
        self.writer.submit(move |conn| idempotency::begin(conn, &request)).await
    }

    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: uuid::Uuid,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        let (scope, response) = (scope.clone(), response.clone());
        self.writer.submit(move |conn| idempotency::finish(conn, &scope, attempt, &response)).await
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()> {
        let scope = scope.clone();
        self.writer.submit(move |conn| idempotency::abandon(conn, &scope, attempt)).await
    }
}
