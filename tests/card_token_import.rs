//! `tokenvault card-tokens import`: the real binary on JSON Lines files — a good file, a file
//! with bad lines, and an import killed midway then run again.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokenvault::domain::card_token::CardTokenFilter;
use tokenvault::domain::{AccountId, PageRequest};
use tokenvault::settings::ServeConfig;

const ACCOUNT: &str = "T12345678";
const BATCH_LINES: u64 = tokenvault::service::import::BATCH_LINES as u64;

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tokenvault")
}

fn database_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("tokenvault.db").display())
}

fn card_line(i: u64) -> String {
    json!({
        "id": format!("imported-{i}"),
        "card_brand": if i % 2 == 0 { "visa" } else { "mastercard" },
        "payment_product_type": "dintero_psp.creditcard",
        "token": format!("psp-token-{i}"),
        "masked_pan": "476173******0416",
        "pan_expiry_date": "09/2030",
        "customer_id": format!("customer-{}", i % 7),
        "external_token_references": [format!("legacy-{i}")]
    })
    .to_string()
}

fn write_file(dir: &Path, name: &str, lines: impl IntoIterator<Item = String>) -> PathBuf {
    let path = dir.join(name);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for line in lines {
        writeln!(file, "{line}").unwrap();
    }
    file.flush().unwrap();
    path
}

fn import(dir: &Path, file: &Path) -> Output {
    Command::new(binary())
        .args(["card-tokens", "import"])
        .arg(file)
        .args(["--account", ACCOUNT, "--database-url", &database_url(dir)])
        .env_remove("TOKENVAULT_ENCRYPTION_KEY")
        .output()
        .unwrap()
}

fn summary(output: &Output) -> Value {
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout:?}"))
}

/// Every card token of the account, counted through the store.
async fn stored_count(dir: &Path) -> u64 {
    let store = tokenvault::app::open_store(&ServeConfig::new(database_url(dir).parse().unwrap())).await.unwrap();
    let account = AccountId::parse("aid", ACCOUNT).unwrap();
    let filter = CardTokenFilter { include_deleted: true, ..CardTokenFilter::default() };
    let page = PageRequest { limit: 1, starting_after: None, include_total: true };
    store.list_card_tokens(&account, &filter, &page).await.unwrap().total.unwrap()
}

#[tokio::test]
async fn a_good_file_is_imported_and_a_rerun_skips_everything() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "cards.jsonl", (0..3).map(card_line));

    let first = import(dir.path(), &file);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(summary(&first), json!({"lines": 3, "imported": 3, "already_present": 0, "rejected": 0}));
    assert_eq!(stored_count(dir.path()).await, 3);

    let again = import(dir.path(), &file);
    assert!(again.status.success());
    assert_eq!(summary(&again), json!({"lines": 3, "imported": 0, "already_present": 3, "rejected": 0}));
    assert_eq!(stored_count(dir.path()).await, 3);

    // The stored tokens decrypt with the key kept beside the database, and the plain tokens
    // are nowhere in the database files.
    let vault =
        tokenvault::app::open_vault(&ServeConfig::new(database_url(dir.path()).parse().unwrap())).await.unwrap();
    let account = AccountId::parse("aid", ACCOUNT).unwrap();
    let card = vault.card_token(&account, "imported-1").await.unwrap();
    assert_eq!(card.token.as_deref(), Some("psp-token-1"));
    assert_eq!(card.created_by, "tokenvault-import");
    assert_eq!(card.external_token_references, Some(vec!["legacy-1".to_owned()]));
    drop(vault);
    for name in ["tokenvault.db", "tokenvault.db-wal"] {
        let bytes = std::fs::read(dir.path().join(name)).unwrap_or_default();
        assert!(!bytes.windows(11).any(|w| w == b"psp-token-1"), "{name} holds a plain token");
    }
}

#[tokio::test]
async fn bad_lines_are_reported_with_their_numbers_and_the_rest_imported() {
    let dir = tempfile::tempdir().unwrap();
    let lines = vec![
        card_line(1),
        r#"{"card_brand": "amex", "payment_product_type": "x"}"#.to_owned(),
        "not json".to_owned(),
        String::new(),
        card_line(2),
        r#"{"card_brand": "visa", "payment_product_type": "x", "pan_expiry_date": "13/2030", "colour": "red"}"#
            .to_owned(),
        card_line(1),
    ];
    let file = write_file(dir.path(), "cards.jsonl", lines);

    let output = import(dir.path(), &file);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(summary(&output), json!({"lines": 7, "imported": 2, "already_present": 1, "rejected": 3}));
    let stderr = String::from_utf8(output.stderr).unwrap();
    let path = file.display();
    for expected in [
        format!("{path}:2: card_brand: must be one of visa, mastercard\n"),
        format!("{path}:3: not valid JSON: expected ident at line 1 column 2\n"),
        format!(
            "{path}:6: colour: is not a field that can be set; pan_expiry_date: must be a date of the form MM/YYYY\n"
        ),
        "7 lines: 2 imported, 1 already present (skipped), 3 rejected\n".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "missing {expected:?} in:\n{stderr}");
    }
    assert_eq!(stored_count(dir.path()).await, 2);
}

#[tokio::test]
async fn an_import_killed_midway_leaves_whole_batches_and_a_rerun_completes_it() {
    let dir = tempfile::tempdir().unwrap();
    let total: u64 = 40 * BATCH_LINES;
    let file = write_file(dir.path(), "cards.jsonl", (0..total).map(card_line));

    let mut child = Command::new(binary())
        .args(["card-tokens", "import"])
        .arg(&file)
        .args(["--account", ACCOUNT, "--database-url", &database_url(dir.path())])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as some batches are in, well before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_early = false;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if stored_count(dir.path()).await >= BATCH_LINES {
            child.kill().unwrap();
            killed_early = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.wait().unwrap();
    let partial = stored_count(dir.path()).await;
    assert!(killed_early && partial < total, "the import finished before it could be interrupted ({partial} stored)");
    assert_eq!(partial % BATCH_LINES, 0, "a half batch was left behind: {partial} stored");

    let rerun = import(dir.path(), &file);
    assert!(rerun.status.success(), "{}", String::from_utf8_lossy(&rerun.stderr));
    assert_eq!(
        summary(&rerun),
        json!({"lines": total, "imported": total - partial, "already_present": partial, "rejected": 0})
    );
    assert_eq!(stored_count(dir.path()).await, total);
}
