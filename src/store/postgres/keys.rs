//! The key ring's data keys and the walk over sealed values that re-encryption makes.

use async_trait::async_trait;
use deadpool_postgres::Object;

use super::rows::{account, get};
use super::sql::{append_audit, compare_and_set};
use super::PostgresStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::Timestamp;
use crate::store::{DataKeyRecord, KeyStore, Resealed, SealedColumn, SealedValue, StoreError, StoreResult};

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

#[async_trait]
impl KeyStore for PostgresStore {
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
