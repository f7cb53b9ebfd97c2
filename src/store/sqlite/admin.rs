//! API clients, JWT signing keys and the audit log.

use rusqlite::{params, Connection};

use super::sql::{self, json_col, time_col};
use crate::domain::audit::{AuditRecord, NewAuditRecord};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::{ResetCounts, ResetParts, StoreError, StoreResult};

pub(super) fn upsert_client(conn: &Connection, client: &ClientRecord) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO clients (client_id, account_id, secret_hash, scopes, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (client_id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes",
        params![
            client.client_id,
            client.account_id.as_str(),
            client.secret_hash,
            client.scopes.join(" "),
            client.created_at.millis()
        ],
    )?;
    Ok(())
}

pub(super) fn find_client(conn: &Connection, client_id: &str) -> StoreResult<Option<ClientRecord>> {
    let found = sql::first(
        conn,
        "SELECT client_id, account_id, secret_hash, scopes, created_at FROM clients WHERE client_id = ?1",
        [client_id],
        |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get(2)?,
                row.get::<_, String>(3)?,
                time_col(row, 4)?,
            ))
        },
    )?;
    let Some((client_id, account_id, secret_hash, scopes, created_at)) = found else {
        return Ok(None);
    };
    let account_id = AccountId::parse("account_id", &account_id)
        .map_err(|e| StoreError::Internal(format!("client {client_id} has a bad account id: {}", e.message)))?;
    let scopes = scopes.split_whitespace().map(str::to_owned).collect();
    Ok(Some(ClientRecord { client_id, account_id, secret_hash, scopes, created_at }))
}

pub(super) fn signing_keys(conn: &Connection) -> StoreResult<Vec<SigningKeyRecord>> {
    sql::rows(
        conn,
        "SELECT kid, private_key, public_key, created_at FROM signing_keys ORDER BY created_at DESC, rowid DESC",
        [],
        |row| {
            Ok(SigningKeyRecord {
                kid: row.get(0)?,
                private_key: row.get(1)?,
                public_key: row.get(2)?,
                created_at: time_col(row, 3)?,
            })
        },
    )
}

pub(super) fn insert_signing_key(conn: &Connection, key: &SigningKeyRecord) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key.kid, key.private_key, key.public_key, key.created_at.millis()],
    )?;
    Ok(())
}

pub(super) fn list_audit(
    conn: &Connection,
    account: Option<&str>,
    after_seq: i64,
    limit: u32,
) -> StoreResult<Vec<AuditRecord>> {
    let columns = "seq, at, account_id, actor, action, resource_type, resource_id, details";
    let map = |row: &rusqlite::Row<'_>| {
        Ok(AuditRecord {
            seq: row.get(0)?,
            at: Timestamp::from_millis(row.get(1)?),
            account_id: row.get(2)?,
            actor: row.get(3)?,
            action: row.get(4)?,
            resource_type: row.get(5)?,
            resource_id: row.get(6)?,
            details: json_col(row, 7)?,
        })
    };
    match account {
        Some(account) => sql::rows(
            conn,
            &format!("SELECT {columns} FROM audit_log WHERE account_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"),
            params![account, after_seq, limit],
            map,
        ),
        None => sql::rows(
            conn,
            &format!("SELECT {columns} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
            params![after_seq, limit],
            map,
        ),
    }
}

/// Deletes the account's data, children before parents, and records the reset.
pub(super) fn reset_account(
    conn: &Connection,
    account: &AccountId,
    parts: ResetParts,
    actor: &str,
    at: Timestamp,
) -> StoreResult<ResetCounts> {
    let delete = |sql: &str| sql::execute(conn, sql, params![account.as_str()]).map(|n| n as u64);
    let mut counts = ResetCounts::default();
    if parts.customers {
        counts.customer_tokens = Some(delete("DELETE FROM customer_tokens WHERE account_id = ?1")?);
        counts.customers = Some(delete("DELETE FROM customers WHERE account_id = ?1")?);
        counts.token_events = Some(delete(
            "DELETE FROM token_events WHERE entry_seq IN (SELECT seq FROM token_event_entries WHERE account_id = ?1)",
        )?);
        delete("DELETE FROM token_event_entries WHERE account_id = ?1")?;
    }
    if parts.card_tokens {
        counts.card_tokens = Some(delete("DELETE FROM card_tokens WHERE account_id = ?1")?);
    }
    if parts.hooks {
        counts.webhook_deliveries = Some(delete(
            "DELETE FROM webhook_outbox WHERE account_id = ?1 AND delivered_at IS NULL AND gave_up_at IS NULL",
        )?);
        counts.hook_subscriptions = Some(delete("DELETE FROM hook_subscriptions WHERE account_id = ?1")?);
        delete("DELETE FROM webhook_outbox WHERE account_id = ?1")?;
    }
    // Replays of responses about data that is gone: a key reused after the reset runs afresh.
    // Claims in progress (the reset's own among them) stay with their requests.
    delete("DELETE FROM idempotency_keys WHERE account_id = ?1 AND state = 'done'")?;
    sql::audit(conn, &NewAuditRecord::sandbox_reset(account, &counts, actor, at))?;
    Ok(counts)
}

/// Webhook deliveries still to be made (the partial index holds exactly these).
pub(super) fn pending_deliveries(conn: &Connection) -> StoreResult<u64> {
    let count: i64 = sql::first(
        conn,
        "SELECT COUNT(*) FROM webhook_outbox WHERE delivered_at IS NULL AND gave_up_at IS NULL",
        [],
        |row| row.get(0),
    )?
    .unwrap_or(0);
    Ok(count as u64)
}
