//! Row access to an SQLite file for `tokenvault export` / `import` (see [`crate::store::dataset`]).
//! One connection of its own, used on the blocking thread pool; `seq` values are inserted
//! explicitly, and `AUTOINCREMENT` moves its counter past them by itself.

use async_trait::async_trait;
use std::collections::HashMap;
use std::path::Path;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, TransactionBehavior};
use serde_json::{Number, Value};

use super::{migrate, sql};
use crate::store::dataset::{self, Column, ColumnKind, Dataset, Row, Table, INTERNAL_TABLES};
use crate::store::{StoreError, StoreResult};

pub struct SqliteDataset {
    /// Taken while a blocking task uses it.
    conn: Option<Connection>,
    /// The `sqlite_sequence` value (`None`: no row) of each table the running import has written
    /// to, as it was before: what [`Dataset::abandon_import`] puts back.
    counters_before: HashMap<&'static str, Option<i64>>,
}

impl SqliteDataset {
    /// Opens (creating if needed) the file and brings its schema up to date.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || migrate::open_migrated(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("opening the SQLite database failed: {e}")))??
            .0;
        Ok(Self { conn: Some(conn), counters_before: HashMap::new() })
    }

    /// Runs `work` with the connection on the blocking thread pool.
    async fn with<T, F>(&mut self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let mut conn = self.conn.take().ok_or_else(|| StoreError::Internal("the connection was lost".into()))?;
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut conn);
            (conn, result)
        })
        .await
        .map_err(|e| StoreError::Internal(format!("SQLite task failed: {e}")))?;
        self.conn = Some(conn);
        result
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The table's `AUTOINCREMENT` counter: its `sqlite_sequence` row, which the first insert creates.
fn counter(conn: &Connection, table: &str) -> StoreResult<Option<i64>> {
    sql::first(conn, "SELECT seq FROM sqlite_sequence WHERE name = ?1", [table], |r| r.get(0))
}

fn exists(conn: &Connection, table: &str) -> StoreResult<bool> {
    sql::exists(conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1", [table])
}

/// The columns of a table, typed by their declared type (SQLite's affinity rules).
fn columns(conn: &Connection, table: &Table) -> StoreResult<Vec<Column>> {
    let declared = sql::rows(conn, &format!("PRAGMA table_info({})", quoted(table.name)), [], |row| {
        Ok((row.get::<_, String>(1)?, row.get::<_, String>(2)?))
    })?;
    declared
        .into_iter()
        .map(|(name, declared)| {
            let upper = declared.to_ascii_uppercase();
            let kind = if upper.contains("INT") || upper.contains("BOOL") {
                ColumnKind::BigInt
            } else if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") {
                ColumnKind::Text
            } else if upper.contains("BLOB") {
                ColumnKind::Bytes
            } else {
                return Err(StoreError::Internal(format!(
                    "{}.{name} has type {declared:?}, which export/import does not handle",
                    table.name
                )));
            };
            Ok(Column { name, kind })
        })
        .collect()
}

fn to_json(value: ValueRef<'_>) -> StoreResult<Value> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| StoreError::Internal(format!("a column holds {f}, which JSON cannot")))?,
        ValueRef::Text(text) => Value::String(
            std::str::from_utf8(text)
                .map_err(|_| StoreError::Internal("a text column holds invalid UTF-8".into()))?
                .to_owned(),
        ),
        ValueRef::Blob(bytes) => dataset::bytes_value(bytes),
    })
}

fn to_sql(table: &Table, column: &Column, value: &Value) -> StoreResult<SqlValue> {
    let converted = match column.kind {
        ColumnKind::BigInt | ColumnKind::Int | ColumnKind::SmallInt | ColumnKind::Bool => {
            dataset::as_integer(table, &column.name, value)?.map(SqlValue::Integer)
        }
        ColumnKind::Text => dataset::as_text(table, &column.name, value)?.map(SqlValue::Text),
        ColumnKind::Bytes => dataset::as_bytes(table, &column.name, value)?.map(SqlValue::Blob),
    };
    Ok(converted.unwrap_or(SqlValue::Null))
}

fn cursor(value: Value) -> StoreResult<SqlValue> {
    match value {
        Value::Number(n) => n.as_i64().map(SqlValue::Integer),
        Value::String(s) => Some(SqlValue::Text(s)),
        _ => None,
    }
    .ok_or_else(|| StoreError::Internal("a paging key must be an integer or a string".into()))
}

#[async_trait]
impl Dataset for SqliteDataset {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn schema_version(&mut self) -> StoreResult<i64> {
        self.with(|conn| {
            Ok(sql::first(conn, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", [], |r| r.get(0))?
                .unwrap_or(0))
        })
        .await
    }

    async fn table_names(&mut self) -> StoreResult<Vec<String>> {
        self.with(|conn| {
            let names: Vec<String> =
                sql::rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", [], |r| r.get(0))?;
            Ok(names.into_iter().filter(|name| !INTERNAL_TABLES.contains(&name.as_str())).collect())
        })
        .await
    }

    async fn begin_snapshot(&mut self) -> StoreResult<()> {
        // A deferred transaction takes its snapshot at the first read: make that read now.
        self.with(|conn| {
            conn.execute_batch("BEGIN")?;
            sql::first(conn, "SELECT COUNT(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }

    async fn end_snapshot(&mut self) -> StoreResult<()> {
        self.with(|conn| Ok(conn.execute_batch("COMMIT")?)).await
    }

    async fn count_rows(&mut self, table: &'static Table) -> StoreResult<Option<u64>> {
        let table = dataset::known(table)?;
        self.with(move |conn| {
            if !exists(conn, table.name)? {
                return Ok(None);
            }
            let count: i64 =
                sql::first(conn, &format!("SELECT COUNT(*) FROM {}", quoted(table.name)), [], |r| r.get(0))?
                    .unwrap_or(0);
            Ok(Some(u64::try_from(count).unwrap_or_default()))
        })
        .await
    }

    async fn export_rows(&mut self, table: &'static Table, after: Option<Value>, limit: u32) -> StoreResult<Vec<Row>> {
        let table = dataset::known(table)?;
        self.with(move |conn| {
            let (name, key) = (quoted(table.name), quoted(table.key));
            let mut params = Vec::new();
            let condition = match after {
                Some(after) => {
                    params.push(cursor(after)?);
                    format!("WHERE {key} > ?1")
                }
                None => String::new(),
            };
            params.push(SqlValue::Integer(i64::from(limit)));
            let query = format!("SELECT * FROM {name} {condition} ORDER BY {key} LIMIT ?{}", params.len());
            let mut statement = conn.prepare_cached(&query)?;
            let names: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
            let mut rows = statement.query(params_from_iter(params))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut object = Row::new();
                for (index, name) in names.iter().enumerate() {
                    object.insert(name.clone(), to_json(row.get_ref(index)?)?);
                }
                out.push(object);
            }
            Ok(out)
        })
        .await
    }

    async fn import_rows(&mut self, table: &'static Table, rows: Vec<Row>) -> StoreResult<()> {
        let table = dataset::known(table)?;
        if table.has_seq() && !self.counters_before.contains_key(table.name) {
            let before = self.with(move |conn| counter(conn, table.name)).await?;
            self.counters_before.insert(table.name, before);
        }
        self.with(move |conn| {
            let columns = columns(conn, table)?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            for row in &rows {
                dataset::require_key(table, row)?;
                let targets = dataset::row_columns(table, &columns, row)?;
                let names = targets.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", ");
                let placeholders = (1..=targets.len()).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
                let values = targets
                    .iter()
                    .zip(row.values())
                    .map(|(column, value)| to_sql(table, column, value))
                    .collect::<StoreResult<Vec<_>>>()?;
                let insert = format!("INSERT INTO {} ({names}) VALUES ({placeholders})", quoted(table.name));
                tx.prepare_cached(&insert)?.execute(params_from_iter(values))?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    async fn finish_import(&mut self, _tables: &[&'static Table]) -> StoreResult<()> {
        self.counters_before.clear();
        Ok(())
    }

    async fn abandon_import(&mut self, tables: &[&'static Table]) -> StoreResult<()> {
        let tables = tables.iter().map(|table| dataset::known(table)).collect::<StoreResult<Vec<_>>>()?;
        let counters = std::mem::take(&mut self.counters_before);
        self.with(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Children before parents, for the foreign keys.
            for table in tables.iter().rev() {
                tx.execute(&format!("DELETE FROM {}", quoted(table.name)), [])?;
            }
            for (name, before) in counters {
                match before {
                    Some(value) => tx.execute("UPDATE sqlite_sequence SET seq = ?1 WHERE name = ?2", (value, name))?,
                    None => tx.execute("DELETE FROM sqlite_sequence WHERE name = ?1", [name])?,
                };
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}
