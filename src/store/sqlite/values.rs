//! The token-value mode of the database and the walk that converts stored values to it.

use async_trait::async_trait;
use rusqlite::{params, Connection};

use super::sql::{self, account_col};
use super::SqliteStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::Timestamp;
use crate::store::{
    ReplacedValue, StoreError, StoreResult, StoredTokenValue, TokenValueMode, TokenValueStore, ValueTable,
};

const MODE: &str = "token_values";

fn mode(conn: &Connection) -> StoreResult<TokenValueMode> {
    let value: Option<String> =
        sql::first(conn, "SELECT value FROM vault_settings WHERE name = ?1", [MODE], |row| row.get(0))?;
    match value {
        None => Ok(TokenValueMode::Plain),
        Some(text) => TokenValueMode::parse(&text)
            .ok_or_else(|| StoreError::Internal(format!("vault_settings.token_values holds {text:?}"))),
    }
}

fn set_mode(conn: &Connection, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO vault_settings (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        params![MODE, mode.as_str()],
    )?;
    sql::audit(conn, &NewAuditRecord::token_value_mode_set(MODE, mode.as_str(), actor, at))
}

fn values(conn: &Connection, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>> {
    let name = table.name();
    sql::rows(
        conn,
        &format!("SELECT seq, account_id, token_type, value FROM {name} WHERE seq > ?1 ORDER BY seq LIMIT ?2"),
        params![after_row, limit],
        |row| {
            Ok(StoredTokenValue {
                row: row.get(0)?,
                account: account_col(row, 1)?,
                token_type: row.get(2)?,
                value: row.get(3)?,
            })
        },
    )
}

fn replace(conn: &Connection, table: ValueTable, values: &[ReplacedValue]) -> StoreResult<u64> {
    sql::compare_and_set(conn, table.name(), "value", values.iter().map(|v| (v.row, &v.old, &v.new)))
}

#[async_trait]
impl TokenValueStore for SqliteStore {
    async fn token_value_mode(&self) -> StoreResult<TokenValueMode> {
        self.readers.read(mode).await
    }

    async fn set_token_value_mode(&self, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()> {
        let actor = actor.to_owned();
        self.writer.submit(move |conn| set_mode(conn, mode, &actor, at)).await
    }

    async fn token_values(&self, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>> {
        self.readers.read(move |conn| values(conn, table, after_row, limit)).await
    }

    async fn replace_token_values(&self, table: ValueTable, replaced: &[ReplacedValue]) -> StoreResult<u64> {
        let replaced = replaced.to_vec();
        self.writer.submit(move |conn| replace(conn, table, &replaced)).await
    }
}
