//! The PostgreSQL store: many tokenvault instances behind a load balancer, one shared database.
//!
//! Every invariant that must hold across instances (one live `token_id` per customer, one owner
//! per live token type/value, unique card token ids and fingerprints, ...) is a constraint or a
//! partial unique index in the schema, never an in-process lock; violations are mapped back to
//! the same friendly messages the SQLite store gives. Connection trouble of any kind becomes
//! [`StoreError::Unavailable`] (HTTP 503) quickly, and the pool heals itself once the database
//! is back.

mod cards;
mod customers;
mod dataset;
mod events;
mod idempotency;
mod keys;
mod migrate;
mod rows;
#[cfg(test)]
mod tests;
mod tls;
mod values;
mod webhooks;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use super::{
    CardTokenDeletion, CardTokenRecord, DataKeyRecord, IdempotencyScope, IdempotencyStart, IdempotentRequest,
    ImportOutcome, Resealed, ResetCounts, ResetParts, SealedColumn, SealedToken, SealedValue, Store, StoreError,
    StoreOptions, StoreResult, StoreStats, StoredResponse,
};
use super::{ReplacedValue, StoredTokenValue, TokenValueMode, ValueTable};
use crate::domain::audit::{AuditRecord, NewAuditRecord};
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::customer::{Customer, CustomerFilter, NewCustomer};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::token_event::{TokenDetail, TokenEvent, TokenEventEntry, TokenTypeValue};
use crate::domain::webhook::{DeliveryResult, HookSubscription, WebhookDelivery};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};

pub use dataset::PostgresDataset;
pub use migrate::migrate;

/// A pool of connections to one PostgreSQL database whose schema is up to date.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Builds the pool and applies pending migrations (safe when several instances start at
    /// once). Fails with `Unavailable` when the database cannot be reached.
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let (mut config, tls) = tls::parse_url(url)?;
        if config.get_connect_timeout().is_none() {
            // Without it a black-holed host hangs a request far beyond the acquire timeout.
            config.connect_timeout(options.acquire_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("tokenvault");
        }
        // `Fast` skips a round trip per checkout; connections that failed with a connection
        // error are discarded explicitly (see `settle`) and closed ones are dropped on recycle.
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.acquire_timeout))
            .create_timeout(Some(options.acquire_timeout))
            .recycle_timeout(Some(options.acquire_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the PostgreSQL pool: {e}")))?;
        let store = Self { pool };
        let mut conn = store.conn().await?;
        let result = migrate::run(&mut conn).await;
        settle(conn, result.map(drop))?;
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }
}

/// Returns a connection to the pool, unless it just failed with a connection error: then it is
/// dropped so that the next request opens a fresh one instead of failing on a dead socket.
fn settle<T>(conn: Object, result: StoreResult<T>) -> StoreResult<T> {
    if matches!(result, Err(StoreError::Unavailable(_))) {
        drop(Object::take(conn));
    }
    result
}

/// Runs `$body` with a pooled connection bound to `$conn`, then settles the connection.
macro_rules! with_conn {
    ($store:expr, |$conn:ident| $body:expr) => {{
        #[allow(unused_mut)]
        let mut $conn = $store.conn().await?;
        let result = async { $body }.await;
        settle($conn, result)
    }};
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if is_connection_error(&error) {
            StoreError::Unavailable(describe(&error))
        } else if error.code().is_some_and(|code| is_insufficient_resources(code.code())) {
            StoreError::Exhausted(describe(&error))
        } else if let Some(constraint) = unique_violation(&error) {
            StoreError::Conflict(format!("a conflicting record already exists ({constraint})"))
        } else {
            StoreError::Internal(describe(&error))
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(error: PoolError) -> Self {
        match error {
            PoolError::Timeout(kind) => {
                StoreError::Unavailable(format!("no database connection available ({kind:?} timeout)"))
            }
            // Whatever stops the pool from opening a connection makes the database unreachable
            // for us, transient or not: 503, and the message names the cause in the logs.
            PoolError::Backend(e) => StoreError::Unavailable(describe(&e)),
            PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
            other => StoreError::Internal(other.to_string()),
        }
    }
}

/// SQLSTATE classes that mean "the database is not there right now": connection exceptions
/// (08), shutdowns and start-ups (57P01-57P03), too many connections (53300).
fn is_connection_error(error: &tokio_postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    use std::error::Error as _;
    error.is_closed()
        || error.source().is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some())
        || error.to_string() == "timeout waiting for server"
}

/// SQLSTATE class 53, "insufficient resources": `53100 disk_full`, `53200 out_of_memory`,
/// `53400 configuration_limit_exceeded` (`53300 too_many_connections` is met when connecting, and
/// is a connection error). The statement failed and changed nothing; retrying later may work.
fn is_insufficient_resources(code: &str) -> bool {
    code.starts_with("53")
}

/// The constraint a unique violation (SQLSTATE 23505) names.
fn unique_violation(error: &tokio_postgres::Error) -> Option<&str> {
    let db = error.as_db_error()?;
    (db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
        .then(|| db.constraint().unwrap_or("a unique constraint"))
}

fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({}): {}", error, db.code().code(), db.message()),
        None => {
            use std::error::Error as _;
            match error.source() {
                Some(source) => format!("{error}: {source}"),
                None => error.to_string(),
            }
        }
    }
}

/// Sets `column` of each row (by `seq`) to its new value where the row still holds the old one,
/// in one transaction, so that a change made meanwhile wins; returns how many rows changed. For
/// rewrites that walk a table beside running servers (key rotation, sealing token values).
async fn compare_and_set<V: ToSql + Sync>(
    conn: &mut Object,
    table: &str,
    column: &str,
    changes: Vec<(i64, V, V)>,
) -> StoreResult<u64> {
    let tx = conn.transaction().await?;
    let statement =
        tx.prepare_cached(&format!("UPDATE {table} SET {column} = $1 WHERE seq = $2 AND {column} = $3")).await?;
    let mut changed = 0;
    for (row, old, new) in changes {
        changed += tx.execute(&statement, &[&new, &row, &old]).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Appends one audit record; callers pass their transaction so the record commits with the
/// change it describes.
async fn append_audit(client: &impl GenericClient, record: NewAuditRecord) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO audit_log (at, account_id, actor, action, resource_type, resource_id, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let details = record.details.to_string();
    client
        .execute(
            &statement,
            &[
                &record.at.millis(),
                &record.account_id,
                &record.actor,
                &record.action,
                &record.resource_type,
                &record.resource_id,
                &details,
            ],
        )
        .await?;
    Ok(())
}

/// A keyset-paged list query: filters (shared by the page and its count), an optional cursor
/// condition and the page order. Parameters are numbered as they are bound, filters first, so
/// that the count query can use a prefix of them.
struct ListQuery<'a> {
    from: &'static str,
    columns: &'static str,
    filters: Vec<String>,
    params: Vec<&'a (dyn ToSql + Sync)>,
    filter_params: Option<usize>,
    cursor: Option<String>,
}

impl<'a> ListQuery<'a> {
    fn new(from: &'static str, columns: &'static str) -> Self {
        Self { from, columns, filters: Vec::new(), params: Vec::new(), filter_params: None, cursor: None }
    }

    /// Binds a parameter and returns its placeholder.
    fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn filter(&mut self, clause: String) {
        self.filters.push(clause);
    }

    /// Restricts the page (not the count) to items after the cursor; call after all filters.
    fn after(&mut self, build: impl FnOnce(&mut Self) -> String) {
        self.filter_params = Some(self.params.len());
        let clause = build(self);
        self.cursor = Some(clause);
    }

    async fn fetch(
        mut self,
        client: &impl GenericClient,
        order_by: &str,
        limit: &'a i64,
        include_total: bool,
    ) -> StoreResult<(Vec<Row>, Option<u64>)> {
        let filter_params = self.filter_params.unwrap_or(self.params.len());
        let where_filters = self.filters.join(" AND ");
        let total = if include_total {
            let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", self.from, where_filters);
            let statement = client.prepare_cached(&sql).await?;
            let count: i64 = client.query_one(&statement, &self.params[..filter_params]).await?.try_get(0)?;
            Some(u64::try_from(count).unwrap_or_default())
        } else {
            None
        };
        let mut conditions = where_filters;
        if let Some(cursor) = &self.cursor {
            conditions = format!("{conditions} AND {cursor}");
        }
        let limit_placeholder = self.bind(limit);
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {}",
            self.columns, self.from, conditions, order_by, limit_placeholder
        );
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &self.params).await?;
        Ok((rows, total))
    }
}

/// `limit + 1`: the extra row only tells whether another page follows.
fn overfetch(page: &PageRequest) -> i64 {
    i64::from(page.limit) + 1
}

/// Escapes `%`, `_` and `\` so a client's prefix matches literally in `LIKE … ESCAPE '\'`.
fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A read-only transaction on one snapshot, so a page, its cursor and its count agree.
async fn snapshot(conn: &mut Object) -> StoreResult<deadpool_postgres::Transaction<'_>> {
    Ok(conn.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?)
}

/// Ends a [`snapshot`] without waiting on the server: a read-only transaction has nothing to
/// commit, and dropping it sends `ROLLBACK` without awaiting the answer (tokio-postgres queues
/// it ahead of the connection's next statement). One round trip fewer per list.
fn end_snapshot(tx: deadpool_postgres::Transaction<'_>) {
    drop(tx);
}

/// Serialises the inserts into one account-wide list (`customers`, `card_tokens`,
/// `token_event_entries`) until the transaction ends. Call it before the insert allocates a
/// `seq`.
///
/// Why: lists are keyset-paged by `seq`, and an identity value is allocated when a row is
/// inserted but becomes visible only when its transaction commits. Two concurrent inserts can
/// commit in the opposite order of their `seq`s; a client paging meanwhile can then see the
/// higher one, move its cursor past it, and never see the lower one once it commits. Holding this
/// lock from before `seq` allocation until commit makes `seq` order equal commit order within
/// the list, so everything below a cursor was already visible when the cursor was handed out.
///
/// Why a lock rather than another cursor: the alternatives (paging only up to the oldest
/// in-flight transaction's snapshot `xmin`, or a commit-time sequence) need per-row transaction
/// ids or a second ordering column and still let a page "wait" on a slow writer. The price of the
/// lock is that inserts into one account's list (not reads, updates or other accounts) take turns
/// for the length of their transaction: a few milliseconds each. A customer's tokens use the
/// customer row's lock instead (see `customers::live_customer_seq`). SQLite needs none of this: its
/// single writer commits in `seq` order anyway.
async fn lock_list(client: &impl GenericClient, list: &str, account: &str) -> StoreResult<()> {
    let statement = client
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended('tokenvault list ' || $1 || ' ' || $2, 0))")
        .await?;
    client.execute(&statement, &[&list, &account]).await?;
    Ok(())
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let statement = conn.prepare_cached("SELECT 1").await?;
            conn.query_one(&statement, &[]).await?;
            Ok(())
        })
    }

    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        with_conn!(self, |conn| customers::upsert_client(&conn, client).await)
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        with_conn!(self, |conn| customers::find_client(&conn, client_id).await)
    }

    async fn list_clients(&self, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
        with_conn!(self, |conn| customers::list_clients(&conn, account).await)
    }

    async fn revoke_client(&self, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord> {
        with_conn!(self, |conn| customers::revoke_client(&mut conn, client_id, actor, at).await)
    }

    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ClientRecord> {
        with_conn!(self, |conn| customers::rotate_client_secret(&mut conn, client_id, secret_hash, actor, at).await)
    }

    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        with_conn!(self, |conn| customers::replace_signing_key(&conn, kid, old, new).await)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        with_conn!(self, |conn| customers::signing_keys(&conn).await)
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        with_conn!(self, |conn| customers::insert_signing_key(&conn, key).await)
    }

    async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> StoreResult<Customer> {
        with_conn!(self, |conn| customers::create_customer(&mut conn, account, customer).await)
    }

    async fn get_customer(&self, account: &AccountId, customer_id: &str) -> StoreResult<Option<Customer>> {
        with_conn!(self, |conn| customers::get_customer(&conn, account, customer_id).await)
    }

    async fn list_customers(
        &self,
        account: &AccountId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Customer>> {
        with_conn!(self, |conn| customers::list_customers(&mut conn, account, filter, page).await)
    }

    async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer> {
        with_conn!(self, |conn| customers::delete_customer(&mut conn, account, customer_id, delete_tokens, actor, at)
            .await)
    }

    async fn create_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token: &NewCustomerToken,
        delete_token_events: bool,
    ) -> StoreResult<CustomerToken> {
        with_conn!(self, |conn| {
            customers::create_customer_token(&mut conn, account, customer_id, token, delete_token_events).await
        })
    }

    async fn list_customer_tokens(
        &self,
        account: &AccountId,
        customer_id: &str,
        filter: &CustomerTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CustomerToken>> {
        with_conn!(self, |conn| customers::list_customer_tokens(&mut conn, account, customer_id, filter, page).await)
    }

    async fn delete_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CustomerToken> {
        with_conn!(self, |conn| customers::delete_customer_token(&mut conn, account, customer_id, token_id, actor, at)
            .await)
    }

    async fn token_detail(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<TokenDetail> {
        with_conn!(self, |conn| events::token_detail(&mut conn, account, token, event, actor, at).await)
    }

    async fn list_token_events(
        &self,
        account: &AccountId,
        since: Option<Timestamp>,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        with_conn!(self, |conn| events::list_token_events(&mut conn, account, since, page).await)
    }

    async fn list_deleted_token_events(
        &self,
        account: &AccountId,
        deleted_since: Timestamp,
        page: &PageRequest,
    ) -> StoreResult<Page<TokenEventEntry>> {
        with_conn!(self, |conn| events::list_deleted_token_events(&mut conn, account, deleted_since, page).await)
    }

    async fn clear_token_events(
        &self,
        account: &AccountId,
        token: &TokenTypeValue,
        delete_event: Option<&TokenEvent>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        with_conn!(self, |conn| events::clear_token_events(&mut conn, account, token, delete_event, actor, at).await)
    }

    async fn create_card_token(&self, card: &CardToken, sealed: Option<&SealedToken>) -> StoreResult<CardTokenRecord> {
        with_conn!(self, |conn| cards::create_card_token(&mut conn, card, sealed).await)
    }

    async fn import_card_tokens(&self, batch: &[(CardToken, Option<SealedToken>)]) -> StoreResult<Vec<ImportOutcome>> {
        with_conn!(self, |conn| cards::import_card_tokens(&mut conn, batch).await)
    }

    async fn get_card_token(&self, account: &AccountId, id: &str) -> StoreResult<Option<CardTokenRecord>> {
        with_conn!(self, |conn| cards::get_card_token(&conn, account, id).await)
    }

    async fn list_card_tokens(
        &self,
        account: &AccountId,
        filter: &CardTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CardTokenRecord>> {
        with_conn!(self, |conn| cards::list_card_tokens(&mut conn, account, filter, page).await)
    }

    async fn delete_card_token(
        &self,
        account: &AccountId,
        id: &str,
        deletion: &CardTokenDeletion,
    ) -> StoreResult<CardTokenRecord> {
        with_conn!(self, |conn| cards::delete_card_token(&mut conn, account, id, deletion).await)
    }

    async fn set_card_token_status(
        &self,
        account: &AccountId,
        id: &str,
        status: CardTokenStatus,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CardTokenRecord> {
        with_conn!(self, |conn| cards::set_card_token_status(&mut conn, account, id, status, actor, at).await)
    }

    async fn list_audit(
        &self,
        account: Option<&AccountId>,
        after_seq: i64,
        limit: u32,
    ) -> StoreResult<Vec<AuditRecord>> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "SELECT seq, at, account_id, actor, action, resource_type, resource_id, details FROM audit_log \
                     WHERE seq > $1 AND ($2::TEXT IS NULL OR account_id = $2) ORDER BY seq LIMIT $3",
                )
                .await?;
            let account = account.map(AccountId::as_str);
            let rows = conn.query(&statement, &[&after_seq, &account, &i64::from(limit)]).await?;
            rows.iter().map(rows::audit_record).collect()
        })
    }

    async fn token_value_mode(&self) -> StoreResult<TokenValueMode> {
        with_conn!(self, |conn| values::mode(&conn).await)
    }

    async fn set_token_value_mode(&self, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()> {
        with_conn!(self, |conn| values::set_mode(&mut conn, mode, actor, at).await)
    }

    async fn token_values(&self, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>> {
        with_conn!(self, |conn| values::values(&conn, table, after_row, limit).await)
    }

    async fn replace_token_values(&self, table: ValueTable, replaced: &[ReplacedValue]) -> StoreResult<u64> {
        with_conn!(self, |conn| values::replace(&mut conn, table, replaced).await)
    }

    async fn data_keys(&self) -> StoreResult<Vec<DataKeyRecord>> {
        with_conn!(self, |conn| keys::data_keys(&conn).await)
    }

    async fn insert_data_key(&self, key: &DataKeyRecord) -> StoreResult<()> {
        with_conn!(self, |conn| keys::insert_data_key(&mut conn, key).await)
    }

    async fn sealed_values(
        &self,
        column: SealedColumn,
        after_row: i64,
        unless_prefix: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>> {
        with_conn!(self, |conn| keys::sealed_values(&conn, column, after_row, unless_prefix, limit).await)
    }

    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64> {
        with_conn!(self, |conn| keys::replace_sealed_values(&mut conn, column, values).await)
    }

    async fn create_hook_subscription(&self, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()> {
        with_conn!(self, |conn| webhooks::create_subscription(&mut conn, subscription, sealed_secret).await)
    }

    async fn list_hook_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<HookSubscription>> {
        with_conn!(self, |conn| webhooks::list_subscriptions(&conn, account).await)
    }

    async fn get_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
    ) -> StoreResult<Option<HookSubscription>> {
        with_conn!(self, |conn| webhooks::get_subscription(&conn, account, id).await)
    }

    async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<HookSubscription> {
        with_conn!(self, |conn| webhooks::delete_subscription(&mut conn, account, id, actor, at).await)
    }

    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        with_conn!(self, |conn| webhooks::claim(&conn, now, lease_until, limit).await)
    }

    async fn complete_webhook_delivery(&self, id: uuid::Uuid, result: &DeliveryResult) -> StoreResult<()> {
        with_conn!(self, |conn| webhooks::complete(&conn, id, result).await)
    }

    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
        with_conn!(self, |conn| webhooks::prune(&conn, finished_before, limit).await)
    }

    async fn reset_account(
        &self,
        account: &AccountId,
        parts: ResetParts,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ResetCounts> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let id = account.as_str();
            let delete = async |sql: &str| -> StoreResult<u64> {
                let statement = tx.prepare_cached(sql).await?;
                Ok(tx.execute(&statement, &[&id]).await?)
            };
            let mut counts = ResetCounts::default();
            if parts.customers {
                counts.customer_tokens = Some(delete("DELETE FROM customer_tokens WHERE account_id = $1").await?);
                counts.customers = Some(delete("DELETE FROM customers WHERE account_id = $1").await?);
                counts.token_events = Some(
                    delete(
                        "DELETE FROM token_events WHERE entry_seq IN \
                         (SELECT seq FROM token_event_entries WHERE account_id = $1)",
                    )
                    .await?,
                );
                delete("DELETE FROM token_event_entries WHERE account_id = $1").await?;
            }
            if parts.card_tokens {
                counts.card_tokens = Some(delete("DELETE FROM card_tokens WHERE account_id = $1").await?);
            }
            if parts.hooks {
                counts.webhook_deliveries = Some(
                    delete(
                        "DELETE FROM webhook_outbox WHERE account_id = $1 AND delivered_at IS NULL AND gave_up_at IS NULL",
                    )
                    .await?,
                );
                delete("DELETE FROM webhook_outbox WHERE account_id = $1").await?;
                counts.hook_subscriptions = Some(delete("DELETE FROM hook_subscriptions WHERE account_id = $1").await?);
            }
            // Replays of responses about data that is gone: a key reused after the reset runs
            // afresh. Claims in progress (the reset's own among them) stay with their requests.
            delete("DELETE FROM idempotency_keys WHERE account_id = $1 AND state = 'done'").await?;
            append_audit(&tx, NewAuditRecord::sandbox_reset(account, &counts, actor, at)).await?;
            tx.commit().await?;
            Ok(counts)
        })
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        let status = self.pool.status();
        let webhook_outbox_pending: i64 = with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached("SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL")
                .await?;
            Ok::<_, StoreError>(conn.query_one(&statement, &[]).await?.get(0))
        })?;
        Ok(StoreStats {
            pool_size: status.max_size as u64,
            pool_idle: status.available as u64,
            webhook_outbox_pending: webhook_outbox_pending as u64,
        })
    }

    async fn begin_idempotent(&self, request: &IdempotentRequest) -> StoreResult<IdempotencyStart> {
        with_conn!(self, |conn| idempotency::begin(&mut conn, request).await)
    }

    async fn finish_idempotent(
        &self,
        scope: &IdempotencyScope,
        attempt: uuid::Uuid,
        response: &StoredResponse,
    ) -> StoreResult<()> {
        with_conn!(self, |conn| idempotency::finish(&conn, scope, attempt, response).await)
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope, attempt: uuid::Uuid) -> StoreResult<()> {
        with_conn!(self, |conn| idempotency::abandon(&conn, scope, attempt).await)
    }
}
