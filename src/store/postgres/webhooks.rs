//! Webhook subscriptions and the durable outbox. Card-token mutations call [`announce`] inside
//! their own transaction, so an event row commits (or rolls back) with the change it announces.
//!
//! Several instances share the outbox: a claim leases rows with `FOR UPDATE SKIP LOCKED`, so two
//! workers never take the same row, and no worker waits on another's claim.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::Row;
use uuid::Uuid;

use super::rows::{self, account, get};
use super::sql::append_audit;
use super::PostgresStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::card_token::CardToken;
use crate::domain::webhook::{
    card_token_event_body, headers_from_json, headers_object, ping_event_body, DeliveryAttempt, DeliveryRecord,
    DeliveryResult, DeliveryState, HookConfig, HookDelivery, HookSubscription, QueuedBy, WebhookDelivery, PING,
    WORKER_ACTOR,
};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{StoreError, StoreResult, WebhookStore};

const COLUMNS: &str = "id, account_id, url, events, active, created_at, created_by, updated_at";

/// Rows that still await delivery; the outbox's partial indexes use the same condition.
const PENDING: &str = "delivered_at IS NULL AND gave_up_at IS NULL";

fn events(row: &Row) -> StoreResult<Vec<String>> {
    let text: &str = get(row, "events")?;
    serde_json::from_str(text).map_err(|e| StoreError::Internal(format!("column events: {e}")))
}

fn subscription(row: &Row) -> StoreResult<HookSubscription> {
    Ok(HookSubscription {
        id: rows::uuid(row, "id")?,
        account_id: account(row, "account_id")?,
        config: HookConfig { url: get(row, "url")?, content_type: "application/json".to_owned() },
        events: events(row)?,
        active: get(row, "active")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        created_by: get(row, "created_by")?,
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

async fn create_subscription(
    conn: &mut Object,
    subscription: &HookSubscription,
    sealed_secret: &[u8],
) -> StoreResult<()> {
    let tx = conn.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO hook_subscriptions (id, account_id, url, events, active, sealed_secret, created_at, \
             created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    let events = rows::json_text(&subscription.events)?;
    tx.execute(
        &statement,
        &[
            &subscription.id.to_string(),
            &subscription.account_id.as_str(),
            &subscription.config.url,
            &events,
            &subscription.active,
            &sealed_secret,
            &subscription.created_at.millis(),
            &subscription.created_by,
            &subscription.updated_at.millis(),
        ],
    )
    .await?;
    append_audit(&tx, NewAuditRecord::hook_subscription_created(subscription)).await?;
    if subscription.active {
        let ping = ping_event_body(subscription);
        let subscription_id = subscription.id.to_string();
        let (account, at) = (&subscription.account_id, subscription.created_at);
        insert_delivery(&tx, Uuid::new_v4(), None, &subscription_id, account, PING, &ping, at).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes one outbox row, due at `at`. `event_delivery` is the row's own id unless given (a
/// resend's).
#[allow(clippy::too_many_arguments)]
async fn insert_delivery(
    client: &impl GenericClient,
    id: Uuid,
    event_delivery: Option<Uuid>,
    subscription: &str,
    account: &AccountId,
    event: &str,
    body: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO webhook_outbox (id, event_delivery, subscription_id, account_id, event, body, attempts, \
             next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
        )
        .await?;
    let event_delivery = event_delivery.unwrap_or(id).to_string();
    client
        .execute(
            &statement,
            &[&id.to_string(), &event_delivery, &subscription, &account.as_str(), &event, &body, &at.millis()],
        )
        .await?;
    Ok(())
}

async fn list_subscriptions(client: &impl GenericClient, account: &AccountId) -> StoreResult<Vec<HookSubscription>> {
    let sql = format!("SELECT {COLUMNS} FROM hook_subscriptions WHERE account_id = $1 ORDER BY seq");
    let statement = client.prepare_cached(&sql).await?;
    client.query(&statement, &[&account.as_str()]).await?.iter().map(subscription).collect()
}

async fn get_subscription(
    client: &impl GenericClient,
    account: &AccountId,
    id: Uuid,
) -> StoreResult<Option<HookSubscription>> {
    let sql = format!("SELECT {COLUMNS} FROM hook_subscriptions WHERE account_id = $1 AND id = $2");
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[&account.as_str(), &id.to_string()]).await?;
    row.as_ref().map(subscription).transpose()
}

/// Removes the subscription and the deliveries it still owes; delivered and given-up rows stay
/// as history. The delete waits for card-token transactions holding the subscription (see
/// [`listeners`]), so their events are committed by the time pending rows are dropped.
async fn delete_subscription(
    conn: &mut Object,
    account: &AccountId,
    id: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<HookSubscription> {
    let tx = conn.transaction().await?;
    // The subscription's pending deliveries first, in the order a worker recording an attempt
    // takes its locks (the delivery, then the subscription): taken the other way round, a
    // delete while a delivery completes deadlocked, and PostgreSQL failed one of the two.
    let statement = tx
        .prepare_cached(&format!(
            "SELECT id FROM webhook_outbox WHERE subscription_id = $1 AND {PENDING} ORDER BY seq FOR UPDATE"
        ))
        .await?;
    tx.query(&statement, &[&id.to_string()]).await?;
    let deleted = delete_subscription_in(&tx, account, id, actor, at).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// [`delete_subscription`] inside the caller's transaction.
async fn delete_subscription_in(
    tx: &impl GenericClient,
    account: &AccountId,
    id: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<HookSubscription> {
    let sql = format!("DELETE FROM hook_subscriptions WHERE account_id = $1 AND id = $2 RETURNING {COLUMNS}");
    let statement = tx.prepare_cached(&sql).await?;
    let key = id.to_string();
    let Some(row) = tx.query_opt(&statement, &[&account.as_str(), &key]).await? else {
        return Err(StoreError::NotFound("subscription"));
    };
    let deleted = subscription(&row)?;
    let statement = tx
        .prepare_cached(&format!(
            "DELETE FROM webhook_attempts WHERE delivery_id IN \
             (SELECT id FROM webhook_outbox WHERE subscription_id = $1 AND {PENDING})"
        ))
        .await?;
    tx.execute(&statement, &[&key]).await?;
    let statement =
        tx.prepare_cached(&format!("DELETE FROM webhook_outbox WHERE subscription_id = $1 AND {PENDING}")).await?;
    let dropped = tx.execute(&statement, &[&key]).await?;
    append_audit(tx, NewAuditRecord::hook_subscription_deleted(account, id, dropped, actor, at)).await?;
    Ok(deleted)
}

/// An active subscription of an account and the events it wants.
pub(super) struct Listener {
    id: String,
    events: Vec<String>,
}

/// The account's active subscriptions: one indexed lookup, nothing more when there are none.
/// `FOR KEY SHARE` holds them until the caller's transaction ends, so a concurrent delete of a
/// subscription either happens first (and the change sends it nothing) or waits and then drops
/// the rows this transaction wrote; no outbox row is left behind for a deleted subscription.
pub(super) async fn listeners(client: &impl GenericClient, account: &AccountId) -> StoreResult<Vec<Listener>> {
    let statement = client
        .prepare_cached(
            "SELECT id, events FROM hook_subscriptions WHERE account_id = $1 AND active ORDER BY seq FOR KEY SHARE",
        )
        .await?;
    let rows = client.query(&statement, &[&account.as_str()]).await?;
    rows.iter().map(|row| Ok(Listener { id: get(row, "id")?, events: events(row)? })).collect()
}

/// Writes one outbox row per listener that wants `event`, due at once. `card` is the token as
/// stored after the change; its secret `token` never enters the body.
pub(super) async fn enqueue(
    client: &impl GenericClient,
    listeners: &[Listener],
    event: &str,
    card: &CardToken,
) -> StoreResult<()> {
    let now = super::clocks::account_now(client, &card.account_id).await?;
    for listener in listeners.iter().filter(|l| l.events.iter().any(|e| e == event)) {
        let delivery = Uuid::new_v4();
        let body = card_token_event_body(event, delivery, card);
        insert_delivery(client, delivery, None, &listener.id, &card.account_id, event, &body, now).await?;
    }
    Ok(())
}

/// [`listeners`] and [`enqueue`] for a single change.
pub(super) async fn announce(client: &impl GenericClient, event: &str, card: &CardToken) -> StoreResult<()> {
    let listeners = listeners(client, &card.account_id).await?;
    if listeners.is_empty() {
        return Ok(());
    }
    enqueue(client, &listeners, event, card).await
}

/// Takes the oldest due deliveries and moves their next attempt to `lease_until`, in one
/// statement. Rows another worker is claiming right now are skipped, not waited for.
async fn claim(
    client: &impl GenericClient,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> StoreResult<Vec<WebhookDelivery>> {
    let statement = client
        .prepare_cached(&format!(
            "WITH due AS MATERIALIZED ( \
                 SELECT o.seq, COALESCE(c.offset_ms, 0) AS offset_ms \
                 FROM webhook_outbox o LEFT JOIN sandbox_clocks c ON c.account_id = o.account_id \
                 WHERE {PENDING} \
                   AND o.next_attempt_at <= $1 + GREATEST(0, (SELECT COALESCE(MAX(offset_ms), 0) FROM sandbox_clocks)) \
                   AND o.next_attempt_at <= $1 + COALESCE(c.offset_ms, 0) \
                 ORDER BY o.seq LIMIT $3 FOR UPDATE OF o SKIP LOCKED) \
             UPDATE webhook_outbox o SET next_attempt_at = $2 + due.offset_ms \
             FROM due, hook_subscriptions s \
             WHERE o.seq = due.seq AND s.id = o.subscription_id \
             RETURNING o.seq, o.id, o.subscription_id, o.account_id, s.url, s.sealed_secret, o.event, o.body, \
                 o.attempts, o.event_delivery"
        ))
        .await?;
    let rows = client.query(&statement, &[&now.millis(), &lease_until.millis(), &i64::from(limit)]).await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            let attempts: i32 = get(row, "attempts")?;
            let id = rows::uuid(row, "id")?;
            let delivery = WebhookDelivery {
                id,
                event_delivery: event_delivery(row, id)?,
                subscription_id: rows::uuid(row, "subscription_id")?,
                account_id: account(row, "account_id")?,
                url: get(row, "url")?,
                sealed_secret: get(row, "sealed_secret")?,
                event: get(row, "event")?,
                body: get(row, "body")?,
                attempts: u32::try_from(attempts).unwrap_or_default(),
            };
            Ok((get::<i64>(row, "seq")?, delivery))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    // RETURNING keeps no order.
    claimed.sort_by_key(|(seq, _)| *seq);
    Ok(claimed.into_iter().map(|(_, delivery)| delivery).collect())
}

/// `event_delivery`, the row's own `id` where a row from before the column has none.
fn event_delivery(row: &Row, id: Uuid) -> StoreResult<Uuid> {
    match get::<Option<&str>>(row, "event_delivery")? {
        Some(_) => rows::uuid(row, "event_delivery"),
        None => Ok(id),
    }
}

/// Records an attempt and its outcome together; see `WebhookStore::complete_webhook_delivery`.
async fn complete(
    conn: &mut Object,
    id: Uuid,
    result: &DeliveryResult,
    attempt: &DeliveryAttempt,
    delete_after_failures: u32,
) -> StoreResult<Option<Uuid>> {
    let tx = conn.transaction().await?;
    let key = id.to_string();
    let statement = tx
        .prepare_cached(&format!(
            "SELECT subscription_id, account_id, ({PENDING}) AS pending FROM webhook_outbox WHERE id = $1 FOR UPDATE"
        ))
        .await?;
    let Some(row) = tx.query_opt(&statement, &[&key]).await? else {
        return Ok(None);
    };
    let (subscription, account, pending) =
        (rows::uuid(&row, "subscription_id")?, rows::account(&row, "account_id")?, get::<bool>(&row, "pending")?);
    insert_attempt(&tx, &key, attempt).await?;
    let status = attempt.status.map(i32::from);
    if !pending {
        tx.commit().await?;
        return Ok(None);
    }
    match result {
        DeliveryResult::Delivered { at } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = $2, last_status = $3 WHERE id = $1",
                )
                .await?;
            tx.execute(&statement, &[&key, &at.millis(), &status]).await?;
        }
        DeliveryResult::Retry { at, error } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3, \
                     last_status = $4 WHERE id = $1",
                )
                .await?;
            tx.execute(&statement, &[&key, &at.millis(), error, &status]).await?;
        }
        DeliveryResult::GiveUp { error } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, gave_up_at = $2, last_error = $3, \
                     last_status = $4 WHERE id = $1",
                )
                .await?;
            let gave_up_at = attempt.attempted_at.plus_millis(attempt.duration_millis);
            tx.execute(&statement, &[&key, &gave_up_at.millis(), error, &status]).await?;
        }
    }
    let subscription_key = subscription.to_string();
    let deleted = match result {
        DeliveryResult::Delivered { .. } => {
            let statement =
                tx.prepare_cached("UPDATE hook_subscriptions SET consecutive_failures = 0 WHERE id = $1").await?;
            tx.execute(&statement, &[&subscription_key]).await?;
            None
        }
        DeliveryResult::Retry { .. } => None,
        DeliveryResult::GiveUp { .. } => {
            let statement = tx
                .prepare_cached(
                    "UPDATE hook_subscriptions SET consecutive_failures = consecutive_failures + 1 WHERE id = $1 \
                     RETURNING consecutive_failures",
                )
                .await?;
            let failures = tx.query_opt(&statement, &[&subscription_key]).await?;
            let failures = failures.as_ref().map(|row| get::<i32>(row, "consecutive_failures")).transpose()?;
            match failures {
                Some(failures)
                    if delete_after_failures > 0 && i64::from(failures) >= i64::from(delete_after_failures) =>
                {
                    delete_subscription_in(&tx, &account, subscription, WORKER_ACTOR, Timestamp::now()).await?;
                    Some(subscription)
                }
                _ => None,
            }
        }
    };
    tx.commit().await?;
    Ok(deleted)
}

async fn insert_attempt(client: &impl GenericClient, delivery: &str, attempt: &DeliveryAttempt) -> StoreResult<()> {
    let request_headers =
        (!attempt.request_headers.is_empty()).then(|| headers_object(&attempt.request_headers).to_string());
    let response_headers =
        (!attempt.response_headers.is_empty()).then(|| headers_object(&attempt.response_headers).to_string());
    let statement = client
        .prepare_cached(
            "INSERT INTO webhook_attempts (delivery_id, attempted_at, duration_ms, status, error, request_headers, \
             response_headers, response_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &delivery,
                &attempt.attempted_at.millis(),
                &attempt.duration_millis,
                &attempt.status.map(i32::from),
                &attempt.error,
                &request_headers,
                &response_headers,
                &attempt.response_body,
            ],
        )
        .await?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "o.id, o.event_delivery, o.subscription_id, o.account_id, s.url, o.event, o.body, \
     o.created_at, o.next_attempt_at, o.delivered_at, o.gave_up_at";

fn delivery_row(row: &Row) -> StoreResult<DeliveryRecord> {
    let id = rows::uuid(row, "id")?;
    let delivered_at: Option<i64> = get(row, "delivered_at")?;
    let gave_up_at: Option<i64> = get(row, "gave_up_at")?;
    let state = match (delivered_at, gave_up_at) {
        (Some(at), _) => DeliveryState::Delivered { at: Timestamp::from_millis(at) },
        (None, Some(at)) => DeliveryState::GaveUp { at: Timestamp::from_millis(at) },
        (None, None) => {
            DeliveryState::Pending { next_attempt_at: Timestamp::from_millis(get(row, "next_attempt_at")?) }
        }
    };
    Ok(DeliveryRecord {
        id,
        event_delivery: event_delivery(row, id)?,
        subscription_id: rows::uuid(row, "subscription_id")?,
        account_id: account(row, "account_id")?,
        url: get(row, "url")?,
        event: get(row, "event")?,
        body: get(row, "body")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        state,
        attempts: Vec::new(),
    })
}

fn attempt_row(row: &Row) -> StoreResult<DeliveryAttempt> {
    let status: Option<i32> = get(row, "status")?;
    Ok(DeliveryAttempt {
        attempted_at: Timestamp::from_millis(get(row, "attempted_at")?),
        duration_millis: get(row, "duration_ms")?,
        status: status.and_then(|status| u16::try_from(status).ok()),
        error: get(row, "error")?,
        request_headers: headers_from_json(get::<Option<&str>>(row, "request_headers")?),
        response_headers: headers_from_json(get::<Option<&str>>(row, "response_headers")?),
        response_body: get(row, "response_body")?,
    })
}

/// The account's subscription, or NotFound("subscription"); `FOR KEY SHARE` where a write
/// follows, so that a concurrent delete waits for it (as with [`listeners`]).
async fn subscription_of(
    client: &impl GenericClient,
    account: &AccountId,
    id: Uuid,
    for_write: bool,
) -> StoreResult<HookSubscription> {
    let lock = if for_write { " FOR KEY SHARE" } else { "" };
    let sql = format!("SELECT {COLUMNS} FROM hook_subscriptions WHERE account_id = $1 AND id = $2{lock}");
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[&account.as_str(), &id.to_string()]).await?;
    row.as_ref().map(subscription).transpose()?.ok_or(StoreError::NotFound("subscription"))
}

async fn list_deliveries(
    client: &impl GenericClient,
    account: &AccountId,
    subscription: Uuid,
    page: &PageRequest,
) -> StoreResult<Page<HookDelivery>> {
    subscription_of(client, account, subscription, false).await?;
    let key = subscription.to_string();
    let total = if page.include_total {
        let statement = client.prepare_cached("SELECT COUNT(*) FROM webhook_outbox WHERE subscription_id = $1").await?;
        let count: i64 = client.query_one(&statement, &[&key]).await?.get(0);
        Some(count as u64)
    } else {
        None
    };
    let before = match &page.starting_after {
        Some(cursor) => {
            let statement =
                client.prepare_cached("SELECT seq FROM webhook_outbox WHERE subscription_id = $1 AND id = $2").await?;
            let row = client.query_opt(&statement, &[&key, cursor]).await?.ok_or(StoreError::UnknownCursor)?;
            get::<i64>(&row, "seq")?
        }
        None => i64::MAX,
    };
    let statement = client
        .prepare_cached(
            "SELECT id, event_delivery, created_at, last_status FROM webhook_outbox \
             WHERE subscription_id = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
        )
        .await?;
    let found = client.query(&statement, &[&key, &before, &(i64::from(page.limit) + 1)]).await?;
    let items = found
        .iter()
        .map(|row| {
            let id = rows::uuid(row, "id")?;
            let status: Option<i32> = get(row, "last_status")?;
            Ok(HookDelivery {
                id,
                event_delivery: event_delivery(row, id)?,
                created_at: Timestamp::from_millis(get(row, "created_at")?),
                status: status.and_then(|status| u16::try_from(status).ok()),
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

async fn get_delivery(
    client: &impl GenericClient,
    account: &AccountId,
    subscription: Uuid,
    id: Uuid,
) -> StoreResult<DeliveryRecord> {
    subscription_of(client, account, subscription, false).await?;
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_outbox o JOIN hook_subscriptions s ON s.id = o.subscription_id \
         WHERE s.account_id = $1 AND s.id = $2 AND o.id = $3"
    );
    let statement = client.prepare_cached(&sql).await?;
    let key = id.to_string();
    let row = client
        .query_opt(&statement, &[&account.as_str(), &subscription.to_string(), &key])
        .await?
        .ok_or(StoreError::NotFound("delivery"))?;
    let mut delivery = delivery_row(&row)?;
    let statement = client
        .prepare_cached(
            "SELECT attempted_at, duration_ms, status, error, request_headers, response_headers, response_body \
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY seq",
        )
        .await?;
    delivery.attempts = client.query(&statement, &[&key]).await?.iter().map(attempt_row).collect::<StoreResult<_>>()?;
    Ok(delivery)
}

async fn ping(
    conn: &mut Object,
    account: &AccountId,
    subscription: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<DeliveryRecord> {
    let tx = conn.transaction().await?;
    let hook = subscription_of(&tx, account, subscription, true).await?;
    let id = Uuid::new_v4();
    insert_delivery(&tx, id, None, &subscription.to_string(), account, PING, &ping_event_body(&hook), at).await?;
    let record = NewAuditRecord::webhook_delivery_queued(account, subscription, id, QueuedBy::Ping, actor, at);
    append_audit(&tx, record).await?;
    let delivery = get_delivery(&tx, account, subscription, id).await?;
    tx.commit().await?;
    Ok(delivery)
}

async fn resend(
    conn: &mut Object,
    account: &AccountId,
    subscription: Uuid,
    original: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<DeliveryRecord> {
    let tx = conn.transaction().await?;
    subscription_of(&tx, account, subscription, true).await?;
    let original = get_delivery(&tx, account, subscription, original).await?;
    let id = Uuid::new_v4();
    let key = subscription.to_string();
    insert_delivery(&tx, id, Some(original.event_delivery), &key, account, &original.event, &original.body, at).await?;
    let record = NewAuditRecord::webhook_delivery_queued(account, subscription, id, QueuedBy::Resend, actor, at);
    append_audit(&tx, record).await?;
    let delivery = get_delivery(&tx, account, subscription, id).await?;
    tx.commit().await?;
    Ok(delivery)
}

/// One statement: the deliveries deleted and their attempts go together.
async fn prune(conn: &Object, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
    let statement = conn
        .prepare_cached(
            "WITH gone AS (DELETE FROM webhook_outbox WHERE seq IN ( \
                 SELECT o.seq FROM webhook_outbox o LEFT JOIN sandbox_clocks c ON c.account_id = o.account_id \
                 WHERE o.delivered_at < $1 + COALESCE(c.offset_ms, 0) OR o.gave_up_at < $1 + COALESCE(c.offset_ms, 0) \
                 ORDER BY o.seq LIMIT $2) \
                 RETURNING id), \
             attempts AS (DELETE FROM webhook_attempts a USING gone WHERE a.delivery_id = gone.id) \
             SELECT COUNT(*) FROM gone",
        )
        .await?;
    let pruned: i64 = conn.query_one(&statement, &[&finished_before.millis(), &i64::from(limit)]).await?.get(0);
    Ok(pruned as u64)
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create_hook_subscription(&self, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()> {
        with_conn!(self, |conn| create_subscription(&mut conn, subscription, sealed_secret).await)
    }

    async fn list_hook_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<HookSubscription>> {
        with_conn!(self, |conn| list_subscriptions(&conn, account).await)
    }

    async fn get_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
    ) -> StoreResult<Option<HookSubscription>> {
        with_conn!(self, |conn| get_subscription(&conn, account, id).await)
    }

    async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<HookSubscription> {
        with_conn!(self, |conn| delete_subscription(&mut conn, account, id, actor, at).await)
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
        with_conn!(self, |conn| claim(&conn, now, lease_until, limit).await)
    }

    async fn complete_webhook_delivery(
        &self,
        id: uuid::Uuid,
        result: &DeliveryResult,
        attempt: &DeliveryAttempt,
        delete_after_failures: u32,
    ) -> StoreResult<Option<uuid::Uuid>> {
        with_conn!(self, |conn| complete(&mut conn, id, result, attempt, delete_after_failures).await)
    }

    async fn list_webhook_deliveries(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        page: &PageRequest,
    ) -> StoreResult<Page<HookDelivery>> {
        with_conn!(self, |conn| list_deliveries(&conn, account, subscription, page).await)
    }

    async fn get_webhook_delivery(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        delivery: uuid::Uuid,
    ) -> StoreResult<DeliveryRecord> {
        with_conn!(self, |conn| get_delivery(&conn, account, subscription, delivery).await)
    }

    async fn ping_hook_subscription(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<DeliveryRecord> {
        with_conn!(self, |conn| ping(&mut conn, account, subscription, actor, at).await)
    }

    async fn resend_webhook_delivery(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        delivery: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<DeliveryRecord> {
        with_conn!(self, |conn| resend(&mut conn, account, subscription, delivery, actor, at).await)
    }

    async fn trigger_card_token_event(
        &self,
        account: &AccountId,
        token_id: &str,
        event: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        with_conn!(self, |conn| {
            let tx = conn.transaction().await?;
            let record = super::card_tokens::find_card_token(&tx, account, token_id)
                .await?
                .ok_or(StoreError::NotFound("card token"))?;
            let listeners = listeners(&tx, account).await?;
            let queued = listeners.iter().filter(|l| l.events.iter().any(|e| e == event)).count() as u64;
            enqueue(&tx, &listeners, event, &record.card).await?;
            append_audit(&tx, NewAuditRecord::webhook_triggered(account, token_id, event, queued, actor, at)).await?;
            tx.commit().await?;
            Ok(queued)
        })
    }

    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
        with_conn!(self, |conn| prune(&conn, finished_before, limit).await)
    }
}
