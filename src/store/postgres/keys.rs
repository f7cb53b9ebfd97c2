//! The key ring's data keys and the walk over sealed values that re-encryption makes.

use async_trait::async_trait;
use deadpool_postgres::Object;

use super::rows::{account, get};
use super::sql::{append_audit, compare_and_set};
use super::PostgresStore;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use deadpool_postgres::GenericClient;

use crate::domain::audit::NewAuditRecord;
use crate::domain::sealed::RewrappedKeys;
use crate::domain::Timestamp;
use crate::store::{
    DataKeyRecord, KeyStore, Resealed, SealedColumn, SealedValue, StoreError, StoreResult, MASTER_ROOT_SETTING,
};

async fn data_keys(conn: &Object) -> StoreResult<Vec<DataKeyRecord>> {
    let statement =
        conn.prepare_cached("SELECT id, wrapped_key, created_at, created_by FROM encryption_keys ORDER BY id").await?;
    conn.query(&statement, &[])
        .await?
        .iter()
        .map(|row| {
            let id: i64 = get(row, "id")?;
            Ok(DataKeyRecord {
                id: u32::try_from(id)
                    .map_err(|_| StoreError::Internal(format!("encryption key id {id} is out of range")))?,
                wrapped: get(row, "wrapped_key")?,
                created_at: Timestamp::from_millis(get(row, "created_at")?),
                created_by: get(row, "created_by")?,
            })
        })
        .collect()
}

async fn insert_data_key(conn: &mut Object, key: &DataKeyRecord) -> StoreResult<()> {
    let tx = conn.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO encryption_keys (id, wrapped_key, created_at, created_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let inserted =
        tx.execute(&statement, &[&i64::from(key.id), &key.wrapped, &key.created_at.millis(), &key.created_by]).await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("encryption key {} already exists", key.id)));
    }
    append_audit(&tx, NewAuditRecord::data_key_added(key.id, &key.created_by, key.created_at)).await?;
    tx.commit().await?;
    Ok(())
}

async fn sealed_values(
    conn: &Object,
    column: SealedColumn,
    after_row: i64,
    unless_prefix: &[u8],
    limit: u32,
) -> StoreResult<Vec<SealedValue>> {
    let (table, sealed) = column.table_and_column();
    let statement = conn
        .prepare_cached(&format!(
            "SELECT seq, account_id, id, {sealed} AS sealed FROM {table} \
             WHERE seq > $1 AND {sealed} IS NOT NULL AND substring({sealed} FROM 1 FOR $2) <> $3 \
             ORDER BY seq LIMIT $4"
        ))
        .await?;
    let prefix_len = unless_prefix.len() as i32;
    conn.query(&statement, &[&after_row, &prefix_len, &unless_prefix, &i64::from(limit)])
        .await?
        .iter()
        .map(|row| {
            Ok(SealedValue {
                row: get(row, "seq")?,
                account: account(row, "account_id")?,
                id: get(row, "id")?,
                sealed: get(row, "sealed")?,
            })
        })
        .collect()
}

async fn replace_sealed_values(conn: &mut Object, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64> {
    let (table, sealed) = column.table_and_column();
    compare_and_set(conn, table, sealed, values.iter().map(|v| (v.row, &v.old, &v.new)).collect()).await
}

async fn master_root(conn: &impl GenericClient) -> StoreResult<Option<Vec<u8>>> {
    let statement = conn.prepare_cached("SELECT value FROM vault_settings WHERE name = $1").await?;
    match conn.query_opt(&statement, &[&MASTER_ROOT_SETTING]).await? {
        None => Ok(None),
        Some(row) => {
            let text: &str = get(&row, "value")?;
            STANDARD
                .decode(text)
                .map(Some)
                .map_err(|_| StoreError::Internal(format!("vault_settings.{MASTER_ROOT_SETTING} is not base64")))
        }
    }
}

async fn insert_master_root(
    conn: &mut Object,
    wrapped: &[u8],
    master: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let tx = conn.transaction().await?;
    let statement = tx
        .prepare_cached("INSERT INTO vault_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .await?;
    if tx.execute(&statement, &[&MASTER_ROOT_SETTING, &STANDARD.encode(wrapped)]).await? == 0 {
        return Err(StoreError::Conflict("the database keeps a root key already".to_owned()));
    }
    append_audit(&tx, NewAuditRecord::master_root_created(master, actor, at)).await?;
    tx.commit().await?;
    Ok(())
}

async fn rewrap_master_key(
    conn: &mut Object,
    old_root: Option<&[u8]>,
    keys: &RewrappedKeys,
    (from, to, actor, at): (&str, &str, &str, Timestamp),
) -> StoreResult<()> {
    let changed = || StoreError::Conflict("the keys changed while they were re-wrapped".to_owned());
    let tx = conn.transaction().await?;
    // Keys added from now on wait for this transaction, so the check below holds until commit.
    tx.batch_execute("LOCK TABLE encryption_keys, signing_keys, vault_settings IN SHARE ROW EXCLUSIVE MODE").await?;
    if master_root(&tx).await?.as_deref() != old_root {
        return Err(changed());
    }
    let data_ids = tx
        .query("SELECT id FROM encryption_keys", &[])
        .await?
        .iter()
        .map(|row| u32::try_from(row.get::<_, i64>(0)).map_err(|_| changed()))
        .collect::<StoreResult<Vec<u32>>>()?;
    let kids: Vec<String> = tx.query("SELECT kid FROM signing_keys", &[]).await?.iter().map(|row| row.get(0)).collect();
    if !keys.cover(data_ids, kids) {
        return Err(changed());
    }
    for (id, wrapped) in &keys.data_keys {
        tx.execute("UPDATE encryption_keys SET wrapped_key = $2 WHERE id = $1", &[&i64::from(*id), wrapped]).await?;
    }
    for (kid, sealed) in &keys.signing_keys {
        tx.execute("UPDATE signing_keys SET private_key = $2 WHERE kid = $1", &[kid, sealed]).await?;
    }
    tx.execute(
        "INSERT INTO vault_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        &[&MASTER_ROOT_SETTING, &STANDARD.encode(&keys.root)],
    )
    .await?;
    let record = NewAuditRecord::master_key_rotated(from, to, keys.data_keys.len(), keys.signing_keys.len(), actor, at);
    append_audit(&tx, record).await?;
    tx.commit().await?;
    Ok(())
}

#[async_trait]
impl KeyStore for PostgresStore {
    async fn master_root(&self) -> StoreResult<Option<Vec<u8>>> {
        with_conn!(self, |conn| master_root(&conn).await)
    }

    async fn insert_master_root(&self, wrapped: &[u8], master: &str, actor: &str, at: Timestamp) -> StoreResult<()> {
        with_conn!(self, |conn| insert_master_root(&mut conn, wrapped, master, actor, at).await)
    }

    async fn rewrap_master_key(
        &self,
        old_root: Option<&[u8]>,
        keys: &RewrappedKeys,
        from: &str,
        to: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        with_conn!(self, |conn| rewrap_master_key(&mut conn, old_root, keys, (from, to, actor, at)).await)
    }

    async fn data_keys(&self) -> StoreResult<Vec<DataKeyRecord>> {
        with_conn!(self, |conn| data_keys(&conn).await)
    }

    async fn insert_data_key(&self, key: &DataKeyRecord) -> StoreResult<()> {
        with_conn!(self, |conn| insert_data_key(&mut conn, key).await)
    }

    async fn sealed_values(
        &self,
        column: SealedColumn,
        after_row: i64,
        unless_prefix: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>> {
        with_conn!(self, |conn| sealed_values(&conn, column, after_row, unless_prefix, limit).await)
    }

    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64> {
        with_conn!(self, |conn| replace_sealed_values(&mut conn, column, values).await)
    }
}
