//! The key ring's data keys and the walk over sealed values that re-encryption makes.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::sql::{self, account_col, time_col};
use super::SqliteStore;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::domain::audit::NewAuditRecord;
use crate::domain::sealed::RewrappedKeys;
use crate::domain::Timestamp;
use crate::store::{
    DataKeyRecord, KeyStore, Resealed, SealedColumn, SealedValue, StoreError, StoreResult, MASTER_ROOT_SETTING,
};

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

fn master_root(conn: &Connection) -> StoreResult<Option<Vec<u8>>> {
    let text: Option<String> =
        sql::first(conn, "SELECT value FROM vault_settings WHERE name = ?1", [MASTER_ROOT_SETTING], |row| row.get(0))?;
    text.map(|text| {
        STANDARD
            .decode(&text)
            .map_err(|_| StoreError::Internal(format!("vault_settings.{MASTER_ROOT_SETTING} is not base64")))
    })
    .transpose()
}

fn insert_master_root(conn: &Connection, wrapped: &[u8], master: &str, actor: &str, at: Timestamp) -> StoreResult<()> {
    let inserted = sql::execute(
        conn,
        "INSERT INTO vault_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
        params![MASTER_ROOT_SETTING, STANDARD.encode(wrapped)],
    )?;
    if inserted == 0 {
        return Err(StoreError::Conflict("the database keeps a root key already".to_owned()));
    }
    sql::audit(conn, &NewAuditRecord::master_root_created(master, actor, at))
}

fn rewrap_master_key(
    conn: &Connection,
    old_root: Option<&[u8]>,
    keys: &RewrappedKeys,
    (from, to, actor, at): (&str, &str, &str, Timestamp),
) -> StoreResult<()> {
    let changed = || StoreError::Conflict("the keys changed while they were re-wrapped".to_owned());
    if master_root(conn)?.as_deref() != old_root {
        return Err(changed());
    }
    let data_ids: Vec<u32> = sql::rows(conn, "SELECT id FROM encryption_keys", [], |row| row.get(0))?;
    let kids: Vec<String> = sql::rows(conn, "SELECT kid FROM signing_keys", [], |row| row.get(0))?;
    if !keys.cover(data_ids, kids) {
        return Err(changed());
    }
    for (id, wrapped) in &keys.data_keys {
        sql::execute(conn, "UPDATE encryption_keys SET wrapped_key = ?2 WHERE id = ?1", params![id, wrapped])?;
    }
    for (kid, sealed) in &keys.signing_keys {
        sql::execute(conn, "UPDATE signing_keys SET private_key = ?2 WHERE kid = ?1", params![kid, sealed])?;
    }
    sql::execute(
        conn,
        "INSERT INTO vault_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![MASTER_ROOT_SETTING, STANDARD.encode(&keys.root)],
    )?;
    sql::audit(
        conn,
        &NewAuditRecord::master_key_rotated(from, to, keys.data_keys.len(), keys.signing_keys.len(), actor, at),
    )
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn master_root(&self) -> StoreResult<Option<Vec<u8>>> {
        self.readers.read(master_root).await
    }

    async fn insert_master_root(&self, wrapped: &[u8], master: &str, actor: &str, at: Timestamp) -> StoreResult<()> {
        let (wrapped, master, actor) = (wrapped.to_vec(), master.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| insert_master_root(conn, &wrapped, &master, &actor, at)).await
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
        let (old_root, keys) = (old_root.map(<[u8]>::to_vec), keys.clone());
        let (from, to, actor) = (from.to_owned(), to.to_owned(), actor.to_owned());
        self.writer
            .submit(move |conn| rewrap_master_key(conn, old_root.as_deref(), &keys, (&from, &to, &actor, at)))
            .await
    }

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
