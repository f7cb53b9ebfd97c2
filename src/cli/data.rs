//! Commands that move data in and out: `export`, `import` and `card-tokens import`.

use tokenvault::app;
use tokenvault::domain::AccountId;
use tokenvault::service::{backup, import, transfer};
use tokenvault::settings::{DatabaseUrl, ServeConfig};

use super::progress::ProgressBar;

/// `tokenvault export`: the whole dataset as JSON Lines, to a file or stdout.
pub async fn export(database_url: &DatabaseUrl, output: &str) -> Result<(), String> {
    let mut bar = ProgressBar::new();
    let mut draw = |p: &transfer::Progress<'_>| {
        bar.draw(p.done, p.total, &format!("exported {} of {} rows ({:<20})", p.done, p.total, p.table))
    };
    let summary = if output == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        transfer::export_database(database_url, &mut out, &mut draw).await
    } else {
        let file =
            backup::create_private(std::path::Path::new(output)).map_err(|e| format!("cannot create {output}: {e}"))?;
        let mut out = std::io::BufWriter::new(file);
        transfer::export_database(database_url, &mut out, &mut draw).await
    };
    bar.finish();
    let summary = summary.map_err(|e| format!("export failed: {e}"))?;
    eprintln!("exported {} rows from {database_url}: {}", summary.rows, describe(&summary));
    Ok(())
}

/// `tokenvault import`: a dataset written by `export`, into an empty database, counts verified;
/// a failure leaves the database empty again (see `transfer::import`).
pub async fn import_dataset(file: &str, config: ServeConfig) -> Result<(), String> {
    let database_url = &config.database_url;
    let input: Box<dyn std::io::BufRead> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let opened = std::fs::File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?;
        Box::new(std::io::BufReader::new(opened))
    };
    // The key to check the card tokens against: the given one, else an SQLite key file that
    // already exists.
    let key_file = database_url.sqlite_key_file();
    let mut bar = ProgressBar::new();
    let summary = transfer::import_database(database_url, input, config.master_key().as_ref(), |p| {
        bar.draw(p.done, p.total, &format!("imported {} of {} rows ({:<20})", p.done, p.total, p.table))
    })
    .await;
    bar.finish();
    let (summary, checked) = summary.map_err(|e| match e {
        transfer::TransferError::NotEmpty(_) | transfer::TransferError::Refused(_) => format!("import refused: {e}"),
        // Its message says what is left and what to do.
        transfer::TransferError::NotUndone { .. } => format!("import failed: {e}"),
        _ => format!(
            "import failed: {e}\n(the import kept none of the rows it had stored: fix the cause and run it again on \
             the same database)"
        ),
    })?;
    eprintln!("imported {} rows into {database_url}: {}", summary.rows, describe(&summary));
    if !checked && summary.tables.iter().any(|(table, rows)| table == "card_tokens" && *rows > 0) {
        match &key_file {
            Some(path) => eprintln!(
                "note: card tokens are encrypted with the source's key; write that key (base64, one line) to {} \
                 or pass it as --encryption-key before starting a server on this database",
                path.display()
            ),
            None => eprintln!(
                "note: card tokens are encrypted with the source's key; start the servers on this database with \
                 that --encryption-key"
            ),
        }
    }
    let tables: serde_json::Map<String, serde_json::Value> =
        summary.tables.iter().map(|(table, rows)| (table.clone(), (*rows).into())).collect();
    println!("{}", serde_json::json!({"rows": summary.rows, "tables": tables}));
    Ok(())
}

fn describe(summary: &transfer::Summary) -> String {
    summary.tables.iter().map(|(table, rows)| format!("{table} {rows}")).collect::<Vec<_>>().join(", ")
}

/// `tokenvault card-tokens import`: exits with an error when any line was rejected.
pub async fn import_file(path: &std::path::Path, account: &AccountId, config: ServeConfig) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0).max(1);
    let vault = app::open_vault(&config).await.map_err(|e| e.to_string())?;
    let mut bar = ProgressBar::new();
    let summary = import::import_card_tokens(
        &vault,
        account,
        std::io::BufReader::new(file),
        |rejected| eprintln!("{}:{}: {}", path.display(), rejected.line, rejected.message),
        |summary, bytes| {
            let detail = format!(
                "{} imported, {} already present, {} rejected",
                summary.imported, summary.already_present, summary.rejected
            );
            bar.draw(bytes, size, &detail)
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    bar.finish();
    eprintln!(
        "{} lines: {} imported, {} already present (skipped), {} rejected",
        summary.lines, summary.imported, summary.already_present, summary.rejected
    );
    println!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
    if summary.rejected > 0 {
        return Err(format!("{} line(s) rejected", summary.rejected));
    }
    Ok(())
}
