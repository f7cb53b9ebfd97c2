use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use serde_json::json;
use tempfile::TempDir;

use super::SqliteStore;
use crate::domain::customer::NewCustomer;
use crate::domain::{AccountId, Timestamp};
use crate::store::prelude::*;
use crate::store::{StoreError, StoreOptions};

async fn fresh() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tokenvault.db"), &StoreOptions::default()).await.unwrap();
    (Arc::new(store), dir)
}

async fn fresh_for_conformance() -> Option<(Arc<dyn Store>, TempDir)> {
    Some(fresh().await)
}

crate::store::conformance::conformance_suite!(fresh_for_conformance);

fn account() -> AccountId {
    AccountId::parse("aid", "T00000001").unwrap()
}

fn new_customer(customer_id: &str) -> NewCustomer {
    // A sizeable row, so that a WAL that cannot be reset grows fast.
    let body = json!({"customer_id": customer_id, "first_name": "x".repeat(2000)});
    NewCustomer::from_body(body.as_object().unwrap().clone(), "client", Timestamp::from_millis(1000)).unwrap()
}

/// The WAL's bound: the writer's checkpoint threshold (1000 pages, ~4 MiB) plus a batch leaves
/// room; a WAL that checkpoints cannot reset grows past it within `burst_writes` (see below).
const WAL_BOUND: u64 = 16 << 20;

/// Writes 10,000 customers and their 10,000 audit rows in bursts of concurrent requests, with
/// reads interleaved, and returns the size of the `-wal` file afterwards.
async fn burst_writes(pin_a_snapshot: bool) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = Arc::new(SqliteStore::open(&path, &StoreOptions::default()).await.unwrap());
    let pin = rusqlite::Connection::open(&path).unwrap();
    if pin_a_snapshot {
        pin.execute_batch("BEGIN; SELECT count(*) FROM customers;").unwrap();
    }
    for burst in 0..20 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..500 {
            let store = Arc::clone(&store);
            tasks.spawn(async move {
                let id = format!("c{burst}-{i}");
                store.create_customer(&account(), &new_customer(&id)).await.unwrap();
                if i % 50 == 0 {
                    assert!(store.get_customer(&account(), &id).await.unwrap().is_some());
                }
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap();
        }
    }
    let page = crate::domain::PageRequest { limit: 1, starting_after: None, include_total: true };
    let listed = store.list_customers(&account(), &Default::default(), &page).await.unwrap();
    assert_eq!(listed.total, Some(10_000));
    std::fs::metadata(dir.path().join("wal.db-wal")).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_stays_bounded_under_bursts() {
    let size = burst_writes(false).await;
    assert!(size < WAL_BOUND, "the WAL grew to {size} bytes");
}

/// The checkpoint thread copies committed pages into the database file well before the writer's
/// own checkpoint would (at 1,000 WAL pages): 30 customers of ~2 KiB (~300 WAL pages) stay below.
#[tokio::test]
async fn a_background_thread_copies_the_wal_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.db");
    let store = SqliteStore::open(&path, &StoreOptions::default()).await.unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    for i in 0..30 {
        store.create_customer(&account(), &new_customer(&format!("c{i}"))).await.unwrap();
    }
    let wal_pages = std::fs::metadata(dir.path().join("ckpt.db-wal")).unwrap().len() / 4096;
    assert!(wal_pages < super::checkpoint::WRITER_CHECKPOINT_FRAMES as u64, "{wal_pages} pages in the WAL");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut after = before;
    while after < before + 30 * 2000 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        after = std::fs::metadata(&path).unwrap().len();
    }
    assert!(after >= before + 30 * 2000, "the database file went from {before} to {after} bytes only");
}

/// Proves the test above can fail: a snapshot held open (as an unfinished statement would
/// hold one) stops checkpoints from resetting the WAL, and it outgrows the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_bound_catches_a_pinned_snapshot() {
    let size = burst_writes(true).await;
    assert!(size > WAL_BOUND, "the WAL only reached {size} bytes");
}

#[tokio::test]
async fn connections_are_durable_and_guarded() {
    let (dir, store) = {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("p.db"), &StoreOptions::default()).await.unwrap();
        (dir, store)
    };
    let pragma = |name: &'static str| {
        move |conn: &rusqlite::Connection| {
            super::sql::first(conn, &format!("PRAGMA {name}"), [], |r| r.get::<_, Value>(0))
        }
    };
    assert_eq!(store.writer.submit(pragma("journal_mode")).await.unwrap(), Some(Value::Text("wal".into())));
    assert_eq!(store.writer.submit(pragma("synchronous")).await.unwrap(), Some(Value::Integer(2)));
    assert_eq!(store.writer.submit(pragma("foreign_keys")).await.unwrap(), Some(Value::Integer(1)));
    assert_eq!(store.readers.read(pragma("synchronous")).await.unwrap(), Some(Value::Integer(2)));
    assert_eq!(store.readers.read(pragma("query_only")).await.unwrap(), Some(Value::Integer(1)));
    let write_on_reader = store.readers.read(|conn| super::sql::execute(conn, "DELETE FROM audit_log", [])).await;
    assert!(matches!(write_on_reader, Err(StoreError::Internal(_))), "{write_on_reader:?}");
    drop(store);
    drop(dir);
}

#[tokio::test]
async fn reopening_keeps_data_and_applies_migrations_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/tokenvault.db");
    let url = format!("sqlite://{}", path.display());
    // The file is created, never a missing directory: a mistyped path must not grow a tree.
    let missing = crate::store::open(&url.parse().unwrap(), &StoreOptions::default()).await.err().unwrap();
    assert!(matches!(missing, StoreError::Unavailable(ref text) if text.contains("does not exist")), "{missing}");
    assert!(!dir.path().join("nested").exists());
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let store = crate::store::open(&url.parse().unwrap(), &StoreOptions::default()).await.unwrap();
    store.create_customer(&account(), &new_customer("kept")).await.unwrap();
    drop(store);
    let store = crate::store::open(&url.parse().unwrap(), &StoreOptions::default()).await.unwrap();
    assert!(store.get_customer(&account(), "kept").await.unwrap().is_some());
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conflicts_fail_alone() {
    let (store, _dir) = fresh().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let store = Arc::clone(&store);
        // Every third request reuses one customer_id: exactly one of those may win.
        let id = if i % 3 == 0 { "same".to_owned() } else { format!("c{i}") };
        tasks.spawn(async move { store.create_customer(&account(), &new_customer(&id)).await.map(|_| id) });
    }
    let (mut won, mut refused) = (Vec::new(), 0);
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            Ok(id) => won.push(id),
            Err(StoreError::Duplicate(_, message)) => {
                assert_eq!(message, "a customer with customer_id 'same' already exists");
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!((won.len(), refused), (41, 19));
    assert_eq!(won.iter().filter(|id| *id == "same").count(), 1);
    let audit = store.list_audit(None, 0, 1000).await.unwrap();
    assert_eq!(audit.len(), 41);
}

#[tokio::test]
async fn reads_give_up_when_no_connection_frees() {
    let dir = tempfile::tempdir().unwrap();
    // Long enough that the first read is surely taken by the reader thread on a loaded machine
    // (at 50 ms it was abandoned there before it started, under parallel builds).
    let options = StoreOptions { pool_size: 1, acquire_timeout: Duration::from_secs(1) };
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.db"), &options).await.unwrap());
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let busy = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            store
                .readers
                .read(move |_| {
                    started_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                    Ok(())
                })
                .await
        })
    };
    tokio::task::spawn_blocking(move || started_rx.recv().unwrap()).await.unwrap();
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    release_tx.send(()).unwrap();
    busy.await.unwrap().unwrap();
    store.ping().await.unwrap();
}

/// Performance target 3 (list latency flat in the store's size): every statement a list runs —
/// customers, customer tokens, card tokens, token events; each filter, with a cursor and a total —
/// searches an index. Its `EXPLAIN QUERY PLAN` may show no `SCAN` of a table (nor of a whole
/// index) and no sort in a temporary B-tree, so an index cannot silently disappear.
#[tokio::test]
async fn every_list_query_searches_an_index() {
    use crate::domain::card_token::CardToken;
    use crate::domain::customer_token::NewCustomerToken;
    use crate::domain::token_event::{TokenEvent, TokenTypeValue};
    use crate::domain::PageRequest;
    use rusqlite::trace::{TraceEvent, TraceEventCodes};

    static RAN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    fn ran(event: TraceEvent<'_>) {
        if let TraceEvent::Stmt(_, sql) = event {
            RAN.lock().unwrap().push(sql.to_owned());
        }
    }

    let (store, dir) = fresh().await;
    let aid = account();
    let at = Timestamp::from_millis(1000);
    let obj = |v: serde_json::Value| v.as_object().unwrap().clone();
    let customer = store.create_customer(&aid, &new_customer("c1")).await.unwrap();
    let token =
        NewCustomerToken::from_body(&obj(json!({"token_id": "t1", "type": "sha1:email", "value": "v1"})), "x", at);
    let token = store.create_customer_token(&aid, "c1", &token.unwrap(), false).await.unwrap();
    let body = obj(json!({"card_brand": "visa", "payment_product_type": "bambora.creditcard",
                          "customer_id": "c1", "relationship_id": "r1"}));
    let card =
        store.create_card_token(&CardToken::from_create_body(&body, &aid, "x", at).unwrap(), None).await.unwrap();
    let email = TokenTypeValue { token_type: "sha1:email".into(), value: "e1".into() };
    let event = TokenEvent { event: "seen".into(), status: None, metadata: None, created_at: at, expires_at: None };
    store.token_detail(&aid, &email, Some(&event), "x", at).await.unwrap();
    store.clear_token_events(&aid, &email, Some(&event), "x", at).await.unwrap();
    let entry = store.list_token_events(&aid, None, &PageRequest::default()).await.unwrap().items[0].id.to_string();

    let conn = rusqlite::Connection::open(dir.path().join("tokenvault.db")).unwrap();
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(ran));
    let pages = |cursor: String| {
        [
            PageRequest { limit: 10, starting_after: None, include_total: false },
            PageRequest { limit: 10, starting_after: Some(cursor), include_total: true },
        ]
    };
    for page in pages(token.id.to_string()) {
        for filter in crate::store::conformance::customer_token_filters() {
            super::customers::list_tokens(&conn, &aid, "c1", &filter, &page).unwrap();
        }
    }
    for page in pages(customer.id.to_string()) {
        for filter in crate::store::conformance::customer_filters() {
            super::customers::list_customers(&conn, &aid, &filter, &page).unwrap();
        }
    }
    for page in pages(card.card.id.clone()) {
        for filter in crate::store::conformance::card_token_filters() {
            super::card_tokens::list(&conn, &aid, &filter, &page).unwrap();
        }
    }
    for page in pages(entry) {
        for since in [None, Some(at)] {
            super::token_events::list(&conn, &aid, since, &page).unwrap();
        }
        super::token_events::list_deleted(&conn, &aid, at, &page).unwrap();
    }
    conn.trace_v2(TraceEventCodes::empty(), None);

    let mut statements = RAN.lock().unwrap().clone();
    statements.sort();
    statements.dedup();
    assert!(statements.len() >= 12, "too few list statements traced: {statements:#?}");
    let mut offenders = Vec::new();
    for sql in &statements {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let count = stmt.parameter_count();
        let values = vec![Value::Null; count];
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // A `json_each` virtual table walks one row's JSON (the customer's `attributes` for
        // `attributes_keys[]`), not a table: not a scan of the data.
        let bad = plan.iter().any(|step| {
            (step.starts_with("SCAN ") && step != "SCAN CONSTANT ROW" && !step.contains(" VIRTUAL TABLE "))
                || step.contains("TEMP B-TREE")
        });
        if bad {
            offenders.push(format!("{sql}\n  -> {}", plan.join("\n  -> ")));
        }
    }
    assert!(offenders.is_empty(), "list statements not answered by an index search:\n{}", offenders.join("\n\n"));

    // A customer-token list finds its customer's seq in one index, without reading the row.
    let lookup = statements.iter().find(|sql| sql.starts_with("SELECT seq FROM customers")).expect("customer lookup");
    let plan: String = conn
        .query_row(&format!("EXPLAIN QUERY PLAN {lookup}"), rusqlite::params![Value::Null, Value::Null], |r| r.get(3))
        .unwrap();
    assert!(plan.contains("USING COVERING INDEX customers_seq_by_customer_id"), "{lookup}\n  -> {plan}");

    // A delete finds the live token through the live token_id index, not by reading every token
    // the customer ever had (deleted ones stay): that walk made deletes 3x slower in tvbench.
    RAN.lock().unwrap().clear();
    conn.trace_v2(TraceEventCodes::SQLITE_TRACE_STMT, Some(ran));
    super::customers::delete_token(&conn, &aid, "c1", "t1", "x", at).unwrap();
    conn.trace_v2(TraceEventCodes::empty(), None);
    let ran_by_delete = RAN.lock().unwrap().clone();
    let lookup = ran_by_delete
        .iter()
        .find(|sql| sql.starts_with("SELECT") && sql.contains("FROM customer_tokens"))
        .unwrap_or_else(|| panic!("no token lookup traced: {ran_by_delete:#?}"));
    let plan: String = conn
        .query_row(&format!("EXPLAIN QUERY PLAN {lookup}"), rusqlite::params![Value::Null, Value::Null], |r| r.get(3))
        .unwrap();
    assert!(
        plan.contains("USING INDEX customer_tokens_live_token_id (customer_seq=? AND token_id=?)"),
        "{lookup}\n  -> {plan}"
    );
}

#[tokio::test]
async fn expired_idempotency_keys_are_purged() {
    let (store, dir) = fresh().await;
    crate::store::conformance::idempotency_purge_leaves_three_keys(&store).await;
    let conn = rusqlite::Connection::open(dir.path().join("tokenvault.db")).unwrap();
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM idempotency_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(left, 3);
}

/// Migration 9 erases the secrets of card tokens deleted before deletes erased them, and only
/// theirs.
#[tokio::test]
async fn migration_9_shreds_the_secrets_of_tokens_deleted_before() {
    use crate::domain::card_token::CardToken;
    use crate::store::SealedToken;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenvault.db");
    let url = format!("sqlite://{}", path.display());
    let store = crate::store::open(&url.parse().unwrap(), &StoreOptions::default()).await.unwrap();
    for id in ["deleted-before", "live"] {
        let body = json!({"id": id, "card_brand": "visa", "payment_product_type": "x"});
        let card = CardToken::from_create_body(body.as_object().unwrap(), &account(), "c", Timestamp::now()).unwrap();
        let sealed = SealedToken { ciphertext: id.as_bytes().to_vec(), fingerprint: format!("fp-{id}") };
        store.create_card_token(&card, Some(&sealed)).await.unwrap();
    }
    drop(store);
    // A delete as it was before version 9, and the schema as it was then.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "UPDATE card_tokens SET status = 'DELETED' WHERE id = 'deleted-before';
         DELETE FROM schema_migrations WHERE version = 9;",
    )
    .unwrap();
    drop(conn);

    let store = crate::store::open(&url.parse().unwrap(), &StoreOptions::default()).await.unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let secrets: Vec<(String, Option<Vec<u8>>, Option<String>)> = conn
        .prepare("SELECT id, token_sealed, token_fingerprint FROM card_tokens ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        secrets,
        [
            ("deleted-before".to_owned(), None, None),
            ("live".to_owned(), Some(b"live".to_vec()), Some("fp-live".to_owned()))
        ]
    );
}
