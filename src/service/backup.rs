//! Backups an operator can restore: `tokenvault backup`, `tokenvault backup verify`,
//! `tokenvault restore`, and the backups `serve` takes on a schedule.
//!
//! A backup is the whole dataset as [`super::transfer`] exports it (one consistent snapshot read
//! while servers keep serving, on either backend, restorable into either), sealed under a backup
//! key of its own ([`BackupKey`]: the master key alone opens nothing of it). The file:
//!
//! ```text
//! {"format":"tokenvault-backup","version":1,…,"tables":{…},"data_key_ids":[…],"payload_sha256":"…"}␠␠␠…␤
//! <the sealed export, in chunks (crypto::backup_stream)>
//! ```
//!
//! The header is JSON padded with spaces to [`HEADER_BYTES`], so that it is written last, over
//! its placeholder, once the counts and the checksum are known. What is known before the payload
//! ([`Sealing`]) is bound to every sealed chunk; what follows from the payload (schema version,
//! counts, key ids) is compared with the sealed export on verify and restore; the SHA-256 of the
//! sealed payload lets `backup verify` find a damaged file without any key. The file is created
//! with mode 0600 under a temporary name and renamed into place once complete and synced: a
//! backup cut short by a crash never looks like a backup.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;

use super::keys::{existing_key_file, load_cipher, MasterKey};
use super::transfer::{self, Progress, Summary, TransferError};
pub use crate::crypto::backup_stream::BackupKey;
use crate::crypto::backup_stream::{
    new_nonce_prefix, OpeningReader, SealingWriter, CHUNK_BYTES, CIPHER_NAME, NONCE_PREFIX_BYTES,
};
use crate::crypto::TokenCipher;
use crate::domain::Timestamp;
use crate::store::dataset::{Dataset, Row, Table, TABLES};
use crate::store::{DatabaseUrl, StoreResult};

pub const FORMAT: &str = "tokenvault-backup";
pub const FORMAT_VERSION: u32 = 1;
/// The room the header has at the start of the file (the newline after it included).
pub const HEADER_BYTES: usize = 16 * 1024;
/// What scheduled backups are called: `tokenvault-20261203T041500.123Z.tvbackup`.
const SCHEDULED_PREFIX: &str = "tokenvault-";
const SCHEDULED_SUFFIX: &str = ".tvbackup";

/// The part of the header fixed before the payload is written, bound to every sealed chunk: a
/// changed byte here makes the payload fail to open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealing {
    pub format: String,
    pub version: u32,
    pub created_at: String,
    /// [`BackupKey::id`] of the key the payload is sealed with.
    pub backup_key_id: String,
    pub cipher: String,
    pub chunk_bytes: u32,
    /// Base64 of the stream's nonce prefix.
    pub nonce: String,
}

/// A backup's header: what it holds, readable without any key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupHeader {
    #[serde(flatten)]
    pub sealing: Sealing,
    /// `sqlite` or `postgresql`: where the backup was taken.
    pub source: String,
    /// The newest migration the source had applied; restoring needs a tokenvault at least as new.
    pub schema_version: i64,
    /// Rows per table.
    pub tables: Map<String, Value>,
    /// The data keys the backup carries, wrapped under the master key: restoring needs that
    /// master key (or, after `keys rotate-master`, the one that wraps these ids now).
    pub data_key_ids: Vec<u32>,
    pub payload_bytes: u64,
    /// Hex SHA-256 of the sealed payload.
    pub payload_sha256: String,
}

impl BackupHeader {
    /// The total number of rows.
    pub fn rows(&self) -> u64 {
        self.tables.values().filter_map(Value::as_u64).sum()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    /// The file is not a whole backup of this format: nothing can be trusted of it.
    #[error("{0}")]
    Damaged(String),
    /// The keys given do not fit the backup.
    #[error("{0}")]
    Key(String),
}

/// `tokenvault backup --output FILE`: a consistent online backup of `database_url`, sealed with
/// `key`, written to `output` (mode 0600; an existing file is replaced only once the new backup
/// is complete).
pub async fn backup_database(
    database_url: &DatabaseUrl,
    key: &BackupKey,
    output: &Path,
) -> Result<BackupHeader, BackupError> {
    let partial = partial_path(output);
    let result = write_backup(database_url, key, &partial).await;
    match result {
        Ok(header) => {
            std::fs::rename(&partial, output)?;
            sync_parent(output);
            Ok(header)
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

async fn write_backup(database_url: &DatabaseUrl, key: &BackupKey, path: &Path) -> Result<BackupHeader, BackupError> {
    let nonce = new_nonce_prefix();
    let sealing = Sealing {
        format: FORMAT.to_owned(),
        version: FORMAT_VERSION,
        created_at: Timestamp::now().to_rfc3339(),
        backup_key_id: key.id(),
        cipher: CIPHER_NAME.to_owned(),
        chunk_bytes: CHUNK_BYTES as u32,
        nonce: STANDARD.encode(nonce),
    };
    let aad = serde_json::to_vec(&sealing).map_err(io::Error::from)?;
    let mut file = create_private(path)?;
    file.write_all(&[b' '; HEADER_BYTES - 1])?;
    file.write_all(b"\n")?;
    let hashing = HashingWriter { inner: BufWriter::new(file.try_clone()?), hasher: Sha256::new() };
    let mut sealed = SealingWriter::new(key, &nonce, aad, hashing);
    let summary = transfer::export_database(database_url, &mut sealed, |_| {}).await?;
    let (hashing, payload_bytes) = sealed.finish()?;
    let HashingWriter { inner, hasher } = hashing;
    inner.into_inner().map_err(|e| e.into_error())?;
    let header = BackupHeader {
        sealing,
        source: summary.source.clone(),
        schema_version: summary.schema_version,
        tables: summary.tables.iter().map(|(table, rows)| (table.clone(), Value::from(*rows))).collect(),
        data_key_ids: summary.data_key_ids.clone(),
        payload_bytes,
        payload_sha256: hex::encode(hasher.finalize()),
    };
    let mut line = serde_json::to_vec(&header).map_err(io::Error::from)?;
    if line.len() >= HEADER_BYTES {
        return Err(BackupError::Damaged(format!(
            "the backup header needs {} bytes, more than the {HEADER_BYTES} it has room for",
            line.len()
        )));
    }
    line.resize(HEADER_BYTES - 1, b' ');
    line.push(b'\n');
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&line)?;
    file.sync_all()?;
    Ok(header)
}

/// What `backup verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub header: BackupHeader,
    /// Whether the payload was opened with a backup key and every row read back (otherwise only
    /// the checksum was checked).
    pub opened: bool,
    /// Whether the data keys, the signing keys and the first sealed values opened with the
    /// master key given.
    pub master_key_checked: bool,
}

/// `tokenvault backup verify FILE`: that the file is whole (its checksum, without any key); with
/// the backup key, that every chunk opens and holds a dataset whose counts, schema and key ids are
/// the header's; with the master key too, that its data keys, signing keys and sealed values open
/// with it. Nothing is written anywhere.
pub async fn verify_backup(
    path: &Path,
    key: Option<&BackupKey>,
    master: Option<&MasterKey>,
) -> Result<Verified, BackupError> {
    let header = check_whole(path)?;
    let Some(key) = key else {
        return Ok(Verified { header, opened: false, master_key_checked: false });
    };
    let cipher = master_cipher(master)?;
    let reader = open_payload(path, &header, key)?;
    let mut counting = CountingDataset::default();
    let summary = transfer::import(&mut counting, reader, cipher.as_ref(), |_| {}).await?;
    agrees_with_header(&header, &summary)?;
    Ok(Verified { header, opened: true, master_key_checked: cipher.is_some() })
}

/// `tokenvault restore FILE`: the backup into the empty database `database_url` (either backend,
/// whichever the backup came from), after checking the file is whole; a restore that fails
/// leaves the database empty again (see [`transfer::import`]). With a master key (given, or an
/// SQLite key file that already exists), the sealed values are checked against it first.
pub async fn restore_backup(
    path: &Path,
    key: &BackupKey,
    database_url: &DatabaseUrl,
    master: Option<&MasterKey>,
    progress: impl FnMut(&Progress<'_>),
) -> Result<(BackupHeader, Summary, bool), BackupError> {
    let header = check_whole(path)?;
    let reader = open_payload(path, &header, key)?;
    let (summary, checked) = transfer::import_database(database_url, reader, master, progress).await?;
    agrees_with_header(&header, &summary)?;
    Ok((header, summary, checked))
}

/// Reads a backup's header (no key needed).
pub fn read_header(path: &Path) -> Result<BackupHeader, BackupError> {
    let mut file = File::open(path)?;
    let mut bytes = vec![0u8; HEADER_BYTES];
    file.read_exact(&mut bytes).map_err(|_| not_a_backup(path, "shorter than a backup header"))?;
    if bytes.last() != Some(&b'\n') {
        return Err(not_a_backup(path, "no backup header"));
    }
    let header: BackupHeader = serde_json::from_slice(bytes.trim_ascii_end())
        .map_err(|e| not_a_backup(path, &format!("the header does not parse: {e}")))?;
    let sealing = &header.sealing;
    if sealing.format != FORMAT || sealing.version != FORMAT_VERSION {
        return Err(not_a_backup(
            path,
            &format!(
                "format {:?} version {}, expected {FORMAT:?} version {FORMAT_VERSION}",
                sealing.format, sealing.version
            ),
        ));
    }
    if sealing.cipher != CIPHER_NAME || sealing.chunk_bytes as usize != CHUNK_BYTES {
        return Err(not_a_backup(
            path,
            &format!("unknown cipher {:?} or chunk size {}", sealing.cipher, sealing.chunk_bytes),
        ));
    }
    Ok(header)
}

fn not_a_backup(path: &Path, why: &str) -> BackupError {
    BackupError::Damaged(format!("{} is not a tokenvault backup: {why}", path.display()))
}

/// The header, once the payload's length and checksum are the header's.
fn check_whole(path: &Path) -> Result<BackupHeader, BackupError> {
    let header = read_header(path)?;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(HEADER_BYTES as u64))?;
    let mut hashing = HashingWriter { inner: io::sink(), hasher: Sha256::new() };
    let length = io::copy(&mut file, &mut hashing)?;
    let digest = hex::encode(hashing.hasher.finalize());
    if length != header.payload_bytes || digest != header.payload_sha256 {
        return Err(BackupError::Damaged(format!(
            "{} is damaged: its payload is {length} bytes with SHA-256 {digest}, the header says {} bytes with \
             SHA-256 {}",
            path.display(),
            header.payload_bytes,
            header.payload_sha256
        )));
    }
    Ok(header)
}

/// The export inside the backup, opened with `key` as it is read.
fn open_payload(path: &Path, header: &BackupHeader, key: &BackupKey) -> Result<impl BufRead, BackupError> {
    if key.id() != header.sealing.backup_key_id {
        return Err(BackupError::Key(format!(
            "{} was sealed with backup key {}; the key given is {}",
            path.display(),
            header.sealing.backup_key_id,
            key.id()
        )));
    }
    let nonce: [u8; NONCE_PREFIX_BYTES] = STANDARD
        .decode(&header.sealing.nonce)
        .ok()
        .and_then(|nonce| nonce.try_into().ok())
        .ok_or_else(|| not_a_backup(path, "its nonce is not 7 bytes of base64"))?;
    let aad = serde_json::to_vec(&header.sealing).map_err(io::Error::from)?;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(HEADER_BYTES as u64))?;
    Ok(BufReader::new(OpeningReader::new(key, &nonce, aad, BufReader::new(file))))
}

fn master_cipher(master: Option<&MasterKey>) -> Result<Option<TokenCipher>, BackupError> {
    match master {
        Some(MasterKey::File(path)) => existing_key_file(path),
        Some(given) => load_cipher(given).map(Some),
        None => Ok(None),
    }
    .map_err(|e| BackupError::Key(e.to_string()))
}

/// The header's counts, schema and key ids against what the sealed export held (the header is
/// outside the seal: a changed count or key id is found here).
fn agrees_with_header(header: &BackupHeader, summary: &Summary) -> Result<(), BackupError> {
    let tables: Map<String, Value> =
        summary.tables.iter().map(|(table, rows)| (table.clone(), Value::from(*rows))).collect();
    let mut differences = Vec::new();
    if tables != header.tables {
        differences.push(format!(
            "rows per table {} (header {})",
            Value::from(tables),
            Value::from(header.tables.clone())
        ));
    }
    if summary.schema_version != header.schema_version {
        differences.push(format!("schema version {} (header {})", summary.schema_version, header.schema_version));
    }
    if summary.source != header.source {
        differences.push(format!("source {} (header {})", summary.source, header.source));
    }
    if summary.data_key_ids != header.data_key_ids {
        differences.push(format!("data keys {:?} (header {:?})", summary.data_key_ids, header.data_key_ids));
    }
    if differences.is_empty() {
        Ok(())
    } else {
        Err(BackupError::Damaged(format!("the header does not describe the sealed data: {}", differences.join("; "))))
    }
}

/// Where a backup is written until it is complete.
fn partial_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".partial");
    output.with_file_name(name)
}

/// Creates (or truncates) a file readable by its owner only (mode 0600; an existing file is
/// narrowed to 0600 too): exports and backups hold every customer's data.
pub fn create_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        Ok(file)
    }
    #[cfg(not(unix))]
    options.open(path)
}

/// Makes a rename durable (best effort: not every file system syncs directories).
fn sync_parent(path: &Path) {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if let Ok(directory) = File::open(parent) {
        let _ = directory.sync_all();
    }
}

/// Passes bytes on, hashing them.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An import destination that stores nothing and counts rows: `backup verify` runs every check of
/// [`transfer::import`] through it without a database.
#[derive(Default)]
struct CountingDataset {
    counts: std::collections::HashMap<&'static str, u64>,
}

#[async_trait]
impl Dataset for CountingDataset {
    fn backend(&self) -> &'static str {
        "verify"
    }

    async fn schema_version(&mut self) -> StoreResult<i64> {
        // Not a destination: any schema is verifiable.
        Ok(i64::MAX)
    }

    async fn table_names(&mut self) -> StoreResult<Vec<String>> {
        Ok(TABLES.iter().map(|table| table.name.to_owned()).collect())
    }

    async fn begin_snapshot(&mut self) -> StoreResult<()> {
        Ok(())
    }

    async fn end_snapshot(&mut self) -> StoreResult<()> {
        Ok(())
    }

    async fn count_rows(&mut self, table: &'static Table) -> StoreResult<Option<u64>> {
        Ok(Some(self.counts.get(table.name).copied().unwrap_or(0)))
    }

    async fn export_rows(&mut self, _: &'static Table, _: Option<Value>, _: u32) -> StoreResult<Vec<Row>> {
        Ok(Vec::new())
    }

    async fn import_rows(&mut self, table: &'static Table, rows: Vec<Row>) -> StoreResult<()> {
        *self.counts.entry(table.name).or_default() += rows.len() as u64;
        Ok(())
    }

    async fn abandon_import(&mut self, _: &[&'static Table]) -> StoreResult<()> {
        self.counts.clear();
        Ok(())
    }
}

/// Backups `serve` takes by itself. Run it on one instance of a PostgreSQL deployment: each
/// instance that has it takes its own.
#[derive(Debug, Clone)]
pub struct BackupSchedule {
    pub directory: PathBuf,
    pub interval: Duration,
    /// Scheduled backups kept in `directory`; older ones are removed after each success.
    pub keep: usize,
}

/// The outcome of scheduled backups, for `/metrics`.
#[derive(Debug, Default)]
pub struct BackupStatus {
    last_success_unix: AtomicU64,
    last_size_bytes: AtomicU64,
    failures: AtomicU64,
}

impl BackupStatus {
    /// Seconds since the epoch of the last backup that succeeded; 0 before the first.
    pub fn last_success_unix(&self) -> u64 {
        self.last_success_unix.load(Ordering::Relaxed)
    }

    pub fn last_size_bytes(&self) -> u64 {
        self.last_size_bytes.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }
}

/// Takes a backup into `schedule.directory` every `schedule.interval` (the first one interval
/// after start), keeps the newest `schedule.keep`, and records the outcome in `status`; a failure
/// is logged at error level and retried on the next tick.
pub fn spawn_scheduled_backups(
    database_url: DatabaseUrl,
    key: Arc<BackupKey>,
    schedule: BackupSchedule,
    status: Arc<BackupStatus>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(schedule.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match scheduled_backup(&database_url, &key, &schedule).await {
                Ok((path, bytes, rows)) => {
                    status.last_success_unix.store(Timestamp::now().millis() as u64 / 1000, Ordering::Relaxed);
                    status.last_size_bytes.store(bytes, Ordering::Relaxed);
                    tracing::info!(path = %path.display(), bytes, rows, "scheduled backup written");
                }
                Err(error) => {
                    status.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(%error, directory = %schedule.directory.display(), "scheduled backup failed");
                }
            }
        }
    })
}

async fn scheduled_backup(
    database_url: &DatabaseUrl,
    key: &Arc<BackupKey>,
    schedule: &BackupSchedule,
) -> Result<(PathBuf, u64, u64), BackupError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let path = schedule.directory.join(format!("{SCHEDULED_PREFIX}{stamp}{SCHEDULED_SUFFIX}"));
    // On a blocking thread: the export writes the file synchronously, and its writer is not
    // `Send` (the command line writes to stdout through the same code).
    let runtime = tokio::runtime::Handle::current();
    let (url, key, target) = (database_url.clone(), key.clone(), path.clone());
    let header = tokio::task::spawn_blocking(move || runtime.block_on(backup_database(&url, &key, &target)))
        .await
        .map_err(|e| io::Error::other(format!("the backup task failed: {e}")))??;
    let bytes = std::fs::metadata(&path)?.len();
    prune(&schedule.directory, schedule.keep)?;
    Ok((path, bytes, header.rows()))
}

/// Removes all but the newest `keep` scheduled backups (by name, which sorts by time).
fn prune(directory: &Path, keep: usize) -> io::Result<()> {
    let mut names: Vec<String> = std::fs::read_dir(directory)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(SCHEDULED_PREFIX) && name.ends_with(SCHEDULED_SUFFIX))
        .collect();
    names.sort_unstable();
    let excess = names.len().saturating_sub(keep);
    for name in &names[..excess] {
        std::fs::remove_file(directory.join(name))?;
    }
    Ok(())
}
