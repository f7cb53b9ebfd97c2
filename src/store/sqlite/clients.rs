//! API clients and JWT signing keys.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::sql::{self, account_col, time_col};
use super::SqliteStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::{ClientStore, StoreError, StoreResult};

fn upsert_client(conn: &Connection, client: &ClientRecord) -> StoreResult<()> {
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

fn find_client(conn: &Connection, client_id: &str) -> StoreResult<Option<ClientRecord>> {
    sql::first(conn, &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = ?1"), [client_id], client_row)
}

fn list_clients(conn: &Connection, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
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

fn revoke_client(conn: &Connection, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord> {
    let client = find_client(conn, client_id)?.ok_or(StoreError::NotFound("client"))?;
    sql::execute(conn, "DELETE FROM clients WHERE client_id = ?1", [client_id])?;
    sql::audit(conn, &NewAuditRecord::client_revoked(&client, actor, at))?;
    Ok(client)
}

fn rotate_client_secret(
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

fn signing_keys(conn: &Connection) -> StoreResult<Vec<SigningKeyRecord>> {
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

fn insert_signing_key(conn: &Connection, key: &SigningKeyRecord) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![key.kid, key.private_key, key.public_key, key.created_at.millis()],
    )?;
    Ok(())
}

fn replace_signing_key(conn: &Connection, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
    let changed = sql::execute(
        conn,
        "UPDATE signing_keys SET private_key = ?3 WHERE kid = ?1 AND private_key = ?2",
        params![kid, old, new],
    )?;
    Ok(changed > 0)
}

#[async_trait]
impl ClientStore for SqliteStore {
    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let client = client.clone();
        self.writer.submit(move |conn| upsert_client(conn, &client)).await
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let client_id = client_id.to_owned();
        self.readers.read(move |conn| find_client(conn, &client_id)).await
    }

    async fn list_clients(&self, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
        let account = account.cloned();
        self.readers.read(move |conn| list_clients(conn, account.as_ref())).await
    }

    async fn revoke_client(&self, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord> {
        let (client_id, actor) = (client_id.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| revoke_client(conn, &client_id, &actor, at)).await
    }

    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ClientRecord> {
        let (client_id, secret_hash, actor) = (client_id.to_owned(), secret_hash.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| rotate_client_secret(conn, &client_id, &secret_hash, &actor, at)).await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.readers.read(signing_keys).await
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.writer.submit(move |conn| insert_signing_key(conn, &key)).await
    }

    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        let (kid, old, new) = (kid.to_owned(), old.to_vec(), new.to_vec());
        self.writer.submit(move |conn| replace_signing_key(conn, &kid, &old, &new)).await
    }
}
