//! The audit trail's hash chain: tampering shows.
//!
//! Every audit record is written with its change, as before, and costs the request nothing more.
//! A background sealer (one at a time over all instances) then gives each new record, in the
//! order it finds them, the next position of one global chain and a keyed hash (HMAC-SHA256 under
//! a key derived from the master key) over the previous link's hash and the record's every field
//! ([`AuditRecord::chain_bytes`]). `tokenvault audit verify` walks the chain and names the first
//! record that breaks it: an edited record no longer matches its hash, a deleted one leaves a gap
//! in the positions, a moved one (positions swapped) matches neither. Cutting off the chain's tail
//! leaves a shorter valid chain, which is why the head is exported as a checkpoint
//! ([`Vault::audit_checkpoint`], logged by `serve` on a schedule): a chain that ends before a
//! checkpoint's position, or holds another hash there, was cut.
//!
//! One global chain rather than one per account: a single sealer keeps it in order without any
//! lock on the request path, and one checkpoint covers every account. Records newer than the
//! last sealing (about a second) are not yet chained; `verify` counts them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use std::sync::Arc;

use super::{ServiceResult, Vault};
use crate::domain::audit::{AuditRecord, ChainLink};

/// Records chained per transaction.
const SEAL_BATCH: u32 = 500;
/// Records read per page while verifying.
const VERIFY_PAGE: u32 = 1000;
/// The hash the first link follows.
const GENESIS: [u8; 32] = [0; 32];

/// The chain's head at some moment: kept apart from the database (a log, a ticket, another
/// system), it lets `verify` find a tail cut off after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub position: i64,
    /// Hex of the link's hash.
    pub hash: String,
}

impl From<&ChainLink> for Checkpoint {
    fn from(link: &ChainLink) -> Self {
        Self { position: link.position, hash: hex::encode(&link.hash) }
    }
}

/// The first record that breaks the chain, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub position: i64,
    /// The audit record's `seq` (none where a record is missing).
    pub seq: Option<i64>,
    pub reason: String,
}

/// What `tokenvault audit verify` found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    pub ok: bool,
    /// Records the chain holds, all verified when `ok`.
    pub chained: i64,
    /// Records newer than the last sealing: not covered yet.
    pub unchained: u64,
    pub head: Option<Checkpoint>,
    pub first_break: Option<ChainBreak>,
}

impl Vault {
    /// Chains every record not yet chained; returns how many. Safe beside other sealers: a
    /// batch another one got to first is simply read again.
    pub async fn seal_audit_chain(&self) -> ServiceResult<u64> {
        let mut sealed = 0;
        loop {
            let records = self.store.unsealed_audit(SEAL_BATCH).await?;
            if records.is_empty() {
                return Ok(sealed);
            }
            let head = self.store.audit_chain_head().await?;
            let (mut position, mut previous) = match &head {
                Some(link) => (link.position, link.hash.clone()),
                None => (0, GENESIS.to_vec()),
            };
            let mut links = Vec::with_capacity(records.len());
            for record in &records {
                position += 1;
                let hash = self.cipher.audit_link(&previous, &record.chain_bytes(position));
                previous.clone_from(&hash);
                links.push((record.seq, ChainLink { position, hash }));
            }
            let count = links.len() as u64;
            if self.store.extend_audit_chain(head.map(|link| link.position), links).await? {
                sealed += count;
            }
        }
    }

    /// The chain's head now (after chaining what is waiting), for a checkpoint.
    pub async fn audit_checkpoint(&self) -> ServiceResult<Option<Checkpoint>> {
        self.seal_audit_chain().await?;
        Ok(self.store.audit_chain_head().await?.as_ref().map(Checkpoint::from))
    }

    /// Chains new records every `interval`, and logs the head every `checkpoint_every` (a log
    /// line kept elsewhere is a checkpoint); a failure is logged and retried on the next tick.
    pub fn spawn_audit_sealer(self: &Arc<Self>, interval: Duration, checkpoint_every: Duration) -> JoinHandle<()> {
        let vault = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_checkpoint = tokio::time::Instant::now();
            loop {
                ticks.tick().await;
                if let Err(error) = vault.seal_audit_chain().await {
                    tracing::warn!(%error, "could not extend the audit chain");
                    continue;
                }
                if last_checkpoint.elapsed() >= checkpoint_every {
                    last_checkpoint = tokio::time::Instant::now();
                    match vault.store.audit_chain_head().await {
                        Ok(Some(head)) => {
                            let head = Checkpoint::from(&head);
                            tracing::info!(position = head.position, hash = %head.hash, "audit chain checkpoint");
                        }
                        Ok(None) => {}
                        Err(error) => tracing::warn!(%error, "could not read the audit chain's head"),
                    }
                }
            }
        })
    }

    /// Walks the whole chain, recomputing every link; with a `checkpoint`, also that the chain
    /// reaches it and holds its hash there.
    pub async fn verify_audit_chain(&self, checkpoint: Option<&Checkpoint>) -> ServiceResult<ChainReport> {
        let mut previous = GENESIS.to_vec();
        let mut expected = 1;
        let mut first_break = None;
        let mut checkpoint_seen = false;
        'walk: loop {
            let page = self.store.audit_chain(expected - 1, VERIFY_PAGE).await?;
            if page.is_empty() {
                break;
            }
            for (record, link) in &page {
                if let Some(problem) = check_link(self, record, link, expected, &previous) {
                    first_break = Some(problem);
                    break 'walk;
                }
                if let Some(checkpoint) = checkpoint.filter(|c| c.position == link.position) {
                    checkpoint_seen = true;
                    if checkpoint.hash != hex::encode(&link.hash) {
                        first_break = Some(ChainBreak {
                            position: link.position,
                            seq: Some(record.seq),
                            reason: "the checkpoint holds another hash at this position: the chain was rewritten from here on or before".into(),
                        });
                        break 'walk;
                    }
                }
                previous.clone_from(&link.hash);
                expected += 1;
            }
        }
        let chained = expected - 1;
        if let (None, Some(checkpoint)) = (&first_break, checkpoint) {
            if !checkpoint_seen {
                first_break = Some(ChainBreak {
                    position: chained + 1,
                    seq: None,
                    reason: format!(
                        "the chain ends at position {chained}, before the checkpoint's {}: records were cut off the end",
                        checkpoint.position
                    ),
                });
            }
        }
        let head = self.store.audit_chain_head().await?.as_ref().map(Checkpoint::from);
        let unchained = self.store.count_unsealed_audit().await?;
        Ok(ChainReport { ok: first_break.is_none(), chained, unchained, head, first_break })
    }
}

/// Why `link` is not the `expected` one after `previous`, if it is not.
fn check_link(
    vault: &Vault,
    record: &AuditRecord,
    link: &ChainLink,
    expected: i64,
    previous: &[u8],
) -> Option<ChainBreak> {
    if link.position != expected {
        return Some(ChainBreak {
            position: expected,
            seq: None,
            reason: format!(
                "position {expected} is missing (the next is {}, record seq {}): a record was deleted or its position changed",
                link.position, record.seq
            ),
        });
    }
    if vault.cipher.audit_link(previous, &record.chain_bytes(link.position)) != link.hash {
        return Some(ChainBreak {
            position: link.position,
            seq: Some(record.seq),
            reason: "the record does not match its hash: it was edited, or moved from another position".into(),
        });
    }
    None
}
