//! Webhook subscriptions and the durable outbox. Card-token mutations call [`announce`] inside
//! their own writer job, so an event row commits (or rolls back) with the change it announces.

use async_trait::async_trait;
use rusqlite::{params, Connection, Row};
use uuid::Uuid;

use super::sql::{self, account_col, json_col, time_col, uuid_col};
use super::SqliteStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::card_token::CardToken;
use crate::domain::webhook::{card_token_event_body, DeliveryResult, HookConfig, HookSubscription, WebhookDelivery};
use crate::domain::{AccountId, Timestamp};
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
    sql::audit(conn, &NewAuditRecord::hook_subscription_created(subscription))
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
    let now = Timestamp::now().millis();
    for listener in listeners.iter().filter(|l| l.events.iter().any(|e| e == event)) {
        let delivery = Uuid::new_v4();
        sql::execute(
            conn,
            "INSERT INTO webhook_outbox (id, subscription_id, account_id, event, body, attempts, next_attempt_at,
                                         created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6)",
            params![
                delivery.to_string(),
                listener.id,
                card.account_id.as_str(),
                event,
                card_token_event_body(event, delivery, card),
                now
            ],
        )?;
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

/// Whether any delivery is due: a read, so that idle polling never queues behind writes.
fn any_due(conn: &Connection, now: Timestamp) -> StoreResult<bool> {
    sql::exists(
        conn,
        &format!("SELECT 1 FROM webhook_outbox WHERE {PENDING} AND next_attempt_at <= ?1 LIMIT 1"),
        [now.millis()],
    )
}

/// Takes the oldest due deliveries and moves their next attempt to `lease_until`; run as one
/// writer job, so the selection and the lease commit together.
fn claim(conn: &Connection, now: Timestamp, lease_until: Timestamp, limit: u32) -> StoreResult<Vec<WebhookDelivery>> {
    let due = sql::rows(
        conn,
        "SELECT o.seq, o.id, o.subscription_id, o.account_id, s.url, s.sealed_secret, o.event, o.body, o.attempts
         FROM webhook_outbox o JOIN hook_subscriptions s ON s.id = o.subscription_id
         WHERE o.delivered_at IS NULL AND o.gave_up_at IS NULL AND o.next_attempt_at <= ?1
         ORDER BY o.seq LIMIT ?2",
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
            };
            Ok((row.get::<_, i64>(0)?, delivery))
        },
    )?;
    let mut claimed = Vec::with_capacity(due.len());
    for (seq, delivery) in due {
        sql::execute(
            conn,
            "UPDATE webhook_outbox SET next_attempt_at = ?2 WHERE seq = ?1",
            params![seq, lease_until.millis()],
        )?;
        claimed.push(delivery);
    }
    Ok(claimed)
}

/// Records an attempt. A delivery that is no longer pending (its subscription was deleted
/// meanwhile, or another worker finished it after this one's lease ran out) is left alone.
fn complete(conn: &Connection, id: Uuid, result: &DeliveryResult) -> StoreResult<()> {
    let id = id.to_string();
    match result {
        DeliveryResult::Delivered { at } => sql::execute(
            conn,
            &format!(
                "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = ?2 WHERE id = ?1 AND {PENDING}"
            ),
            params![id, at.millis()],
        ),
        DeliveryResult::Retry { at, error } => sql::execute(
            conn,
            &format!(
                "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND {PENDING}"
            ),
            params![id, at.millis(), error],
        ),
        DeliveryResult::GiveUp { error } => sql::execute(
            conn,
            &format!(
                "UPDATE webhook_outbox SET attempts = attempts + 1, gave_up_at = ?2, last_error = ?3
                 WHERE id = ?1 AND {PENDING}"
            ),
            params![id, Timestamp::now().millis(), error],
        ),
    }?;
    Ok(())
}

fn prune(conn: &Connection, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
    let pruned = sql::execute(
        conn,
        "DELETE FROM webhook_outbox WHERE seq IN (
             SELECT seq FROM webhook_outbox WHERE delivered_at < ?1 OR gave_up_at < ?1 ORDER BY seq LIMIT ?2)",
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

    async fn complete_webhook_delivery(&self, id: uuid::Uuid, result: &DeliveryResult) -> StoreResult<()> {
        let result = result.clone();
        self.writer.submit(move |conn| complete(conn, id, &result)).await
    }

    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
        self.writer.submit(move |conn| prune(conn, finished_before, limit)).await
    }
}
