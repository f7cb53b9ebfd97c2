//! Webhook subscriptions and the durable outbox. Card-token mutations call [`announce`] inside
//! their own writer job, so an event row commits (or rolls back) with the change it announces.

use async_trait::async_trait;
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use super::sql::{self, account_col, json_col, time_col, time_opt_col, uuid_col};
use super::SqliteStore;
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

fn subscription_row(row: &Row<'_>) -> rusqlite::Result<HookSubscription> {
    Ok(HookSubscription {
        id: uuid_col(row, 0)?,
        account_id: account_col(row, 1)?,
        config: HookConfig { url: row.get(2)?, content_type: "application/json".to_owned() },
        events: json_col(row, 3)?,
        active: row.get(4)?,
        created_at: time_col(row, 5)?,
        created_by: row.get(6)?,
        updated_at: time_col(row, 7)?,
    })
}

fn create_subscription(conn: &Connection, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO hook_subscriptions (id, account_id, url, events, active, sealed_secret, created_at, created_by,
                                         updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            subscription.id.to_string(),
            subscription.account_id.as_str(),
            subscription.config.url,
            sql::to_json(&subscription.events)?,
            subscription.active,
            sealed_secret,
            subscription.created_at.millis(),
            subscription.created_by,
            subscription.updated_at.millis(),
        ],
    )?;
    sql::audit(conn, &NewAuditRecord::hook_subscription_created(subscription))?;
    if !subscription.active {
        return Ok(());
    }
    insert_delivery(
        conn,
        Uuid::new_v4(),
        None,
        &subscription.id.to_string(),
        &subscription.account_id,
        PING,
        &ping_event_body(subscription),
        subscription.created_at,
    )
}

/// Writes one outbox row, due at `at`. `event_delivery` is the row's own id unless given (a
/// resend's).
#[allow(clippy::too_many_arguments)]
fn insert_delivery(
    conn: &Connection,
    id: Uuid,
    event_delivery: Option<Uuid>,
    subscription: &str,
    account: &AccountId,
    event: &str,
    body: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO webhook_outbox (id, event_delivery, subscription_id, account_id, event, body, attempts,
                                     next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?7)",
        params![
            id.to_string(),
            event_delivery.unwrap_or(id).to_string(),
            subscription,
            account.as_str(),
            event,
            body,
            at.millis()
        ],
    )?;
    Ok(())
}

fn list_subscriptions(conn: &Connection, account: &AccountId) -> StoreResult<Vec<HookSubscription>> {
    sql::rows(
        conn,
        &format!("SELECT {COLUMNS} FROM hook_subscriptions WHERE account_id = ?1 ORDER BY seq"),
        [account.as_str()],
        subscription_row,
    )
}

fn get_subscription(conn: &Connection, account: &AccountId, id: Uuid) -> StoreResult<Option<HookSubscription>> {
    sql::first(
        conn,
        &format!("SELECT {COLUMNS} FROM hook_subscriptions WHERE account_id = ?1 AND id = ?2"),
        params![account.as_str(), id.to_string()],
        subscription_row,
    )
}

/// Removes the subscription and the deliveries it still owes; delivered and given-up rows stay
/// as history.
fn delete_subscription(
    conn: &Connection,
    account: &AccountId,
    id: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<HookSubscription> {
    let subscription = get_subscription(conn, account, id)?.ok_or(StoreError::NotFound("subscription"))?;
    let key = id.to_string();
    sql::execute(
        conn,
        "DELETE FROM hook_subscriptions WHERE account_id = ?1 AND id = ?2",
        params![account.as_str(), key],
    )?;
    sql::execute(
        conn,
        &format!(
            "DELETE FROM webhook_attempts WHERE delivery_id IN
                 (SELECT id FROM webhook_outbox WHERE subscription_id = ?1 AND {PENDING})"
        ),
        [&key],
    )?;
    let dropped =
        sql::execute(conn, &format!("DELETE FROM webhook_outbox WHERE subscription_id = ?1 AND {PENDING}"), [&key])?;
    sql::audit(conn, &NewAuditRecord::hook_subscription_deleted(account, id, dropped as u64, actor, at))?;
    Ok(subscription)
}

/// An active subscription of an account and the events it wants.
pub(super) struct Listener {
    id: String,
    events: Vec<String>,
}

/// The account's active subscriptions: one indexed lookup, nothing more when there are none.
pub(super) fn listeners(conn: &Connection, account: &AccountId) -> StoreResult<Vec<Listener>> {
    sql::rows(
        conn,
        "SELECT id, events FROM hook_subscriptions WHERE account_id = ?1 AND active ORDER BY seq",
        [account.as_str()],
        |row| Ok(Listener { id: row.get(0)?, events: json_col(row, 1)? }),
    )
}

/// Writes one outbox row per listener that wants `event`, due at once. `card` is the token as
/// stored after the change; its secret `token` never enters the body.
pub(super) fn enqueue(conn: &Connection, listeners: &[Listener], event: &str, card: &CardToken) -> StoreResult<()> {
    let now = super::clocks::account_now(conn, &card.account_id)?;
    for listener in listeners.iter().filter(|l| l.events.iter().any(|e| e == event)) {
        let delivery = Uuid::new_v4();
        let body = card_token_event_body(event, delivery, card);
        insert_delivery(conn, delivery, None, &listener.id, &card.account_id, event, &body, now)?;
    }
    Ok(())
}

/// [`listeners`] and [`enqueue`] for a single change.
pub(super) fn announce(conn: &Connection, event: &str, card: &CardToken) -> StoreResult<()> {
    let listeners = listeners(conn, &card.account_id)?;
    if listeners.is_empty() {
        return Ok(());
    }
    enqueue(conn, &listeners, event, card)
}

/// [`WebhookStore::trigger_card_token_event`]: [`announce`] without a change.
fn trigger(
    conn: &Connection,
    account: &AccountId,
    token_id: &str,
    event: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<u64> {
    let record =
        super::card_tokens::find(conn, account.as_str(), token_id)?.ok_or(StoreError::NotFound("card token"))?;
    let listeners = listeners(conn, account)?;
    let queued = listeners.iter().filter(|l| l.events.iter().any(|e| e == event)).count() as u64;
    enqueue(conn, &listeners, event, &record.card)?;
    sql::audit(conn, &NewAuditRecord::webhook_triggered(account, token_id, event, queued, actor, at))?;
    Ok(queued)
}

/// Whether a delivery is due at real time `?1` in its account's time: the first comparison is
/// the same for every row (the greatest clock offset), so the index on `next_attempt_at` serves
/// it; the second is each account's own.
const DUE: &str = "o.next_attempt_at <= ?1 + MAX(0, (SELECT COALESCE(MAX(offset_ms), 0) FROM sandbox_clocks))
     AND o.next_attempt_at <= ?1 + COALESCE(c.offset_ms, 0)";

/// A finished delivery's account-time moments, compared with `?1` (real time) in that account's time.
const FINISHED_BEFORE: &str =
    "(o.delivered_at < ?1 + COALESCE(c.offset_ms, 0) OR o.gave_up_at < ?1 + COALESCE(c.offset_ms, 0))";

/// Whether any delivery is due: a read, so that idle polling never queues behind writes.
fn any_due(conn: &Connection, now: Timestamp) -> StoreResult<bool> {
    sql::exists(
        conn,
        &format!(
            "SELECT 1 FROM webhook_outbox o LEFT JOIN sandbox_clocks c ON c.account_id = o.account_id
             WHERE {PENDING} AND {DUE} LIMIT 1"
        ),
        [now.millis()],
    )
}

/// Takes the oldest due deliveries and moves their next attempt to `lease_until`; run as one
/// writer job, so the selection and the lease commit together.
fn claim(conn: &Connection, now: Timestamp, lease_until: Timestamp, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
    let due = sql::rows(
        conn,
        &format!(
            "SELECT o.seq, o.id, o.subscription_id, o.account_id, s.url, s.sealed_secret, o.event, o.body, o.attempts,
                    o.event_delivery, COALESCE(c.offset_ms, 0)
             FROM webhook_outbox o JOIN hook_subscriptions s ON s.id = o.subscription_id
                  LEFT JOIN sandbox_clocks c ON c.account_id = o.account_id
             WHERE o.delivered_at IS NULL AND o.gave_up_at IS NULL AND {DUE}
             ORDER BY o.seq LIMIT ?2"
        ),
        params![now.millis(), limit],
        |row| {
            let delivery = WebhookDelivery {
                id: uuid_col(row, 1)?,
                subscription_id: uuid_col(row, 2)?,
                account_id: account_col(row, 3)?,
                url: row.get(4)?,
                sealed_secret: row.get(5)?,
                event: row.get(6)?,
                body: row.get(7)?,
                attempts: row.get(8)?,
                event_delivery: event_delivery_col(row, 9, uuid_col(row, 1)?)?,
            };
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(10)?, delivery))
        },
    )?;
    let mut claimed = Vec::with_capacity(due.len());
    for (seq, offset_ms, delivery) in due {
        sql::execute(
            conn,
            "UPDATE webhook_outbox SET next_attempt_at = ?2 WHERE seq = ?1",
            params![seq, lease_until.millis().saturating_add(offset_ms)],
        )?;
        claimed.push(delivery);
    }
    Ok(claimed)
}

/// Records an attempt and its outcome together; see `WebhookStore::complete_webhook_delivery`.
fn complete(
    conn: &Connection,
    id: Uuid,
    result: &DeliveryResult,
    attempt: &DeliveryAttempt,
    delete_after_failures: u32,
) -> StoreResult<Option<Uuid>> {
    let key = id.to_string();
    let Some((subscription, account, pending)) = sql::first(
        conn,
        &format!("SELECT subscription_id, account_id, {PENDING} FROM webhook_outbox WHERE id = ?1"),
        [&key],
        |row| Ok((uuid_col(row, 0)?, account_col(row, 1)?, row.get::<_, bool>(2)?)),
    )?
    else {
        return Ok(None);
    };
    insert_attempt(conn, &key, attempt)?;
    let status = attempt.status.map(i64::from);
    if !pending {
        return Ok(None);
    }
    match result {
        DeliveryResult::Delivered { at } => sql::execute(
            conn,
            "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = ?2, last_status = ?3 WHERE id = ?1",
            params![key, at.millis(), status],
        ),
        DeliveryResult::Retry { at, error } => sql::execute(
            conn,
            "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3, last_status = ?4
             WHERE id = ?1",
            params![key, at.millis(), error, status],
        ),
        DeliveryResult::GiveUp { error } => sql::execute(
            conn,
            "UPDATE webhook_outbox SET attempts = attempts + 1, gave_up_at = ?2, last_error = ?3, last_status = ?4
             WHERE id = ?1",
            params![key, attempt.attempted_at.plus_millis(attempt.duration_millis).millis(), error, status],
        ),
    }?;
    let subscription_key = subscription.to_string();
    match result {
        DeliveryResult::Delivered { .. } => {
            sql::execute(
                conn,
                "UPDATE hook_subscriptions SET consecutive_failures = 0 WHERE id = ?1",
                [&subscription_key],
            )?;
            Ok(None)
        }
        DeliveryResult::Retry { .. } => Ok(None),
        DeliveryResult::GiveUp { .. } => {
            sql::execute(
                conn,
                "UPDATE hook_subscriptions SET consecutive_failures = consecutive_failures + 1 WHERE id = ?1",
                [&subscription_key],
            )?;
            let failures: Option<i64> = sql::first(
                conn,
                "SELECT consecutive_failures FROM hook_subscriptions WHERE id = ?1",
                [&subscription_key],
                |row| row.get(0),
            )?;
            match failures {
                Some(failures) if delete_after_failures > 0 && failures >= i64::from(delete_after_failures) => {
                    delete_subscription(conn, &account, subscription, WORKER_ACTOR, Timestamp::now())?;
                    Ok(Some(subscription))
                }
                _ => Ok(None),
            }
        }
    }
}

fn insert_attempt(conn: &Connection, delivery: &str, attempt: &DeliveryAttempt) -> StoreResult<()> {
    let request_headers =
        (!attempt.request_headers.is_empty()).then(|| headers_object(&attempt.request_headers).to_string());
    let response_headers =
        (!attempt.response_headers.is_empty()).then(|| headers_object(&attempt.response_headers).to_string());
    sql::execute(
        conn,
        "INSERT INTO webhook_attempts (delivery_id, attempted_at, duration_ms, status, error, request_headers,
                                       response_headers, response_body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            delivery,
            attempt.attempted_at.millis(),
            attempt.duration_millis,
            attempt.status.map(i64::from),
            attempt.error,
            request_headers,
            response_headers,
            attempt.response_body,
        ],
    )?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "o.id, o.event_delivery, o.subscription_id, o.account_id, s.url, o.event, o.body, \
     o.created_at, o.next_attempt_at, o.delivered_at, o.gave_up_at";

fn delivery_row(row: &Row<'_>) -> rusqlite::Result<DeliveryRecord> {
    let id = uuid_col(row, 0)?;
    let event_delivery = event_delivery_col(row, 1, id)?;
    let state = match (time_opt_col(row, 9)?, time_opt_col(row, 10)?) {
        (Some(at), _) => DeliveryState::Delivered { at },
        (None, Some(at)) => DeliveryState::GaveUp { at },
        (None, None) => DeliveryState::Pending { next_attempt_at: time_col(row, 8)? },
    };
    Ok(DeliveryRecord {
        id,
        event_delivery,
        subscription_id: uuid_col(row, 2)?,
        account_id: account_col(row, 3)?,
        url: row.get(4)?,
        event: row.get(5)?,
        body: row.get(6)?,
        created_at: time_col(row, 7)?,
        state,
        attempts: Vec::new(),
    })
}

/// `event_delivery`, the row's own `id` where a row from before the column has none.
fn event_delivery_col(row: &Row<'_>, index: usize, id: Uuid) -> rusqlite::Result<Uuid> {
    match row.get::<_, Option<String>>(index)? {
        Some(_) => uuid_col(row, index),
        None => Ok(id),
    }
}

fn attempt_row(row: &Row<'_>) -> rusqlite::Result<DeliveryAttempt> {
    let request_headers: Option<String> = row.get(4)?;
    let response_headers: Option<String> = row.get(5)?;
    Ok(DeliveryAttempt {
        attempted_at: time_col(row, 0)?,
        duration_millis: row.get(1)?,
        status: row.get::<_, Option<i64>>(2)?.and_then(|status| u16::try_from(status).ok()),
        error: row.get(3)?,
        request_headers: headers_from_json(request_headers.as_deref()),
        response_headers: headers_from_json(response_headers.as_deref()),
        response_body: row.get(6)?,
    })
}

/// The account's subscription, or NotFound("subscription").
fn subscription_of(conn: &Connection, account: &AccountId, id: Uuid) -> StoreResult<HookSubscription> {
    get_subscription(conn, account, id)?.ok_or(StoreError::NotFound("subscription"))
}

fn list_deliveries(
    conn: &Connection,
    account: &AccountId,
    subscription: Uuid,
    page: &PageRequest,
) -> StoreResult<Page<HookDelivery>> {
    subscription_of(conn, account, subscription)?;
    let key = subscription.to_string();
    let total = if page.include_total {
        let count: Option<i64> =
            sql::first(conn, "SELECT COUNT(*) FROM webhook_outbox WHERE subscription_id = ?1", [&key], |row| {
                row.get(0)
            })?;
        Some(count.unwrap_or(0) as u64)
    } else {
        None
    };
    let before = match &page.starting_after {
        Some(cursor) => sql::cursor_seq(
            conn,
            "SELECT seq FROM webhook_outbox WHERE subscription_id = ?1 AND id = ?2",
            params![key, cursor],
        )?,
        None => i64::MAX,
    };
    let items = sql::rows(
        conn,
        "SELECT id, event_delivery, created_at, last_status FROM webhook_outbox
         WHERE subscription_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3",
        params![key, before, i64::from(page.limit) + 1],
        |row| {
            let id = uuid_col(row, 0)?;
            Ok(HookDelivery {
                id,
                event_delivery: event_delivery_col(row, 1, id)?,
                created_at: time_col(row, 2)?,
                status: row.get::<_, Option<i64>>(3)?.and_then(|status| u16::try_from(status).ok()),
            })
        },
    )?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

fn get_delivery(conn: &Connection, account: &AccountId, subscription: Uuid, id: Uuid) -> StoreResult<DeliveryRecord> {
    subscription_of(conn, account, subscription)?;
    let mut delivery = sql::first(
        conn,
        &format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_outbox o JOIN hook_subscriptions s ON s.id = o.subscription_id
             WHERE s.account_id = ?1 AND s.id = ?2 AND o.id = ?3"
        ),
        params![account.as_str(), subscription.to_string(), id.to_string()],
        delivery_row,
    )?
    .ok_or(StoreError::NotFound("delivery"))?;
    delivery.attempts = sql::rows(
        conn,
        "SELECT attempted_at, duration_ms, status, error, request_headers, response_headers, response_body
         FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY seq",
        [id.to_string()],
        attempt_row,
    )?;
    Ok(delivery)
}

fn ping(
    conn: &Connection,
    account: &AccountId,
    subscription: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<DeliveryRecord> {
    let hook = subscription_of(conn, account, subscription)?;
    let id = Uuid::new_v4();
    insert_delivery(conn, id, None, &subscription.to_string(), account, PING, &ping_event_body(&hook), at)?;
    sql::audit(conn, &NewAuditRecord::webhook_delivery_queued(account, subscription, id, QueuedBy::Ping, actor, at))?;
    get_delivery(conn, account, subscription, id)
}

fn resend(
    conn: &Connection,
    account: &AccountId,
    subscription: Uuid,
    original: Uuid,
    actor: &str,
    at: Timestamp,
) -> StoreResult<DeliveryRecord> {
    let original = get_delivery(conn, account, subscription, original)?;
    let id = Uuid::new_v4();
    insert_delivery(
        conn,
        id,
        Some(original.event_delivery),
        &subscription.to_string(),
        account,
        &original.event,
        &original.body,
        at,
    )?;
    sql::audit(conn, &NewAuditRecord::webhook_delivery_queued(account, subscription, id, QueuedBy::Resend, actor, at))?;
    get_delivery(conn, account, subscription, id)
}

fn prune(conn: &Connection, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
    // One writer job: both statements see the same finished rows.
    sql::execute(
        conn,
        &format!(
            "DELETE FROM webhook_attempts WHERE delivery_id IN (
                 SELECT o.id FROM webhook_outbox o LEFT JOIN sandbox_clocks c ON c.account_id = o.account_id
                 WHERE {FINISHED_BEFORE} ORDER BY o.seq LIMIT ?2)"
        ),
        params![finished_before.millis(), limit],
    )?;
    let pruned = sql::execute(
        conn,
        &format!(
            "DELETE FROM webhook_outbox WHERE seq IN (
                 SELECT o.seq FROM webhook_outbox o LEFT JOIN sandbox_clocks c ON c.account_id = o.account_id
                 WHERE {FINISHED_BEFORE} ORDER BY o.seq LIMIT ?2)"
        ),
        params![finished_before.millis(), limit],
    )?;
    Ok(pruned as u64)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_hook_subscription(&self, subscription: &HookSubscription, sealed_secret: &[u8]) -> StoreResult<()> {
        let (subscription, sealed_secret) = (subscription.clone(), sealed_secret.to_vec());
        self.writer.submit(move |conn| create_subscription(conn, &subscription, &sealed_secret)).await
    }

    async fn list_hook_subscriptions(&self, account: &AccountId) -> StoreResult<Vec<HookSubscription>> {
        let account = account.clone();
        self.readers.read(move |conn| list_subscriptions(conn, &account)).await
    }

    async fn get_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
    ) -> StoreResult<Option<HookSubscription>> {
        let account = account.clone();
        self.readers.read(move |conn| get_subscription(conn, &account, id)).await
    }

    async fn delete_hook_subscription(
        &self,
        account: &AccountId,
        id: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<HookSubscription> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| delete_subscription(conn, &account, id, &actor, at)).await
    }

    async fn claim_webhook_deliveries(
        &self,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<WebhookDelivery>> {
        // Polling reads first, so an idle outbox never takes a turn of the writer.
        if limit == 0 || !self.readers.read(move |conn| any_due(conn, now)).await? {
            return Ok(Vec::new());
        }
        self.writer.submit(move |conn| claim(conn, now, lease_until, limit)).await
    }

    async fn complete_webhook_delivery(
        &self,
        id: uuid::Uuid,
        result: &DeliveryResult,
        attempt: &DeliveryAttempt,
        delete_after_failures: u32,
    ) -> StoreResult<Option<uuid::Uuid>> {
        let (result, attempt) = (result.clone(), attempt.clone());
        self.writer.submit(move |conn| complete(conn, id, &result, &attempt, delete_after_failures)).await
    }

    async fn list_webhook_deliveries(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        page: &PageRequest,
    ) -> StoreResult<Page<HookDelivery>> {
        let (account, page) = (account.clone(), page.clone());
        self.readers.read(move |conn| list_deliveries(conn, &account, subscription, &page)).await
    }

    async fn get_webhook_delivery(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        delivery: uuid::Uuid,
    ) -> StoreResult<DeliveryRecord> {
        let account = account.clone();
        self.readers.read(move |conn| get_delivery(conn, &account, subscription, delivery)).await
    }

    async fn ping_hook_subscription(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<DeliveryRecord> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| ping(conn, &account, subscription, &actor, at)).await
    }

    async fn resend_webhook_delivery(
        &self,
        account: &AccountId,
        subscription: uuid::Uuid,
        delivery: uuid::Uuid,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<DeliveryRecord> {
        let (account, actor) = (account.clone(), actor.to_owned());
        self.writer.submit(move |conn| resend(conn, &account, subscription, delivery, &actor, at)).await
    }

    async fn trigger_card_token_event(
        &self,
        account: &AccountId,
        token_id: &str,
        event: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<u64> {
        let (account, token_id, event, actor) =
            (account.clone(), token_id.to_owned(), event.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| trigger(conn, &account, &token_id, &event, &actor, at)).await
    }

    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.writer.submit(move |conn| prune(conn, finished_before, limit)).await
    }
}
