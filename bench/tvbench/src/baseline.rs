//! Target 2's yardstick: one transaction (one fsync) per request on the same disk. One thread
//! writes a customer-token row and its audit row per transaction into a WAL-mode SQLite file with
//! `synchronous=FULL` (tokenvault's own settings), for a fixed duration.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

pub struct Baseline {
    pub transactions: u64,
    pub elapsed: Duration,
    pub p50_us: u64,
    pub p99_us: u64,
    /// Bytes this process sent towards the disk meanwhile (`/proc/self/io`), if readable.
    pub write_bytes: Option<u64>,
}

impl Baseline {
    pub fn rate(&self) -> f64 {
        self.transactions as f64 / self.elapsed.as_secs_f64()
    }

    pub fn kib_per_transaction(&self) -> Option<f64> {
        Some(self.write_bytes? as f64 / 1024.0 / self.transactions.max(1) as f64)
    }
}

fn own_write_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    text.lines().find_map(|l| l.strip_prefix("write_bytes:"))?.trim().parse().ok()
}

pub fn run(dir: &Path, duration: Duration) -> Result<Baseline, String> {
    let path = dir.join("fsync-baseline.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let e = |e: rusqlite::Error| format!("fsync baseline: {e}");
    let conn = Connection::open(&path).map_err(e)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE customer_tokens (
             seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, account_id TEXT NOT NULL,
             customer_seq INTEGER NOT NULL, token_id TEXT NOT NULL, token_type TEXT NOT NULL,
             value TEXT NOT NULL, metadata TEXT, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
             updated_at INTEGER NOT NULL, deleted_at INTEGER, deleted_by TEXT);
         CREATE UNIQUE INDEX live_type_value ON customer_tokens (account_id, token_type, value) WHERE deleted_at IS NULL;
         CREATE INDEX by_customer ON customer_tokens (customer_seq, seq);
         CREATE TABLE audit_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL,
             account_id TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
             resource_type TEXT NOT NULL, resource_id TEXT NOT NULL, details TEXT NOT NULL);",
    )
    .map_err(e)?;
    let mut latencies = Vec::new();
    let written_before = own_write_bytes();
    let start = Instant::now();
    let mut n: u64 = 0;
    while start.elapsed() < duration {
        let t0 = Instant::now();
        let tx = conn.unchecked_transaction().map_err(e)?;
        let id = format!("00000000-0000-4000-8000-{n:012x}");
        tx.execute(
            "INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, metadata,
                                          created_at, created_by, updated_at)
             VALUES (?1, 'T12345678', ?2, ?3, 'sha1:email', ?4, NULL, 0, 'bench', 0)",
            params![id, (n % 1000) as i64, format!("b{n}"), format!("{n:040x}")],
        )
        .map_err(e)?;
        tx.execute(
            "INSERT INTO audit_log (at, account_id, actor, action, resource_type, resource_id, details)
             VALUES (0, 'T12345678', 'bench', 'customer_token.create', 'customer_token', ?1, '{}')",
            [&id],
        )
        .map_err(e)?;
        tx.commit().map_err(e)?;
        latencies.push(t0.elapsed().as_micros() as u64);
        n += 1;
    }
    let elapsed = start.elapsed();
    drop(conn);
    let write_bytes = own_write_bytes().zip(written_before).map(|(after, before)| after.saturating_sub(before));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Baseline { transactions: n, elapsed, p50_us: at(0.5), p99_us: at(0.99), write_bytes })
}
