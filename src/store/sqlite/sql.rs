//! Helpers shared by the resource modules: fully stepped queries, column conversions, keyset
//! pages and the audit append.

use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, Params, Row};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::domain::audit::NewAuditRecord;
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{StoreError, StoreResult};

/// Every row of a query. Reading to the end leaves no statement half-stepped.
pub(super) fn rows<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, map)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// The first row of a query that yields at most one (a key lookup or `LIMIT 1`).
pub(super) fn first<T, P: Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Option<T>> {
    Ok(rows(conn, sql, params, map)?.into_iter().next())
}

/// The `seq` of the item a `starting_after` cursor names, looked up with `lookup` within the
/// list's scope; a cursor naming nothing there is a client error.
pub(super) fn cursor_seq<P: Params>(conn: &Connection, lookup: &str, params: P) -> StoreResult<i64> {
    first(conn, lookup, params, |row| row.get(0))?.ok_or(StoreError::UnknownCursor)
}

pub(super) fn exists<P: Params>(conn: &Connection, sql: &str, params: P) -> StoreResult<bool> {
    Ok(first(conn, sql, params, |_| Ok(()))?.is_some())
}

pub(super) fn execute<P: Params>(conn: &Connection, sql: &str, params: P) -> StoreResult<usize> {
    Ok(conn.prepare_cached(sql)?.execute(params)?)
}

fn conversion(index: usize, error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, Type::Text, error.into())
}

pub(super) fn json_col<T: DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| conversion(index, e))
}

pub(super) fn json_opt_col<T: DeserializeOwned>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| serde_json::from_str(&text).map_err(|e| conversion(index, e))).transpose()
}

pub(super) fn uuid_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    Uuid::parse_str(&text).map_err(|e| conversion(index, e))
}

/// A text column parsed with `FromStr` (enums, account ids).
pub(super) fn parsed_col<T: std::str::FromStr>(row: &Row<'_>, index: usize) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    text.parse().map_err(|_| conversion(index, format!("unexpected value {text:?}")))
}

pub(super) fn account_col(row: &Row<'_>, index: usize) -> rusqlite::Result<AccountId> {
    let text: String = row.get(index)?;
    AccountId::parse("account_id", &text).map_err(|e| conversion(index, e.message))
}

pub(super) fn time_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Timestamp> {
    Ok(Timestamp::from_millis(row.get(index)?))
}

pub(super) fn time_opt_col(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Timestamp>> {
    Ok(row.get::<_, Option<i64>>(index)?.map(Timestamp::from_millis))
}

pub(super) fn to_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Internal(format!("cannot encode JSON: {e}")))
}

pub(super) fn to_json_opt<T: Serialize>(value: Option<&T>) -> StoreResult<Option<String>> {
    value.map(to_json).transpose()
}

/// Sets `column` of each row (by `seq`) to its new value where the row still holds the old one,
/// so that a change made meanwhile wins; returns how many rows changed. For rewrites that walk
/// a table beside running servers (key rotation, sealing token values).
pub(super) fn compare_and_set<V: rusqlite::ToSql>(
    conn: &Connection,
    table: &str,
    column: &str,
    changes: impl IntoIterator<Item = (i64, V, V)>,
) -> StoreResult<u64> {
    let sql = format!("UPDATE {table} SET {column} = ?1 WHERE seq = ?2 AND {column} = ?3");
    let mut changed = 0;
    for (row, old, new) in changes {
        changed += execute(conn, &sql, params![new, row, old])? as u64;
    }
    Ok(changed)
}

/// A `LIKE` pattern matching values that start with `prefix` literally (escape char `\`).
pub(super) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(super) fn audit(conn: &Connection, record: &NewAuditRecord) -> StoreResult<()> {
    execute(
        conn,
        "INSERT INTO audit_log (at, account_id, actor, action, resource_type, resource_id, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            record.at.millis(),
            record.account_id,
            record.actor,
            record.action,
            record.resource_type,
            record.resource_id,
            to_json(&record.details)?
        ],
    )?;
    Ok(())
}

/// A conjunction of SQL conditions with their `?` parameters, in order.
#[derive(Debug, Clone)]
pub(super) struct Where {
    sql: String,
    params: Vec<Value>,
}

impl Where {
    pub(super) fn new(condition: &str, params: impl IntoIterator<Item = Value>) -> Self {
        Self { sql: condition.to_owned(), params: params.into_iter().collect() }
    }

    pub(super) fn and(&mut self, condition: &str, params: impl IntoIterator<Item = Value>) {
        self.sql.push_str(" AND ");
        self.sql.push_str(condition);
        self.params.extend(params);
    }
}

pub(super) fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// One keyset page: `limit + 1` rows matching `filter` past the cursor condition, plus the
/// count of all rows matching `filter` when asked.
#[allow(clippy::too_many_arguments)]
pub(super) fn keyset_page<T>(
    conn: &Connection,
    columns: &str,
    from: &str,
    filter: &Where,
    after: Option<(&str, Vec<Value>)>,
    order_by: &str,
    page: &PageRequest,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Page<T>> {
    let total = if page.include_total {
        let sql = format!("SELECT COUNT(*) FROM {from} WHERE {}", filter.sql);
        let count: i64 = first(conn, &sql, params_from_iter(&filter.params), |r| r.get(0))?.unwrap_or(0);
        Some(count as u64)
    } else {
        None
    };
    let mut query = filter.clone();
    if let Some((condition, params)) = after {
        query.and(condition, params);
    }
    query.params.push(Value::Integer(i64::from(page.limit) + 1));
    let sql = format!("SELECT {columns} FROM {from} WHERE {} ORDER BY {order_by} LIMIT ?", query.sql);
    let items = rows(conn, &sql, params_from_iter(&query.params), map)?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_prefix_escapes_wildcards() {
        assert_eq!(like_prefix("a_b%c\\d"), "a\\_b\\%c\\\\d%");
        assert_eq!(like_prefix(""), "%");
    }
}
