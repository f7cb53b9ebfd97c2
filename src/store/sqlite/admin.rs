//! API clients, JWT signing keys and the audit log.

use rusqlite::{params, Connection};

use super::sql::{self, account_col, json_col, time_col};
use crate::domain::audit::{AuditRecord, NewAuditRecord};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::{ResetCounts, ResetParts, StoreError, StoreResult};

pub(super) fn upsert_client(conn: &Connection, client: &ClientRecord) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO clients (client_id, account_id, secret_hash, scopes, created_at, secret_generation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (client_id) DO UPDATE SET secret_hash = excluded.secret_hash, scopes = excluded.scopes",
        params![
            client.client_id,
            client.account_id.as_str(),
            client.secret_hash,
            client.scopes.join(" "),
            client.created_at.millis(),
            client.secret_generation,
        ],
    )?;
    Ok(())
}

const CLIENT_COLUMNS: &str = "client_id, account_id, secret_hash, scopes, created_at, secret_generation";

fn client_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ClientRecord> {
    let scopes: String = row.get(3)?;
    Ok(ClientRecord {
        client_id: row.get(0)?,
        account_id: account_col(row, 1)?,
        secret_hash: row.get(2)?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at: time_col(row, 4)?,
        secret_generation: row.get(5)?,
    })
}

pub(super) fn find_client(conn: &Connection, client_id: &str) -> StoreResult<Option<ClientRecord>> {
    sql::first(conn, &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?1"), [client_id], client_row)
}

pub(super) fn list_clients(conn: &Connection, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
    match account {
        Some(account) => sql::rows(
            conn,
            &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE account_id = ?1 ORDER BY client_id"),
            [account.as_str()],
            client_row,
        ),
        None => sql::rows(conn, &format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id"), [], client_row),
    }
}

pub(super) fn revoke_client(
    conn: &Connection,
    client_id: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<ClientRecord> {
    let client = find_client(conn, client_id)?.ok_or(StoreError::NotFound("client"))?;
    sql::execute(conn, "DELETE FROM clients WHERE client_id = ?1", [client_id])?;
    sql::audit(conn, &NewAuditRecord::client_revoked(&client, actor, at))?;
    Ok(client)
}

pub(super) fn rotate_client_secret(
    conn: &Connection,
    client_id: &str,
    secret_hash: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<ClientRecord> {
    let changed = sql::execute(
        conn,
        "UPDATE clients SET secret_hash = ?2, secret_generation = secret_generation + 1 WHERE client_id = ?1",
        params![client_id, secret_hash],
    )?;
    if changed == 0 {
        return Err(StoreError::NotFound("client"));
    }
    let client = find_client(conn, client_id)?.ok_or(StoreError::NotFound("client"))?;
    sql::audit(conn, &NewAuditRecord::client_secret_rotated(&client, actor, at))?;
    Ok(client)
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

pub(super) fn replace_signing_key(conn: &Connection, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
    let changed = sql::execute(
        conn,
        "UPDATE signing_keys SET private_key = ?3 WHERE kid = ?1 AND private_key = ?2",
        params![kid, old, new],
    )?;
    Ok(changed > 0)
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
