//! `tokenvault journal --account T… [--follow]`: a test account's request journal, read from the
//! database (so it shows what every instance on it recorded), oldest first. On a terminal one
//! line per request; otherwise JSON Lines, the entries as the API shows them.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use tokenvault::app;
use tokenvault::domain::journal::{JournalEntry, JournalFilter};
use tokenvault::domain::{AccountId, PageRequest};
use tokenvault::service::admin::Admin;
use tokenvault::settings::DatabaseUrl;

/// How often `--follow` looks for new requests.
const POLL: Duration = Duration::from_secs(1);
/// Entries read per query.
const PAGE: u32 = 100;

/// Prints the journal, then with `follow` every new entry until interrupted.
pub async fn run(account: &AccountId, follow: bool, database_url: &DatabaseUrl) -> Result<(), String> {
    let admin = app::open_admin(database_url).await.map_err(|e| e.to_string())?;
    let terminal = std::io::stdout().is_terminal();
    let mut newest = print_new(&admin, account, None, terminal).await?;
    if !follow {
        return Ok(());
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        if let Some(id) = print_new(&admin, account, newest.as_deref(), terminal).await? {
            newest = Some(id);
        }
    }
}

/// Prints, oldest first, the entries newer than `seen` (every entry when `None`); returns the id
/// of the newest one printed. If `seen` was pruned or cleared meanwhile, everything is new.
async fn print_new(
    admin: &Admin,
    account: &AccountId,
    seen: Option<&str>,
    terminal: bool,
) -> Result<Option<String>, String> {
    let mut fresh: Vec<JournalEntry> = Vec::new();
    let mut page = PageRequest { limit: PAGE, starting_after: None, include_total: false };
    'pages: loop {
        let listed = admin.list_journal(account, &JournalFilter::default(), &page).await.map_err(|e| e.to_string())?;
        for entry in listed.items {
            if Some(entry.id.as_str()) == seen {
                break 'pages;
            }
            fresh.push(entry);
        }
        if !listed.has_more {
            break;
        }
        page.starting_after = fresh.last().map(|entry| entry.id.clone());
    }
    let newest = fresh.first().map(|entry| entry.id.clone());
    let mut out = std::io::stdout().lock();
    for entry in fresh.iter().rev() {
        let line = if terminal { entry.to_line() } else { entry.to_json().to_string() };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok(newest)
}
