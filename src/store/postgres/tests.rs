//! PostgreSQL-specific tests. Each test creates its own database (`tv_<uuid>`) and drops it
//! afterwards. Without a reachable server they print a notice and pass, unless
//! `TOKENVAULT_REQUIRE_POSTGRES=1` demands the server (as CI does).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::sql::like_prefix;
use super::*;
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus, DeleteRequestor};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::customer::{Customer, CustomerFilter, NewCustomer};
use crate::domain::customer_token::{CustomerTokenFilter, NewCustomerToken};
use crate::domain::token_event::{TokenEvent, TokenTypeValue};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::prelude::*;
use crate::store::{CardTokenDeletion, CardTokenRecord, ImportOutcome, SealedToken};

mod plans;
mod webhooks;

#[path = "../../../tests/support/postgres.rs"]
mod test_postgres;
use test_postgres::{admin_or_skip, connect_plain, TempDatabase};

/// A database of its own for one test (on `TOKENVAULT_TEST_POSTGRES_URL`'s server, by default
/// the local one), dropped with any connections left when it goes.
struct TestDb(TempDatabase);

impl std::ops::Deref for TestDb {
    type Target = TempDatabase;
    fn deref(&self) -> &TempDatabase {
        &self.0
    }
}

impl TestDb {
    /// `None` after a notice when PostgreSQL is unreachable (a panic under
    /// `TOKENVAULT_REQUIRE_POSTGRES=1`).
    async fn create() -> Option<Self> {
        let admin = admin_or_skip("PostgreSQL test").await?;
        Some(Self(TempDatabase::create_on(&admin).await))
    }

    async fn store(&self) -> PostgresStore {
        PostgresStore::connect(&self.url, &options()).await.expect("connect to the test database")
    }

    /// A plain connection to the test database, for checks behind the store's back.
    async fn sql(&self) -> tokio_postgres::Client {
        connect_plain(&self.url).await.expect("connect to the test database")
    }

    /// Ends every session on the test database but `client`'s own (what a server restart does to
    /// clients); the number ended.
    async fn terminate_sessions(&self, client: &tokio_postgres::Client) -> u64 {
        client
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .expect("terminate sessions")
    }
}

/// A fresh PostgreSQL store for the backend-neutral conformance checks; the database is dropped
/// with the guard.
async fn fresh_for_conformance() -> Option<(Arc<dyn Store>, TestDb)> {
    let db = TestDb::create().await?;
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    Some((store, db))
}

crate::store::conformance::conformance_suite!(fresh_for_conformance);

fn options() -> StoreOptions {
    StoreOptions { pool_size: 4, acquire_timeout: Duration::from_secs(2) }
}

fn account() -> AccountId {
    AccountId::parse("aid", "T00000001").unwrap()
}

fn other_account() -> AccountId {
    AccountId::parse("aid", "T00000002").unwrap()
}

fn at(millis: i64) -> Timestamp {
    Timestamp::from_millis(1_700_000_000_000 + millis)
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().expect("an object").clone()
}

fn new_customer(body: Value) -> NewCustomer {
    NewCustomer::from_body(object(body), "client", at(0)).expect("valid customer")
}

fn new_token(body: Value) -> NewCustomerToken {
    NewCustomerToken::from_body(&object(body), "client", at(1)).expect("valid token")
}

fn new_card(body: Value) -> CardToken {
    CardToken::from_create_body(&object(body), &account(), "client", at(2)).expect("valid card token")
}

fn sealed(fingerprint: &str) -> SealedToken {
    SealedToken { ciphertext: vec![1, 2, 3, fingerprint.len() as u8], fingerprint: fingerprint.to_owned() }
}

fn page(limit: u32, starting_after: Option<String>) -> PageRequest {
    PageRequest { limit, starting_after, include_total: true }
}

fn conflict(result: StoreResult<impl std::fmt::Debug>) -> String {
    match result {
        Err(StoreError::Conflict(message) | StoreError::Duplicate(_, message)) => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn event(name: &str, status: Option<&str>, millis: i64) -> TokenEvent {
    TokenEvent {
        event: name.to_owned(),
        status: status.map(str::to_owned),
        metadata: Some(object(json!({"z": 1, "a": 2}))),
        created_at: at(millis),
        expires_at: None,
    }
}

fn tv(token_type: &str, value: &str) -> TokenTypeValue {
    TokenTypeValue { token_type: token_type.to_owned(), value: value.to_owned() }
}

#[test]
fn test_database_urls_keep_server_and_options() {
    assert_eq!(test_postgres::with_database("postgres://u@h:5432/test", "tv_1"), "postgres://u@h:5432/tv_1");
    assert_eq!(
        test_postgres::with_database("postgres://u@h/test?sslmode=disable", "tv_1"),
        "postgres://u@h/tv_1?sslmode=disable"
    );
    assert_eq!(test_postgres::with_database("postgres://u@h", "tv_1"), "postgres://u@h/tv_1");
}

#[test]
fn like_patterns_match_literally() {
    assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
}

#[tokio::test]
async fn unreachable_database_fails_fast_as_unavailable() {
    let started = std::time::Instant::now();
    let options = StoreOptions { pool_size: 1, acquire_timeout: Duration::from_secs(2) };
    let result = PostgresStore::connect("postgres://postgres@127.0.0.1:1/none", &options).await;
    assert!(matches!(result, Err(StoreError::Unavailable(_))), "{:?}", result.err());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(migrate("postgres://postgres@127.0.0.1:1/none").await, Err(StoreError::Unavailable(_))));
    assert!(matches!(PostgresStore::connect("mysql://nope", &options).await, Err(StoreError::Internal(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_even_when_instances_start_together() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url.clone();
        starts.spawn(async move { PostgresStore::connect(&url, &options()).await.map(|_| ()) });
    }
    while let Some(started) = starts.join_next().await {
        started.expect("task").expect("concurrent start-up migrates safely");
    }
    migrate(&db.url).await.expect("a second run is a no-op");
    migrate(&db.url).await.expect("a third run is a no-op");
    let sql = db.sql().await;
    let versions: Vec<i32> = sql
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 18, 19, 20]);
    // JSON stays TEXT so that key order survives.
    let data_type: String = sql
        .query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_name = 'customers' AND column_name = 'attributes'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(data_type, "text");
}

#[tokio::test]
async fn postgres_clients_and_signing_keys() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    store.ping().await.unwrap();
    let mut client = ClientRecord {
        client_id: "c1".into(),
        account_id: account(),
        secret_hash: "$argon2id$1".into(),
        scopes: vec!["admin:customers".into(), "read:checkout".into()],
        created_at: at(0),
        secret_generation: 1,
    };
    store.upsert_client(&client).await.unwrap();
    client.secret_hash = "$argon2id$2".into();
    client.scopes = vec!["admin:checkout".into()];
    store.upsert_client(&client).await.unwrap();
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client));
    assert_eq!(store.find_client("nobody").await.unwrap(), None);

    let key = |kid: &str, millis| SigningKeyRecord {
        kid: kid.into(),
        private_key: vec![0, 1, 2],
        public_key: vec![9; 32],
        created_at: at(millis),
    };
    store.insert_signing_key(&key("old", 0)).await.unwrap();
    store.insert_signing_key(&key("new", 10)).await.unwrap();
    let kids: Vec<_> = store.signing_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, ["new", "old"]);
    assert_eq!(store.signing_keys().await.unwrap()[1], key("old", 0));
    assert!(matches!(store.insert_signing_key(&key("old", 20)).await, Err(StoreError::Conflict(_))));
}

#[tokio::test]
async fn customers_tokens_paging_and_conflicts() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let aid = account();

    let ada = new_customer(
        json!({"customer_id": "ada", "z_last": 1, "email": "Ada@Example.com", "a_first": 2, "phone_number": "+4712345678"}),
    );
    let created = store.create_customer(&aid, &ada).await.unwrap();
    assert_eq!(created.id, ada.id);
    // Key order survives the store exactly as the domain layer hands it over.
    assert_eq!(serde_json::to_string(&created.attributes).unwrap(), serde_json::to_string(&ada.attributes).unwrap());
    let keys: Vec<_> = created.attributes.keys().map(String::as_str).collect();
    assert!(keys.iter().position(|k| *k == "z_last") < keys.iter().position(|k| *k == "a_first"), "{keys:?}");
    assert_eq!(store.get_customer(&aid, "ada").await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_customer(&other_account(), "ada").await.unwrap(), None);

    let clash = |body: Value| new_customer(body);
    assert_eq!(
        conflict(store.create_customer(&aid, &clash(json!({"customer_id": "ada"}))).await),
        "a customer with customer_id 'ada' already exists"
    );
    assert_eq!(
        conflict(store.create_customer(&aid, &clash(json!({"customer_id": "x", "email": "ADA@example.com"}))).await),
        "a customer with this email already exists"
    );
    assert_eq!(
        conflict(store.create_customer(&aid, &clash(json!({"customer_id": "x", "phone_number": "+4712345678"}))).await),
        "a customer with this phone_number already exists"
    );
    // The same e-mail is fine for another type, and in another account.
    store
        .create_customer(&aid, &clash(json!({"customer_id": "ada-co", "type": "company", "email": "ada@example.com"})))
        .await
        .unwrap();
    store.create_customer(&other_account(), &clash(json!({"customer_id": "ada"}))).await.unwrap();
    store.create_customer(&aid, &clash(json!({"customer_id": "contact-1", "type": "contact"}))).await.unwrap();
    store.create_customer(&aid, &clash(json!({"customer_id": "bob_%", "email": "bob_%@example.com"}))).await.unwrap();

    // Lists: default types leave contacts out; keyset paging in acceptance order.
    let ids = |page: &Page<Customer>| page.items.iter().map(|c| c.customer_id.clone()).collect::<Vec<_>>();
    let filter = CustomerFilter::default();
    let first = store.list_customers(&aid, &filter, &page(2, None)).await.unwrap();
    assert_eq!(ids(&first), ["ada", "ada-co"]);
    assert!(first.has_more);
    assert_eq!(first.total, Some(3));
    let cursor = Some(first.items[1].id.to_string());
    let second = store.list_customers(&aid, &filter, &page(2, cursor)).await.unwrap();
    assert_eq!(ids(&second), ["bob_%"]);
    assert!(!second.has_more);
    let all = CustomerFilter { all_types: true, ..Default::default() };
    assert_eq!(store.list_customers(&aid, &all, &page(10, None)).await.unwrap().total, Some(4));
    let contacts = CustomerFilter { customer_type: Some("contact".into()), ..Default::default() };
    assert_eq!(ids(&store.list_customers(&aid, &contacts, &page(10, None)).await.unwrap()), ["contact-1"]);
    let email = CustomerFilter { email_prefix: Some("bob_%".into()), ..Default::default() };
    assert_eq!(ids(&store.list_customers(&aid, &email, &page(10, None)).await.unwrap()), ["bob_%"]);
    let literal = CustomerFilter { email_prefix: Some("b%".into()), ..Default::default() };
    assert!(store.list_customers(&aid, &literal, &page(10, None)).await.unwrap().items.is_empty());
    let phone = CustomerFilter { phone_number_prefix: Some("+47".into()), ..Default::default() };
    assert_eq!(ids(&store.list_customers(&aid, &phone, &page(10, None)).await.unwrap()), ["ada"]);
    // A cursor of another account, or no item at all, is unknown; filters do not matter.
    let foreign = store.get_customer(&other_account(), "ada").await.unwrap().unwrap().id.to_string();
    assert!(matches!(
        store.list_customers(&aid, &filter, &page(2, Some(foreign))).await,
        Err(StoreError::UnknownCursor)
    ));
    let contact_id = store.list_customers(&aid, &contacts, &page(1, None)).await.unwrap().items[0].id.to_string();
    assert_eq!(ids(&store.list_customers(&aid, &filter, &page(5, Some(contact_id))).await.unwrap()), ["bob_%"]);

    // Tokens.
    let token = new_token(json!({"type": "sha1:email", "value": "v1", "token_id": "t1", "metadata": {"z": 1, "a": 2}}));
    let stored = store.create_customer_token(&aid, "ada", &token, false).await.unwrap();
    assert_eq!(stored.id, token.id);
    assert_eq!(serde_json::to_string(&stored.metadata).unwrap(), r#"{"z":1,"a":2}"#);
    assert_eq!(
        conflict(
            store
                .create_customer_token(
                    &aid,
                    "ada",
                    &new_token(json!({"type": "x", "value": "y", "token_id": "t1"})),
                    false
                )
                .await
        ),
        "a live token with token_id 't1' already exists for this customer"
    );
    assert_eq!(
        conflict(
            store
                .create_customer_token(&aid, "ada-co", &new_token(json!({"type": "sha1:email", "value": "v1"})), false)
                .await
        ),
        "a live token with this type and value already belongs to a customer"
    );
    assert!(matches!(
        store.create_customer_token(&aid, "nobody", &new_token(json!({"type": "x", "value": "y"})), false).await,
        Err(StoreError::NotFound("customer"))
    ));
    store
        .create_customer_token(
            &aid,
            "ada",
            &new_token(json!({"type": "phone", "value": "p1", "token_id": "t2"})),
            false,
        )
        .await
        .unwrap();

    let deleted = store.delete_customer_token(&aid, "ada", "t1", "deleter", at(50)).await.unwrap();
    assert_eq!(
        (deleted.deleted_at, deleted.deleted_by.as_deref(), deleted.updated_at),
        (Some(at(50)), Some("deleter"), at(50))
    );
    let again = store.delete_customer_token(&aid, "ada", "t1", "someone else", at(60)).await.unwrap();
    assert_eq!(again, deleted, "deleting a deleted token returns it unchanged");
    assert!(matches!(
        store.delete_customer_token(&aid, "ada", "never", "d", at(60)).await,
        Err(StoreError::NotFound("token"))
    ));
    assert!(matches!(
        store.delete_customer_token(&aid, "nobody", "t1", "d", at(60)).await,
        Err(StoreError::NotFound("customer"))
    ));
    // The same token_id (and type/value) may live again after deletion.
    let reborn = store.create_customer_token(&aid, "ada", &token_again(), false).await.unwrap();
    assert_ne!(reborn.id, deleted.id);

    let tokens = |filter: CustomerTokenFilter, request: PageRequest| {
        let store = &store;
        let aid = aid.clone();
        async move { store.list_customer_tokens(&aid, "ada", &filter, &request).await }
    };
    let everything = tokens(CustomerTokenFilter::default(), page(10, None)).await.unwrap();
    assert_eq!(everything.items.iter().map(|t| t.token_id.as_str()).collect::<Vec<_>>(), ["t1", "t2", "t1"]);
    assert_eq!(everything.total, Some(3));
    let live = tokens(CustomerTokenFilter { token_type: None, include_deleted: false }, page(1, None)).await.unwrap();
    assert_eq!((live.items[0].token_id.as_str(), live.has_more, live.total), ("t2", true, Some(2)));
    let phones =
        tokens(CustomerTokenFilter { token_type: Some("phone".into()), include_deleted: true }, page(10, None))
            .await
            .unwrap();
    assert_eq!(phones.items.len(), 1);
    let after_first = tokens(CustomerTokenFilter::default(), page(10, Some(deleted.id.to_string()))).await.unwrap();
    assert_eq!(after_first.items.len(), 2);
    assert!(matches!(
        tokens(CustomerTokenFilter::default(), page(10, Some(uuid::Uuid::new_v4().to_string()))).await,
        Err(StoreError::UnknownCursor)
    ));

    // Finding customers by a live token.
    let by_token = CustomerFilter { token: Some(("phone".into(), "p1".into())), ..Default::default() };
    assert_eq!(ids(&store.list_customers(&aid, &by_token, &page(10, None)).await.unwrap()), ["ada"]);

    // Deleting the customer (with its tokens) frees its unique values.
    let gone = store.delete_customer(&aid, "ada", true, "deleter", at(100)).await.unwrap();
    assert_eq!(gone.attributes.keys().collect::<Vec<_>>(), ["type"], "only the required type is kept");
    assert_eq!(
        (gone.deleted_at, gone.deleted_by.as_deref(), gone.updated_at),
        (Some(at(100)), Some("deleter"), at(100))
    );
    assert_eq!(store.get_customer(&aid, "ada").await.unwrap(), None);
    assert!(matches!(
        store.delete_customer(&aid, "ada", true, "d", at(101)).await,
        Err(StoreError::NotFound("customer"))
    ));
    assert!(store.list_customers(&aid, &by_token, &page(10, None)).await.unwrap().items.is_empty());
    let with_deleted = CustomerFilter { include_deleted: true, ..Default::default() };
    assert_eq!(store.list_customers(&aid, &with_deleted, &page(10, None)).await.unwrap().total, Some(3));
    let live_tokens: i64 = db
        .sql()
        .await
        .query_one("SELECT COUNT(*) FROM customer_tokens WHERE deleted_at IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(live_tokens, 0);
    store
        .create_customer(
            &aid,
            &new_customer(json!({"customer_id": "ada", "email": "ada@example.com", "phone_number": "+4712345678"})),
        )
        .await
        .unwrap();
}

fn token_again() -> NewCustomerToken {
    new_token(json!({"type": "sha1:email", "value": "v1", "token_id": "t1"}))
}

#[tokio::test]
async fn token_events_record_list_and_clear() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let aid = account();
    let email = tv("sha1:email", "e1");

    // Nothing known: a random id, nothing else.
    let unknown = store.token_detail(&aid, &email, None, "client", at(0)).await.unwrap();
    assert!(unknown.customer.is_none() && unknown.token.is_none() && unknown.events.is_empty());

    // A live customer token lends its id until events exist.
    store.create_customer(&aid, &new_customer(json!({"customer_id": "c1"}))).await.unwrap();
    let token = store
        .create_customer_token(&aid, "c1", &new_token(json!({"type": "sha1:email", "value": "e1"})), false)
        .await
        .unwrap();
    let detail = store.token_detail(&aid, &email, None, "client", at(1)).await.unwrap();
    assert_eq!(detail.id, token.id);
    assert_eq!(detail.customer.as_ref().map(|c| c.customer_id.as_str()), Some("c1"));
    assert_eq!(detail.token.as_ref(), Some(&token));

    // Recording events creates a stable entry.
    let first =
        store.token_detail(&aid, &email, Some(&event("opt_in", Some("ACTIVE"), 10)), "client", at(10)).await.unwrap();
    let second =
        store.token_detail(&aid, &email, Some(&event("opt_out", Some("OPT_OUT"), 20)), "client", at(20)).await.unwrap();
    // The type/value was added to a customer before: its id stays the token's (TokenDetail.id).
    assert_eq!(first.id, second.id);
    assert_eq!(first.id, token.id);
    assert_eq!(second.events, [event("opt_in", Some("ACTIVE"), 10), event("opt_out", Some("OPT_OUT"), 20)]);
    assert_eq!(serde_json::to_string(&second.events[0].metadata).unwrap(), r#"{"z":1,"a":2}"#);

    let phone = tv("phone", "p1");
    let other = store.token_detail(&aid, &phone, Some(&event("x", None, 30)), "client", at(30)).await.unwrap();
    store.token_detail(&other_account(), &phone, Some(&event("x", None, 30)), "client", at(30)).await.unwrap();

    // Lists: by creation, or by update time with `since`.
    let all = store.list_token_events(&aid, None, &page(1, None)).await.unwrap();
    assert_eq!((all.items[0].id, all.items[0].events.len(), all.has_more, all.total), (first.id, 2, true, Some(2)));
    let rest = store.list_token_events(&aid, None, &page(1, Some(first.id.to_string()))).await.unwrap();
    assert_eq!((rest.items[0].id, rest.items[0].token.clone(), rest.has_more), (other.id, phone.clone(), false));
    // Touch the e-mail entry again: it now sorts after the phone entry by update time.
    store.token_detail(&aid, &email, Some(&event("again", None, 40)), "client", at(40)).await.unwrap();
    let since = store.list_token_events(&aid, Some(at(25)), &page(1, None)).await.unwrap();
    assert_eq!((since.items[0].id, since.has_more, since.total), (other.id, true, Some(2)));
    let since_rest = store.list_token_events(&aid, Some(at(25)), &page(1, Some(other.id.to_string()))).await.unwrap();
    assert_eq!(
        (since_rest.items[0].id, since_rest.items[0].updated_at, since_rest.has_more),
        (first.id, at(40), false)
    );
    assert_eq!(store.list_token_events(&aid, Some(at(35)), &page(10, None)).await.unwrap().total, Some(1));
    // (The token's id is the entry's id now, a valid cursor: an id of nothing is not.)
    assert!(matches!(
        store.list_token_events(&aid, None, &page(1, Some(uuid::Uuid::new_v4().to_string()))).await,
        Err(StoreError::UnknownCursor)
    ));

    // Clearing with a delete event keeps the entry (and its id) with that event alone.
    let deletion = event("deleted", Some("DELETED"), 50);
    store.clear_token_events(&aid, &email, Some(&deletion), "client", at(55)).await.unwrap();
    let cleared = store.token_detail(&aid, &email, None, "client", at(60)).await.unwrap();
    assert_eq!((cleared.id, cleared.events.clone()), (first.id, vec![deletion]));
    // Without one, the entry goes too.
    store.clear_token_events(&aid, &phone, None, "client", at(70)).await.unwrap();
    assert_eq!(store.list_token_events(&aid, None, &page(10, None)).await.unwrap().total, Some(1));

    // Storing a token with delete_token_events clears that type/value's events.
    store.delete_customer_token(&aid, "c1", &token.token_id, "client", at(80)).await.unwrap();
    store
        .create_customer_token(&aid, "c1", &new_token(json!({"type": "sha1:email", "value": "e1"})), true)
        .await
        .unwrap();
    assert_eq!(store.list_token_events(&aid, None, &page(10, None)).await.unwrap().total, Some(0));
    let left: i64 = db.sql().await.query_one("SELECT COUNT(*) FROM token_events", &[]).await.unwrap().get(0);
    assert_eq!(left, 1, "only the other account's event remains");
}

#[tokio::test]
async fn card_tokens_create_import_list_and_change() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let aid = account();
    let body = json!({
        "id": "card-1", "card_brand": "visa", "payment_product_type": "dintero_psp.creditcard", "token": "secret",
        "masked_pan": "476173******0416", "pan_expiry_date": "09/2030",
        "links": [{"href": "https://x/card.png", "rel": "digital_card_art", "mime_type": "image/png"}, {"href": "h", "rel": "r"}],
        "customer_id": "c1", "relationship_id": "r1", "external_token_references": ["old-1"]
    });
    let card = new_card(body.clone());
    let stored = store.create_card_token(&card, Some(&sealed("fp-1"))).await.unwrap();
    assert_eq!(stored.card, CardToken { token: None, ..card.clone() });
    assert_eq!(stored.sealed_token, Some(sealed("fp-1").ciphertext));
    assert_eq!(store.get_card_token(&aid, "card-1").await.unwrap(), Some(stored.clone()));
    assert_eq!(store.get_card_token(&other_account(), "card-1").await.unwrap(), None);

    assert_eq!(
        conflict(store.create_card_token(&card, Some(&sealed("fp-other"))).await),
        "a card token with id 'card-1' already exists"
    );
    let twin = new_card(json!({"id": "card-2", "card_brand": "visa", "payment_product_type": "p"}));
    assert_eq!(
        conflict(store.create_card_token(&twin, Some(&sealed("fp-1"))).await),
        "this token is already stored as card token 'card-1'"
    );

    // Imports skip what is present (by id or by fingerprint), in one transaction.
    let plain = |id: &str, customer: &str| {
        new_card(json!({"id": id, "card_brand": "mastercard", "payment_product_type": "p", "customer_id": customer}))
    };
    let outcomes = store
        .import_card_tokens(&[
            (plain("card-1", "c1"), None),
            (plain("card-3", "c2"), Some(sealed("fp-1"))),
            (plain("card-4", "c1"), Some(sealed("fp-4"))),
            (plain("card-5", "c2"), None),
            (plain("card-5", "c2"), None),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            ImportOutcome::AlreadyPresent,
            ImportOutcome::AlreadyPresent,
            ImportOutcome::Imported,
            ImportOutcome::Imported,
            ImportOutcome::AlreadyPresent
        ]
    );

    // Status changes and deletion.
    let suspended =
        store.set_card_token_status(&aid, "card-4", CardTokenStatus::Suspended, "admin", at(10)).await.unwrap();
    assert_eq!((suspended.card.status, suspended.card.updated_at), (CardTokenStatus::Suspended, at(10)));
    let same = store.set_card_token_status(&aid, "card-4", CardTokenStatus::Suspended, "admin", at(11)).await.unwrap();
    assert_eq!(same, suspended);
    assert_eq!(
        conflict(store.set_card_token_status(&aid, "card-4", CardTokenStatus::Deleted, "admin", at(12)).await),
        "cannot change status from SUSPENDED to DELETED"
    );
    assert!(matches!(
        store.set_card_token_status(&aid, "nope", CardTokenStatus::Active, "admin", at(12)).await,
        Err(StoreError::NotFound("card token"))
    ));
    let deletion = CardTokenDeletion {
        actor: "admin".into(),
        reason: Some("lost".into()),
        requestor: DeleteRequestor::Cardholder,
        at: at(20),
    };
    let deleted = store.delete_card_token(&aid, "card-4", &deletion).await.unwrap();
    assert_eq!(
        (deleted.card.status, deleted.card.deleted_at, deleted.card.deleted_by.as_deref(), deleted.card.updated_at),
        (CardTokenStatus::Deleted, Some(at(20)), Some("admin"), at(20))
    );
    let later = CardTokenDeletion { at: at(30), ..deletion.clone() };
    assert_eq!(store.delete_card_token(&aid, "card-4", &later).await.unwrap(), deleted);
    assert!(matches!(store.delete_card_token(&aid, "nope", &later).await, Err(StoreError::NotFound("card token"))));
    assert_eq!(
        conflict(store.set_card_token_status(&aid, "card-4", CardTokenStatus::Active, "admin", at(40)).await),
        "card token 'card-4' is DELETED; its status cannot change"
    );

    // Lists hide DELETED unless asked for.
    let ids = |page: Page<CardTokenRecord>| page.items.into_iter().map(|r| r.card.id).collect::<Vec<_>>();
    let list = |filter: CardTokenFilter, request: PageRequest| {
        let store = &store;
        let aid = aid.clone();
        async move { store.list_card_tokens(&aid, &filter, &request).await.unwrap() }
    };
    assert_eq!(ids(list(CardTokenFilter::default(), page(10, None)).await), ["card-1", "card-5"]);
    let with_deleted = CardTokenFilter { include_deleted: true, ..Default::default() };
    let first = list(with_deleted.clone(), page(2, None)).await;
    assert_eq!((first.has_more, first.total), (true, Some(3)));
    assert_eq!(ids(list(with_deleted.clone(), page(2, Some("card-4".into()))).await), ["card-5"]);
    let deleted_only = CardTokenFilter { statuses: vec![CardTokenStatus::Deleted], ..Default::default() };
    assert_eq!(ids(list(deleted_only, page(10, None)).await), ["card-4"]);
    let by_customer = CardTokenFilter {
        customer_id: Some("c2".into()),
        statuses: vec![CardTokenStatus::Active, CardTokenStatus::Inactive],
        ..Default::default()
    };
    assert_eq!(ids(list(by_customer, page(10, None)).await), ["card-5"]);
    let by_relationship = CardTokenFilter { relationship_id: Some("r1".into()), ..Default::default() };
    assert_eq!(ids(list(by_relationship, page(10, None)).await), ["card-1"]);
    assert!(matches!(
        store.list_card_tokens(&other_account(), &CardTokenFilter::default(), &page(10, Some("card-1".into()))).await,
        Err(StoreError::UnknownCursor)
    ));
}

#[tokio::test]
async fn every_mutation_leaves_one_audit_record() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let aid = account();
    store.create_customer(&aid, &new_customer(json!({"customer_id": "c1"}))).await.unwrap();
    store
        .create_customer_token(&aid, "c1", &new_token(json!({"type": "t", "value": "v", "token_id": "t1"})), false)
        .await
        .unwrap();
    store.delete_customer_token(&aid, "c1", "t1", "client", at(5)).await.unwrap();
    store.delete_customer_token(&aid, "c1", "t1", "client", at(6)).await.unwrap(); // unchanged: no record
    store.token_detail(&aid, &tv("t", "v"), Some(&event("e", None, 7)), "client", at(7)).await.unwrap();
    store.token_detail(&aid, &tv("t", "v"), None, "client", at(7)).await.unwrap(); // a read: no record
    store.clear_token_events(&aid, &tv("t", "v"), None, "client", at(8)).await.unwrap();
    store.delete_customer(&aid, "c1", true, "client", at(9)).await.unwrap();
    let card =
        new_card(json!({"id": "k1", "card_brand": "visa", "payment_product_type": "p", "token": "SECRET-PAN-TOKEN"}));
    store.create_card_token(&card, Some(&sealed("fp"))).await.unwrap();
    let imported = new_card(json!({"id": "k2", "card_brand": "visa", "payment_product_type": "p"}));
    store.import_card_tokens(&[(imported.clone(), None), (imported, None)]).await.unwrap();
    store.set_card_token_status(&aid, "k1", CardTokenStatus::Inactive, "admin", at(10)).await.unwrap();
    store.set_card_token_status(&aid, "k1", CardTokenStatus::Inactive, "admin", at(11)).await.unwrap(); // no-op
    let deletion =
        CardTokenDeletion { actor: "admin".into(), reason: None, requestor: DeleteRequestor::Merchant, at: at(12) };
    store.delete_card_token(&aid, "k1", &deletion).await.unwrap();
    store.delete_card_token(&aid, "k1", &deletion).await.unwrap(); // no-op

    let records = store.list_audit(Some(&aid), 0, 100).await.unwrap();
    let actions: Vec<_> = records.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "customer.create",
            "customer_token.create",
            "customer_token.delete",
            "token_event.record",
            "token_events.clear",
            "customer.delete",
            "card_token.create",
            "card_token.import",
            "card_token.status",
            "card_token.delete"
        ]
    );
    let status = &records[8];
    assert_eq!((status.resource_id.as_str(), &status.details), ("k1", &json!({"from": "ACTIVE", "to": "INACTIVE"})));
    assert_eq!(records[9].details, json!({"reason": null, "requestor": "MERCHANT"}));
    assert!(records.iter().all(|r| !r.details.to_string().contains("SECRET")));
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));
    let tail = store.list_audit(None, records[7].seq, 1).await.unwrap();
    assert_eq!(tail, [records[8].clone()]);
    assert!(store.list_audit(Some(&other_account()), 0, 100).await.unwrap().is_empty());
    // The sealed secret never leaves its column in clear.
    let sql = db.sql().await;
    let dump: String = sql.query_one("SELECT string_agg(t::TEXT, ' ') FROM card_tokens t", &[]).await.unwrap().get(0);
    assert!(!dump.contains("SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_on_two_instances_leave_one_live_token() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let stores = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let aid = account();
    stores[0].create_customer(&aid, &new_customer(json!({"customer_id": "c1"}))).await.unwrap();
    stores[1].create_customer(&aid, &new_customer(json!({"customer_id": "c2"}))).await.unwrap();

    // The same token_id for one customer.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = Arc::clone(&stores[i % 2]);
        let aid = aid.clone();
        creates.spawn(async move {
            let token = new_token(json!({"type": "t", "value": format!("v{i}"), "token_id": "same"}));
            store.create_customer_token(&aid, "c1", &token, false).await
        });
    }
    let (mut created, mut conflicts) = (0, 0);
    while let Some(result) = creates.join_next().await {
        match result.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict(message) | StoreError::Duplicate(_, message)) => {
                assert_eq!(message, "a live token with token_id 'same' already exists for this customer");
                conflicts += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created, conflicts), (1, 15));

    // The same type/value for two customers.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..16 {
        let store = Arc::clone(&stores[i % 2]);
        let aid = aid.clone();
        creates.spawn(async move {
            let token = new_token(json!({"type": "shared", "value": "one"}));
            store.create_customer_token(&aid, if i % 2 == 0 { "c1" } else { "c2" }, &token, false).await
        });
    }
    let mut created = 0;
    while let Some(result) = creates.join_next().await {
        match result.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict(message) | StoreError::Duplicate(_, message)) => {
                assert_eq!(message, "a live token with this type and value already belongs to a customer")
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);

    // Concurrent deletes: one deletes, all return the same record.
    let mut deletes = tokio::task::JoinSet::new();
    for i in 0..8 {
        let store = Arc::clone(&stores[i % 2]);
        let aid = aid.clone();
        deletes.spawn(async move {
            store.delete_customer_token(&aid, "c1", "same", &format!("d{i}"), at(i as i64)).await.unwrap()
        });
    }
    let mut results = Vec::new();
    while let Some(result) = deletes.join_next().await {
        results.push(result.unwrap());
    }
    assert!(results.windows(2).all(|w| w[0] == w[1]));

    let sql = db.sql().await;
    let counts: Vec<i64> = sql
        .query(
            "SELECT COUNT(*) FILTER (WHERE token_id = 'same'), COUNT(*) FILTER (WHERE token_type = 'shared' AND deleted_at IS NULL), \
             (SELECT COUNT(*) FROM audit_log WHERE action = 'customer_token.delete') FROM customer_tokens",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .flat_map(|row| [row.get(0), row.get(1), row.get(2)])
        .collect();
    assert_eq!(counts, [1, 1, 1]);
}

/// Waits until `backends` connections to the test database wait for a lock.
async fn wait_for_lock_waiters(sql: &tokio_postgres::Client, backends: i64) {
    for _ in 0..500 {
        let waiting: i64 = sql
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting >= backends {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no connection came to wait for a lock");
}

/// A token create (the one-statement path) takes the customer's row lock before it draws the
/// token's `seq`, and a create that waited for the customer's delete finds no customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_creates_lock_the_customer_before_drawing_seq() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = Arc::new(db.store().await);
    let aid = account();
    let c1 = store.create_customer(&aid, &new_customer(json!({"customer_id": "c1"}))).await.unwrap();
    store.create_customer(&aid, &new_customer(json!({"customer_id": "c2"}))).await.unwrap();
    let (holder, watcher) = (db.sql().await, db.sql().await);
    let seq_of = async |id: &uuid::Uuid| -> i64 {
        let row = watcher.query_one("SELECT seq FROM customer_tokens WHERE id = $1", &[&id.to_string()]).await;
        row.unwrap().get(0)
    };

    // Another transaction holds c1's lock and inserts a token meanwhile: the waiting create's
    // `seq` comes after it, as its commit does.
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT seq FROM customers WHERE customer_id = 'c1' AND deleted_at IS NULL FOR NO KEY UPDATE", &[])
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let (store, aid) = (Arc::clone(&store), aid.clone());
        async move {
            let token = new_token(json!({"type": "t", "value": "late", "token_id": "late"}));
            store.create_customer_token(&aid, "c1", &token, false).await
        }
    });
    wait_for_lock_waiters(&watcher, 1).await;
    let early = uuid::Uuid::new_v4();
    let early_seq: i64 = holder
        .query_one(
            "INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, created_at, \
             created_by, updated_at) SELECT $1, account_id, seq, 'early', 't', 'early', 0, 'sql', 0 FROM customers \
             WHERE customer_id = 'c1' RETURNING seq",
            &[&early.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    holder.batch_execute("COMMIT").await.unwrap();
    let late = waiting.await.unwrap().unwrap();
    assert!(seq_of(&late.id).await > early_seq);
    let listed = store.list_customer_tokens(&aid, "c1", &CustomerTokenFilter::default(), &page(10, None)).await;
    let ids: Vec<_> = listed.unwrap().items.iter().map(|t| t.id).collect();
    assert_eq!(ids, [early, late.id]);

    // A create that waits for the customer's delete finds no live customer: 404, no token, no
    // audit record.
    holder.batch_execute("BEGIN").await.unwrap();
    holder
        .execute("UPDATE customers SET deleted_at = 1, deleted_by = 'sql' WHERE customer_id = 'c2'", &[])
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let (store, aid) = (Arc::clone(&store), aid.clone());
        async move {
            let token = new_token(json!({"type": "t", "value": "orphan", "token_id": "orphan"}));
            store.create_customer_token(&aid, "c2", &token, false).await
        }
    });
    wait_for_lock_waiters(&watcher, 1).await;
    holder.batch_execute("COMMIT").await.unwrap();
    assert!(matches!(waiting.await.unwrap(), Err(StoreError::NotFound("customer"))));
    let counts = watcher
        .query_one(
            "SELECT (SELECT COUNT(*) FROM customer_tokens WHERE token_id = 'orphan'), \
             (SELECT COUNT(*) FROM audit_log WHERE action = 'customer_token.create')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((counts.get::<_, i64>(0), counts.get::<_, i64>(1)), (0, 1));

    // Creates racing a delete with `delete_tokens`: each either lands before the delete (and the
    // delete takes it along, naming it in its audit record) or finds no customer. No live token
    // is left on the deleted customer.
    let mut creates = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (store, aid) = (Arc::clone(&store), aid.clone());
        creates.spawn(async move {
            let token = new_token(json!({"type": "race", "value": format!("v{i}"), "token_id": format!("r{i}")}));
            store.create_customer_token(&aid, "c1", &token, false).await
        });
    }
    tokio::task::yield_now().await;
    store.delete_customer(&aid, "c1", true, "deleter", at(200)).await.unwrap();
    let mut created = Vec::new();
    while let Some(result) = creates.join_next().await {
        match result.unwrap() {
            Ok(token) => created.push(token.id.to_string()),
            Err(StoreError::NotFound("customer")) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    let live: i64 = watcher
        .query_one(
            "SELECT COUNT(*) FROM customer_tokens WHERE customer_seq = (SELECT seq FROM customers WHERE id = $1) \
             AND deleted_at IS NULL",
            &[&c1.id.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
    let records = store.list_audit(Some(&aid), 0, 100).await.unwrap();
    let deletion = records.iter().find(|r| r.action == "customer.delete").expect("the delete's audit record");
    let mut deleted: Vec<String> = serde_json::from_value(deletion.details["deleted_tokens"].clone()).unwrap();
    let mut expected = created.clone();
    expected.extend([early.to_string(), late.id.to_string()]);
    deleted.sort();
    expected.sort();
    assert_eq!(deleted, expected);
    let creates = records.iter().filter(|r| r.action == "customer_token.create").count();
    assert_eq!(creates, created.len() + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_the_database_drops_every_connection() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let store = db.store().await;
    let aid = account();
    store.create_customer(&aid, &new_customer(json!({"customer_id": "c1"}))).await.unwrap();
    // Warm up several pooled connections.
    let warm: Vec<_> = (0..4).map(|_| store.get_customer(&aid, "c1")).collect();
    for call in warm {
        call.await.unwrap();
    }

    for round in 0..3 {
        let admin = connect_plain(&test_postgres::admin_url()).await.unwrap();
        let killed = db.terminate_sessions(&admin).await;
        assert!(killed > 0, "round {round}: no connection was terminated");
        tokio::time::sleep(Duration::from_millis(50)).await;

        let mut recovered = false;
        for attempt in 0..5 {
            let results = [
                store.ping().await.map(|_| ()),
                store.get_customer(&aid, "c1").await.map(|_| ()),
                store.list_customers(&aid, &CustomerFilter::default(), &page(10, None)).await.map(|_| ()),
                store
                    .create_customer(&aid, &new_customer(json!({"customer_id": format!("r{round}-{attempt}")})))
                    .await
                    .map(|_| ()),
            ];
            for result in &results {
                assert!(
                    matches!(result, Ok(()) | Err(StoreError::Unavailable(_))),
                    "after an outage calls succeed or say Unavailable, got {result:?}"
                );
            }
            if results.iter().all(Result::is_ok) {
                recovered = true;
                break;
            }
        }
        assert!(recovered, "round {round}: the pool did not recover");
    }

    // A stretch where the database refuses every connection: calls fail fast as Unavailable,
    // and work again once it accepts connections.
    let admin = connect_plain(&test_postgres::admin_url()).await.unwrap();
    let name = &db.name;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let result = store.get_customer(&aid, "c1").await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
    admin.batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).await.unwrap();
    assert!(store.get_customer(&aid, "c1").await.unwrap().is_some());
}

#[tokio::test]
async fn pool_exhaustion_is_unavailable_not_a_hang() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let options = StoreOptions { pool_size: 1, acquire_timeout: Duration::from_millis(200) };
    let store = PostgresStore::connect(&db.url, &options).await.unwrap();
    let held = store.pool.get().await.unwrap();
    assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
    drop(held);
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_imports_and_event_writers_never_fail() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let stores = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let aid = account();

    // Overlapping batches in opposite orders: no deadlock, each id imported exactly once.
    let cards: Vec<_> = (0..20)
        .map(|i| {
            let card = new_card(json!({"id": format!("k{i}"), "card_brand": "visa", "payment_product_type": "p"}));
            (card, Some(sealed(&format!("fp{i}"))))
        })
        .collect();
    let mut imports = tokio::task::JoinSet::new();
    for i in 0..6 {
        let store = Arc::clone(&stores[i % 2]);
        let mut batch = cards.clone();
        if i % 2 == 1 {
            batch.reverse();
        }
        imports.spawn(async move { store.import_card_tokens(&batch).await });
    }
    let mut imported = 0;
    while let Some(result) = imports.join_next().await {
        let outcomes = result.unwrap().expect("imports never fail on each other");
        imported += outcomes.iter().filter(|o| **o == ImportOutcome::Imported).count();
    }
    assert_eq!(imported, 20);

    // Recording and clearing events of one type/value at once, on two instances.
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..24 {
        let store = Arc::clone(&stores[i % 2]);
        let aid = aid.clone();
        writers.spawn(async move {
            let token = tv("t", "v");
            match i % 3 {
                0 => store.clear_token_events(&aid, &token, None, "c", at(i as i64)).await,
                1 => {
                    let deletion = event("deleted", Some("DELETED"), i as i64);
                    store.clear_token_events(&aid, &token, Some(&deletion), "c", at(i as i64)).await
                }
                _ => {
                    let recorded = event("e", None, i as i64);
                    store.token_detail(&aid, &token, Some(&recorded), "c", at(i as i64)).await.map(|_| ())
                }
            }
        });
    }
    while let Some(result) = writers.join_next().await {
        result.unwrap().expect("event writers never fail on each other");
    }
}

#[tokio::test]
async fn expired_idempotency_keys_are_purged() {
    let Some(db) = TestDb::create().await else { return };
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    crate::store::conformance::idempotency_purge_leaves_three_keys(&store).await;
    let left: i64 = db.sql().await.query_one("SELECT COUNT(*) FROM idempotency_keys", &[]).await.unwrap().get(0);
    assert_eq!(left, 3);
}

/// An import that failed by losing its connection is still undone: `abandon_import` connects
/// anew, empties the tables and puts the identity sequences back where they stood.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_undone_after_its_connection_was_lost() {
    use crate::store::dataset::{self, Dataset, Row};
    let Some(db) = TestDb::create().await else {
        return;
    };
    let customers = dataset::table("customers").unwrap();
    let row = |seq: i64| -> Row {
        let row = json!({"seq": seq, "id": format!("cus-{seq}"), "account_id": "T00000001", "customer_id": format!("c{seq}"),
                         "customer_type": "individual", "attributes": "{}", "created_at": 1, "created_by": "t", "updated_at": 1});
        row.as_object().unwrap().clone()
    };
    // Connecting migrates; then the sequence is moved, as by 7 customers created and deleted.
    let mut dataset = PostgresDataset::connect(&db.url).await.unwrap();
    let sql = db.sql().await;
    let name: String = sql.query_one("SELECT pg_get_serial_sequence('customers', 'seq')", &[]).await.unwrap().get(0);
    let sequence = format!("SELECT last_value, is_called FROM {name}");
    let sequence = sequence.as_str();
    let state = |row: tokio_postgres::Row| (row.get::<_, i64>(0), row.get::<_, bool>(1));
    sql.execute("SELECT setval($1::TEXT::REGCLASS, 7)", &[&name]).await.unwrap();

    dataset.import_rows(customers, (1..=20).map(row).collect()).await.unwrap();
    assert_eq!(state(sql.query_one(sequence, &[]).await.unwrap()), (20, true));
    let killed = db.terminate_sessions(&sql).await;
    assert_eq!(killed, 1, "the dataset's one connection");
    assert!(dataset.import_rows(customers, (21..=30).map(row).collect()).await.is_err());

    let tables: Vec<_> = dataset::TABLES.iter().collect();
    dataset.abandon_import(&tables).await.expect("undone over a new connection");
    assert_eq!(dataset.count_rows(customers).await.unwrap(), Some(0));
    assert_eq!(state(sql.query_one(sequence, &[]).await.unwrap()), (7, true));
}

/// PostgreSQL's "insufficient resources" errors (SQLSTATE class 53: `53100 disk_full`,
/// `53200 out_of_memory`, `53300 too_many_connections`, `53400 configuration_limit_exceeded`)
/// are worth retrying later: `Exhausted` (503 with `Retry-After: 30`, see `http::error`) or, for
/// too many connections, `Unavailable` (503, retry shortly); never `Internal` (500). Each is
/// raised for real by the server, so the mapping sees the same error a full disk would give.
#[tokio::test]
async fn insufficient_resources_are_exhausted_or_unavailable() {
    let Some(client) = admin_or_skip("PostgreSQL SQLSTATE mapping test").await else { return };
    let raise =
        |code: &str| format!("DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '{code}'; END $$");
    for (code, exhausted) in [("53100", true), ("53200", true), ("53300", false), ("53400", true)] {
        let error = client.batch_execute(&raise(code)).await.expect_err("the DO block raises");
        assert_eq!(error.code().map(|c| c.code()), Some(code));
        match StoreError::from(error) {
            StoreError::Exhausted(_) => assert!(exhausted, "SQLSTATE {code}"),
            StoreError::Unavailable(_) => assert!(!exhausted, "SQLSTATE {code}"),
            other => panic!("SQLSTATE {code} became {other:?}"),
        }
    }
    // Other errors keep their meaning.
    let error = client.batch_execute(&raise("42P01")).await.expect_err("the DO block raises");
    assert!(matches!(StoreError::from(error), StoreError::Internal(_)));
}

/// Migration 9 erases the secrets of card tokens deleted before deletes erased them, and only
/// theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_9_shreds_the_secrets_of_tokens_deleted_before() {
    let Some(db) = TestDb::create().await else { return };
    let store = db.store().await;
    for id in ["deleted-before", "live"] {
        let card = new_card(json!({"id": id, "card_brand": "visa", "payment_product_type": "x"}));
        store.create_card_token(&card, Some(&sealed(&format!("fp-{id}")))).await.unwrap();
    }
    drop(store);
    // A delete as it was before version 9, and the schema as it was then.
    let sql = db.sql().await;
    sql.batch_execute(
        "UPDATE card_tokens SET status = 'DELETED' WHERE id = 'deleted-before';
         DELETE FROM schema_migrations WHERE version = 9;",
    )
    .await
    .unwrap();
    migrate(&db.url).await.unwrap();
    let secrets: Vec<(String, Option<Vec<u8>>, Option<String>)> = sql
        .query("SELECT id, token_sealed, token_fingerprint FROM card_tokens ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        secrets,
        [
            ("deleted-before".to_owned(), None, None),
            ("live".to_owned(), Some(vec![1, 2, 3, 7]), Some("fp-live".to_owned()))
        ]
    );
}
