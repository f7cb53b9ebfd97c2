//! `tokenvault export` / `tokenvault import`: a whole dataset as JSON Lines, to move between
//! SQLite and PostgreSQL (start embedded, move up later) or to copy a database.
//!
//! The format, one JSON object per line:
//!
//! ```text
//! {"format":"tokenvault-export","version":1,"schema_version":1,"source":"sqlite","exported_at":"…","tables":{"clients":2,…}}
//! {"table":"clients","row":{"client_id":"…","account_id":"T00000001",…}}
//! …
//! ```
//!
//! The header counts the rows of every table; rows follow table by table in foreign-key order
//! ([`TABLES`]), each in key order, with every column (binary ones in base64). The export reads
//! one snapshot, so it is consistent even while servers write. Import refuses a destination that
//! holds any row, stores batches of [`IMPORT_BATCH`] rows per transaction, keeps every `seq`, and
//! finally checks that the destination holds exactly the header's counts. An import that fails
//! after it began storing removes what it stored ([`Dataset::abandon_import`]): the destination is
//! empty again, ready for a corrected file.
//!
//! Card tokens stay sealed: servers on the destination must use the source's encryption key
//! (`--encryption-key`, or the SQLite key file's content).

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::keys::{existing_key_file, load_cipher, MasterKey};
use crate::crypto::TokenCipher;
use crate::domain::sealed::DataKeyRecord;
use crate::domain::{AccountId, Timestamp};
use crate::store::dataset::{self, Dataset, Row, Table, TABLES};
use crate::store::{DatabaseUrl, StoreError, MASTER_ROOT_SETTING};

pub const FORMAT: &str = "tokenvault-export";
pub const FORMAT_VERSION: u32 = 1;
/// Rows read per query while exporting.
const EXPORT_PAGE: u32 = 1000;
/// Rows stored per transaction while importing.
pub const IMPORT_BATCH: usize = 500;

/// The first line of an export.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// The newest migration the source had applied.
    pub schema_version: i64,
    /// `sqlite` or `postgresql`.
    pub source: String,
    pub exported_at: String,
    /// Rows per table, in the order they follow.
    pub tables: Map<String, Value>,
}

impl Header {
    fn counts(&self) -> Result<Vec<(&'static Table, u64)>, TransferError> {
        self.tables
            .iter()
            .map(|(name, count)| {
                let table = dataset::table(name)
                    .ok_or_else(|| TransferError::Refused(format!("the header names an unknown table {name:?}")))?;
                let count = count
                    .as_u64()
                    .ok_or_else(|| TransferError::Refused(format!("the header's count of {name} is not a number")))?;
                Ok((table, count))
            })
            .collect()
    }
}

#[derive(Serialize)]
struct LineOut<'a> {
    table: &'a str,
    row: &'a Row,
}

#[derive(Deserialize)]
struct LineIn {
    table: String,
    row: Row,
}

/// Where a transfer is, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub table: &'a str,
    /// Rows done over all tables, and their total.
    pub done: u64,
    pub total: u64,
}

/// What a transfer moved: rows per table, in order, and what a backup's header repeats of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub tables: Vec<(String, u64)>,
    pub rows: u64,
    /// The exporting database's newest migration (the export header's `schema_version`).
    pub schema_version: i64,
    /// `sqlite` or `postgresql`: the exporting database's backend.
    pub source: String,
    /// The ids of the data keys the dataset carries (wrapped under the master key).
    pub data_key_ids: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Format(String),
    /// Import refused before storing anything (the file or the destination does not fit).
    #[error("{0}")]
    Refused(String),
    #[error(
        "the destination database is not empty ({0}); import only into a new, empty database. If these rows \
         are what an import that was killed left behind, empty the database (drop and re-create it, or delete \
         the SQLite file) and import again"
    )]
    NotEmpty(String),
    #[error("counts differ from the export's header: {0}")]
    CountMismatch(String),
    #[error("{0}")]
    Key(String),
    /// The import failed and removing the rows it had stored failed too: they are still there.
    #[error(
        "{error}; removing the rows stored before that failed too ({cleanup}), so they are still in the \
         destination: empty it (drop and re-create the database, or delete the SQLite file) before importing again"
    )]
    NotUndone { error: Box<TransferError>, cleanup: StoreError },
}

/// `tokenvault export`: the whole dataset of the database `database_url` names, to `out`.
pub async fn export_database(
    database_url: &DatabaseUrl,
    out: &mut dyn Write,
    progress: impl FnMut(&Progress<'_>),
) -> Result<Summary, TransferError> {
    let mut source = dataset::open(database_url).await?;
    export(source.as_mut(), out, progress).await
}

/// `tokenvault import`: an export into the empty database `database_url` names. With a master
/// key (given, or an SQLite key file that already exists: never a new one, which would hold a
/// fresh, wrong key), the sealed values are checked against it before any is stored; returns
/// whether they were.
pub async fn import_database(
    database_url: &DatabaseUrl,
    input: impl BufRead,
    master: Option<&MasterKey>,
    progress: impl FnMut(&Progress<'_>),
) -> Result<(Summary, bool), TransferError> {
    let cipher = match master {
        Some(MasterKey::File(path)) => existing_key_file(path),
        Some(given) => load_cipher(given).map(Some),
        None => Ok(None),
    }
    .map_err(|e| TransferError::Refused(e.to_string()))?;
    let mut destination = dataset::open(database_url).await?;
    let summary = import(destination.as_mut(), input, cipher.as_ref(), progress).await?;
    Ok((summary, cipher.is_some()))
}

/// Writes the whole dataset of `source` to `out`.
pub async fn export(
    source: &mut dyn Dataset,
    out: &mut dyn Write,
    mut progress: impl FnMut(&Progress<'_>),
) -> Result<Summary, TransferError> {
    let uncovered: Vec<String> =
        source.table_names().await?.into_iter().filter(|name| dataset::table(name).is_none()).collect();
    if !uncovered.is_empty() {
        return Err(TransferError::Format(format!(
            "table(s) {} are not part of the export format (add them to store::dataset::TABLES)",
            uncovered.join(", ")
        )));
    }
    source.begin_snapshot().await?;
    let result = export_snapshot(source, out, &mut progress).await;
    let ended = source.end_snapshot().await;
    let summary = result?;
    ended?;
    Ok(summary)
}

async fn export_snapshot(
    source: &mut dyn Dataset,
    out: &mut dyn Write,
    progress: &mut impl FnMut(&Progress<'_>),
) -> Result<Summary, TransferError> {
    let mut counts = Vec::new();
    for table in TABLES {
        if let Some(count) = source.count_rows(table).await? {
            counts.push((table, count));
        }
    }
    let header = Header {
        format: FORMAT.to_owned(),
        version: FORMAT_VERSION,
        schema_version: source.schema_version().await?,
        source: source.backend().to_owned(),
        exported_at: Timestamp::now().to_rfc3339(),
        tables: counts.iter().map(|(table, count)| (table.name.to_owned(), Value::from(*count))).collect(),
    };
    serde_json::to_writer(&mut *out, &header).map_err(std::io::Error::from)?;
    out.write_all(b"\n")?;
    let total = counts.iter().map(|(_, count)| count).sum();
    let mut summary =
        Summary { schema_version: header.schema_version, source: header.source.clone(), ..Summary::default() };
    for (table, expected) in counts {
        let mut after = None;
        let mut written = 0u64;
        loop {
            let rows = source.export_rows(table, after.take(), EXPORT_PAGE).await?;
            let Some(last) = rows.last() else { break };
            after = Some(last.get(table.key).cloned().unwrap_or(Value::Null));
            if table.name == "signing_keys" {
                rows.iter().try_for_each(refuse_clear_signing_key)?;
            }
            if table.name == "encryption_keys" {
                summary.data_key_ids.extend(rows.iter().filter_map(data_key_id));
            }
            for row in &rows {
                serde_json::to_writer(&mut *out, &LineOut { table: table.name, row }).map_err(std::io::Error::from)?;
                out.write_all(b"\n")?;
            }
            written += rows.len() as u64;
            summary.rows += rows.len() as u64;
            progress(&Progress { table: table.name, done: summary.rows, total });
            if rows.len() < EXPORT_PAGE as usize {
                break;
            }
        }
        if written != expected {
            return Err(TransferError::CountMismatch(format!(
                "{}: counted {expected}, exported {written}",
                table.name
            )));
        }
        summary.tables.push((table.name.to_owned(), written));
    }
    out.flush()?;
    Ok(summary)
}

/// An export carries signing keys only sealed under the master key: a database of an older
/// version still holding one in clear is refused until a server has sealed it.
fn refuse_clear_signing_key(row: &Row) -> Result<(), TransferError> {
    let kid = row.get("kid").and_then(Value::as_str).unwrap_or("?");
    let sealed = row
        .get("private_key")
        .and_then(Value::as_str)
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .is_some_and(|key| crate::crypto::signing::is_sealed_signing_key(&key));
    if sealed {
        Ok(())
    } else {
        Err(TransferError::Refused(format!(
            "JWT signing key {kid} is stored in clear: start a server of this version on the database once (it seals \
             the keys under the master key), then export"
        )))
    }
}

/// Reads an export from `input` into `destination`, which must be empty. With a `cipher`, the
/// first sealed card token is opened with it before any card token is stored: a destination
/// whose servers would use another key than the source's is refused. Whatever fails once the
/// destination was found empty (a bad line, a key, the counts, the database) empties it again
/// before the error is returned.
pub async fn import(
    destination: &mut dyn Dataset,
    input: impl BufRead,
    cipher: Option<&TokenCipher>,
    mut progress: impl FnMut(&Progress<'_>),
) -> Result<Summary, TransferError> {
    let mut lines = input.lines();
    let header_line = lines.next().ok_or_else(|| TransferError::Refused("the file is empty".into()))??;
    let header: Header = serde_json::from_str(&header_line)
        .map_err(|e| TransferError::Refused(format!("line 1 is not a tokenvault export header: {e}")))?;
    if header.format != FORMAT || header.version != FORMAT_VERSION {
        return Err(TransferError::Refused(format!(
            "unsupported export format {:?} version {} (expected {FORMAT:?} version {FORMAT_VERSION})",
            header.format, header.version
        )));
    }
    let expected = header.counts()?;
    let schema = destination.schema_version().await?;
    if header.schema_version > schema {
        return Err(TransferError::Refused(format!(
            "the export comes from schema version {}, the destination is at {schema}: import with a tokenvault at least as new as the exporting one",
            header.schema_version
        )));
    }
    let mut occupied = Vec::new();
    // The tables found empty, parents first: what undoing a failed import empties again. All of
    // them, not just the header's: one the export lacks (an older source) may still reference a
    // table it fills, and PostgreSQL empties a referenced table only together with its referrers.
    let mut present = Vec::new();
    for table in TABLES {
        match destination.count_rows(table).await? {
            Some(0) => present.push(table),
            Some(count) => occupied.push(format!("{count} rows in {}", table.name)),
            None if expected.iter().any(|(t, _)| t == &table) => {
                return Err(TransferError::Refused(format!("the destination has no table {}", table.name)));
            }
            None => {}
        }
    }
    if !occupied.is_empty() {
        return Err(TransferError::NotEmpty(occupied.join(", ")));
    }

    // Parents first, as the rows come (the header's map need not keep that order).
    let imported: Vec<&'static Table> =
        TABLES.iter().filter(|table| expected.iter().any(|(t, _)| t == table)).collect();
    match store(destination, lines, &expected, &imported, cipher, &mut progress).await {
        Ok(summary) => Ok(Summary { schema_version: header.schema_version, source: header.source, ..summary }),
        Err(error) => match destination.abandon_import(&present).await {
            Ok(()) => Err(error),
            Err(cleanup) => Err(TransferError::NotUndone { error: Box::new(error), cleanup }),
        },
    }
}

/// The part of [`import`] that writes: every row, the count check, and readying the tables.
async fn store(
    destination: &mut dyn Dataset,
    lines: std::io::Lines<impl BufRead>,
    expected: &[(&'static Table, u64)],
    imported: &[&'static Table],
    cipher: Option<&TokenCipher>,
    progress: &mut impl FnMut(&Progress<'_>),
) -> Result<Summary, TransferError> {
    let total = expected.iter().map(|(_, count)| count).sum();
    let mut read: Vec<(&'static Table, u64)> = expected.iter().map(|(table, _)| (*table, 0)).collect();
    let mut batch: Vec<Row> = Vec::with_capacity(IMPORT_BATCH);
    let mut batch_table: Option<&'static Table> = None;
    let mut key_checked = cipher.is_none();
    let (mut values_sealed, mut value_checked) = (false, cipher.is_none());
    let mut done = 0u64;
    // Checked once every row is read, so that a wrong key is first reported by the card-token or
    // value check when the export has those (their messages say more).
    let mut signing_keys = Vec::new();
    let mut data_key_ids = Vec::new();
    // The master key with the root the data keeps, once its row is read (it comes after the data
    // keys and before anything sealed: see `dataset::TABLES`).
    let mut rooted: Option<TokenCipher> = None;
    for (index, line) in lines.enumerate() {
        let line = line?;
        let number = index + 2;
        if line.trim().is_empty() {
            continue;
        }
        let LineIn { table: name, row } = serde_json::from_str(&line)
            .map_err(|e| TransferError::Format(format!("line {number}: not a {{\"table\", \"row\"}} object: {e}")))?;
        let Some(slot) = read.iter_mut().find(|(table, _)| table.name == name) else {
            return Err(TransferError::Format(format!("line {number}: table {name:?} is not in the header")));
        };
        slot.1 += 1;
        let table = slot.0;
        if table.name == "encryption_keys" {
            install_key(cipher, &row, number)?;
            data_key_ids.extend(data_key_id(&row));
        }
        if table.name == "vault_settings" && row.get("name") == Some(&Value::from("token_values")) {
            values_sealed = row.get("value").is_some_and(|mode| mode != "plain");
        }
        if let (Some(cipher), "vault_settings", Some(Value::String(wrapped))) = (
            cipher,
            table.name,
            row.get("value").filter(|_| row.get("name") == Some(&Value::from(MASTER_ROOT_SETTING))),
        ) {
            let wrapped = STANDARD
                .decode(wrapped)
                .map_err(|_| TransferError::Format(format!("line {number}: the root key is not base64")))?;
            rooted =
                Some(cipher.with_root_of(&wrapped).map_err(|e| TransferError::Refused(format!("line {number}: {e}")))?);
        }
        let cipher = rooted.as_ref().or(cipher);
        if values_sealed && !value_checked && table.name == "customer_tokens" {
            value_checked = check_value_key(cipher, &row, number)?;
        }
        if table.name == "signing_keys" {
            signing_keys.push((number, row.clone()));
        }
        if !key_checked && table.name == "card_tokens" {
            key_checked = check_key(cipher, &row, number)?;
        }
        if batch_table != Some(table) || batch.len() >= IMPORT_BATCH {
            done += flush(destination, batch_table, &mut batch).await?;
            if let Some(flushed) = batch_table {
                progress(&Progress { table: flushed.name, done, total });
            }
            batch_table = Some(table);
        }
        batch.push(row);
    }
    done += flush(destination, batch_table, &mut batch).await?;
    if let Some(flushed) = batch_table {
        progress(&Progress { table: flushed.name, done, total });
    }
    for (number, row) in &signing_keys {
        check_signing_key(rooted.as_ref().or(cipher), row, *number)?;
    }

    let mut mismatches = Vec::new();
    let mut summary = Summary { data_key_ids, ..Summary::default() };
    for ((table, expected), (_, lines)) in expected.iter().zip(&read) {
        let stored = destination.count_rows(table).await?.unwrap_or(0);
        if *lines != *expected || stored != *expected {
            mismatches.push(format!("{}: header {expected}, file {lines}, stored {stored}", table.name));
        }
        summary.tables.push((table.name.to_owned(), stored));
        summary.rows += stored;
    }
    if !mismatches.is_empty() {
        return Err(TransferError::CountMismatch(mismatches.join("; ")));
    }
    destination.finish_import(imported).await?;
    Ok(summary)
}

async fn flush(
    destination: &mut dyn Dataset,
    table: Option<&'static Table>,
    batch: &mut Vec<Row>,
) -> Result<u64, TransferError> {
    let (Some(table), false) = (table, batch.is_empty()) else { return Ok(0) };
    let rows = std::mem::take(batch);
    let count = rows.len() as u64;
    destination.import_rows(table, rows).await?;
    Ok(count)
}

/// The id of an `encryption_keys` row.
fn data_key_id(row: &Row) -> Option<u32> {
    row.get("id").and_then(Value::as_u64).and_then(|id| u32::try_from(id).ok())
}

/// Adds an exported data key to the checking cipher: the key must unwrap under the destination's
/// master key, and card tokens sealed with it can then be checked.
fn install_key(cipher: Option<&TokenCipher>, row: &Row, line: usize) -> Result<(), TransferError> {
    let Some(cipher) = cipher else { return Ok(()) };
    let id = data_key_id(row);
    let wrapped = row.get("wrapped_key").and_then(Value::as_str).and_then(|text| STANDARD.decode(text).ok());
    let (Some(id), Some(wrapped)) = (id, wrapped) else {
        return Err(TransferError::Format(format!(
            "line {line}: an encryption key needs a numeric id and a base64 wrapped_key"
        )));
    };
    let key = DataKeyRecord { id, wrapped, created_at: Timestamp::from_millis(0), created_by: String::new() };
    cipher.install_data_keys(&[key]).map_err(|_| {
        TransferError::Key(format!(
            "line {line}: encryption key {id} does not open with this master key; use the source's key \
             (--encryption-key, or the content of the source's SQLite key file)"
        ))
    })
}

/// Opens a sealed customer token value with the destination's key; `Ok(false)` when the row's
/// value is not sealed (a conversion was under way) and the next one must be tried.
fn check_value_key(cipher: Option<&TokenCipher>, row: &Row, line: usize) -> Result<bool, TransferError> {
    let Some(cipher) = cipher else { return Ok(true) };
    let text = |column: &str| row.get(column).and_then(Value::as_str).unwrap_or_default().to_owned();
    let value = text("value");
    if !value.starts_with(crate::crypto::values::SEALED_VALUE_PREFIX) {
        return Ok(false);
    }
    let account = AccountId::parse("account_id", &text("account_id"))
        .map_err(|e| TransferError::Format(format!("line {line}: customer token account_id: {}", e.message)))?;
    cipher.open_value(&account, &text("token_type"), &value).map_err(|_| {
        TransferError::Key(format!(
            "line {line}: the encryption key cannot open the exported customer token values; use the source's key \
             (--encryption-key, or the content of the source's SQLite key file)"
        ))
    })?;
    Ok(true)
}

/// Opens a sealed card token with the destination's key; `Ok(false)` when the row has no sealed
/// token to try (the next one is tried then).
fn check_key(cipher: Option<&TokenCipher>, row: &Row, line: usize) -> Result<bool, TransferError> {
    let Some(cipher) = cipher else { return Ok(true) };
    let Some(Value::String(sealed)) = row.get("token_sealed") else { return Ok(false) };
    let text = |column: &str| row.get(column).and_then(Value::as_str).unwrap_or_default().to_owned();
    let account = AccountId::parse("account_id", &text("account_id"))
        .map_err(|e| TransferError::Format(format!("line {line}: card token account_id: {}", e.message)))?;
    let sealed = STANDARD
        .decode(sealed)
        .map_err(|_| TransferError::Format(format!("line {line}: card token token_sealed is not base64")))?;
    cipher.open(&account, &text("id"), &sealed).map_err(|_| {
        TransferError::Key(format!(
            "line {line}: the encryption key cannot open the exported card tokens; use the source's key \
             (--encryption-key, or the content of the source's SQLite key file)"
        ))
    })?;
    Ok(true)
}

/// With a `cipher`, a sealed signing key must open with it: servers on the destination could not
/// sign otherwise. (A clear key, from an export of an older version, is sealed by the first
/// server.)
fn check_signing_key(cipher: Option<&TokenCipher>, row: &Row, line: usize) -> Result<(), TransferError> {
    let Some(cipher) = cipher else { return Ok(()) };
    let kid = row.get("kid").and_then(Value::as_str).unwrap_or_default();
    let key = row
        .get("private_key")
        .and_then(Value::as_str)
        .and_then(|encoded| STANDARD.decode(encoded).ok())
        .ok_or_else(|| TransferError::Format(format!("line {line}: signing key private_key is not base64")))?;
    if !crate::crypto::signing::is_sealed_signing_key(&key) {
        return Ok(());
    }
    cipher.open_signing_key(kid, &key).map(|_| ()).map_err(|_| {
        TransferError::Key(format!(
            "line {line}: the encryption key cannot open the exported JWT signing key {kid}; use the source's key \
             (--encryption-key, or the content of the source's SQLite key file)"
        ))
    })
}

#[cfg(test)]
#[path = "../../tests/support/dataset.rs"]
mod made_up;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::made_up::Export;
    use super::*;

    async fn sqlite(dir: &tempfile::TempDir, name: &str) -> Box<dyn Dataset> {
        let path = dir.path().join(name);
        dataset::open(&format!("sqlite://{}", path.display()).parse().unwrap()).await.expect("open dataset")
    }

    type SqliteState = (Vec<(String, i64)>, Vec<(String, i64)>);

    /// Rows per dataset table (empty ones left out) and every `AUTOINCREMENT` counter, read
    /// behind the dataset's back.
    fn sqlite_state(path: &Path) -> SqliteState {
        let conn = rusqlite::Connection::open(path).unwrap();
        let rows = TABLES
            .iter()
            .map(|t| (t.name.to_owned(), conn.query_row(&format!("SELECT COUNT(*) FROM {}", t.name), [], |r| r.get(0))))
            .map(|(name, count)| (name, count.unwrap()))
            .filter(|(_, count)| *count > 0)
            .collect();
        let mut statement = conn.prepare("SELECT name, seq FROM sqlite_sequence ORDER BY name").unwrap();
        let counters = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
        (rows, counters)
    }

    fn names(state: &[(&str, i64)]) -> Vec<(String, i64)> {
        state.iter().map(|(name, n)| ((*name).to_owned(), *n)).collect()
    }
    #[tokio::test]
    async fn an_empty_database_round_trips_and_every_table_is_covered() {
        let dir = tempfile::tempdir().unwrap();
        let mut source = sqlite(&dir, "a.db").await;
        let names = source.table_names().await.unwrap();
        for name in &names {
            assert!(dataset::table(name).is_some(), "table {name} is missing from store::dataset::TABLES");
        }
        let mut out = Vec::new();
        let summary = export(source.as_mut(), &mut out, |_| {}).await.unwrap();
        assert_eq!(summary.rows, 0);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let header: Header = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(header.tables.len(), names.len());

        let mut destination = sqlite(&dir, "b.db").await;
        let imported = import(destination.as_mut(), text.as_bytes(), None, |_| {}).await.unwrap();
        assert_eq!(imported.rows, 0);
    }

    #[tokio::test]
    async fn import_refuses_bad_files_and_checks_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut destination = sqlite(&dir, "d.db").await;
        let bad = import(destination.as_mut(), &b"{\"format\":\"other\"}\n"[..], None, |_| {}).await;
        assert!(matches!(bad, Err(TransferError::Refused(_))), "{bad:?}");
        let header = format!(
            "{{\"format\":\"{FORMAT}\",\"version\":1,\"schema_version\":1,\"source\":\"sqlite\",\"exported_at\":\"x\",\"tables\":{{\"clients\":2}}}}\n"
        );
        let client = |id: &str| {
            format!(
                "{{\"table\":\"clients\",\"row\":{{\"client_id\":\"{id}\",\"account_id\":\"T00000001\",\"secret_hash\":\"h\",\"scopes\":\"s\",\"created_at\":1}}}}\n"
            )
        };
        let one_client = format!("{header}{}", client("c1"));
        let short = import(destination.as_mut(), one_client.as_bytes(), None, |_| {}).await;
        assert!(matches!(&short, Err(TransferError::CountMismatch(m)) if m.contains("clients")), "{short:?}");
        // The row that was read was stored, then removed again: the database is empty, and the
        // corrected file fits.
        let clients = dataset::table("clients").unwrap();
        assert_eq!(destination.count_rows(clients).await.unwrap(), Some(0));
        let two_clients = format!("{one_client}{}", client("c2"));
        let imported = import(destination.as_mut(), two_clients.as_bytes(), None, |_| {}).await.unwrap();
        assert_eq!(imported.tables, vec![("clients".to_owned(), 2)]);
        // A database holding rows is refused, with what to do, and keeps its rows.
        let again = import(destination.as_mut(), two_clients.as_bytes(), None, |_| {}).await;
        assert!(matches!(&again, Err(TransferError::NotEmpty(m)) if m.contains("2 rows in clients")), "{again:?}");
        let message = again.unwrap_err().to_string();
        assert!(message.contains("drop and re-create it, or delete the SQLite file"), "{message}");
        assert_eq!(destination.count_rows(clients).await.unwrap(), Some(2));
    }

    /// Failures after several stored batches (a broken line, a count that differs, a row the
    /// database rejects) leave the rows and the `AUTOINCREMENT` counters as they were, so the
    /// corrected file goes into the same database.
    #[tokio::test]
    async fn a_failed_import_removes_what_it_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let mut destination = sqlite(&dir, "d.db").await;
        // As if 700 customers had been created and deleted: the import moves that counter to 1200,
        // and undoing it puts back 700 (where there was no counter, none is left).
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('customers', 700)", [])
            .unwrap();
        let before = sqlite_state(&path);
        assert_eq!(before, (vec![], names(&[("customers", 700)])));

        let (customers, tokens) = (1200, 800);
        let broken = Export { broken_after_tokens: Some(700), ..Export::correct(customers, tokens) }.text();
        let short = Export { claimed_tokens: tokens + 1, ..Export::correct(customers, tokens) }.text();
        // The first token again, in the second batch of tokens: a duplicate key.
        let correct = Export::correct(customers, tokens).text();
        let mut lines: Vec<&str> = correct.lines().collect();
        let first_token = 1 + 2 + customers as usize;
        lines.insert(first_token + 600, lines[first_token]);
        let duplicate = lines.join("\n");
        for (file, failure) in [(broken, "line"), (short, "counts differ"), (duplicate, "database")] {
            let mut stored = 0;
            let result = import(destination.as_mut(), file.as_bytes(), None, |p| stored = p.done).await;
            let error = result.expect_err(failure).to_string();
            assert!(error.contains(failure), "{error}");
            assert!(stored >= 1500, "{failure}: only {stored} rows were stored before the failure");
            assert_eq!(sqlite_state(&path), before, "after the failure at: {error}");
        }

        let imported = import(destination.as_mut(), correct.as_bytes(), None, |_| {}).await.unwrap();
        assert_eq!(imported.rows, 2 + customers + tokens);
        assert_eq!(
            sqlite_state(&path),
            (
                names(&[("clients", 2), ("customers", 1200), ("customer_tokens", 800)]),
                names(&[("customer_tokens", 800), ("customers", 1200)])
            )
        );
    }

    /// A destination whose clean-up fails.
    struct Stuck(Box<dyn Dataset>);

    #[async_trait::async_trait]
    impl Dataset for Stuck {
        fn backend(&self) -> &'static str {
            self.0.backend()
        }
        async fn schema_version(&mut self) -> crate::store::StoreResult<i64> {
            self.0.schema_version().await
        }
        async fn table_names(&mut self) -> crate::store::StoreResult<Vec<String>> {
            self.0.table_names().await
        }
        async fn begin_snapshot(&mut self) -> crate::store::StoreResult<()> {
            self.0.begin_snapshot().await
        }
        async fn end_snapshot(&mut self) -> crate::store::StoreResult<()> {
            self.0.end_snapshot().await
        }
        async fn count_rows(&mut self, table: &'static Table) -> crate::store::StoreResult<Option<u64>> {
            self.0.count_rows(table).await
        }
        async fn export_rows(
            &mut self,
            table: &'static Table,
            after: Option<Value>,
            limit: u32,
        ) -> crate::store::StoreResult<Vec<Row>> {
            self.0.export_rows(table, after, limit).await
        }
        async fn import_rows(&mut self, table: &'static Table, rows: Vec<Row>) -> crate::store::StoreResult<()> {
            self.0.import_rows(table, rows).await
        }
        async fn abandon_import(&mut self, _tables: &[&'static Table]) -> crate::store::StoreResult<()> {
            Err(StoreError::Internal("the disk is gone".into()))
        }
    }

    /// When removing the stored rows fails too, the error names both failures and says that the
    /// rows are still there.
    #[tokio::test]
    async fn a_failed_clean_up_reports_both_errors() {
        let dir = tempfile::tempdir().unwrap();
        let mut destination = Stuck(sqlite(&dir, "d.db").await);
        let short = Export { claimed_tokens: 11, ..Export::correct(10, 10) }.text();
        let error = import(&mut destination, short.as_bytes(), None, |_| {}).await.unwrap_err();
        assert!(
            matches!(&error, TransferError::NotUndone { error, .. } if matches!(**error, TransferError::CountMismatch(_)))
        );
        let message = error.to_string();
        assert!(message.starts_with("counts differ from the export's header: customer_tokens: header 11"), "{message}");
        assert!(
            message.contains("removing the rows stored before that failed too (database error: the disk is gone)"),
            "{message}"
        );
        assert!(message.contains("still in the destination: empty it (drop and re-create the database"), "{message}");
    }
}
