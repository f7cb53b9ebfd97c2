//! Row access to a PostgreSQL database for `tokenvault export` / `import` (see
//! [`crate::store::dataset`]). One plain connection, no pool. Imported rows keep their `seq`
//! (`OVERRIDING SYSTEM VALUE`), and each batch then moves the identity sequence past the largest
//! `seq`, so that rows created afterwards continue the order. An import that fails is undone by
//! `TRUNCATE` and by putting those sequences back.

use async_trait::async_trait;
use std::collections::HashMap;

use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row as PgRow};

use super::migrate;
use crate::store::dataset::{self, Column, ColumnKind, Dataset, Row, Table, INTERNAL_TABLES};
use crate::store::{StoreError, StoreResult};

pub struct PostgresDataset {
    client: Client,
    /// Drives the connection; ends by itself once `client` is dropped.
    _driver: tokio::task::JoinHandle<()>,
    /// For a new connection when an import that failed by losing this one is undone.
    url: String,
    /// Column lists by table, read from the catalog once.
    columns: HashMap<&'static str, Vec<Column>>,
    /// Each identity sequence the running import has moved, as it stood before (`last_value`,
    /// `is_called`): what [`Dataset::abandon_import`] puts back.
    sequences_before: HashMap<&'static str, (String, i64, bool)>,
}

impl PostgresDataset {
    /// Connects and brings the schema up to date (under the migration lock, like `serve`).
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let (mut client, driver) = migrate::connect_once(url).await?;
        migrate::run(&mut client).await?;
        Ok(Self {
            client,
            _driver: driver,
            url: url.to_owned(),
            columns: HashMap::new(),
            sequences_before: HashMap::new(),
        })
    }

    /// Notes where the table's identity sequence stands, once per import, before it is moved.
    async fn note_sequence(&mut self, table: &'static Table) -> StoreResult<()> {
        if !table.has_seq() || self.sequences_before.contains_key(table.name) {
            return Ok(());
        }
        let row = self.client.query_one("SELECT pg_get_serial_sequence($1, 'seq')", &[&quoted(table.name)]).await?;
        let Some(sequence) = row.get::<_, Option<String>>(0) else { return Ok(()) };
        // The name comes from the catalog, quoted as needed.
        let row = self.client.query_one(&format!("SELECT last_value, is_called FROM {sequence}"), &[]).await?;
        self.sequences_before.insert(table.name, (sequence, row.get(0), row.get(1)));
        Ok(())
    }

    async fn columns(&mut self, table: &'static Table) -> StoreResult<Vec<Column>> {
        if let Some(columns) = self.columns.get(table.name) {
            return Ok(columns.clone());
        }
        let rows = self
            .client
            .query(
                "SELECT column_name::TEXT, data_type::TEXT FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
                &[&table.name],
            )
            .await?;
        let columns = rows
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                let data_type: String = row.get(1);
                let kind = match data_type.as_str() {
                    "bigint" => ColumnKind::BigInt,
                    "integer" => ColumnKind::Int,
                    "smallint" => ColumnKind::SmallInt,
                    "boolean" => ColumnKind::Bool,
                    "text" | "character varying" => ColumnKind::Text,
                    "bytea" => ColumnKind::Bytes,
                    other => {
                        return Err(StoreError::Internal(format!(
                            "{}.{name} has type {other}, which export/import does not handle",
                            table.name
                        )))
                    }
                };
                Ok(Column { name, kind })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        self.columns.insert(table.name, columns.clone());
        Ok(columns)
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sql_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::BigInt => "BIGINT",
        ColumnKind::Int => "INTEGER",
        ColumnKind::SmallInt => "SMALLINT",
        ColumnKind::Bool => "BOOLEAN",
        ColumnKind::Text => "TEXT",
        ColumnKind::Bytes => "BYTEA",
    }
}

fn to_json(row: &PgRow, index: usize, column: &Column) -> StoreResult<Value> {
    let failed = |e: tokio_postgres::Error| StoreError::Internal(format!("column {}: {e}", column.name));
    Ok(match column.kind {
        ColumnKind::BigInt => row.try_get::<_, Option<i64>>(index).map_err(failed)?.map(Value::from),
        ColumnKind::Int => row.try_get::<_, Option<i32>>(index).map_err(failed)?.map(Value::from),
        ColumnKind::SmallInt => row.try_get::<_, Option<i16>>(index).map_err(failed)?.map(Value::from),
        ColumnKind::Bool => row.try_get::<_, Option<bool>>(index).map_err(failed)?.map(Value::Bool),
        ColumnKind::Text => row.try_get::<_, Option<String>>(index).map_err(failed)?.map(Value::String),
        ColumnKind::Bytes => {
            row.try_get::<_, Option<Vec<u8>>>(index).map_err(failed)?.map(|b| dataset::bytes_value(&b))
        }
    }
    .unwrap_or(Value::Null))
}

type Param = Box<dyn ToSql + Sync + Send>;

fn to_param(table: &Table, column: &Column, value: &Value) -> StoreResult<Param> {
    let name = column.name.as_str();
    Ok(match column.kind {
        ColumnKind::BigInt => Box::new(dataset::as_integer(table, name, value)?),
        ColumnKind::Int => {
            let wide = dataset::as_integer(table, name, value)?;
            let narrow = wide
                .map(i32::try_from)
                .transpose()
                .map_err(|_| StoreError::Internal(format!("{}.{name}: {value} does not fit an INTEGER", table.name)))?;
            Box::new(narrow)
        }
        ColumnKind::SmallInt => {
            let wide = dataset::as_integer(table, name, value)?;
            let narrow = wide
                .map(i16::try_from)
                .transpose()
                .map_err(|_| StoreError::Internal(format!("{}.{name}: {value} does not fit a SMALLINT", table.name)))?;
            Box::new(narrow)
        }
        ColumnKind::Bool => Box::new(dataset::as_bool(table, name, value)?),
        ColumnKind::Text => Box::new(dataset::as_text(table, name, value)?),
        ColumnKind::Bytes => Box::new(dataset::as_bytes(table, name, value)?),
    })
}

#[async_trait]
impl Dataset for PostgresDataset {
    fn backend(&self) -> &'static str {
        "postgresql"
    }

    async fn schema_version(&mut self) -> StoreResult<i64> {
        let row = self.client.query_one("SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_migrations", &[]).await?;
        Ok(row.get(0))
    }

    async fn table_names(&mut self) -> StoreResult<Vec<String>> {
        let rows = self
            .client
            .query(
                "SELECT table_name::TEXT FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| row.get::<_, String>(0))
            .filter(|name| !INTERNAL_TABLES.contains(&name.as_str()))
            .collect())
    }

    async fn begin_snapshot(&mut self) -> StoreResult<()> {
        Ok(self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?)
    }

    async fn end_snapshot(&mut self) -> StoreResult<()> {
        Ok(self.client.batch_execute("COMMIT").await?)
    }

    async fn finish_import(&mut self, tables: &[&'static Table]) -> StoreResult<()> {
        // VACUUM runs outside a transaction block: this connection is in autocommit here.
        for table in tables {
            let table = dataset::known(table)?;
            self.client.batch_execute(&format!("VACUUM (ANALYZE) {}", quoted(table.name))).await?;
        }
        self.sequences_before.clear();
        Ok(())
    }

    async fn abandon_import(&mut self, tables: &[&'static Table]) -> StoreResult<()> {
        let list = tables
            .iter()
            .rev()
            .map(|table| dataset::known(table).map(|table| quoted(table.name)))
            .collect::<StoreResult<Vec<_>>>()?
            .join(", ");
        let sequences = std::mem::take(&mut self.sequences_before);
        // The failure may have been this connection's loss (which `is_closed` can report late).
        if self.client.is_closed() || self.client.batch_execute("SELECT 1").await.is_err() {
            let (client, driver) = migrate::connect_once(&self.url).await?;
            (self.client, self._driver) = (client, driver);
        }
        let tx = self.client.transaction().await?;
        if !list.is_empty() {
            // One statement for all of them: a referenced table may only be emptied together with
            // the tables referencing it.
            tx.batch_execute(&format!("TRUNCATE {list}")).await?;
        }
        for (sequence, last_value, is_called) in sequences.into_values() {
            tx.execute("SELECT setval($1::TEXT::REGCLASS, $2, $3)", &[&sequence, &last_value, &is_called]).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn count_rows(&mut self, table: &'static Table) -> StoreResult<Option<u64>> {
        let table = dataset::known(table)?;
        let exists = self
            .client
            .query_opt(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1",
                &[&table.name],
            )
            .await?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let row = self.client.query_one(&format!("SELECT COUNT(*) FROM {}", quoted(table.name)), &[]).await?;
        Ok(Some(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default()))
    }

    async fn export_rows(&mut self, table: &'static Table, after: Option<Value>, limit: u32) -> StoreResult<Vec<Row>> {
        let table = dataset::known(table)?;
        let columns = self.columns(table).await?;
        let key = columns
            .iter()
            .find(|c| c.name == table.key)
            .ok_or_else(|| StoreError::Internal(format!("{} has no column {} to page by", table.name, table.key)))?;
        let list = columns.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", ");
        let limit = i64::from(limit);
        let mut params: Vec<Param> = Vec::new();
        let condition = match &after {
            Some(after) => {
                params.push(to_param(table, key, after)?);
                format!("WHERE {} > $1", quoted(&key.name))
            }
            None => String::new(),
        };
        params.push(Box::new(limit));
        let query = format!(
            "SELECT {list} FROM {} {condition} ORDER BY {} LIMIT ${}",
            quoted(table.name),
            quoted(&key.name),
            params.len()
        );
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&query, &refs).await?;
        rows.iter()
            .map(|row| {
                let mut object = Row::new();
                for (index, column) in columns.iter().enumerate() {
                    object.insert(column.name.clone(), to_json(row, index, column)?);
                }
                Ok(object)
            })
            .collect()
    }

    async fn import_rows(&mut self, table: &'static Table, rows: Vec<Row>) -> StoreResult<()> {
        let table = dataset::known(table)?;
        if rows.is_empty() {
            return Ok(());
        }
        let columns = self.columns(table).await?;
        self.note_sequence(table).await?;
        // One multi-row INSERT per batch; a column some row lacks takes its DEFAULT there.
        let mut targets: Vec<&Column> = Vec::new();
        for row in &rows {
            dataset::require_key(table, row)?;
            for column in dataset::row_columns(table, &columns, row)? {
                if !targets.iter().any(|t| t.name == column.name) {
                    targets.push(column);
                }
            }
        }
        let names = targets.iter().map(|c| quoted(&c.name)).collect::<Vec<_>>().join(", ");
        let overriding = if table.has_seq() { " OVERRIDING SYSTEM VALUE" } else { "" };
        // A statement takes at most 65535 parameters.
        let per_statement = (60_000 / targets.len().max(1)).max(1);
        let tx = self.client.transaction().await?;
        for chunk in rows.chunks(per_statement) {
            let mut params: Vec<Param> = Vec::new();
            let mut tuples = Vec::with_capacity(chunk.len());
            for row in chunk {
                let mut values = Vec::with_capacity(targets.len());
                for column in &targets {
                    match row.get(&column.name) {
                        Some(value) => {
                            params.push(to_param(table, column, value)?);
                            values.push(format!("${}::{}", params.len(), sql_type(column.kind)));
                        }
                        None => values.push("DEFAULT".to_owned()),
                    }
                }
                tuples.push(format!("({})", values.join(", ")));
            }
            let insert =
                format!("INSERT INTO {} ({names}){overriding} VALUES {}", quoted(table.name), tuples.join(", "));
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
            tx.execute(&insert, &refs).await?;
        }
        if table.has_seq() {
            let name = quoted(table.name);
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence($1, 'seq'), m) FROM (SELECT MAX(seq) AS m FROM {name}) AS t \
                     WHERE m IS NOT NULL"
                ),
                &[&name],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
