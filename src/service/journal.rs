//! The request journal of test accounts: the HTTP layer hands each finished exchange to a
//! [`JournalRecorder`], which never blocks a request (a bounded queue; when it is full the entry
//! is dropped and counted). One background task per server redacts the queued exchanges, writes
//! them in batches, and prunes the journal by count and age. Listing, reading and clearing are
//! the use cases of `GET/DELETE /v1/accounts/{aid}/sandbox/requests` and `tokenvault journal`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::admin::Admin;
use super::{test_accounts_only, ServiceResult, Vault};
use crate::domain::journal::{JournalEntry, JournalFilter, RawExchange};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::Store;

/// Entries written per transaction at most.
const BATCH: usize = 256;
/// How often the background task prunes the journal.
const PRUNE_INTERVAL: Duration = Duration::from_secs(5);

/// Whether requests are journaled, and how much is kept (the `journal*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalSettings {
    /// Record requests of test accounts at all.
    pub enabled: bool,
    /// Entries kept per test account; older ones are pruned.
    pub max_entries: u64,
    /// Entries older than this are pruned.
    pub max_age: Duration,
    /// Exchanges waiting to be written; beyond, new ones are dropped (and counted).
    pub queue: usize,
    /// Requests recorded per second and server at most; beyond, the rest of that second's are
    /// not recorded (and counted), so that a load test against a test account costs the server
    /// little more than it would without the journal.
    pub max_per_second: u32,
}

impl Default for JournalSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: 10_000,
            max_age: Duration::from_secs(24 * 3600),
            queue: 1024,
            max_per_second: 500,
        }
    }
}

/// Hands exchanges to the background writer without waiting.
pub struct JournalRecorder {
    sender: mpsc::Sender<RawExchange>,
    dropped: AtomicU64,
    max_per_second: u32,
    started: std::time::Instant,
    /// The current second (since `started`) and the requests admitted in it.
    window: std::sync::Mutex<(u64, u32)>,
}

impl JournalRecorder {
    /// Whether one more request may be recorded this second (see
    /// [`JournalSettings::max_per_second`]); a refused one is counted as dropped. Asked before
    /// anything of the request is copied, so that requests beyond the rate cost nothing more.
    pub fn admit(&self) -> bool {
        let second = self.started.elapsed().as_secs();
        let mut window = self.window.lock().unwrap_or_else(|poison| poison.into_inner());
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 < self.max_per_second {
            window.1 += 1;
            true
        } else {
            drop(window);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Queues `exchange`; when the queue is full it is dropped and counted, never waited for.
    pub fn record(&self, exchange: RawExchange) {
        if self.sender.try_send(exchange).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests not recorded because the queue was full or beyond the rate (or the writer had
    /// stopped), for `/metrics`.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Starts the background writer on `store`. It ends, after writing what is queued, once every
/// [`JournalRecorder`] handle is dropped.
pub fn spawn(store: Arc<dyn Store>, settings: JournalSettings) -> (Arc<JournalRecorder>, JoinHandle<()>) {
    let (sender, receiver) = mpsc::channel(settings.queue.max(1));
    let recorder = Arc::new(JournalRecorder {
        sender,
        dropped: AtomicU64::new(0),
        max_per_second: settings.max_per_second,
        started: std::time::Instant::now(),
        window: std::sync::Mutex::new((0, 0)),
    });
    (recorder, tokio::spawn(write_loop(store, settings, receiver)))
}

async fn write_loop(store: Arc<dyn Store>, settings: JournalSettings, mut receiver: mpsc::Receiver<RawExchange>) {
    let mut prune = tokio::time::interval(PRUNE_INTERVAL);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut written: HashSet<AccountId> = HashSet::new();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            received = receiver.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    break;
                }
                let entries: Vec<JournalEntry> = batch
                    .drain(..)
                    .map(|exchange| exchange.into_entry(uuid::Uuid::new_v4().to_string()))
                    .collect();
                written.extend(entries.iter().map(|entry| entry.account.clone()));
                if let Err(error) = store.append_journal(&entries).await {
                    tracing::warn!(%error, entries = entries.len(), "could not write to the request journal");
                }
            }
            _ = prune.tick() => {
                let accounts: Vec<AccountId> = written.drain().collect();
                let cutoff = Timestamp::now().plus_seconds(-i64::try_from(settings.max_age.as_secs()).unwrap_or(i64::MAX));
                if let Err(error) = store.prune_journal(&accounts, settings.max_entries, cutoff).await {
                    tracing::warn!(%error, "could not prune the request journal");
                }
            }
        }
    }
}

impl Vault {
    /// A test account's journal, newest first (production accounts have none: refused).
    pub async fn list_journal(
        &self,
        account: &AccountId,
        filter: &JournalFilter,
        page: &PageRequest,
    ) -> ServiceResult<Page<JournalEntry>> {
        self.admin().list_journal(account, filter, page).await
    }

    /// One journal entry of a test account.
    pub async fn journal_entry(&self, account: &AccountId, id: &str) -> ServiceResult<JournalEntry> {
        test_accounts_only(account, "request journals")?;
        Ok(self.store.get_journal_entry(account, id).await?)
    }

    /// Empties a test account's journal; returns how many entries went.
    pub async fn clear_journal(&self, account: &AccountId) -> ServiceResult<u64> {
        test_accounts_only(account, "request journals")?;
        Ok(self.store.clear_journal(account).await?)
    }
}

impl Admin {
    /// A test account's journal, newest first, for `tokenvault journal` (no encryption key
    /// needed: the journal holds nothing sealed).
    pub async fn list_journal(
        &self,
        account: &AccountId,
        filter: &JournalFilter,
        page: &PageRequest,
    ) -> ServiceResult<Page<JournalEntry>> {
        test_accounts_only(account, "request journals")?;
        Ok(self.store.list_journal(account, filter, page).await?)
    }
}
