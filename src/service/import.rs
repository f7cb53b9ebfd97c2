//! `tokenvault card-tokens import FILE`: migrations of card tokens from JSON Lines.
//!
//! The file is streamed; each batch of lines is stored in one transaction, so an interrupted
//! import leaves only whole batches behind, and re-running it skips what is already stored (by
//! `id` or by `token`), so continuing is always safe.

use std::io::BufRead;

use serde::Serialize;
use serde_json::Value;

use super::{ServiceError, Vault};
use crate::domain::card_token::CardToken;
use crate::domain::{AccountId, Timestamp};
use crate::store::ImportOutcome;

/// Lines per transaction: large enough to amortise the fsync, small enough to keep memory flat.
pub const BATCH_LINES: usize = 500;

/// Who imported tokens are `created_by`.
pub const IMPORT_ACTOR: &str = "tokenvault-import";

/// What an import did, line by line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    pub lines: u64,
    pub imported: u64,
    pub already_present: u64,
    pub rejected: u64,
}

/// One line that could not be imported, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    pub line: u64,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("reading the file: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Imports every line of `reader` into `account`. `on_rejected` hears of each bad line and
/// `on_progress` of each committed batch (with the bytes read so far).
pub async fn import_card_tokens(
    vault: &Vault,
    account: &AccountId,
    reader: impl BufRead,
    mut on_rejected: impl FnMut(&RejectedLine),
    mut on_progress: impl FnMut(&ImportSummary, u64),
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    let mut batch = Vec::with_capacity(BATCH_LINES);
    let mut bytes_read = 0u64;
    for line in reader.lines() {
        let line = line?;
        summary.lines += 1;
        bytes_read += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(&line, account) {
            Ok(card) => batch.push(card),
            Err(message) => {
                summary.rejected += 1;
                on_rejected(&RejectedLine { line: summary.lines, message });
            }
        }
        if batch.len() >= BATCH_LINES {
            store_batch(vault, &mut batch, &mut summary).await?;
            on_progress(&summary, bytes_read);
        }
    }
    store_batch(vault, &mut batch, &mut summary).await?;
    on_progress(&summary, bytes_read);
    Ok(summary)
}

fn parse_line(line: &str, account: &AccountId) -> Result<CardToken, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(body) = value else { return Err("must be a JSON object".to_owned()) };
    CardToken::from_create_body(&body, account, IMPORT_ACTOR, Timestamp::now())
        .map_err(|e| e.errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect::<Vec<_>>().join("; "))
}

async fn store_batch(
    vault: &Vault,
    batch: &mut Vec<CardToken>,
    summary: &mut ImportSummary,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcomes = vault.import_card_token_batch(std::mem::take(batch)).await?;
    for outcome in outcomes {
        match outcome {
            ImportOutcome::Imported => summary.imported += 1,
            ImportOutcome::AlreadyPresent => summary.already_present += 1,
        }
    }
    Ok(())
}
