//! `tokenvault import FILE`: the dataset export format (a header line, then `{"table","row"}`
//! lines) loaded by `transfer::import` into a fresh SQLite database, as the command does. The
//! destination is a copy of a migrated template, made only when the input gets past the header
//! (most inputs do not), so the fuzzer stays fast. With a cipher, the key check on the first
//! sealed card token runs too. Invariants: no panic; a successful import stored exactly the
//! header's counts; a failed one left no row behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::{fixture, runtime, scratch_dir, sqlite_url};
use async_trait::async_trait;
use serde_json::Value;
use tokenvault::service::transfer;
use tokenvault::store::dataset::{self, Dataset, Row, Table};
use tokenvault::store::StoreResult;

fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let path = scratch_dir().join("template.db");
        let dataset = runtime().block_on(dataset::open(&sqlite_url(&path))).expect("template");
        drop(dataset);
        path
    })
}

/// A fresh copy of the template, opened on first use.
struct LazyCopy {
    path: PathBuf,
    inner: Option<Box<dyn Dataset>>,
}

impl LazyCopy {
    async fn get(&mut self) -> StoreResult<&mut Box<dyn Dataset>> {
        if self.inner.is_none() {
            std::fs::copy(template(), &self.path).expect("copy template");
            self.inner = Some(dataset::open(&sqlite_url(&self.path)).await?);
        }
        Ok(self.inner.as_mut().expect("opened"))
    }
}

impl Drop for LazyCopy {
    fn drop(&mut self) {
        self.inner = None;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

#[async_trait]
impl Dataset for LazyCopy {
    fn backend(&self) -> &'static str {
        "sqlite"
    }
    async fn schema_version(&mut self) -> StoreResult<i64> {
        self.get().await?.schema_version().await
    }
    async fn table_names(&mut self) -> StoreResult<Vec<String>> {
        self.get().await?.table_names().await
    }
    async fn begin_snapshot(&mut self) -> StoreResult<()> {
        self.get().await?.begin_snapshot().await
    }
    async fn end_snapshot(&mut self) -> StoreResult<()> {
        self.get().await?.end_snapshot().await
    }
    async fn count_rows(&mut self, table: &'static Table) -> StoreResult<Option<u64>> {
        self.get().await?.count_rows(table).await
    }
    async fn export_rows(&mut self, table: &'static Table, after: Option<Value>, limit: u32) -> StoreResult<Vec<Row>> {
        self.get().await?.export_rows(table, after, limit).await
    }
    async fn import_rows(&mut self, table: &'static Table, rows: Vec<Row>) -> StoreResult<()> {
        self.get().await?.import_rows(table, rows).await
    }
    async fn finish_import(&mut self, tables: &[&'static Table]) -> StoreResult<()> {
        self.get().await?.finish_import(tables).await
    }
    async fn abandon_import(&mut self, tables: &[&'static Table]) -> StoreResult<()> {
        self.get().await?.abandon_import(tables).await
    }
}

/// The target's body: one input, as libFuzzer hands it over.
pub fn run(data: &[u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let _ = template();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut destination = LazyCopy { path: scratch_dir().join(format!("import-{n}.db")), inner: None };
    // Odd inputs check the encryption key against the first sealed card token.
    let cipher = (data.len() % 2 == 1).then(|| fixture().cipher.as_ref());
    let result = runtime().block_on(transfer::import(&mut destination, data, cipher, |_| {}));
    match result {
        Ok(summary) => {
            let text = std::str::from_utf8(data).expect("imported UTF-8");
            let header: transfer::Header =
                serde_json::from_str(text.lines().next().expect("a header line")).expect("a header");
            let expected: u64 = header.tables.values().map(|count| count.as_u64().expect("a count")).sum();
            assert_eq!(summary.rows, expected, "{summary:?}");
        }
        // The destination started empty (a copy of the template) and must be so again.
        Err(error) if destination.inner.is_some() => {
            for table in dataset::TABLES {
                let rows = runtime().block_on(destination.count_rows(table)).expect("count rows");
                assert!(matches!(rows, None | Some(0)), "{rows:?} rows left in {} after: {error}", table.name);
            }
        }
        Err(_) => {}
    }
}
