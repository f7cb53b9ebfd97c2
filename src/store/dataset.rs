//! Row-level access to a whole database, for `tokenvault export` and `tokenvault import`
//! (moving a dataset between SQLite and PostgreSQL). This bypasses the [`Store`](super::Store)
//! on purpose: rows travel verbatim, with their `seq` values, sealed card tokens and audit
//! records, so the destination answers every request exactly as the source did.
//!
//! Rows are JSON objects keyed by column name. Integers are numbers, text is a string, binary
//! columns (`BLOB` / `BYTEA`) are standard base64, and booleans are whatever the source keeps
//! (`true`/`false` from PostgreSQL, `0`/`1` from SQLite): the destination converts each value
//! to the type of its own column, so either form imports anywhere.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

use super::{StoreError, StoreResult};

/// One table of the dataset and the unique column it is paged (and ordered) by.
#[derive(Debug, PartialEq, Eq)]
pub struct Table {
    pub name: &'static str,
    pub key: &'static str,
}

impl Table {
    const fn keyed(name: &'static str, key: &'static str) -> Self {
        Self { name, key }
    }

    const fn seq(name: &'static str) -> Self {
        Self { name, key: "seq" }
    }

    /// Whether the table's key is its `seq` (identity / `AUTOINCREMENT`) column, whose values are
    /// kept on import and whose generator must then be moved past them.
    pub fn has_seq(&self) -> bool {
        self.key == "seq"
    }
}

/// Every table of the dataset, parents before children (foreign-key order). Adding a table to the
/// schema means adding one line here; `export` refuses to run while a table is not listed.
/// Tables a database does not have (yet) are skipped.
pub const TABLES: &[Table] = &[
    Table::keyed("encryption_keys", "id"),
    Table::keyed("vault_settings", "name"),
    Table::keyed("clients", "client_id"),
    Table::keyed("signing_keys", "kid"),
    Table::seq("customers"),
    Table::keyed("customer_settings", "account_id"),
    Table::seq("customer_tokens"),
    Table::seq("token_event_entries"),
    Table::seq("token_events"),
    Table::seq("card_tokens"),
    Table::seq("payment_token_sessions"),
    Table::seq("audit_log"),
    Table::seq("hook_subscriptions"),
    Table::seq("webhook_outbox"),
    Table::seq("webhook_attempts"),
];

/// Bookkeeping tables that are not part of the dataset. `idempotency_keys` is a 24-hour replay
/// cache of responses (sealed with the source's key), not data: it does not travel.
/// `sandbox_faults` holds a test run's instructions to fail on purpose, each expiring within
/// days: moved to another server, or restored from a backup, they would fail requests of runs
/// that never asked for it, so they travel neither in exports nor in backups. `request_journal`
/// is diagnostic data of test accounts (the sandbox's request journal, bounded by count and age):
/// it is neither exported nor backed up, and a restored or imported database starts with an
/// empty journal. `sandbox_clocks` belongs to a test run as the fault rules do: a restored or
/// imported test account runs on real time until its clock is set again.
pub const INTERNAL_TABLES: &[&str] = &[
    "schema_migrations",
    "sqlite_sequence",
    "idempotency_keys",
    "sandbox_faults",
    "sandbox_clocks",
    "request_journal",
];

/// The table of this name, if it belongs to the dataset.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|table| table.name == name)
}

/// One row: column name to value.
pub type Row = Map<String, Value>;

/// Row access to one database over a single connection of its own. Export runs inside one read
/// snapshot ([`Dataset::begin_snapshot`]), so its counts and rows agree even while servers write;
/// each [`Dataset::import_rows`] call is one transaction.
#[async_trait]
pub trait Dataset: Send {
    /// `"sqlite"` or `"postgresql"`.
    fn backend(&self) -> &'static str;
    /// The newest migration applied to this database.
    async fn schema_version(&mut self) -> StoreResult<i64>;
    /// Every table of the database except [`INTERNAL_TABLES`].
    async fn table_names(&mut self) -> StoreResult<Vec<String>>;
    /// Starts a read-only snapshot that later reads see, until [`Dataset::end_snapshot`].
    async fn begin_snapshot(&mut self) -> StoreResult<()>;
    async fn end_snapshot(&mut self) -> StoreResult<()>;
    /// The number of rows, or `None` when the database has no such table.
    async fn count_rows(&mut self, table: &'static Table) -> StoreResult<Option<u64>>;
    /// Up to `limit` rows whose key is greater than `after`, in key order.
    async fn export_rows(&mut self, table: &'static Table, after: Option<Value>, limit: u32) -> StoreResult<Vec<Row>>;
    /// Inserts the rows as they are (keeping `seq`) in one transaction, then moves the table's
    /// `seq` generator past the largest value, so that new rows continue after imported ones.
    /// The first call for a table since the last [`Dataset::finish_import`] or
    /// [`Dataset::abandon_import`] notes where its generator stood, for `abandon_import`.
    async fn import_rows(&mut self, table: &'static Table, rows: Vec<Row>) -> StoreResult<()>;
    /// Undoes an import that failed after storing some batches, so that a corrected file can be
    /// imported right away instead of the database having to be re-created: empties `tables`
    /// (the dataset tables the import found empty, parents first as in [`TABLES`]) in one
    /// transaction and puts every `seq` generator that [`Dataset::import_rows`] moved back where
    /// it stood. Other tables, the schema and its migrations are left alone.
    async fn abandon_import(&mut self, tables: &[&'static Table]) -> StoreResult<()>;
    /// Readies a store just filled by an import for serving, once, instead of leaving it to the
    /// first requests. PostgreSQL: `VACUUM (ANALYZE)` of these tables (planner statistics, and
    /// hint bits and the visibility map set now: otherwise the first read of each imported page
    /// writes it back, measured as 3.6–4.8 KiB written per list request after a 1M/10M import).
    /// SQLite: nothing (its reads write nothing, and its plans are not statistics-driven here).
    /// Either way the import is then over: there is nothing left for `abandon_import` to undo.
    async fn finish_import(&mut self, _tables: &[&'static Table]) -> StoreResult<()> {
        Ok(())
    }
}

/// Opens a database for row access (one connection, no pool), with migrations applied.
pub async fn open(database_url: &super::DatabaseUrl) -> StoreResult<Box<dyn Dataset>> {
    match database_url {
        super::DatabaseUrl::Postgres(url) => Ok(Box::new(super::postgres::PostgresDataset::connect(url).await?)),
        super::DatabaseUrl::Sqlite { path, .. } => Ok(Box::new(super::sqlite::SqliteDataset::open(path).await?)),
    }
}

/// The type a column stores, as far as moving values needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// 64-bit integer (`BIGINT`, SQLite `INTEGER`).
    BigInt,
    /// 32-bit integer (PostgreSQL `INTEGER`).
    Int,
    /// 16-bit integer (PostgreSQL `SMALLINT`).
    SmallInt,
    Bool,
    Text,
    Bytes,
}

/// A column of a destination or source table.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub kind: ColumnKind,
}

fn bad_value(table: &Table, column: &str, expected: &str, value: &Value) -> StoreError {
    let mut shown = value.to_string();
    if shown.len() > 40 {
        shown.truncate(40);
        shown.push('…');
    }
    StoreError::Internal(format!("{}.{column}: expected {expected}, found {shown}", table.name))
}

/// A JSON value as an integer column's value (`true`/`false` become 1/0).
pub(crate) fn as_integer(table: &Table, column: &str, value: &Value) -> StoreResult<Option<i64>> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(i64::from(*b))),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| bad_value(table, column, "an integer", value)),
        _ => Err(bad_value(table, column, "an integer", value)),
    }
}

/// A JSON value as a boolean column's value (0/1 accepted).
pub(crate) fn as_bool(table: &Table, column: &str, value: &Value) -> StoreResult<Option<bool>> {
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => Ok(Some(*b)),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(Some(false)),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(Some(true)),
        _ => Err(bad_value(table, column, "a boolean", value)),
    }
}

pub(crate) fn as_text(table: &Table, column: &str, value: &Value) -> StoreResult<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(bad_value(table, column, "a string", value)),
    }
}

/// A base64 string as a binary column's value.
pub(crate) fn as_bytes(table: &Table, column: &str, value: &Value) -> StoreResult<Option<Vec<u8>>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => {
            STANDARD.decode(s).map(Some).map_err(|_| bad_value(table, column, "base64 (a binary column)", value))
        }
        _ => Err(bad_value(table, column, "base64 (a binary column)", value)),
    }
}

pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

/// The columns of `row` checked against the destination's: every one must exist there.
pub(crate) fn row_columns<'a>(table: &Table, columns: &'a [Column], row: &Row) -> StoreResult<Vec<&'a Column>> {
    row.keys()
        .map(|name| {
            columns.iter().find(|c| &c.name == name).ok_or_else(|| {
                StoreError::Internal(format!(
                    "column {}.{name} does not exist in the destination (is its schema older than the source's?)",
                    table.name
                ))
            })
        })
        .collect()
}

/// Checks that a row carries the table's key, which the export pages by and import keeps.
pub(crate) fn require_key(table: &Table, row: &Row) -> StoreResult<()> {
    match row.get(table.key) {
        Some(Value::Null) | None => {
            Err(StoreError::Internal(format!("a row of {} has no {} (its key)", table.name, table.key)))
        }
        Some(_) => Ok(()),
    }
}

/// Checks that a table name comes from [`TABLES`], so it can be put into SQL as it is.
pub(crate) fn known(table: &'static Table) -> StoreResult<&'static Table> {
    if TABLES.contains(table) {
        Ok(table)
    } else {
        Err(StoreError::Internal(format!("{} is not a dataset table", table.name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_are_unique_and_in_foreign_key_order() {
        let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        let position = |name: &str| names.iter().position(|n| *n == name).unwrap();
        assert!(position("customers") < position("customer_tokens"));
        assert!(position("token_event_entries") < position("token_events"));
        assert!(position("hook_subscriptions") < position("webhook_outbox"));
    }

    #[test]
    fn values_convert_to_the_destination_column() {
        let t = table("customers").unwrap();
        assert_eq!(as_integer(t, "c", &json!(5)).unwrap(), Some(5));
        assert_eq!(as_integer(t, "c", &json!(true)).unwrap(), Some(1));
        assert_eq!(as_integer(t, "c", &Value::Null).unwrap(), None);
        assert!(as_integer(t, "c", &json!("5")).is_err());
        assert_eq!(as_bool(t, "c", &json!(0)).unwrap(), Some(false));
        assert_eq!(as_bool(t, "c", &json!(true)).unwrap(), Some(true));
        assert!(as_bool(t, "c", &json!(2)).is_err());
        assert_eq!(as_bytes(t, "c", &bytes_value(&[0, 255, 7])).unwrap(), Some(vec![0, 255, 7]));
        assert!(as_bytes(t, "c", &json!("not base64!")).is_err());
        assert_eq!(as_text(t, "c", &json!("x")).unwrap(), Some("x".to_owned()));
        assert!(as_text(t, "c", &json!(1)).is_err());
    }
}
