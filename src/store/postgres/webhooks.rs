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
use crate::domain::webhook::{card_token_event_body, DeliveryResult, HookConfig, HookSubscription, WebhookDelivery};
use crate::domain::{AccountId, Timestamp};
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
    tx.commit().await?;
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
    let sql = format!("DELETE FROM hook_subscriptions WHERE account_id = $1 AND id = $2 RETURNING {COLUMNS}");
    let statement = tx.prepare_cached(&sql).await?;
    let key = id.to_string();
    let Some(row) = tx.query_opt(&statement, &[&account.as_str(), &key]).await? else {
        return Err(StoreError::NotFound("subscription"));
    };
    let deleted = subscription(&row)?;
    let statement =
        tx.prepare_cached(&format!("DELETE FROM webhook_outbox WHERE subscription_id = $1 AND {PENDING}")).await?;
    let dropped = tx.execute(&statement, &[&key]).await?;
    append_audit(&tx, NewAuditRecord::hook_subscription_deleted(account, id, dropped, actor, at)).await?;
    tx.commit().await?;
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
    let now = Timestamp::now().millis();
    for listener in listeners.iter().filter(|l| l.events.iter().any(|e| e == event)) {
        let statement = client
            .prepare_cached(
                "INSERT INTO webhook_outbox (id, subscription_id, account_id, event, body, attempts, \
                 next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $6)",
            )
            .await?;
        let delivery = Uuid::new_v4();
        let body = card_token_event_body(event, delivery, card);
        client
            .execute(&statement, &[&delivery.to_string(), &listener.id, &card.account_id.as_str(), &event, &body, &now])
            .await?;
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
                 SELECT seq FROM webhook_outbox WHERE {PENDING} AND next_attempt_at <= $1 \
                 ORDER BY seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE webhook_outbox o SET next_attempt_at = $2 \
             FROM due, hook_subscriptions s \
             WHERE o.seq = due.seq AND s.id = o.subscription_id \
             RETURNING o.seq, o.id, o.subscription_id, o.account_id, s.url, s.sealed_secret, o.event, o.body, \
                 o.attempts"
        ))
        .await?;
    let rows = client.query(&statement, &[&now.millis(), &lease_until.millis(), &i64::from(limit)]).await?;
    let mut claimed = rows
        .iter()
        .map(|row| {
            let attempts: i32 = get(row, "attempts")?;
            let delivery = WebhookDelivery {
                id: rows::uuid(row, "id")?,
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

/// Records an attempt. A delivery that is no longer pending (its subscription was deleted
/// meanwhile, or another worker finished it after this one's lease ran out) is left alone.
async fn complete(client: &impl GenericClient, id: Uuid, result: &DeliveryResult) -> StoreResult<()> {
    let id = id.to_string();
    match result {
        DeliveryResult::Delivered { at } => {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, delivered_at = $2 WHERE id = $1 AND {PENDING}"
                ))
                .await?;
            client.execute(&statement, &[&id, &at.millis()]).await?;
        }
        DeliveryResult::Retry { at, error } => {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
                     WHERE id = $1 AND {PENDING}"
                ))
                .await?;
            client.execute(&statement, &[&id, &at.millis(), error]).await?;
        }
        DeliveryResult::GiveUp { error } => {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE webhook_outbox SET attempts = attempts + 1, gave_up_at = $2, last_error = $3 \
                     WHERE id = $1 AND {PENDING}"
                ))
                .await?;
            client.execute(&statement, &[&id, &Timestamp::now().millis(), error]).await?;
        }
    }
    Ok(())
}

async fn prune(conn: &Object, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
    let statement = conn
        .prepare_cached(
            "DELETE FROM webhook_outbox WHERE seq IN ( \
                 SELECT seq FROM webhook_outbox WHERE delivered_at < $1 OR gave_up_at < $1 ORDER BY seq LIMIT $2)",
        )
        .await?;
    Ok(conn.execute(&statement, &[&finished_before.millis(), &i64::from(limit)]).await?)
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

    async fn complete_webhook_delivery(&self, id: uuid::Uuid, result: &DeliveryResult) -> StoreResult<()> {
        with_conn!(self, |conn| complete(&conn, id, result).await)
    }

    async fn prune_webhook_outbox(&self, finished_before: Timestamp, limit: u32) -> StoreResult<u64> {
        with_conn!(self, |conn| prune(&conn, finished_before, limit).await)
    }
}
