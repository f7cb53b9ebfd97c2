//! API clients and JWT signing keys.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};

use super::sql::append_audit;
use super::{rows, unique_violation, PostgresStore};
use crate::domain::audit::NewAuditRecord;
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::{AccountId, Timestamp};
use crate::store::{ClientStore, StoreError, StoreResult};

async fn upsert_client(client: &impl GenericClient, record: &ClientRecord) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO clients (client_id, account_id, secret_hash, scopes, created_at, secret_generation) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (client_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, scopes = EXCLUDED.scopes",
        )
        .await?;
    let scopes = record.scopes.join(" ");
    client
        .execute(
            &statement,
            &[
                &record.client_id,
                &record.account_id.as_str(),
                &record.secret_hash,
                &scopes,
                &record.created_at.millis(),
                &record.secret_generation,
            ],
        )
        .await?;
    Ok(())
}

const CLIENT_COLUMNS: &str = "client_id, account_id, secret_hash, scopes, created_at, secret_generation";

fn client_row(row: &tokio_postgres::Row) -> StoreResult<ClientRecord> {
    let client_id: String = rows::get(row, "client_id")?;
    let account: &str = rows::get(row, "account_id")?;
    let scopes: &str = rows::get(row, "scopes")?;
    Ok(ClientRecord {
        account_id: AccountId::parse("account_id", account)
            .map_err(|e| StoreError::Internal(format!("client {client_id}: {}", e.message)))?,
        client_id,
        secret_hash: rows::get(row, "secret_hash")?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        created_at: Timestamp::from_millis(rows::get(row, "created_at")?),
        secret_generation: rows::get(row, "secret_generation")?,
    })
}

async fn find_client(client: &impl GenericClient, client_id: &str) -> StoreResult<Option<ClientRecord>> {
    let statement =
        client.prepare_cached(&format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE client_id = $1")).await?;
    client.query_opt(&statement, &[&client_id]).await?.as_ref().map(client_row).transpose()
}

async fn list_clients(client: &impl GenericClient, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
    let rows = match account {
        Some(account) => {
            let statement = client
                .prepare_cached(&format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE account_id = $1 ORDER BY client_id"
                ))
                .await?;
            client.query(&statement, &[&account.as_str()]).await?
        }
        None => {
            let statement =
                client.prepare_cached(&format!("SELECT {CLIENT_COLUMNS} FROM clients ORDER BY client_id")).await?;
            client.query(&statement, &[]).await?
        }
    };
    rows.iter().map(client_row).collect()
}

async fn revoke_client(conn: &mut Object, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord> {
    let tx = conn.transaction().await?;
    let statement =
        tx.prepare_cached(&format!("DELETE FROM clients WHERE client_id = $1 RETURNING {CLIENT_COLUMNS}")).await?;
    let row = tx.query_opt(&statement, &[&client_id]).await?.ok_or(StoreError::NotFound("client"))?;
    let client = client_row(&row)?;
    append_audit(&tx, NewAuditRecord::client_revoked(&client, actor, at)).await?;
    tx.commit().await?;
    Ok(client)
}

async fn rotate_client_secret(
    conn: &mut Object,
    client_id: &str,
    secret_hash: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<ClientRecord> {
    let tx = conn.transaction().await?;
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE clients SET secret_hash = $2, secret_generation = secret_generation + 1 \
             WHERE client_id = $1 RETURNING {CLIENT_COLUMNS}"
        ))
        .await?;
    let row = tx.query_opt(&statement, &[&client_id, &secret_hash]).await?.ok_or(StoreError::NotFound("client"))?;
    let client = client_row(&row)?;
    append_audit(&tx, NewAuditRecord::client_secret_rotated(&client, actor, at)).await?;
    tx.commit().await?;
    Ok(client)
}

async fn signing_keys(client: &impl GenericClient) -> StoreResult<Vec<SigningKeyRecord>> {
    let statement = client
        .prepare_cached(
            "SELECT kid, private_key, public_key, created_at FROM signing_keys ORDER BY created_at DESC, kid DESC",
        )
        .await?;
    let rows = client.query(&statement, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(SigningKeyRecord {
                kid: rows::get(row, "kid")?,
                private_key: rows::get(row, "private_key")?,
                public_key: rows::get(row, "public_key")?,
                created_at: Timestamp::from_millis(rows::get(row, "created_at")?),
            })
        })
        .collect()
}

async fn insert_signing_key(client: &impl GenericClient, key: &SigningKeyRecord) -> StoreResult<()> {
    let statement = client
        .prepare_cached("INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)")
        .await?;
    client
        .execute(&statement, &[&key.kid, &key.private_key, &key.public_key, &key.created_at.millis()])
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => StoreError::Conflict(format!("a signing key with kid '{}' already exists", key.kid)),
            None => e.into(),
        })?;
    Ok(())
}

async fn replace_signing_key(client: &impl GenericClient, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
    let statement =
        client.prepare_cached("UPDATE signing_keys SET private_key = $3 WHERE kid = $1 AND private_key = $2").await?;
    Ok(client.execute(&statement, &[&kid, &old, &new]).await? > 0)
}

#[async_trait]
impl ClientStore for PostgresStore {
    async fn upsert_client(&self, client: &ClientRecord) -> StoreResult<()> {
        with_conn!(self, |conn| upsert_client(&conn, client).await)
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        with_conn!(self, |conn| find_client(&conn, client_id).await)
    }

    async fn list_clients(&self, account: Option<&AccountId>) -> StoreResult<Vec<ClientRecord>> {
        with_conn!(self, |conn| list_clients(&conn, account).await)
    }

    async fn revoke_client(&self, client_id: &str, actor: &str, at: Timestamp) -> StoreResult<ClientRecord> {
        with_conn!(self, |conn| revoke_client(&mut conn, client_id, actor, at).await)
    }

    async fn rotate_client_secret(
        &self,
        client_id: &str,
        secret_hash: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<ClientRecord> {
        with_conn!(self, |conn| rotate_client_secret(&mut conn, client_id, secret_hash, actor, at).await)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        with_conn!(self, |conn| signing_keys(&conn).await)
    }

    async fn insert_signing_key(&self, key: &SigningKeyRecord) -> StoreResult<()> {
        with_conn!(self, |conn| insert_signing_key(&conn, key).await)
    }

    async fn replace_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> StoreResult<bool> {
        with_conn!(self, |conn| replace_signing_key(&conn, kid, old, new).await)
    }
}
