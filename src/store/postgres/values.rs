//! The token-value mode of the database and the walk that converts stored values to it.

use async_trait::async_trait;
use deadpool_postgres::Object;

use super::rows::{account, get};
use super::sql::{append_audit, compare_and_set};
use super::PostgresStore;
use crate::domain::audit::NewAuditRecord;
use crate::domain::Timestamp;
use crate::store::{
    ReplacedValue, StoreError, StoreResult, StoredTokenValue, TokenValueMode, TokenValueStore, ValueTable,
};

const MODE: &str = "token_values";

async fn mode(conn: &Object) -> StoreResult<TokenValueMode> {
    let statement = conn.prepare_cached("SELECT value FROM vault_settings WHERE name = $1").await?;
    match conn.query_opt(&statement, &[&MODE]).await? {
        None => Ok(TokenValueMode::Plain),
        Some(row) => {
            let text: &str = get(&row, "value")?;
            TokenValueMode::parse(text)
                .ok_or_else(|| StoreError::Internal(format!("vault_settings.token_values holds {text:?}")))
        }
    }
}

async fn set_mode(conn: &mut Object, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()> {
    let tx = conn.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO vault_settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .await?;
    tx.execute(&statement, &[&MODE, &mode.as_str()]).await?;
    append_audit(&tx, NewAuditRecord::token_value_mode_set(MODE, mode.as_str(), actor, at)).await?;
    tx.commit().await?;
    Ok(())
}

async fn values(conn: &Object, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>> {
    let name = table.name();
    let statement = conn
        .prepare_cached(&format!(
            "SELECT seq, account_id, token_type, value FROM {name} WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .await?;
    conn.query(&statement, &[&after_row, &i64::from(limit)])
        .await?
        .iter()
        .map(|row| {
            Ok(StoredTokenValue {
                row: get(row, "seq")?,
                account: account(row, "account_id")?,
                token_type: get(row, "token_type")?,
                value: get(row, "value")?,
            })
        })
        .collect()
}

async fn replace(conn: &mut Object, table: ValueTable, values: &[ReplacedValue]) -> StoreResult<u64> {
    compare_and_set(conn, table.name(), "value", values.iter().map(|v| (v.row, &v.old, &v.new)).collect()).await
}

#[async_trait]
impl TokenValueStore for PostgresStore {
    async fn token_value_mode(&self) -> StoreResult<TokenValueMode> {
        with_conn!(self, |conn| mode(&conn).await)
    }

    async fn set_token_value_mode(&self, mode: TokenValueMode, actor: &str, at: Timestamp) -> StoreResult<()> {
        with_conn!(self, |conn| set_mode(&mut conn, mode, actor, at).await)
    }

    async fn token_values(&self, table: ValueTable, after_row: i64, limit: u32) -> StoreResult<Vec<StoredTokenValue>> {
        with_conn!(self, |conn| values(&conn, table, after_row, limit).await)
    }

    async fn replace_token_values(&self, table: ValueTable, replaced: &[ReplacedValue]) -> StoreResult<u64> {
        with_conn!(self, |conn| replace(&mut conn, table, replaced).await)
    }
}
