//! The key ring's data keys and the walk over sealed values that re-encryption makes.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::sql::{self, account_col, time_col};
use super::SqliteStore;
use crate::domain::audit::NewAuditRecord;
use crate::store::{DataKeyRecord, KeyStore, Resealed, SealedColumn, SealedValue, StoreError, StoreResult};

fn data_keys(conn: &Connection) -> StoreResult<Vec<DataKeyRecord>> {
    sql::rows(conn, "SELECT id, wrapped_key, created_at, created_by FROM encryption_keys ORDER BY id", [], |row| {
        Ok(DataKeyRecord {
            id: row.get(0)?,
            wrapped: row.get(1)?,
            created_at: time_col(row, 2)?,
            created_by: row.get(3)?,
        })
    })
}

fn insert_data_key(conn: &Connection, key: &DataKeyRecord) -> StoreResult<()> {
    if sql::exists(conn, "SELECT 1 FROM encryption_keys WHERE id = ?1", [key.id])? {
        return Err(StoreError::Conflict(format!("encryption key {} already exists", key.id)));
    }
    sql::execute(
        conn,
        "INSERT INTO encryption_keys (id, wrapped_key, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
        params![key.id, key.wrapped, key.created_at.millis(), key.created_by],
    )?;
    sql::audit(conn, &NewAuditRecord::data_key_added(key.id, &key.created_by, key.created_at))
}

fn sealed_values(
    conn: &Connection,
    column: SealedColumn,
    after_row: i64,
    unless_prefix: &[u8],
    limit: u32,
) -> StoreResult<Vec<SealedValue>> {
    let (table, sealed) = column.table_and_column();
    sql::rows(
        conn,
        &format!(
            "SELECT seq, account_id, id, {sealed} FROM {table}
             WHERE seq > ?1 AND {sealed} IS NOT NULL AND substr({sealed}, 1, ?2) != ?3 ORDER BY seq LIMIT ?4"
        ),
        params![after_row, unless_prefix.len(), unless_prefix, limit],
        |row| Ok(SealedValue { row: row.get(0)?, account: account_col(row, 1)?, id: row.get(2)?, sealed: row.get(3)? }),
    )
}

fn replace_sealed_values(conn: &Connection, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64> {
    let (table, sealed) = column.table_and_column();
    sql::compare_and_set(conn, table, sealed, values.iter().map(|v| (v.row, &v.old, &v.new)))
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn data_keys(&self) -> StoreResult<Vec<DataKeyRecord>> {
        self.readers.read(data_keys).await
    }

    async fn insert_data_key(&self, key: &DataKeyRecord) -> StoreResult<()> {
        let key = key.clone();
        self.writer.submit(move |conn| insert_data_key(conn, &key)).await
    }

    async fn sealed_values(
        &self,
        column: SealedColumn,
        after_row: i64,
        unless_prefix: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<SealedValue>> {
        let prefix = unless_prefix.to_vec();
        self.readers.read(move |conn| sealed_values(conn, column, after_row, &prefix, limit)).await
    }

    async fn replace_sealed_values(&self, column: SealedColumn, values: &[Resealed]) -> StoreResult<u64> {
        let values = values.to_vec();
        self.writer.submit(move |conn| replace_sealed_values(conn, column, &values)).await
    }
}
