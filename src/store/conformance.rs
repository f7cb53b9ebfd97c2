//! Behaviour every [`Store`] must show, written against the trait so each backend runs the same
//! checks: a backend's tests invoke [`conformance_suite!`] with a function that opens a fresh,
//! empty store (and returns a guard that keeps its resources alive).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{
    CardTokenDeletion, DataKeyRecord, IdempotencyScope, IdempotencyStart, IdempotentRequest, ImportOutcome, Resealed,
    ResetCounts, ResetParts, SealedColumn, SealedToken, StoreError, StoredResponse,
};
use crate::domain::card_token::{CardToken, CardTokenFilter, CardTokenStatus, DeleteRequestor};
use crate::domain::client::{ClientRecord, SigningKeyRecord};
use crate::domain::clock::AccountClock;
use crate::domain::customer::{Customer, CustomerFilter, CustomerSearch, CustomerUpdate, NewCustomer};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::fault::FaultRule;
use crate::domain::token_event::{TokenEvent, TokenTypeValue};
use crate::domain::webhook::{
    card_token_event_body, ping_event_body, DeliveryAttempt, DeliveryResult, DeliveryState, HookSubscription,
    WebhookDelivery, CARD_TOKEN_ADD, CARD_TOKEN_DELETE, CARD_TOKEN_UPDATE, EVENTS, PING,
};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::prelude::*;

/// The filters the backends' query-plan tests list with: each shape of SQL a list builds (the
/// data behind them is a customer `c1` with token type `sha1:email` and value `v1`, a card
/// relationship `r1`).
pub(crate) fn customer_token_filters() -> [CustomerTokenFilter; 2] {
    [
        CustomerTokenFilter { token_type: None, include_deleted: true },
        CustomerTokenFilter { token_type: Some("sha1:email".into()), include_deleted: false },
    ]
}

/// See [`customer_token_filters`].
pub(crate) fn customer_filters() -> [CustomerFilter; 3] {
    [
        CustomerFilter::default(),
        CustomerFilter {
            token: Some(("sha1:email".into(), "v1".into())),
            email_prefix: Some("ada".into()),
            phone_number_prefix: Some("+47".into()),
            customer_type: Some("customer".into()),
            all_types: false,
            include_deleted: true,
            ..CustomerFilter::default()
        },
        // aid_customers_get's other filters: `since_datetime` pages in `updated_at` order.
        CustomerFilter {
            search: Some(crate::domain::customer::CustomerSearch::new("Ada")),
            since: Some(Timestamp::from_millis(1)),
            attributes: vec![
                crate::domain::customer::AttributeFilter { key: "tier".into(), value: Some("gold".into()) },
                crate::domain::customer::AttributeFilter { key: "vip".into(), value: None },
            ],
            ..CustomerFilter::default()
        },
    ]
}

/// See [`customer_token_filters`].
pub(crate) fn card_token_filters() -> [CardTokenFilter; 3] {
    [
        CardTokenFilter { customer_id: None, relationship_id: None, statuses: vec![], include_deleted: false },
        CardTokenFilter {
            customer_id: Some("c1".into()),
            relationship_id: None,
            statuses: vec![CardTokenStatus::Active],
            include_deleted: false,
        },
        CardTokenFilter {
            customer_id: None,
            relationship_id: Some("r1".into()),
            statuses: vec![],
            include_deleted: true,
        },
    ]
}

/// Expands to one `#[tokio::test]` per conformance check. `$open` is an async fn returning
/// `Option<(Arc<dyn Store>, impl Sized)>`: a fresh store and whatever must outlive it, or `None`
/// when the backend is not available here (the test is then skipped with a notice).
macro_rules! conformance_suite {
    ($open:path) => {
        $crate::store::conformance::conformance_suite!(@each $open;
            ping_answers,
            clients_and_signing_keys,
            clients_list_revoke_and_rotate,
            signing_keys_are_replaced_only_over_what_they_held,
            customers_create_get_and_conflicts,
            customers_paging_and_filters,
            customer_delete_and_delete_tokens,
            customer_update_change_id_and_settings,
            customer_tokens_create_and_conflicts,
            customer_tokens_paging_and_filters,
            customer_token_delete_is_idempotent,
            token_detail_and_events,
            token_events_list_and_since,
            token_events_clear,
            delete_token_events_on_create,
            card_tokens_create_get_and_conflicts,
            card_tokens_list_filters_and_paging,
            card_tokens_import_is_idempotent,
            card_token_delete_and_status,
            audit_trail,
            audit_record_details,
            hook_subscriptions_crud,
            webhook_events_are_enqueued_with_card_token_changes,
            webhook_claims_lease_deliveries,
            webhook_completions,
            webhook_outbox_pruning,
            webhook_delivery_history,
            reset_wipes_one_account_only,
            fault_rules_count_matches_atomically,
            journal_lists_filters_and_prunes,
            account_clocks_are_kept_audited_and_shift_the_outbox,
            stats_count_pending_deliveries,
            idempotency_claim_replay_and_mismatch,
            idempotency_keys_are_scoped_to_the_caller,
            idempotency_abandon_and_lease_takeover,
            idempotency_keys_expire,
            reset_forgets_finished_idempotency_keys,
            data_keys_and_sealed_value_walks,
        );
    };
    (@each $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((store, _guard)) = $open().await else { return };
                $crate::store::conformance::$name(store).await;
            }
        )*
    };
}
pub(crate) use conformance_suite;

// ---- fixtures -------------------------------------------------------------------------------

fn account(raw: &str) -> AccountId {
    AccountId::parse("aid", raw).unwrap()
}

fn a() -> AccountId {
    account("T00000001")
}

fn b() -> AccountId {
    account("T00000002")
}

fn t(millis: i64) -> Timestamp {
    Timestamp::from_millis(millis)
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

fn new_customer(body: Value) -> NewCustomer {
    NewCustomer::from_body(object(body), "client", t(1000)).unwrap()
}

async fn customer(store: &Arc<dyn Store>, account: &AccountId, body: Value) -> Customer {
    store.create_customer(account, &new_customer(body)).await.unwrap()
}

fn new_token(token_id: &str, token_type: &str, value: &str) -> NewCustomerToken {
    NewCustomerToken::from_body(
        &object(json!({"token_id": token_id, "type": token_type, "value": value})),
        "client",
        t(1000),
    )
    .unwrap()
}

async fn token(
    store: &Arc<dyn Store>,
    account: &AccountId,
    customer_id: &str,
    token_id: &str,
    token_type: &str,
    value: &str,
) -> CustomerToken {
    store.create_customer_token(account, customer_id, &new_token(token_id, token_type, value), false).await.unwrap()
}

fn tv(token_type: &str, value: &str) -> TokenTypeValue {
    TokenTypeValue { token_type: token_type.into(), value: value.into() }
}

fn event(text: &str, status: Option<&str>, at: i64) -> TokenEvent {
    TokenEvent {
        event: text.into(),
        status: status.map(str::to_owned),
        metadata: None,
        created_at: t(at),
        expires_at: None,
    }
}

fn card(account: &AccountId, body: Value) -> CardToken {
    let mut body = object(body);
    body.entry("card_brand").or_insert(json!("visa"));
    body.entry("payment_product_type").or_insert(json!("bambora.creditcard"));
    CardToken::from_create_body(&body, account, "client", t(1000)).unwrap()
}

fn sealed(fingerprint: &str) -> SealedToken {
    SealedToken { ciphertext: fingerprint.as_bytes().to_vec(), fingerprint: fingerprint.into() }
}

fn page(limit: u32, after: Option<&str>) -> PageRequest {
    PageRequest { limit, starting_after: after.map(str::to_owned), include_total: false }
}

fn totals(limit: u32) -> PageRequest {
    PageRequest { limit, starting_after: None, include_total: true }
}

fn customer_ids(page: &Page<Customer>) -> Vec<&str> {
    page.items.iter().map(|c| c.customer_id.as_str()).collect()
}

fn token_ids(page: &Page<CustomerToken>) -> Vec<&str> {
    page.items.iter().map(|t| t.token_id.as_str()).collect()
}

fn conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) -> String {
    match result {
        Err(StoreError::Conflict(message) | StoreError::Duplicate(_, message)) => message,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn not_found<T: std::fmt::Debug>(result: Result<T, StoreError>) -> &'static str {
    match result {
        Err(StoreError::NotFound(what)) => what,
        other => panic!("expected NotFound, got {other:?}"),
    }
}

fn unknown_cursor<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    assert!(matches!(result, Err(StoreError::UnknownCursor)), "expected UnknownCursor, got {result:?}");
}

async fn audit_actions(store: &Arc<dyn Store>, account: &AccountId) -> Vec<String> {
    store.list_audit(Some(account), 0, 1000).await.unwrap().into_iter().map(|r| r.action).collect()
}

// ---- checks ---------------------------------------------------------------------------------

pub async fn ping_answers(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

pub async fn clients_and_signing_keys(store: Arc<dyn Store>) {
    assert_eq!(store.find_client("nobody").await.unwrap(), None);
    let client = ClientRecord {
        client_id: "c1".into(),
        account_id: a(),
        secret_hash: "$argon2id$first".into(),
        scopes: vec!["admin:customers".into(), "read:checkout".into()],
        created_at: t(1000),
        secret_generation: 1,
    };
    store.upsert_client(&client).await.unwrap();
    assert_eq!(store.find_client("c1").await.unwrap(), Some(client.clone()));
    let replaced = ClientRecord {
        secret_hash: "$argon2id$second".into(),
        scopes: vec!["admin:checkout".into()],
        created_at: t(9000),
        ..client
    };
    store.upsert_client(&replaced).await.unwrap();
    let found = store.find_client("c1").await.unwrap().unwrap();
    assert_eq!(found.secret_hash, "$argon2id$second");
    assert_eq!(found.scopes, ["admin:checkout"]);
    assert_eq!(found.account_id, a());

    assert_eq!(store.signing_keys().await.unwrap(), []);
    for (kid, at) in [("k1", 1000), ("k3", 3000), ("k2", 2000)] {
        let key =
            SigningKeyRecord { kid: kid.into(), private_key: vec![1, 2], public_key: vec![3; 32], created_at: t(at) };
        store.insert_signing_key(&key).await.unwrap();
    }
    let keys = store.signing_keys().await.unwrap();
    assert_eq!(keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(), ["k3", "k2", "k1"]);
    assert_eq!(keys[0].private_key, [1, 2]);
    assert_eq!(keys[0].public_key, [3; 32]);
}

pub async fn clients_list_revoke_and_rotate(store: Arc<dyn Store>) {
    let client = |id: &str, account: AccountId, scopes: &[&str]| ClientRecord {
        client_id: id.into(),
        account_id: account,
        secret_hash: format!("$argon2id${id}"),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: t(1000),
        secret_generation: 1,
    };
    let (c2, c1, c3) =
        (client("c2", a(), &["admin:customers"]), client("c1", a(), &["read:checkout"]), client("c3", b(), &["x"]));
    for record in [&c2, &c1, &c3] {
        store.upsert_client(record).await.unwrap();
    }
    assert_eq!(store.list_clients(None).await.unwrap(), [c1.clone(), c2.clone(), c3.clone()]);
    assert_eq!(store.list_clients(Some(&b())).await.unwrap(), std::slice::from_ref(&c3));

    let rotated = store.rotate_client_secret("c1", "$argon2id$new", "cli", t(2000)).await.unwrap();
    assert_eq!(rotated, ClientRecord { secret_hash: "$argon2id$new".into(), secret_generation: 2, ..c1.clone() });
    assert_eq!(store.find_client("c1").await.unwrap(), Some(rotated.clone()));
    let again = store.rotate_client_secret("c1", "$argon2id$newer", "cli", t(2100)).await.unwrap();
    assert_eq!(again.secret_generation, 3);
    // Re-storing a client (serve --dev) keeps its generation.
    store.upsert_client(&c1).await.unwrap();
    assert_eq!(store.find_client("c1").await.unwrap().unwrap().secret_generation, 3);

    assert_eq!(store.revoke_client("c2", "cli", t(3000)).await.unwrap(), c2);
    assert_eq!(store.find_client("c2").await.unwrap(), None);
    assert_eq!(store.list_clients(Some(&a())).await.unwrap().len(), 1);
    assert!(matches!(store.revoke_client("c2", "cli", t(3100)).await, Err(StoreError::NotFound("client"))));
    assert!(matches!(
        store.rotate_client_secret("c2", "$argon2id$x", "cli", t(3200)).await,
        Err(StoreError::NotFound("client"))
    ));

    let trail: Vec<_> = store
        .list_audit(Some(&a()), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.at, r.actor, r.action, r.resource_type, r.resource_id, r.details))
        .collect();
    let record = |at, action: &str, id: &str, details| {
        (t(at), "cli".to_owned(), action.to_owned(), "client".to_owned(), id.to_owned(), details)
    };
    assert_eq!(
        trail,
        [
            record(2000, "client.rotate_secret", "c1", json!({"secret_generation": 2})),
            record(2100, "client.rotate_secret", "c1", json!({"secret_generation": 3})),
            record(3000, "client.revoke", "c2", json!({"scopes": ["admin:customers"]})),
        ]
    );
    let trail = serde_json::to_string(&store.list_audit(None, 0, 100).await.unwrap()).unwrap();
    assert!(!trail.contains("argon2"), "no secret hash in the trail: {trail}");
}

pub async fn signing_keys_are_replaced_only_over_what_they_held(store: Arc<dyn Store>) {
    let key =
        SigningKeyRecord { kid: "k1".into(), private_key: vec![0x30, 1], public_key: vec![3; 32], created_at: t(1) };
    store.insert_signing_key(&key).await.unwrap();
    assert!(!store.replace_signing_key("k1", &[0x30, 9], &[3, 3]).await.unwrap(), "not what the row holds");
    assert!(!store.replace_signing_key("k9", &[0x30, 1], &[3, 3]).await.unwrap(), "no such key");
    assert_eq!(store.signing_keys().await.unwrap()[0].private_key, [0x30, 1]);
    assert!(store.replace_signing_key("k1", &[0x30, 1], &[3, 3]).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap(), [SigningKeyRecord { private_key: vec![3, 3], ..key.clone() }]);
    // A second instance sealing the same clear key finds it sealed already.
    assert!(!store.replace_signing_key("k1", &[0x30, 1], &[3, 4]).await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap()[0].private_key, [3, 3]);
}

pub async fn customers_create_get_and_conflicts(store: Arc<dyn Store>) {
    let mut new = new_customer(json!({"customer_id": "c1", "email": "Ada@Example.com", "phone_number": "+4712345678"}));
    // Attributes come back in the order they were given, nested objects included.
    let attributes = r#"{"zeta":1,"last_name":"Lovelace","email":"Ada@Example.com","phone_number":"+4712345678","type":"customer","alpha":{"z":1,"a":[2,1]}}"#;
    new.attributes = serde_json::from_str(attributes).unwrap();
    let created = store.create_customer(&a(), &new).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.customer_id, "c1");
    assert_eq!(serde_json::to_string(&created.attributes).unwrap(), attributes);
    assert_eq!((created.created_at, created.updated_at, created.created_by.as_str()), (t(1000), t(1000), "client"));
    assert_eq!((created.deleted_at, created.deleted_by.as_deref()), (None, None));
    let got = store.get_customer(&a(), "c1").await.unwrap().unwrap();
    assert_eq!(got, created);
    assert_eq!(serde_json::to_string(&got.attributes).unwrap(), attributes);
    assert_eq!(store.get_customer(&a(), "c2").await.unwrap(), None);
    assert_eq!(store.get_customer(&b(), "c1").await.unwrap(), None);

    let duplicate = store.create_customer(&a(), &new_customer(json!({"customer_id": "c1"}))).await;
    assert_eq!(conflict(duplicate), "a customer with customer_id 'c1' already exists");
    let email =
        store.create_customer(&a(), &new_customer(json!({"customer_id": "c2", "email": "ADA@example.COM"}))).await;
    assert_eq!(conflict(email), "a customer with this email already exists");
    let phone =
        store.create_customer(&a(), &new_customer(json!({"customer_id": "c2", "phone_number": "+4712345678"}))).await;
    assert_eq!(conflict(phone), "a customer with this phone_number already exists");

    // The e-mail is unique per customer type; nothing is shared across accounts.
    customer(&store, &a(), json!({"customer_id": "c2", "type": "company", "email": "ada@example.com"})).await;
    customer(&store, &b(), json!({"customer_id": "c1", "email": "ada@example.com", "phone_number": "+4712345678"}))
        .await;

    // A deleted customer frees its customer_id, e-mail and phone number.
    store.delete_customer(&a(), "c1", false, "admin", t(2000)).await.unwrap();
    let again =
        customer(&store, &a(), json!({"customer_id": "c1", "email": "ada@example.com", "phone_number": "+4712345678"}))
            .await;
    assert_ne!(again.id, created.id);
    assert_eq!(store.get_customer(&a(), "c1").await.unwrap().unwrap().id, again.id);
}

pub async fn customers_paging_and_filters(store: Arc<dyn Store>) {
    // c00..c24; every fifth one (c04, c09, …) is a contact, hidden by default.
    for i in 0..25 {
        let kind = if i % 5 == 4 { "contact" } else { "customer" };
        let phone = if i < 3 { format!("+4790{i:06}") } else { format!("+4680{i:06}") };
        customer(&store, &a(), json!({"customer_id": format!("c{i:02}"), "type": kind, "email": format!("user{i:02}@example.com"), "phone_number": phone})).await;
    }
    let foreign = customer(&store, &b(), json!({"customer_id": "c00"})).await;

    let all = CustomerFilter::default();
    let first = store.list_customers(&a(), &all, &page(10, None)).await.unwrap();
    assert_eq!(customer_ids(&first), ["c00", "c01", "c02", "c03", "c05", "c06", "c07", "c08", "c10", "c11"]);
    assert!(first.has_more);
    assert_eq!(first.total, None);
    let cursor = first.items.last().unwrap().id.to_string();
    let second = store.list_customers(&a(), &all, &page(10, Some(&cursor))).await.unwrap();
    assert_eq!(customer_ids(&second), ["c12", "c13", "c15", "c16", "c17", "c18", "c20", "c21", "c22", "c23"]);
    assert!(!second.has_more);
    assert_eq!(store.list_customers(&a(), &all, &totals(1)).await.unwrap().total, Some(20));

    // A cursor is any item of the account, even one the filters leave out.
    let c04 =
        store.list_customers(&a(), &CustomerFilter { all_types: true, ..all.clone() }, &page(5, None)).await.unwrap();
    assert_eq!(customer_ids(&c04), ["c00", "c01", "c02", "c03", "c04"]);
    let after_contact = store.list_customers(&a(), &all, &page(3, Some(&c04.items[4].id.to_string()))).await.unwrap();
    assert_eq!(customer_ids(&after_contact), ["c05", "c06", "c07"]);
    assert!(after_contact.has_more);
    unknown_cursor(store.list_customers(&a(), &all, &page(3, Some(&Uuid::new_v4().to_string()))).await);
    unknown_cursor(store.list_customers(&a(), &all, &page(3, Some(&foreign.id.to_string()))).await);
    unknown_cursor(store.list_customers(&a(), &all, &page(3, Some("not-an-id"))).await);

    let all_types = CustomerFilter { all_types: true, ..all.clone() };
    assert_eq!(store.list_customers(&a(), &all_types, &totals(100)).await.unwrap().total, Some(25));
    let contacts = CustomerFilter { customer_type: Some("contact".into()), ..all.clone() };
    let listed = store.list_customers(&a(), &contacts, &totals(2)).await.unwrap();
    assert_eq!(customer_ids(&listed), ["c04", "c09"]);
    assert_eq!((listed.has_more, listed.total), (true, Some(5)));

    let email = CustomerFilter { email_prefix: Some("user1".into()), ..all.clone() };
    let listed = store.list_customers(&a(), &email, &totals(100)).await.unwrap();
    assert_eq!(customer_ids(&listed), ["c10", "c11", "c12", "c13", "c15", "c16", "c17", "c18"]);
    assert_eq!(listed.total, Some(8));
    let phone = CustomerFilter { phone_number_prefix: Some("+4790".into()), ..all.clone() };
    assert_eq!(
        customer_ids(&store.list_customers(&a(), &phone, &page(100, None)).await.unwrap()),
        ["c00", "c01", "c02"]
    );

    // LIKE wildcards in a prefix match only themselves.
    customer(&store, &b(), json!({"customer_id": "u1", "email": "a_b@x.com"})).await;
    customer(&store, &b(), json!({"customer_id": "u2", "email": "axb@x.com"})).await;
    customer(&store, &b(), json!({"customer_id": "u3", "email": "p%q@x.com"})).await;
    customer(&store, &b(), json!({"customer_id": "u4", "email": "pzq@x.com"})).await;
    for (prefix, expected) in [("a_", "u1"), ("p%", "u3")] {
        let filter = CustomerFilter { email_prefix: Some(prefix.into()), ..all.clone() };
        assert_eq!(customer_ids(&store.list_customers(&b(), &filter, &page(10, None)).await.unwrap()), [expected]);
    }

    // By a live token.
    token(&store, &a(), "c07", "t1", "sha1:email", "v1").await;
    token(&store, &a(), "c08", "t1", "sha1:email", "v2").await;
    let by_token = CustomerFilter { token: Some(("sha1:email".into(), "v1".into())), ..all.clone() };
    assert_eq!(customer_ids(&store.list_customers(&a(), &by_token, &totals(10)).await.unwrap()), ["c07"]);
    assert_eq!(
        customer_ids(&store.list_customers(&b(), &by_token, &page(10, None)).await.unwrap()),
        Vec::<&str>::new()
    );
    store.delete_customer_token(&a(), "c07", "t1", "admin", t(2000)).await.unwrap();
    assert_eq!(store.list_customers(&a(), &by_token, &totals(10)).await.unwrap().total, Some(0));

    // Deleted customers only on request.
    store.delete_customer(&a(), "c01", false, "admin", t(3000)).await.unwrap();
    let listed = store.list_customers(&a(), &all, &totals(3)).await.unwrap();
    assert_eq!((customer_ids(&listed), listed.total), (vec!["c00", "c02", "c03"], Some(19)));
    let with_deleted = CustomerFilter { include_deleted: true, ..all.clone() };
    let listed = store.list_customers(&a(), &with_deleted, &totals(3)).await.unwrap();
    assert_eq!((customer_ids(&listed), listed.total), (vec!["c00", "c01", "c02"], Some(20)));
    assert_eq!(listed.items[1].deleted_at, Some(t(3000)));
    // CustomerResponse requires `type`: the one attribute a deleted customer keeps.
    assert_eq!(listed.items[1].attributes, json!({"type": "customer"}).as_object().unwrap().clone());
}

pub async fn customer_delete_and_delete_tokens(store: Arc<dyn Store>) {
    let keep = customer(&store, &a(), json!({"customer_id": "keep", "email": "k@x.com", "first_name": "K"})).await;
    token(&store, &a(), "keep", "t1", "sha1:email", "kept").await;
    let drop = customer(&store, &a(), json!({"customer_id": "drop"})).await;
    token(&store, &a(), "drop", "t1", "sha1:email", "dropped-1").await;
    token(&store, &a(), "drop", "t2", "sha1:email", "dropped-2").await;
    let earlier = store.delete_customer_token(&a(), "drop", "t2", "alice", t(1500)).await.unwrap();

    assert_eq!(not_found(store.delete_customer(&a(), "nobody", false, "admin", t(2000)).await), "customer");
    assert_eq!(not_found(store.delete_customer(&b(), "keep", false, "admin", t(2000)).await), "customer");

    let deleted = store.delete_customer(&a(), "keep", false, "admin", t(2000)).await.unwrap();
    let expected = Customer {
        id: keep.id,
        customer_id: "keep".into(),
        attributes: json!({"type": "customer"}).as_object().unwrap().clone(),
        created_at: t(1000),
        created_by: "client".into(),
        updated_at: t(2000),
        deleted_at: Some(t(2000)),
        deleted_by: Some("admin".into()),
    };
    assert_eq!(deleted, expected);
    assert_eq!(store.get_customer(&a(), "keep").await.unwrap(), None);
    assert_eq!(not_found(store.delete_customer(&a(), "keep", false, "admin", t(3000)).await), "customer");
    assert_eq!(
        not_found(store.list_customer_tokens(&a(), "keep", &CustomerTokenFilter::default(), &page(10, None)).await),
        "customer"
    );
    let listed = store
        .list_customers(&a(), &CustomerFilter { include_deleted: true, ..Default::default() }, &page(10, None))
        .await
        .unwrap();
    assert_eq!(listed.items[0], expected);

    // Without delete_tokens its token stays live and keeps its type/value taken.
    let other = customer(&store, &a(), json!({"customer_id": "other"})).await;
    let taken = store.create_customer_token(&a(), "other", &new_token("x", "sha1:email", "kept"), false).await;
    assert_eq!(conflict(taken), "a live token with this type and value already belongs to a customer");
    let detail = store.token_detail(&a(), &tv("sha1:email", "kept"), None, "client", t(3000)).await.unwrap();
    assert!(detail.token.is_some_and(|t| !t.is_deleted()));
    assert_eq!(detail.customer, None);

    // With delete_tokens its live tokens are deleted too; earlier deletions are untouched.
    let deleted = store.delete_customer(&a(), "drop", true, "bob", t(4000)).await.unwrap();
    assert_eq!((deleted.id, deleted.deleted_at), (drop.id, Some(t(4000))));
    // Both type/values are free again, so "drop" holds no live token any more.
    token(&store, &a(), "other", "t1", "sha1:email", "dropped-1").await;
    token(&store, &a(), "other", "t2", "sha1:email", "dropped-2").await;
    let records = store.list_audit(Some(&a()), 0, 1000).await.unwrap();
    let delete = records.iter().rfind(|r| r.action == "customer.delete").unwrap();
    assert_eq!(delete.resource_id, drop.id.to_string());
    assert_eq!(delete.actor, "bob");
    assert_eq!(delete.details["deleted_tokens"].as_array().unwrap().len(), 1);
    assert_ne!(delete.details["deleted_tokens"][0], json!(earlier.id.to_string()));
    assert_eq!(earlier.deleted_by.as_deref(), Some("alice"));
    assert_eq!(other.customer_id, "other");
}

/// aid_customers_cid_put, aid_customers_cid_change_customer_id_post and the customer settings:
/// the derived columns follow an update (search finds the new name), auto tokens are added and
/// retired in the customer's transaction (one whose type/value is taken is left out), tokens
/// follow a new customer_id.
pub async fn customer_update_change_id_and_settings(store: Arc<dyn Store>) {
    assert_eq!(store.customer_settings(&a()).await.unwrap(), None);
    let settings = object(json!({"users": {"head": {"enabled": true}}, "custom": [1]}));
    store.put_customer_settings(&a(), &settings, "admin", t(1500)).await.unwrap();
    assert_eq!(store.customer_settings(&a()).await.unwrap(), Some(settings.clone()));
    assert_eq!(store.customer_settings(&b()).await.unwrap(), None);

    token(
        &store,
        &a(),
        &customer(&store, &a(), json!({"customer_id": "other"})).await.customer_id,
        "x",
        "auto",
        "taken",
    )
    .await;
    let mut new = new_customer(json!({"customer_id": "c1", "first_name": "Ada", "email": "ada@example.com"}));
    new.auto_tokens = vec![new_token("auto:1", "auto", "v1"), new_token("auto:2", "auto", "taken")];
    customer(&store, &a(), json!({"customer_id": "c2", "phone_number": "+4712345678"})).await;
    store.create_customer(&a(), &new).await.unwrap();
    let tokens =
        store.list_customer_tokens(&a(), "c1", &CustomerTokenFilter::default(), &page(10, None)).await.unwrap();
    assert_eq!(token_ids(&tokens), ["auto:1"]);

    let mut update = CustomerUpdate::from_body(
        object(json!({"first_name": null, "last_name": "Lovelace", "metadata": {"k": 1}})),
        "c1",
        "editor",
        t(2000),
    )
    .unwrap();
    update.retired_auto_tokens = vec!["auto:1".into()];
    update.auto_tokens = vec![new_token("auto:3", "auto", "v3")];
    let updated = store.update_customer(&a(), "c1", &update).await.unwrap();
    assert_eq!(
        serde_json::to_string(&updated.attributes).unwrap(),
        r#"{"email":"ada@example.com","type":"customer","last_name":"Lovelace","metadata":{"k":1}}"#
    );
    assert_eq!((updated.created_at, updated.updated_at), (t(1000), t(2000)));
    assert_eq!(store.get_customer(&a(), "c1").await.unwrap().unwrap(), updated);
    let tokens =
        store.list_customer_tokens(&a(), "c1", &CustomerTokenFilter::default(), &page(10, None)).await.unwrap();
    let states: Vec<_> = tokens.items.iter().map(|t| (t.token_id.as_str(), t.deleted_by.as_deref())).collect();
    assert_eq!(states, [("auto:1", Some("editor")), ("auto:3", None)]);
    let search = |term: &str| CustomerFilter { search: Some(CustomerSearch::new(term)), ..CustomerFilter::default() };
    let found = store.list_customers(&a(), &search("LOVE"), &page(10, None)).await.unwrap();
    assert_eq!(customer_ids(&found), ["c1"]);
    assert!(store.list_customers(&a(), &search("ada l"), &page(10, None)).await.unwrap().items.is_empty());
    let since = CustomerFilter { since: Some(t(2000)), all_types: true, ..CustomerFilter::default() };
    assert_eq!(customer_ids(&store.list_customers(&a(), &since, &page(10, None)).await.unwrap()), ["c1"]);

    let clash = CustomerUpdate::from_body(object(json!({"phone_number": "+4712345678"})), "c1", "x", t(2500)).unwrap();
    assert_eq!(
        conflict(store.update_customer(&a(), "c1", &clash).await),
        "a customer with this phone_number already exists"
    );
    assert_eq!(not_found(store.update_customer(&a(), "nobody", &clash).await), "customer");

    let changed = store.change_customer_id(&a(), "c1", "c9", "admin", t(3000)).await.unwrap();
    assert_eq!((changed.id, changed.customer_id.as_str(), changed.updated_at), (updated.id, "c9", t(3000)));
    assert_eq!(changed.attributes["metadata"].as_object().unwrap().len(), 2);
    assert_eq!(store.get_customer(&a(), "c1").await.unwrap(), None);
    let tokens =
        store.list_customer_tokens(&a(), "c9", &CustomerTokenFilter::default(), &page(10, None)).await.unwrap();
    assert_eq!(token_ids(&tokens), ["auto:1", "auto:3"]);
    for taken in ["c2", "c9"] {
        let duplicate = store.change_customer_id(&a(), "c9", taken, "admin", t(3500)).await;
        assert_eq!(conflict(duplicate), format!("a customer with customer_id '{taken}' already exists"));
    }
    assert_eq!(not_found(store.change_customer_id(&a(), "c1", "c5", "admin", t(3500)).await), "customer");
}

pub async fn customer_tokens_create_and_conflicts(store: Arc<dyn Store>) {
    assert_eq!(
        not_found(store.create_customer_token(&a(), "nobody", &new_token("t1", "sha1:email", "v"), false).await),
        "customer"
    );
    customer(&store, &a(), json!({"customer_id": "c1"})).await;
    customer(&store, &a(), json!({"customer_id": "c2"})).await;
    customer(&store, &b(), json!({"customer_id": "c1"})).await;

    let mut new = new_token("t1", "sha1:email", "v1");
    new.metadata = Some(object(json!({"mask_pan": "**** 3477", "exp_year": 20, "exp_month": 10})));
    let created = store.create_customer_token(&a(), "c1", &new, false).await.unwrap();
    let expected = CustomerToken {
        token_type: "sha1:email".into(),
        value: "v1".into(),
        id: new.id,
        created_at: t(1000),
        created_by: "client".into(),
        updated_at: t(1000),
        deleted_by: None,
        deleted_at: None,
        token_id: "t1".into(),
        metadata: new.metadata.clone(),
    };
    assert_eq!(created, expected);
    let listed =
        store.list_customer_tokens(&a(), "c1", &CustomerTokenFilter::default(), &page(10, None)).await.unwrap();
    assert_eq!(listed.items, std::slice::from_ref(&expected));
    assert_eq!(
        serde_json::to_string(&listed.items[0].metadata).unwrap(),
        r#"{"mask_pan":"**** 3477","exp_year":20,"exp_month":10}"#
    );

    let same_id = store.create_customer_token(&a(), "c1", &new_token("t1", "sha1:email", "other"), false).await;
    assert_eq!(conflict(same_id), "a live token with token_id 't1' already exists for this customer");
    let same_value = store.create_customer_token(&a(), "c2", &new_token("t9", "sha1:email", "v1"), false).await;
    assert_eq!(conflict(same_value), "a live token with this type and value already belongs to a customer");
    let same_value_here = store.create_customer_token(&a(), "c1", &new_token("t9", "sha1:email", "v1"), false).await;
    assert_eq!(conflict(same_value_here), "a live token with this type and value already belongs to a customer");

    // Same token_id on another customer, same value with another type or in another account.
    token(&store, &a(), "c2", "t1", "sha1:email", "v2").await;
    token(&store, &a(), "c2", "t2", "sha256:email", "v1").await;
    token(&store, &b(), "c1", "t1", "sha1:email", "v1").await;

    // After deletion the token_id and the type/value are free again; the new token is new.
    store.delete_customer_token(&a(), "c1", "t1", "admin", t(2000)).await.unwrap();
    let again = token(&store, &a(), "c1", "t1", "sha1:email", "v1").await;
    assert_ne!(again.id, created.id);
    let listed =
        store.list_customer_tokens(&a(), "c1", &CustomerTokenFilter::default(), &page(10, None)).await.unwrap();
    assert_eq!(
        listed.items.iter().map(|t| (t.id, t.is_deleted())).collect::<Vec<_>>(),
        [(created.id, true), (again.id, false)]
    );
}

pub async fn customer_tokens_paging_and_filters(store: Arc<dyn Store>) {
    customer(&store, &a(), json!({"customer_id": "c1"})).await;
    customer(&store, &a(), json!({"customer_id": "c2"})).await;
    for i in 0..12 {
        let kind = if i % 2 == 0 { "x" } else { "y" };
        token(&store, &a(), "c1", &format!("t{i:02}"), kind, &format!("v{i}")).await;
    }
    let foreign = token(&store, &a(), "c2", "t00", "x", "other").await;
    for deleted in ["t03", "t08"] {
        store.delete_customer_token(&a(), "c1", deleted, "admin", t(2000)).await.unwrap();
    }

    let all = CustomerTokenFilter::default();
    assert!(all.include_deleted);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let listed = store.list_customer_tokens(&a(), "c1", &all, &page(5, cursor.as_deref())).await.unwrap();
        pages.push((listed.items.len(), listed.has_more));
        seen.extend(token_ids(&listed).into_iter().map(str::to_owned));
        if !listed.has_more {
            break;
        }
        cursor = Some(listed.items.last().unwrap().id.to_string());
    }
    assert_eq!(pages, [(5, true), (5, true), (2, false)]);
    assert_eq!(seen, (0..12).map(|i| format!("t{i:02}")).collect::<Vec<_>>());

    let live = CustomerTokenFilter { include_deleted: false, ..all.clone() };
    let listed = store.list_customer_tokens(&a(), "c1", &live, &totals(4)).await.unwrap();
    assert_eq!((token_ids(&listed), listed.has_more, listed.total), (vec!["t00", "t01", "t02", "t04"], true, Some(10)));
    let x = CustomerTokenFilter { token_type: Some("x".into()), ..all.clone() };
    assert_eq!(store.list_customer_tokens(&a(), "c1", &x, &totals(100)).await.unwrap().total, Some(6));
    let live_x = CustomerTokenFilter { token_type: Some("x".into()), include_deleted: false };
    let listed = store.list_customer_tokens(&a(), "c1", &live_x, &totals(100)).await.unwrap();
    assert_eq!((token_ids(&listed), listed.total), (vec!["t00", "t02", "t04", "t06", "t10"], Some(5)));

    // A deleted token is still a valid cursor for the live-only list.
    let t03 = store.list_customer_tokens(&a(), "c1", &all, &page(4, None)).await.unwrap().items[3].id.to_string();
    let listed = store.list_customer_tokens(&a(), "c1", &live, &page(2, Some(&t03))).await.unwrap();
    assert_eq!(token_ids(&listed), ["t04", "t05"]);
    unknown_cursor(store.list_customer_tokens(&a(), "c1", &all, &page(2, Some(&foreign.id.to_string()))).await);
    unknown_cursor(store.list_customer_tokens(&a(), "c1", &all, &page(2, Some(&Uuid::new_v4().to_string()))).await);
    assert_eq!(not_found(store.list_customer_tokens(&b(), "c1", &all, &page(2, None)).await), "customer");
}

pub async fn customer_token_delete_is_idempotent(store: Arc<dyn Store>) {
    assert_eq!(not_found(store.delete_customer_token(&a(), "c1", "t1", "admin", t(2000)).await), "customer");
    customer(&store, &a(), json!({"customer_id": "c1"})).await;
    assert_eq!(not_found(store.delete_customer_token(&a(), "c1", "t1", "admin", t(2000)).await), "token");
    let created = token(&store, &a(), "c1", "t1", "sha1:email", "v").await;

    let deleted = store.delete_customer_token(&a(), "c1", "t1", "alice", t(2000)).await.unwrap();
    let expected =
        CustomerToken { updated_at: t(2000), deleted_at: Some(t(2000)), deleted_by: Some("alice".into()), ..created };
    assert_eq!(deleted, expected);
    assert_eq!(store.delete_customer_token(&a(), "c1", "t1", "bob", t(3000)).await.unwrap(), expected);
    assert_eq!(not_found(store.delete_customer_token(&a(), "c1", "t2", "admin", t(2000)).await), "token");

    // With several deleted generations, the latest is the one returned.
    let second = token(&store, &a(), "c1", "t1", "sha1:email", "v").await;
    let deleted = store.delete_customer_token(&a(), "c1", "t1", "carol", t(4000)).await.unwrap();
    assert_eq!(
        (deleted.id, deleted.deleted_at, deleted.deleted_by.as_deref()),
        (second.id, Some(t(4000)), Some("carol"))
    );
    assert_eq!(store.delete_customer_token(&a(), "c1", "t1", "dave", t(5000)).await.unwrap(), deleted);
    let listed =
        store.list_customer_tokens(&a(), "c1", &CustomerTokenFilter::default(), &page(10, None)).await.unwrap();
    assert_eq!(listed.items, [expected, deleted]);
    let actions = audit_actions(&store, &a()).await;
    assert_eq!(actions.iter().filter(|a| *a == "customer_token.delete").count(), 2);
}

pub async fn token_detail_and_events(store: Arc<dyn Store>) {
    let email = tv("sha1:email", "v1");
    let first = store.token_detail(&a(), &email, None, "client", t(1000)).await.unwrap();
    let second = store.token_detail(&a(), &email, None, "client", t(1000)).await.unwrap();
    assert_eq!((first.customer, first.token, first.events.len()), (None, None, 0));
    assert_ne!(first.id, second.id, "an unknown type/value has no stable id");

    let mut e1 = event("seen in store", Some("PENDING"), 1000);
    e1.metadata = Some(object(json!({"store_id": "S1", "a": 1})));
    e1.expires_at = Some(t(90_000));
    let recorded = store.token_detail(&a(), &email, Some(&e1), "client", t(1000)).await.unwrap();
    assert_eq!(recorded.events, [e1.clone()]);
    let e2 = event("opted out", Some("OPT_OUT"), 2000);
    let again = store.token_detail(&a(), &email, Some(&e2), "client", t(2000)).await.unwrap();
    assert_eq!(again.id, recorded.id);
    assert_eq!(again.events, [e1.clone(), e2.clone()]);
    assert_eq!(serde_json::to_string(&again.events[0].metadata).unwrap(), r#"{"store_id":"S1","a":1}"#);

    // Once the type/value belongs to a customer, the detail shows both; the entry id stays.
    let owner = customer(&store, &a(), json!({"customer_id": "c1", "status": "ACTIVE"})).await;
    let owned = token(&store, &a(), "c1", "t1", "sha1:email", "v1").await;
    let detail = store.token_detail(&a(), &email, None, "client", t(3000)).await.unwrap();
    assert_eq!(detail.id, recorded.id);
    assert_eq!(detail.customer, Some(owner));
    assert_eq!(detail.token, Some(owned));
    assert_eq!(detail.events, [e1, e2]);

    // Without events the id is the token's.
    customer(&store, &a(), json!({"customer_id": "c2"})).await;
    let phone = token(&store, &a(), "c2", "t1", "sha1:phone", "p1").await;
    let detail = store.token_detail(&a(), &tv("sha1:phone", "p1"), None, "client", t(3000)).await.unwrap();
    assert_eq!((detail.id, detail.events.len()), (phone.id, 0));

    // A deleted customer's live token has no customer; other accounts see nothing.
    store.delete_customer(&a(), "c2", false, "admin", t(4000)).await.unwrap();
    let detail = store.token_detail(&a(), &tv("sha1:phone", "p1"), None, "client", t(5000)).await.unwrap();
    assert_eq!((detail.customer, detail.token.map(|t| t.id)), (None, Some(phone.id)));
    let elsewhere = store.token_detail(&b(), &email, None, "client", t(5000)).await.unwrap();
    assert_eq!((elsewhere.customer, elsewhere.token, elsewhere.events.len()), (None, None, 0));
    assert_ne!(elsewhere.id, recorded.id);

    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let events: Vec<_> = records.iter().filter(|r| r.action == "token_event.record").collect();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0].resource_type.as_str(), events[0].resource_id.clone()),
        ("token_event", recorded.id.to_string())
    );
}

pub async fn token_events_list_and_since(store: Arc<dyn Store>) {
    let mut ids = Vec::new();
    for i in 0..5 {
        let at = 1000 * (i + 1);
        let detail = store
            .token_detail(&a(), &tv("t", &format!("v{i}")), Some(&event("e", None, at)), "client", t(at))
            .await
            .unwrap();
        ids.push(detail.id);
    }
    store
        .token_detail(&a(), &tv("t", "v1"), Some(&event("later", Some("OPT_OUT"), 6000)), "client", t(6000))
        .await
        .unwrap();
    let foreign =
        store.token_detail(&b(), &tv("t", "v0"), Some(&event("e", None, 1000)), "client", t(1000)).await.unwrap();

    let listed = store.list_token_events(&a(), None, &totals(2)).await.unwrap();
    assert_eq!(listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[0], ids[1]]);
    assert_eq!((listed.has_more, listed.total), (true, Some(5)));
    assert_eq!(listed.items[1].token, tv("t", "v1"));
    assert_eq!(listed.items[1].updated_at, t(6000));
    assert_eq!(listed.items[1].events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(), ["e", "later"]);
    let cursor = ids[1].to_string();
    let listed = store.list_token_events(&a(), None, &page(2, Some(&cursor))).await.unwrap();
    assert_eq!((listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), listed.has_more), (vec![ids[2], ids[3]], true));
    let listed = store.list_token_events(&a(), None, &page(2, Some(&ids[3].to_string()))).await.unwrap();
    assert_eq!((listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), listed.has_more), (vec![ids[4]], false));

    // With `since`: updated at or after it, in update order (v1 moved to the end).
    let since = Some(t(3000));
    let listed = store.list_token_events(&a(), since, &totals(3)).await.unwrap();
    assert_eq!(listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[2], ids[3], ids[4]]);
    assert_eq!((listed.has_more, listed.total), (true, Some(4)));
    assert_eq!(listed.items.iter().map(|e| e.updated_at).collect::<Vec<_>>(), [t(3000), t(4000), t(5000)]);
    let listed = store.list_token_events(&a(), since, &page(3, Some(&ids[4].to_string()))).await.unwrap();
    assert_eq!((listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), listed.has_more), (vec![ids[1]], false));
    let listed = store.list_token_events(&a(), since, &page(10, Some(&ids[3].to_string()))).await.unwrap();
    assert_eq!(listed.items.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[4], ids[1]]);
    assert_eq!(
        store.list_token_events(&a(), Some(t(7000)), &totals(10)).await.unwrap(),
        Page { items: vec![], has_more: false, total: Some(0) }
    );

    unknown_cursor(store.list_token_events(&a(), None, &page(2, Some(&foreign.id.to_string()))).await);
    unknown_cursor(store.list_token_events(&a(), since, &page(2, Some(&Uuid::new_v4().to_string()))).await);
}

pub async fn token_events_clear(store: Arc<dyn Store>) {
    let token = tv("sha1:email", "v");
    store.token_detail(&a(), &token, Some(&event("one", Some("PENDING"), 1000)), "client", t(1000)).await.unwrap();
    let before = store.token_detail(&a(), &token, Some(&event("two", None, 2000)), "client", t(2000)).await.unwrap();
    assert_eq!(before.events.len(), 2);

    // With a delete event: the old events go, the delete event stays alone, the id is kept.
    let gone = TokenEvent {
        event: "customer left".into(),
        status: Some("DELETED".into()),
        metadata: None,
        created_at: t(3000),
        expires_at: None,
    };
    store.clear_token_events(&a(), &token, Some(&gone), "admin", t(3000)).await.unwrap();
    let after = store.token_detail(&a(), &token, None, "client", t(3000)).await.unwrap();
    assert_eq!((after.id, after.events), (before.id, vec![gone.clone()]));
    let listed = store.list_token_events(&a(), None, &page(10, None)).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!((listed.items[0].updated_at, listed.items[0].events.clone()), (t(3000), vec![gone.clone()]));

    // Without: the events go, the entry and its id stay (TokenDetail.id is random only until an
    // event has been registered), and the type/value leaves the list.
    store.clear_token_events(&a(), &token, None, "admin", t(4000)).await.unwrap();
    let cleared = store.token_detail(&a(), &token, None, "client", t(4000)).await.unwrap();
    assert_eq!(cleared.events, []);
    assert_eq!(cleared.id, before.id);
    assert_eq!(store.list_token_events(&a(), None, &totals(10)).await.unwrap().total, Some(0));

    // Clearing nothing changes nothing; a delete event on an unknown type/value is recorded.
    store.clear_token_events(&a(), &tv("x", "never"), None, "admin", t(5000)).await.unwrap();
    store.clear_token_events(&a(), &tv("x", "new"), Some(&gone), "admin", t(5000)).await.unwrap();
    assert_eq!(store.token_detail(&a(), &tv("x", "new"), None, "client", t(5000)).await.unwrap().events, [gone]);
    let clears = store
        .list_audit(Some(&a()), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "token_events.clear")
        .count();
    assert_eq!(clears, 3);
}

pub async fn delete_token_events_on_create(store: Arc<dyn Store>) {
    customer(&store, &a(), json!({"customer_id": "c1"})).await;
    customer(&store, &a(), json!({"customer_id": "c2"})).await;
    let kept = tv("sha1:email", "kept");
    let cleared = tv("sha1:email", "cleared");
    for token in [&kept, &cleared] {
        for at in [1000, 2000] {
            store.token_detail(&a(), token, Some(&event("e", Some("PENDING"), at)), "client", t(at)).await.unwrap();
        }
    }
    let kept_id = store.token_detail(&a(), &kept, None, "client", t(2000)).await.unwrap().id;
    let cleared_id = store.token_detail(&a(), &cleared, None, "client", t(2000)).await.unwrap().id;

    token(&store, &a(), "c1", "t1", "sha1:email", "kept").await;
    let detail = store.token_detail(&a(), &kept, None, "client", t(3000)).await.unwrap();
    assert_eq!((detail.id, detail.events.len()), (kept_id, 2));

    // A refused create clears nothing.
    let refused = store.create_customer_token(&a(), "c2", &new_token("t1", "sha1:email", "kept"), true).await;
    assert_eq!(conflict(refused), "a live token with this type and value already belongs to a customer");
    assert_eq!(store.token_detail(&a(), &kept, None, "client", t(3000)).await.unwrap().events.len(), 2);

    let created =
        store.create_customer_token(&a(), "c2", &new_token("t1", "sha1:email", "cleared"), true).await.unwrap();
    let detail = store.token_detail(&a(), &cleared, None, "client", t(3000)).await.unwrap();
    // The id registered with the first event stays.
    assert_eq!((detail.id, detail.events.len()), (cleared_id, 0));
    assert_ne!(detail.id, created.id);
    let listed = store.list_token_events(&a(), None, &page(10, None)).await.unwrap();
    assert_eq!(listed.items.iter().map(|e| e.token.clone()).collect::<Vec<_>>(), [kept]);
}

pub async fn card_tokens_create_get_and_conflicts(store: Arc<dyn Store>) {
    let mut full = card(
        &a(),
        json!({
            "id": "ct-1", "token": "psp-secret", "masked_pan": "476173******0416", "pan_expiry_date": "12/2030",
            "token_expiry_date": "11/2030", "customer_id": "cust", "relationship_id": "rel", "transaction_id": "tx",
            "links": [{"href": "https://x/art.png", "rel": "card_art", "mime_type": "image/png"}, {"href": "https://x/y", "rel": "self"}],
            "external_token_references": ["ref-1", "ref-2"]
        }),
    );
    assert_eq!(full.token.as_deref(), Some("psp-secret"));
    let created = store.create_card_token(&full, Some(&sealed("fp1"))).await.unwrap();
    full.token = None;
    assert_eq!(created.card, full);
    assert_eq!(created.sealed_token, Some(b"fp1".to_vec()));
    assert_eq!(store.get_card_token(&a(), "ct-1").await.unwrap(), Some(created.clone()));
    assert_eq!(store.get_card_token(&a(), "ct-2").await.unwrap(), None);
    assert_eq!(store.get_card_token(&b(), "ct-1").await.unwrap(), None);

    let same_id = store.create_card_token(&card(&a(), json!({"id": "ct-1"})), Some(&sealed("fp2"))).await;
    assert_eq!(conflict(same_id), "a card token with id 'ct-1' already exists");
    let same_token = store.create_card_token(&card(&a(), json!({"id": "ct-2"})), Some(&sealed("fp1"))).await;
    assert_eq!(conflict(same_token), "this token is already stored as card token 'ct-1'");
    assert_eq!(store.get_card_token(&a(), "ct-2").await.unwrap(), None);

    // Accounts are separate; tokens without a secret never clash by fingerprint.
    let elsewhere = store.create_card_token(&card(&b(), json!({"id": "ct-1"})), Some(&sealed("fp1"))).await.unwrap();
    assert_eq!(elsewhere.card.account_id, b());
    let bare = store.create_card_token(&card(&a(), json!({"id": "ct-3"})), None).await.unwrap();
    store.create_card_token(&card(&a(), json!({"id": "ct-4"})), None).await.unwrap();
    assert_eq!(bare.sealed_token, None);
    let got = store.get_card_token(&a(), "ct-3").await.unwrap().unwrap();
    assert_eq!((got.card.links, got.card.external_token_references, got.card.customer_id), (None, None, None));
}

pub async fn card_tokens_list_filters_and_paging(store: Arc<dyn Store>) {
    for i in 0..12 {
        let customer_id = if i % 2 == 0 { "cust-a" } else { "cust-b" };
        let relationship_id = if i < 6 { "rel-1" } else { "rel-2" };
        let body = json!({"id": format!("ct-{i:02}"), "customer_id": customer_id, "relationship_id": relationship_id});
        store.create_card_token(&card(&a(), body), Some(&sealed(&format!("fp{i}")))).await.unwrap();
    }
    let foreign = store.create_card_token(&card(&b(), json!({"id": "ct-b"})), None).await.unwrap();
    store.set_card_token_status(&a(), "ct-02", CardTokenStatus::Suspended, "admin", t(2000)).await.unwrap();
    store.set_card_token_status(&a(), "ct-03", CardTokenStatus::Inactive, "admin", t(2000)).await.unwrap();
    let deletion =
        CardTokenDeletion { actor: "admin".into(), reason: None, requestor: DeleteRequestor::Merchant, at: t(2000) };
    store.delete_card_token(&a(), "ct-05", &deletion).await.unwrap();

    let ids = |page: &Page<crate::store::CardTokenRecord>| {
        page.items.iter().map(|r| r.card.id.as_str()).collect::<Vec<_>>().join(" ")
    };
    let all = CardTokenFilter::default();
    let first = store.list_card_tokens(&a(), &all, &totals(5)).await.unwrap();
    assert_eq!((ids(&first).as_str(), first.has_more, first.total), ("ct-00 ct-01 ct-02 ct-03 ct-04", true, Some(11)));
    let second = store.list_card_tokens(&a(), &all, &page(5, Some("ct-04"))).await.unwrap();
    assert_eq!((ids(&second).as_str(), second.has_more), ("ct-06 ct-07 ct-08 ct-09 ct-10", true));
    let third = store.list_card_tokens(&a(), &all, &page(5, Some("ct-10"))).await.unwrap();
    assert_eq!((ids(&third).as_str(), third.has_more), ("ct-11", false));
    assert_eq!(third.items[0].sealed_token, Some(b"fp11".to_vec()));
    assert_eq!(third.items[0].card.token, None);
    // The deleted token is still a cursor.
    assert_eq!(ids(&store.list_card_tokens(&a(), &all, &page(1, Some("ct-05"))).await.unwrap()), "ct-06");
    unknown_cursor(store.list_card_tokens(&a(), &all, &page(5, Some("ct-99"))).await);
    unknown_cursor(store.list_card_tokens(&a(), &all, &page(5, Some(&foreign.card.id))).await);
    // With a cursor, the total still counts every token the filters pass, on an empty page too.
    let counted = |after: &str| PageRequest { include_total: true, ..page(5, Some(after)) };
    let listed = store.list_card_tokens(&a(), &all, &counted("ct-04")).await.unwrap();
    assert_eq!(
        (ids(&listed).as_str(), listed.has_more, listed.total),
        ("ct-06 ct-07 ct-08 ct-09 ct-10", true, Some(11))
    );
    let listed = store.list_card_tokens(&a(), &all, &counted("ct-11")).await.unwrap();
    assert_eq!((ids(&listed).as_str(), listed.has_more, listed.total), ("", false, Some(11)));
    unknown_cursor(store.list_card_tokens(&a(), &all, &counted("ct-99")).await);

    let by_customer = CardTokenFilter { customer_id: Some("cust-a".into()), ..all.clone() };
    let listed = store.list_card_tokens(&a(), &by_customer, &totals(10)).await.unwrap();
    assert_eq!((ids(&listed).as_str(), listed.total), ("ct-00 ct-02 ct-04 ct-06 ct-08 ct-10", Some(6)));
    let by_relationship = CardTokenFilter { relationship_id: Some("rel-1".into()), ..all.clone() };
    assert_eq!(
        ids(&store.list_card_tokens(&a(), &by_relationship, &page(10, None)).await.unwrap()),
        "ct-00 ct-01 ct-02 ct-03 ct-04"
    );
    let with_deleted = CardTokenFilter { include_deleted: true, ..by_relationship.clone() };
    assert_eq!(store.list_card_tokens(&a(), &with_deleted, &totals(10)).await.unwrap().total, Some(6));
    let both =
        CardTokenFilter { customer_id: Some("cust-b".into()), relationship_id: Some("rel-2".into()), ..all.clone() };
    assert_eq!(ids(&store.list_card_tokens(&a(), &both, &page(10, None)).await.unwrap()), "ct-07 ct-09 ct-11");

    let statuses =
        CardTokenFilter { statuses: vec![CardTokenStatus::Suspended, CardTokenStatus::Inactive], ..all.clone() };
    assert_eq!(ids(&store.list_card_tokens(&a(), &statuses, &page(10, None)).await.unwrap()), "ct-02 ct-03");
    let deleted = CardTokenFilter { statuses: vec![CardTokenStatus::Deleted], ..all.clone() };
    assert_eq!(ids(&store.list_card_tokens(&a(), &deleted, &page(10, None)).await.unwrap()), "ct-05");
    let active_even_deleted =
        CardTokenFilter { statuses: vec![CardTokenStatus::Active], include_deleted: true, ..all.clone() };
    assert_eq!(store.list_card_tokens(&a(), &active_even_deleted, &totals(1)).await.unwrap().total, Some(9));
    let everything = CardTokenFilter { include_deleted: true, ..all.clone() };
    assert_eq!(store.list_card_tokens(&a(), &everything, &totals(1)).await.unwrap().total, Some(12));
}

pub async fn card_tokens_import_is_idempotent(store: Arc<dyn Store>) {
    store.create_card_token(&card(&a(), json!({"id": "ct-1"})), Some(&sealed("fp1"))).await.unwrap();
    let batch = vec![
        (card(&a(), json!({"id": "ct-1"})), Some(sealed("fp-other"))),
        (card(&a(), json!({"id": "ct-2"})), Some(sealed("fp1"))),
        (card(&a(), json!({"id": "ct-3", "customer_id": "cust"})), Some(sealed("fp3"))),
        (card(&a(), json!({"id": "ct-4"})), None),
        (card(&a(), json!({"id": "ct-3"})), Some(sealed("fp3-again"))),
        (card(&b(), json!({"id": "ct-1"})), Some(sealed("fp1"))),
    ];
    use ImportOutcome::{AlreadyPresent as Present, Imported};
    let outcomes = store.import_card_tokens(&batch).await.unwrap();
    assert_eq!(outcomes, [Present, Present, Imported, Imported, Present, Imported]);
    assert_eq!(store.import_card_tokens(&batch).await.unwrap(), vec![Present; 6]);
    assert_eq!(store.import_card_tokens(&[]).await.unwrap(), []);

    let imported = store.get_card_token(&a(), "ct-3").await.unwrap().unwrap();
    assert_eq!((imported.card.customer_id.as_deref(), imported.sealed_token), (Some("cust"), Some(b"fp3".to_vec())));
    assert_eq!(store.get_card_token(&a(), "ct-2").await.unwrap(), None);
    assert_eq!(store.get_card_token(&b(), "ct-1").await.unwrap().unwrap().sealed_token, Some(b"fp1".to_vec()));
    let records = store.list_audit(None, 0, 100).await.unwrap();
    let imports: Vec<_> = records
        .iter()
        .filter(|r| r.action == "card_token.import")
        .map(|r| (r.account_id.as_str(), r.resource_id.as_str()))
        .collect();
    assert_eq!(imports, [("T00000001", "ct-3"), ("T00000001", "ct-4"), ("T00000002", "ct-1")]);
}

pub async fn card_token_delete_and_status(store: Arc<dyn Store>) {
    let deletion = CardTokenDeletion {
        actor: "merchant-app".into(),
        reason: Some("lost".into()),
        requestor: DeleteRequestor::Cardholder,
        at: t(5000),
    };
    assert_eq!(not_found(store.delete_card_token(&a(), "ct-1", &deletion).await), "card token");
    assert_eq!(
        not_found(store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Inactive, "admin", t(2000)).await),
        "card token"
    );
    let created = store.create_card_token(&card(&a(), json!({"id": "ct-1"})), Some(&sealed("fp1"))).await.unwrap();
    assert_eq!(not_found(store.delete_card_token(&b(), "ct-1", &deletion).await), "card token");

    let suspended =
        store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Suspended, "admin", t(2000)).await.unwrap();
    assert_eq!((suspended.card.status, suspended.card.updated_at), (CardTokenStatus::Suspended, t(2000)));
    assert_eq!(store.get_card_token(&a(), "ct-1").await.unwrap(), Some(suspended.clone()));
    assert_eq!(
        store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Suspended, "admin", t(3000)).await.unwrap(),
        suspended
    );
    let refused = store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Deleted, "admin", t(3000)).await;
    assert_eq!(conflict(refused), "cannot change status from SUSPENDED to DELETED");

    let deleted = store.delete_card_token(&a(), "ct-1", &deletion).await.unwrap();
    let mut expected = created.clone();
    expected.card.status = CardTokenStatus::Deleted;
    expected.card.updated_at = t(5000);
    expected.card.deleted_at = Some(t(5000));
    expected.card.deleted_by = Some("merchant-app".into());
    // The secret is erased with the delete (crypto-shredding); the record stays.
    assert_eq!(created.sealed_token, Some(b"fp1".to_vec()));
    expected.sealed_token = None;
    assert_eq!(deleted, expected);
    assert_eq!(store.get_card_token(&a(), "ct-1").await.unwrap(), Some(expected.clone()));
    let later = CardTokenDeletion { at: t(6000), actor: "other".into(), ..deletion };
    assert_eq!(store.delete_card_token(&a(), "ct-1", &later).await.unwrap(), expected);

    let refused = store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Active, "admin", t(7000)).await;
    assert_eq!(conflict(refused), "card token 'ct-1' is DELETED; its status cannot change");
    // Not even DELETED may be set on a deleted token: nothing leaves or re-enters DELETED.
    let refused = store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Deleted, "admin", t(7000)).await;
    assert_eq!(conflict(refused), "card token 'ct-1' is DELETED; its status cannot change");
    assert_eq!(store.get_card_token(&a(), "ct-1").await.unwrap().unwrap(), expected);

    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let summary: Vec<_> =
        records.iter().map(|r| (r.action.as_str(), r.actor.as_str(), r.at, r.details.clone())).collect();
    assert_eq!(
        summary,
        [
            ("card_token.create", "client", t(1000), json!({"status": "ACTIVE"})),
            ("card_token.status", "admin", t(2000), json!({"from": "ACTIVE", "to": "SUSPENDED"})),
            ("card_token.delete", "merchant-app", t(5000), json!({"reason": "lost", "requestor": "CARDHOLDER"})),
        ]
    );
    // The deleted token's fingerprint went with its secret: the same token may be stored again.
    let again = store.create_card_token(&card(&a(), json!({"id": "ct-1-again"})), Some(&sealed("fp1"))).await;
    assert_eq!(again.unwrap().sealed_token, Some(b"fp1".to_vec()));
}

pub async fn audit_trail(store: Arc<dyn Store>) {
    let created = customer(&store, &a(), json!({"customer_id": "c1"})).await;
    let secret_value = "0123456789abcdef-secret-value";
    let token = token(&store, &a(), "c1", "t1", "sha1:email", secret_value).await;
    store
        .token_detail(&a(), &tv("sha1:email", secret_value), Some(&event("seen", None, 1500)), "client", t(1500))
        .await
        .unwrap();
    store.clear_token_events(&a(), &tv("sha1:email", secret_value), None, "admin", t(1600)).await.unwrap();
    store.delete_customer_token(&a(), "c1", "t1", "admin", t(2000)).await.unwrap();
    store.delete_customer(&a(), "c1", false, "admin", t(3000)).await.unwrap();
    let card_secret = "psp-card-secret-4711";
    store
        .create_card_token(&card(&b(), json!({"id": "ct-1", "token": card_secret})), Some(&sealed("fp1")))
        .await
        .unwrap();

    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let summary: Vec<_> =
        records.iter().map(|r| (r.action.as_str(), r.resource_type.as_str(), r.actor.as_str(), r.at)).collect();
    assert_eq!(
        summary,
        [
            ("customer.create", "customer", "client", t(1000)),
            ("customer_token.create", "customer_token", "client", t(1000)),
            ("token_event.record", "token_event", "client", t(1500)),
            ("token_events.clear", "token_event", "admin", t(1600)),
            ("customer_token.delete", "customer_token", "admin", t(2000)),
            ("customer.delete", "customer", "admin", t(3000)),
        ]
    );
    assert_eq!(records[0].resource_id, created.id.to_string());
    assert_eq!(records[1].resource_id, token.id.to_string());
    assert!(records.iter().all(|r| r.account_id == "T00000001"));
    assert!(records.windows(2).all(|w| w[0].seq < w[1].seq));

    let everything = store.list_audit(None, 0, 100).await.unwrap();
    assert_eq!(everything.len(), 7);
    assert_eq!((everything[6].action.as_str(), everything[6].account_id.as_str()), ("card_token.create", "T00000002"));
    for record in &everything {
        let details = record.details.to_string();
        assert!(!details.contains(secret_value) && !details.contains(card_secret), "secret in {details}");
    }
    let after = store.list_audit(None, everything[2].seq, 2).await.unwrap();
    assert_eq!(after.iter().map(|r| r.seq).collect::<Vec<_>>(), [everything[3].seq, everything[4].seq]);
    assert_eq!(store.list_audit(Some(&b()), everything[6].seq, 10).await.unwrap(), []);
}

/// Every kind of audit record with its exact details: the same script gives the same trail on
/// every backend, so an export from one store imported into another reads alike.
pub async fn audit_record_details(store: Arc<dyn Store>) {
    let email_value = "ada-secret-email-digest";
    let email = tv("sha1:email", email_value);
    let c1 = customer(&store, &a(), json!({"customer_id": "c1", "email": "ada@example.com"})).await;
    let seen = event("seen", Some("PENDING"), 1100);
    let entry = store.token_detail(&a(), &email, Some(&seen), "client", t(1100)).await.unwrap();
    store.token_detail(&a(), &email, Some(&event("again", None, 1200)), "client", t(1200)).await.unwrap();
    // Both events go with the create that asks for it; creates without them clear nothing.
    let new_t1 = new_token("t1", "sha1:email", email_value);
    let t1 = store.create_customer_token(&a(), "c1", &new_t1, true).await.unwrap();
    let t2 = token(&store, &a(), "c1", "t2", "sha1:phone", "phone-secret-digest").await;
    let new_t3 = new_token("t3", "payex:card", "card-reference-secret");
    let t3 = store.create_customer_token(&a(), "c1", &new_t3, true).await.unwrap();
    store.delete_customer_token(&a(), "c1", "t1", "admin", t(2000)).await.unwrap();
    store.delete_customer_token(&a(), "c1", "t1", "admin", t(2100)).await.unwrap(); // unchanged: no record
    store.delete_customer(&a(), "c1", true, "admin", t(3000)).await.unwrap();

    let card_secret = "psp-card-secret-4711";
    store
        .create_card_token(&card(&a(), json!({"id": "ct-1", "token": card_secret})), Some(&sealed("fp1")))
        .await
        .unwrap();
    let imported = card(&a(), json!({"id": "ct-2"}));
    store.import_card_tokens(&[(imported.clone(), None), (imported, None)]).await.unwrap();
    store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Suspended, "admin", t(4000)).await.unwrap();
    store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Suspended, "admin", t(4100)).await.unwrap(); // no-op
    let deletion = CardTokenDeletion {
        at: t(5000),
        actor: "merchant-app".into(),
        reason: Some("lost".into()),
        requestor: DeleteRequestor::Cardholder,
    };
    store.delete_card_token(&a(), "ct-1", &deletion).await.unwrap();
    let deletion = CardTokenDeletion { at: t(5100), reason: None, requestor: DeleteRequestor::Merchant, ..deletion };
    store.delete_card_token(&a(), "ct-2", &deletion).await.unwrap();

    let phone = tv("sha1:phone", "opted-out-secret");
    let opt_in = event("opt in", None, 6000);
    let entry2 = store.token_detail(&a(), &phone, Some(&opt_in), "client", t(6000)).await.unwrap();
    store.token_detail(&a(), &phone, Some(&event("opt out", Some("OPT_OUT"), 6050)), "client", t(6050)).await.unwrap();
    let gone = TokenEvent { status: Some("DELETED".into()), ..event("customer left", None, 6100) };
    store.clear_token_events(&a(), &phone, Some(&gone), "admin", t(6100)).await.unwrap();
    store.clear_token_events(&a(), &phone, None, "admin", t(6200)).await.unwrap();
    store.clear_token_events(&a(), &phone, None, "admin", t(6300)).await.unwrap(); // nothing left: no record
    let kept = tv("sha1:other", "kept-secret");
    let entry3 = store.token_detail(&a(), &kept, Some(&event("kept", None, 6400)), "client", t(6400)).await.unwrap();

    let hook_secret = "receiver-password";
    let listening = subscription(&a(), &[CARD_TOKEN_ADD], "https://hooks.example/kept");
    store.create_hook_subscription(&listening, b"sealed-kept").await.unwrap();
    let url = format!("https://user:{hook_secret}@hooks.example/gone?key={hook_secret}");
    let dropped = subscription(&a(), &[CARD_TOKEN_ADD, CARD_TOKEN_DELETE], &url);
    store.create_hook_subscription(&dropped, hook_secret.as_bytes()).await.unwrap();
    store.create_card_token(&card(&a(), json!({"id": "ct-3"})), None).await.unwrap();
    store.delete_hook_subscription(&a(), dropped.id, "admin", t(7000)).await.unwrap();
    store.reset_account(&a(), ResetParts::ALL, "admin", t(8000)).await.unwrap();

    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let trail: Vec<_> = records
        .iter()
        .map(|r| {
            (r.action.as_str(), r.resource_type.as_str(), r.resource_id.as_str(), r.actor.as_str(), r.at, &r.details)
        })
        .collect();
    let ids =
        [c1.id, t1.id, t2.id, t3.id, entry.id, entry2.id, entry3.id, listening.id, dropped.id].map(|id| id.to_string());
    let [c1_id, t1_id, t2_id, t3_id, entry, entry2, entry3, listening_id, dropped_id] =
        ids.each_ref().map(String::as_str);
    let expected = [
        ("customer.create", "customer", c1_id, "client", t(1000), json!({"customer_id": "c1", "type": "customer"})),
        (
            "token_event.record",
            "token_event",
            entry,
            "client",
            t(1100),
            json!({"type": "sha1:email", "event": "seen", "status": "PENDING"}),
        ),
        (
            "token_event.record",
            "token_event",
            entry,
            "client",
            t(1200),
            json!({"type": "sha1:email", "event": "again", "status": null}),
        ),
        (
            "customer_token.create",
            "customer_token",
            t1_id,
            "client",
            t(1000),
            json!({
                "customer_id": "c1", "token_id": "t1", "type": "sha1:email",
                "delete_token_events": true, "events_deleted": 2,
            }),
        ),
        (
            "customer_token.create",
            "customer_token",
            t2_id,
            "client",
            t(1000),
            json!({
                "customer_id": "c1", "token_id": "t2", "type": "sha1:phone",
                "delete_token_events": false, "events_deleted": 0,
            }),
        ),
        (
            "customer_token.create",
            "customer_token",
            t3_id,
            "client",
            t(1000),
            json!({
                "customer_id": "c1", "token_id": "t3", "type": "payex:card",
                "delete_token_events": true, "events_deleted": 0,
            }),
        ),
        (
            "customer_token.delete",
            "customer_token",
            t1_id,
            "admin",
            t(2000),
            json!({"customer_id": "c1", "token_id": "t1", "type": "sha1:email"}),
        ),
        (
            "customer.delete",
            "customer",
            c1_id,
            "admin",
            t(3000),
            json!({"customer_id": "c1", "deleted_tokens": [t2_id, t3_id]}),
        ),
        ("card_token.create", "card_token", "ct-1", "client", t(1000), json!({"status": "ACTIVE"})),
        ("card_token.import", "card_token", "ct-2", "client", t(1000), json!({"status": "ACTIVE"})),
        ("card_token.status", "card_token", "ct-1", "admin", t(4000), json!({"from": "ACTIVE", "to": "SUSPENDED"})),
        (
            "card_token.delete",
            "card_token",
            "ct-1",
            "merchant-app",
            t(5000),
            json!({"reason": "lost", "requestor": "CARDHOLDER"}),
        ),
        (
            "card_token.delete",
            "card_token",
            "ct-2",
            "merchant-app",
            t(5100),
            json!({"reason": null, "requestor": "MERCHANT"}),
        ),
        (
            "token_event.record",
            "token_event",
            entry2,
            "client",
            t(6000),
            json!({"type": "sha1:phone", "event": "opt in", "status": null}),
        ),
        (
            "token_event.record",
            "token_event",
            entry2,
            "client",
            t(6050),
            json!({"type": "sha1:phone", "event": "opt out", "status": "OPT_OUT"}),
        ),
        (
            "token_events.clear",
            "token_event",
            entry2,
            "admin",
            t(6100),
            json!({"type": "sha1:phone", "events_deleted": 2, "delete_event": {"event": "customer left", "status": "DELETED"}}),
        ),
        (
            "token_events.clear",
            "token_event",
            entry2,
            "admin",
            t(6200),
            json!({"type": "sha1:phone", "events_deleted": 1, "delete_event": null}),
        ),
        (
            "token_event.record",
            "token_event",
            entry3,
            "client",
            t(6400),
            json!({"type": "sha1:other", "event": "kept", "status": null}),
        ),
        (
            "hook_subscription.create",
            "hook_subscription",
            listening_id,
            "client",
            t(1000),
            json!({"events": ["checkout_token_add"]}),
        ),
        (
            "hook_subscription.create",
            "hook_subscription",
            dropped_id,
            "client",
            t(1000),
            json!({"events": ["checkout_token_add", "checkout_token_delete"]}),
        ),
        ("card_token.create", "card_token", "ct-3", "client", t(1000), json!({"status": "ACTIVE"})),
        (
            "hook_subscription.delete",
            "hook_subscription",
            dropped_id,
            "admin",
            t(7000),
            json!({"dropped_deliveries": 2}),
        ),
        (
            "sandbox.reset",
            "account",
            "T00000001",
            "admin",
            t(8000),
            json!({
                "customers": 1, "customer_tokens": 3, "token_events": 1, "card_tokens": 3,
                "hook_subscriptions": 1, "webhook_deliveries": 2, "fault_rules": 0, "clocks": 0,
            }),
        ),
    ];
    let expected: Vec<_> = expected
        .iter()
        .map(|(action, kind, id, actor, at, details)| (*action, *kind, *id, *actor, *at, details))
        .collect();
    assert_eq!(trail, expected);
    assert!(records.iter().all(|r| r.account_id == "T00000001"));
    for record in &records {
        let details = record.details.to_string();
        for secret in [email_value, "phone-secret-digest", "card-reference-secret", "opted-out-secret", "kept-secret"] {
            assert!(!details.contains(secret), "customer token value in {details}");
        }
        for secret in [card_secret, hook_secret, "hooks.example", "sealed-kept", "ada@example.com"] {
            assert!(!details.contains(secret), "secret in {details}");
        }
    }
}

// ---- webhooks -------------------------------------------------------------------------------

fn subscription(account: &AccountId, events: &[&str], url: &str) -> HookSubscription {
    let body = json!({"config": {"url": url, "content_type": "application/json"}, "events": events});
    HookSubscription::from_body(body.as_object().unwrap(), account, "client", t(1000)).unwrap().0
}

fn sealed_secret(subscription: &HookSubscription) -> Vec<u8> {
    format!("sealed-{}", subscription.id).into_bytes()
}

async fn subscribe(store: &Arc<dyn Store>, account: &AccountId, events: &[&str]) -> HookSubscription {
    let subscription = subscription(account, events, &format!("https://hooks.example/{}", Uuid::new_v4()));
    store.create_hook_subscription(&subscription, &sealed_secret(&subscription)).await.unwrap();
    subscription
}

/// Everything due within the next hour, leased for a day: what the mutations since the last
/// drain enqueued (mutations enqueue at the current time).
async fn drain(store: &Arc<dyn Store>) -> Vec<WebhookDelivery> {
    let now = Timestamp::now().plus_seconds(3600);
    store.claim_webhook_deliveries(now, now.plus_seconds(86_400), 1000).await.unwrap()
}

/// The card token id a delivery's body announces.
fn announced(delivery: &WebhookDelivery) -> String {
    let body: Value = serde_json::from_str(&delivery.body).unwrap();
    body["token"]["id"].as_str().unwrap().to_owned()
}

/// An attempt as the worker records it, answered with `status`.
fn attempt(status: Option<u16>) -> DeliveryAttempt {
    DeliveryAttempt {
        attempted_at: Timestamp::now(),
        duration_millis: 12,
        status,
        error: status.filter(|s| *s >= 300).map(|s| format!("the receiver answered {s}")),
        request_headers: vec![("event".into(), "x".into())],
        response_headers: vec![("content-type".into(), "text/plain".into())],
        response_body: status.map(|_| "ok".into()),
    }
}

/// Takes the pings of the subscriptions made since the last call (due at their `created_at`,
/// [`subscription`]'s `t(1000)`, before any card-token change of the test) and records them as
/// delivered; returns them.
async fn take_pings(store: &Arc<dyn Store>) -> Vec<WebhookDelivery> {
    let pings = store.claim_webhook_deliveries(t(1000), Timestamp::now().plus_seconds(86_400), 1000).await.unwrap();
    for ping in &pings {
        assert_eq!(ping.event, PING);
        let done = DeliveryResult::Delivered { at: t(1000) };
        store.complete_webhook_delivery(ping.id, &done, &attempt(Some(200)), 0).await.unwrap();
    }
    pings
}

fn deliveries(sent: &[WebhookDelivery]) -> Vec<(Uuid, &str, String)> {
    sent.iter().map(|d| (d.subscription_id, d.event.as_str(), announced(d))).collect()
}

pub async fn hook_subscriptions_crud(store: Arc<dyn Store>) {
    assert_eq!(store.list_hook_subscriptions(&a()).await.unwrap(), []);
    let first = subscription(&a(), &[CARD_TOKEN_ADD], "https://hooks.example/first?key=v");
    store.create_hook_subscription(&first, b"sealed-1").await.unwrap();
    let mut second = subscription(&a(), &EVENTS, "http://127.0.0.1:9/second");
    second.active = false;
    store.create_hook_subscription(&second, b"sealed-2").await.unwrap();
    let foreign = subscription(&b(), &[CARD_TOKEN_DELETE], "https://hooks.example/foreign");
    store.create_hook_subscription(&foreign, b"sealed-3").await.unwrap();
    conflict(store.create_hook_subscription(&first, b"sealed-again").await);

    assert_eq!(store.list_hook_subscriptions(&a()).await.unwrap(), [first.clone(), second.clone()]);
    assert_eq!(store.list_hook_subscriptions(&b()).await.unwrap(), std::slice::from_ref(&foreign));
    assert_eq!(store.get_hook_subscription(&a(), first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(store.get_hook_subscription(&a(), second.id).await.unwrap(), Some(second.clone()));
    assert_eq!(store.get_hook_subscription(&b(), first.id).await.unwrap(), None);
    assert_eq!(store.get_hook_subscription(&a(), foreign.id).await.unwrap(), None);
    assert_eq!(store.get_hook_subscription(&a(), Uuid::new_v4()).await.unwrap(), None);

    assert_eq!(not_found(store.delete_hook_subscription(&b(), first.id, "admin", t(2000)).await), "subscription");
    assert_eq!(store.delete_hook_subscription(&a(), first.id, "admin", t(2000)).await.unwrap(), first);
    assert_eq!(store.list_hook_subscriptions(&a()).await.unwrap(), [second.clone()]);
    assert_eq!(store.get_hook_subscription(&a(), first.id).await.unwrap(), None);
    assert_eq!(not_found(store.delete_hook_subscription(&a(), first.id, "admin", t(3000)).await), "subscription");
    assert_eq!(store.list_hook_subscriptions(&b()).await.unwrap(), [foreign]);

    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let summary: Vec<_> =
        records.iter().map(|r| (r.action.as_str(), r.actor.as_str(), r.at, r.resource_id.clone())).collect();
    assert_eq!(
        summary,
        [
            ("hook_subscription.create", "client", t(1000), first.id.to_string()),
            ("hook_subscription.create", "client", t(1000), second.id.to_string()),
            ("hook_subscription.delete", "admin", t(2000), first.id.to_string()),
        ]
    );
    assert_eq!(records[0].details, json!({"events": ["checkout_token_add"]}));
    assert!(records.iter().all(|r| !r.details.to_string().contains("hooks.example")));
}

pub async fn webhook_events_are_enqueued_with_card_token_changes(store: Arc<dyn Store>) {
    // Without subscriptions a change writes nothing to the outbox.
    store.create_card_token(&card(&a(), json!({"id": "ct-0"})), None).await.unwrap();
    assert_eq!(drain(&store).await, []);

    let all = subscribe(&store, &a(), &EVENTS).await;
    let adds = subscribe(&store, &a(), &[CARD_TOKEN_ADD]).await;
    let mut inactive = subscription(&a(), &EVENTS, "https://hooks.example/inactive");
    inactive.active = false;
    store.create_hook_subscription(&inactive, b"inactive").await.unwrap();
    let elsewhere = subscribe(&store, &b(), &EVENTS).await;
    // Each new active subscription is pinged with itself as the body (Dintero's ping payload).
    let pings = take_pings(&store).await;
    let pinged: Vec<_> = pings.iter().map(|d| (d.subscription_id, d.event.as_str())).collect();
    assert_eq!(pinged, [(all.id, PING), (adds.id, PING), (elsewhere.id, PING)]);
    assert_eq!(pings[0].body, ping_event_body(&all));
    assert_eq!((pings[0].event_delivery, pings[0].url.as_str()), (pings[0].id, all.config.url.as_str()));

    let new = card(&a(), json!({"id": "ct-1", "token": "psp-secret-4711", "customer_id": "cust"}));
    let created = store.create_card_token(&new, Some(&sealed("fp1"))).await.unwrap();
    let sent = drain(&store).await;
    assert_eq!(
        deliveries(&sent),
        [(all.id, CARD_TOKEN_ADD, "ct-1".to_owned()), (adds.id, CARD_TOKEN_ADD, "ct-1".to_owned())]
    );
    assert_ne!(sent[0].id, sent[1].id);
    for (delivery, subscription) in sent.iter().zip([&all, &adds]) {
        assert_eq!(delivery.body, card_token_event_body(CARD_TOKEN_ADD, delivery.id, &created.card));
        assert_eq!(delivery.account_id, a());
        assert_eq!(delivery.url, subscription.config.url);
        assert_eq!(delivery.sealed_secret, sealed_secret(subscription));
        assert_eq!(delivery.attempts, 0);
        assert!(!delivery.body.contains("psp-secret-4711"));
    }
    let body: Value = serde_json::from_str(&sent[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "account_id": "T00000001",
            "event_delivery": sent[0].id.to_string(),
            "event": "checkout_token_add",
            "token": {
                "id": "ct-1", "type": "payment_token", "status": "ACTIVE", "card_brand": "visa",
                "account_id": "T00000001", "payment_product_type": "bambora.creditcard",
                "created_at": "1970-01-01T00:00:01Z", "updated_at": "1970-01-01T00:00:01Z",
                "customer_id": "cust", "created_by": "client"
            }
        })
    );

    // Refused and no-op changes announce nothing.
    conflict(store.create_card_token(&card(&a(), json!({"id": "ct-1"})), None).await);
    store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Active, "admin", t(2000)).await.unwrap();
    assert_eq!(drain(&store).await, []);

    let suspended =
        store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Suspended, "admin", t(2000)).await.unwrap();
    let sent = drain(&store).await;
    assert_eq!(deliveries(&sent), [(all.id, CARD_TOKEN_UPDATE, "ct-1".to_owned())]);
    assert_eq!(sent[0].body, card_token_event_body(CARD_TOKEN_UPDATE, sent[0].id, &suspended.card));
    assert!(sent[0].body.contains(r#""status":"SUSPENDED""#));
    conflict(store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Deleted, "admin", t(3000)).await);
    assert_eq!(drain(&store).await, []);

    let deletion =
        CardTokenDeletion { actor: "admin".into(), reason: None, requestor: DeleteRequestor::Merchant, at: t(4000) };
    let deleted = store.delete_card_token(&a(), "ct-1", &deletion).await.unwrap();
    let sent = drain(&store).await;
    assert_eq!(deliveries(&sent), [(all.id, CARD_TOKEN_DELETE, "ct-1".to_owned())]);
    assert_eq!(sent[0].body, card_token_event_body(CARD_TOKEN_DELETE, sent[0].id, &deleted.card));
    store.delete_card_token(&a(), "ct-1", &CardTokenDeletion { at: t(5000), ..deletion }).await.unwrap();
    conflict(store.set_card_token_status(&a(), "ct-1", CardTokenStatus::Active, "admin", t(5000)).await);
    assert_eq!(not_found(store.delete_card_token(&a(), "ct-9", &deletion_at(5000)).await), "card token");
    assert_eq!(drain(&store).await, []);

    // Imports announce what they import, once per subscription, and nothing already present.
    let batch = vec![
        (card(&a(), json!({"id": "ct-1"})), None),
        (card(&a(), json!({"id": "ct-2", "token": "psp-secret-2"})), Some(sealed("fp2"))),
        (card(&b(), json!({"id": "ct-3"})), None),
        (card(&a(), json!({"id": "ct-9"})), Some(sealed("fp2"))),
    ];
    use ImportOutcome::{AlreadyPresent as Present, Imported};
    assert_eq!(store.import_card_tokens(&batch).await.unwrap(), [Present, Imported, Imported, Present]);
    let sent = drain(&store).await;
    assert_eq!(
        deliveries(&sent),
        [
            (all.id, CARD_TOKEN_ADD, "ct-2".to_owned()),
            (adds.id, CARD_TOKEN_ADD, "ct-2".to_owned()),
            (elsewhere.id, CARD_TOKEN_ADD, "ct-3".to_owned()),
        ]
    );
    let ct2 = store.get_card_token(&a(), "ct-2").await.unwrap().unwrap().card;
    assert_eq!(sent[0].body, card_token_event_body(CARD_TOKEN_ADD, sent[0].id, &ct2));
    assert!(!sent[0].body.contains("psp-secret-2"));
    let ct3 = store.get_card_token(&b(), "ct-3").await.unwrap().unwrap().card;
    assert_eq!(sent[2].body, card_token_event_body(CARD_TOKEN_ADD, sent[2].id, &ct3));
    assert_eq!(sent[2].account_id, b());
    assert_eq!(store.import_card_tokens(&batch).await.unwrap(), vec![Present; 4]);
    assert_eq!(drain(&store).await, []);

    // Deleting a subscription drops what it has not been sent yet.
    store.create_card_token(&card(&a(), json!({"id": "ct-4"})), None).await.unwrap();
    store.delete_hook_subscription(&a(), adds.id, "admin", t(6000)).await.unwrap();
    assert_eq!(deliveries(&drain(&store).await), [(all.id, CARD_TOKEN_ADD, "ct-4".to_owned())]);
}

fn deletion_at(at: i64) -> CardTokenDeletion {
    CardTokenDeletion { actor: "admin".into(), reason: None, requestor: DeleteRequestor::Merchant, at: t(at) }
}

pub async fn webhook_claims_lease_deliveries(store: Arc<dyn Store>) {
    subscribe(&store, &a(), &[CARD_TOKEN_ADD]).await;
    take_pings(&store).await;
    for i in 1..=3 {
        store.create_card_token(&card(&a(), json!({"id": format!("ct-{i}")})), None).await.unwrap();
    }
    // Nothing is due before it was written.
    assert_eq!(store.claim_webhook_deliveries(t(0), t(60_000), 10).await.unwrap(), []);
    let now = Timestamp::now().plus_seconds(1);
    let lease = |seconds| now.plus_seconds(seconds);
    assert_eq!(store.claim_webhook_deliveries(now, lease(60), 0).await.unwrap(), []);

    let first = store.claim_webhook_deliveries(now, lease(60), 2).await.unwrap();
    assert_eq!(first.iter().map(announced).collect::<Vec<_>>(), ["ct-1", "ct-2"]);
    let second = store.claim_webhook_deliveries(now, lease(60), 10).await.unwrap();
    assert_eq!(second.iter().map(announced).collect::<Vec<_>>(), ["ct-3"]);
    // Leased: nobody else gets them until the lease ends.
    assert_eq!(store.claim_webhook_deliveries(now, lease(60), 10).await.unwrap(), []);
    assert_eq!(store.claim_webhook_deliveries(lease(59), lease(120), 10).await.unwrap(), []);
    // A lease that ran out without a result (a crashed worker) gives the rows back, unchanged.
    let again = store.claim_webhook_deliveries(lease(60), lease(120), 10).await.unwrap();
    let mut before = first.clone();
    before.extend(second);
    assert_eq!(again, before);
    assert!(again.iter().all(|d| d.attempts == 0));
    assert_eq!(store.claim_webhook_deliveries(lease(60), lease(120), 10).await.unwrap(), []);

    // Concurrent claims never share a row, and together take every due one.
    for i in 4..=13 {
        store.create_card_token(&card(&a(), json!({"id": format!("ct-{i}")})), None).await.unwrap();
    }
    let (x, y) = tokio::join!(
        store.claim_webhook_deliveries(lease(60), lease(600), 6),
        store.claim_webhook_deliveries(lease(60), lease(600), 6)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.len() + y.len(), 10, "{x:?} {y:?}");
    let mut cards: Vec<String> = x.iter().chain(&y).map(announced).collect();
    cards.sort_by_key(|id| id[3..].parse::<u32>().unwrap());
    assert_eq!(cards, (4..=13).map(|i| format!("ct-{i}")).collect::<Vec<_>>());
    assert_eq!(store.claim_webhook_deliveries(lease(60), lease(600), 10).await.unwrap(), []);
}

pub async fn webhook_completions(store: Arc<dyn Store>) {
    subscribe(&store, &a(), &[CARD_TOKEN_ADD]).await;
    take_pings(&store).await;
    for i in 1..=4 {
        store.create_card_token(&card(&a(), json!({"id": format!("ct-{i}")})), None).await.unwrap();
    }
    let now = Timestamp::now().plus_seconds(1);
    let at = |seconds| now.plus_seconds(seconds);
    let claimed = store.claim_webhook_deliveries(now, at(60), 10).await.unwrap();
    assert_eq!(claimed.iter().map(announced).collect::<Vec<_>>(), ["ct-1", "ct-2", "ct-3", "ct-4"]);
    let [delivered, retried, given_up, abandoned] = [0, 1, 2, 3].map(|i| claimed[i].clone());

    store
        .complete_webhook_delivery(delivered.id, &DeliveryResult::Delivered { at: now }, &attempt(Some(200)), 0)
        .await
        .unwrap();
    let retry = DeliveryResult::Retry { at: at(30), error: "the receiver answered 500".into() };
    store.complete_webhook_delivery(retried.id, &retry, &attempt(Some(200)), 0).await.unwrap();
    let give_up = DeliveryResult::GiveUp { error: "connection refused".into() };
    store.complete_webhook_delivery(given_up.id, &give_up, &attempt(Some(200)), 0).await.unwrap();

    // A retry comes back at its time, counting the failed attempt; nothing else is due yet.
    assert_eq!(store.claim_webhook_deliveries(at(29), at(90), 10).await.unwrap(), []);
    let back = store.claim_webhook_deliveries(at(30), at(90), 10).await.unwrap();
    assert_eq!(back, [WebhookDelivery { attempts: 1, ..retried.clone() }]);
    let later = DeliveryResult::Retry { at: at(100), error: "timed out".into() };
    store.complete_webhook_delivery(retried.id, &later, &attempt(Some(200)), 0).await.unwrap();

    // The delivery nobody reported on returns when its lease ends, never counted as attempted.
    assert_eq!(store.claim_webhook_deliveries(at(60), at(1000), 10).await.unwrap(), std::slice::from_ref(&abandoned));
    let back = store.claim_webhook_deliveries(at(100), at(1000), 10).await.unwrap();
    assert_eq!(back, [WebhookDelivery { attempts: 2, ..retried.clone() }]);
    store
        .complete_webhook_delivery(retried.id, &DeliveryResult::Delivered { at: at(100) }, &attempt(Some(200)), 0)
        .await
        .unwrap();
    store
        .complete_webhook_delivery(abandoned.id, &DeliveryResult::Delivered { at: at(100) }, &attempt(Some(200)), 0)
        .await
        .unwrap();

    // Delivered and given-up rows are done for good; late or unknown results change nothing.
    let far = at(30 * 86_400);
    assert_eq!(store.claim_webhook_deliveries(far, far.plus_seconds(60), 10).await.unwrap(), []);
    store
        .complete_webhook_delivery(
            delivered.id,
            &DeliveryResult::Retry { at: now, error: "late".into() },
            &attempt(Some(200)),
            0,
        )
        .await
        .unwrap();
    store
        .complete_webhook_delivery(
            given_up.id,
            &DeliveryResult::Retry { at: now, error: "late".into() },
            &attempt(Some(200)),
            0,
        )
        .await
        .unwrap();
    store
        .complete_webhook_delivery(Uuid::new_v4(), &DeliveryResult::Delivered { at: now }, &attempt(Some(200)), 0)
        .await
        .unwrap();
    assert_eq!(store.claim_webhook_deliveries(far, far.plus_seconds(60), 10).await.unwrap(), []);
}

/// Everything due now, leased for a minute.
async fn due(store: &Arc<dyn Store>) -> Vec<WebhookDelivery> {
    let now = Timestamp::now().plus_seconds(1);
    store.claim_webhook_deliveries(now, now.plus_seconds(60), 100).await.unwrap()
}

/// Attempts are recorded with their outcome and listed, resends and pings queue new deliveries,
/// other accounts see nothing, and consecutive failures delete the subscription.
pub async fn webhook_delivery_history(store: Arc<dyn Store>) {
    let hook = subscribe(&store, &a(), &[CARD_TOKEN_ADD]).await;
    let other = subscribe(&store, &b(), &[CARD_TOKEN_ADD]).await;
    let pings = take_pings(&store).await;
    let ping = pings.iter().find(|d| d.subscription_id == hook.id).unwrap().clone();
    store.create_card_token(&card(&a(), json!({"id": "ct-1"})), None).await.unwrap();
    let claimed = due(&store).await;
    assert_eq!(claimed.len(), 1);
    let sent = claimed[0].clone();
    let retry = DeliveryResult::Retry { at: Timestamp::now(), error: "the receiver answered 503".into() };
    assert_eq!(store.complete_webhook_delivery(sent.id, &retry, &attempt(Some(503)), 1).await.unwrap(), None);
    let claimed = due(&store).await;
    assert_eq!(claimed.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), [(sent.id, 1)]);
    let done = DeliveryResult::Delivered { at: Timestamp::now() };
    store.complete_webhook_delivery(sent.id, &done, &attempt(Some(200)), 1).await.unwrap();

    // Newest first, with the latest attempt's status; paged by delivery id.
    let all = PageRequest { limit: 10, starting_after: None, include_total: true };
    let page = store.list_webhook_deliveries(&a(), hook.id, &all).await.unwrap();
    let listed: Vec<_> = page.items.iter().map(|d| (d.id, d.event_delivery, d.status)).collect();
    assert_eq!(listed, [(sent.id, sent.id, Some(200)), (ping.id, ping.id, Some(200))]);
    assert_eq!((page.total, page.has_more), (Some(2), false));
    let one = PageRequest { limit: 1, starting_after: None, include_total: false };
    let first = store.list_webhook_deliveries(&a(), hook.id, &one).await.unwrap();
    assert_eq!((first.items[0].id, first.has_more, first.total), (sent.id, true, None));
    let next = PageRequest { starting_after: Some(sent.id.to_string()), ..one.clone() };
    let second = store.list_webhook_deliveries(&a(), hook.id, &next).await.unwrap();
    assert_eq!((second.items[0].id, second.has_more), (ping.id, false));
    let foreign_cursor = PageRequest { starting_after: Some(pings[1].id.to_string()), ..one };
    assert!(matches!(
        store.list_webhook_deliveries(&a(), hook.id, &foreign_cursor).await,
        Err(StoreError::UnknownCursor)
    ));

    // Every attempt, oldest first.
    let detail = store.get_webhook_delivery(&a(), hook.id, sent.id).await.unwrap();
    let statuses: Vec<_> = detail.attempts.iter().map(|attempt| attempt.status).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
    assert_eq!(detail.attempts[0].error.as_deref(), Some("the receiver answered 503"));
    assert_eq!(
        detail.attempts[1],
        DeliveryAttempt { attempted_at: detail.attempts[1].attempted_at, ..attempt(Some(200)) }
    );
    assert!(matches!(detail.state, DeliveryState::Delivered { .. }), "{detail:?}");
    assert_eq!((detail.event.as_str(), detail.body.as_str()), (CARD_TOKEN_ADD, sent.body.as_str()));
    assert_eq!((detail.url.as_str(), &detail.account_id), (hook.config.url.as_str(), &a()));

    // Another account's subscription or delivery is not found.
    assert_eq!(not_found(store.get_webhook_delivery(&b(), hook.id, sent.id).await), "subscription");
    assert_eq!(not_found(store.get_webhook_delivery(&b(), other.id, sent.id).await), "delivery");
    assert_eq!(not_found(store.get_webhook_delivery(&a(), hook.id, pings[1].id).await), "delivery");
    assert_eq!(not_found(store.list_webhook_deliveries(&b(), hook.id, &all).await), "subscription");
    assert_eq!(not_found(store.resend_webhook_delivery(&b(), hook.id, sent.id, "x", t(1)).await), "subscription");
    assert_eq!(not_found(store.ping_hook_subscription(&b(), hook.id, "x", t(1)).await), "subscription");

    // A resend is a new delivery with the original's event-delivery and body, due at once.
    let resent = store.resend_webhook_delivery(&a(), hook.id, sent.id, "admin", t(5000)).await.unwrap();
    assert_ne!(resent.id, sent.id);
    assert_eq!((resent.event_delivery, resent.body.as_str(), resent.attempts.len()), (sent.id, sent.body.as_str(), 0));
    assert_eq!(resent.state, DeliveryState::Pending { next_attempt_at: t(5000) });
    let claimed = due(&store).await;
    assert_eq!(claimed.iter().map(|d| (d.id, d.event_delivery)).collect::<Vec<_>>(), [(resent.id, sent.id)]);

    // A ping on request.
    let pinged = store.ping_hook_subscription(&a(), hook.id, "admin", t(6000)).await.unwrap();
    assert_eq!((pinged.event.as_str(), pinged.body.clone()), (PING, ping_event_body(&hook)));
    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let queued: Vec<_> = records
        .iter()
        .filter(|r| r.action == "hook_subscription.resend" || r.action == "hook_subscription.ping")
        .map(|r| (r.action.as_str(), r.actor.as_str(), r.details.clone()))
        .collect();
    assert_eq!(
        queued,
        [
            ("hook_subscription.resend", "admin", json!({"delivery": resent.id})),
            ("hook_subscription.ping", "admin", json!({"delivery": pinged.id})),
        ]
    );

    // Given up twice in a row with a threshold of 2: the subscription is deleted by the worker,
    // and its deliveries with it.
    let claimed = due(&store).await;
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [pinged.id]);
    let give_up = DeliveryResult::GiveUp { error: "connection refused".into() };
    assert_eq!(store.complete_webhook_delivery(resent.id, &give_up, &attempt(None), 2).await.unwrap(), None);
    assert_eq!(store.complete_webhook_delivery(pinged.id, &give_up, &attempt(None), 2).await.unwrap(), Some(hook.id));
    assert_eq!(store.get_hook_subscription(&a(), hook.id).await.unwrap(), None);
    assert_eq!(not_found(store.list_webhook_deliveries(&a(), hook.id, &all).await), "subscription");
    let records = store.list_audit(Some(&a()), 0, 100).await.unwrap();
    let last = records.last().unwrap();
    assert_eq!((last.action.as_str(), last.actor.as_str()), ("hook_subscription.delete", "tokenvault:webhook-worker"));
    assert_eq!(store.get_hook_subscription(&b(), other.id).await.unwrap().map(|h| h.id), Some(other.id));
}

/// Fills an account with one of everything a reset removes.
async fn populate(store: &Arc<dyn Store>, account: &AccountId) {
    customer(store, account, json!({"customer_id": "c1", "email": "ada@example.com"})).await;
    token(store, account, "c1", "t1", "sha1:email", "v1").await;
    store
        .token_detail(account, &tv("sha1:email", "v1"), Some(&event("seen", Some("OPT_IN"), 1000)), "client", t(1000))
        .await
        .unwrap();
    subscribe(store, account, &["checkout_token_add"]).await;
    take_pings(store).await;
    store
        .create_card_token(&card(account, json!({"id": "card-1"})), Some(&sealed(&format!("fp-{account}"))))
        .await
        .unwrap();
    store.add_fault(&fault_rule(account, json!({"path": "/v1/**", "fault": {"type": "drop"}}))).await.unwrap();
    store.set_account_clock(&clock(account, 3_600_000)).await.unwrap();
}

pub async fn reset_wipes_one_account_only(store: Arc<dyn Store>) {
    populate(&store, &a()).await;
    populate(&store, &b()).await;

    let counts = store.reset_account(&a(), ResetParts::ALL, "admin", t(5000)).await.unwrap();
    assert_eq!(
        counts,
        ResetCounts {
            customers: Some(1),
            customer_tokens: Some(1),
            token_events: Some(1),
            card_tokens: Some(1),
            hook_subscriptions: Some(1),
            webhook_deliveries: Some(1),
            fault_rules: Some(1),
            clocks: Some(1),
        }
    );
    // Account A is empty and usable again with the same ids; account B is untouched.
    let everything = PageRequest { limit: 100, starting_after: None, include_total: true };
    let all_customers = CustomerFilter { all_types: true, include_deleted: true, ..CustomerFilter::default() };
    let all_cards = CardTokenFilter { include_deleted: true, ..CardTokenFilter::default() };
    assert_eq!(store.list_customers(&a(), &all_customers, &everything).await.unwrap().total, Some(0));
    assert_eq!(store.list_card_tokens(&a(), &all_cards, &everything).await.unwrap().total, Some(0));
    assert_eq!(store.list_token_events(&a(), None, &everything).await.unwrap().total, Some(0));
    assert_eq!(store.list_hook_subscriptions(&a()).await.unwrap(), []);
    assert_eq!(store.list_customers(&b(), &all_customers, &everything).await.unwrap().total, Some(1));
    assert_eq!(store.list_card_tokens(&b(), &all_cards, &everything).await.unwrap().total, Some(1));
    assert_eq!(store.list_token_events(&b(), None, &everything).await.unwrap().total, Some(1));
    assert_eq!(store.list_hook_subscriptions(&b()).await.unwrap().len(), 1);
    assert_eq!(store.list_faults(&a(), t(5000)).await.unwrap(), []);
    assert_eq!(store.list_faults(&b(), t(5000)).await.unwrap().len(), 1);
    populate(&store, &a()).await;

    let records = store.list_audit(Some(&a()), 0, 1000).await.unwrap();
    let reset = records.iter().find(|r| r.action == "sandbox.reset").unwrap();
    assert_eq!((reset.actor.as_str(), reset.at, reset.resource_id.as_str()), ("admin", t(5000), a().as_str()));
    assert_eq!(reset.details["card_tokens"], json!(1));
}

pub async fn stats_count_pending_deliveries(store: Arc<dyn Store>) {
    let before = store.stats().await.unwrap();
    assert!(before.pool_size >= 1 && before.pool_idle <= before.pool_size, "{before:?}");
    assert_eq!(before.webhook_outbox_pending, 0);
    subscribe(&store, &a(), &["checkout_token_add"]).await;
    // The new subscription's ping waits too.
    assert_eq!(store.stats().await.unwrap().webhook_outbox_pending, 1);
    take_pings(&store).await;
    store.create_card_token(&card(&a(), json!({"id": "card-1"})), None).await.unwrap();
    store.create_card_token(&card(&a(), json!({"id": "card-2"})), None).await.unwrap();
    assert_eq!(store.stats().await.unwrap().webhook_outbox_pending, 2);
    let claimed = drain(&store).await;
    store
        .complete_webhook_delivery(claimed[0].id, &DeliveryResult::Delivered { at: t(9000) }, &attempt(Some(200)), 0)
        .await
        .unwrap();
    assert_eq!(store.stats().await.unwrap().webhook_outbox_pending, 1);
}

// ---- idempotency keys -----------------------------------------------------------------------

fn scope(account: &AccountId, client_id: &str, key: &str) -> IdempotencyScope {
    IdempotencyScope { account: account.clone(), client_id: client_id.to_owned(), key: key.to_owned() }
}

/// A claim at `now` (ms) with a 60 s lease and a 24 h expiry.
fn claim(scope: &IdempotencyScope, fingerprint: &str, now: i64) -> IdempotentRequest {
    IdempotentRequest {
        scope: scope.clone(),
        fingerprint: fingerprint.to_owned(),
        attempt: Uuid::new_v4(),
        now: t(now),
        lease_until: t(now + 60_000),
        expires_at: t(now + 86_400_000),
    }
}

fn stored(status: u16, body: &str) -> StoredResponse {
    StoredResponse {
        status,
        headers: vec![
            ("content-type".to_owned(), "application/json; charset=utf-8".to_owned()),
            ("location".to_owned(), "/v1/x/1".to_owned()),
        ],
        // Bytes, not text: the HTTP layer stores sealed bodies.
        body: [body.as_bytes(), &[0, 255, 1]].concat(),
    }
}

pub async fn idempotency_claim_replay_and_mismatch(store: Arc<dyn Store>) {
    let key = scope(&a(), "client-1", "key-1");
    let first = claim(&key, "fp-1", 1_000);
    assert_eq!(store.begin_idempotent(&first).await.unwrap(), IdempotencyStart::Started);
    // While it runs: the same request waits, another one is refused.
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-1", 2_000)).await.unwrap(), IdempotencyStart::InProgress);
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", 2_000)).await.unwrap(), IdempotencyStart::Mismatch);

    // Only the holder's attempt finishes it.
    store.finish_idempotent(&key, Uuid::new_v4(), &stored(500, "not mine")).await.unwrap();
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-1", 3_000)).await.unwrap(), IdempotencyStart::InProgress);
    let response = stored(201, r#"{"id":"1"}"#);
    store.finish_idempotent(&key, first.attempt, &response).await.unwrap();

    for at in [4_000, 86_000_000] {
        assert_eq!(
            store.begin_idempotent(&claim(&key, "fp-1", at)).await.unwrap(),
            IdempotencyStart::Replay(response.clone())
        );
        assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", at)).await.unwrap(), IdempotencyStart::Mismatch);
    }
    // A finished key is never taken over, abandoned or finished again.
    store.abandon_idempotent(&key, first.attempt).await.unwrap();
    store.finish_idempotent(&key, first.attempt, &stored(200, "again")).await.unwrap();
    assert_eq!(
        store.begin_idempotent(&claim(&key, "fp-1", 5_000)).await.unwrap(),
        IdempotencyStart::Replay(response.clone())
    );

    // An empty body and no headers round-trip too.
    let other = scope(&a(), "client-1", "key-2");
    let claimed = claim(&other, "fp-1", 1_000);
    assert_eq!(store.begin_idempotent(&claimed).await.unwrap(), IdempotencyStart::Started);
    let empty = StoredResponse { status: 404, headers: vec![], body: vec![] };
    store.finish_idempotent(&other, claimed.attempt, &empty).await.unwrap();
    assert_eq!(store.begin_idempotent(&claim(&other, "fp-1", 2_000)).await.unwrap(), IdempotencyStart::Replay(empty));
}

pub async fn idempotency_keys_are_scoped_to_the_caller(store: Arc<dyn Store>) {
    let mine = scope(&a(), "client-1", "shared key");
    assert_eq!(store.begin_idempotent(&claim(&mine, "fp-1", 1_000)).await.unwrap(), IdempotencyStart::Started);
    for other in [scope(&a(), "client-2", "shared key"), scope(&b(), "client-1", "shared key")] {
        let claimed = claim(&other, "fp-other", 1_000);
        assert_eq!(store.begin_idempotent(&claimed).await.unwrap(), IdempotencyStart::Started);
        store.finish_idempotent(&other, claimed.attempt, &stored(200, "other")).await.unwrap();
    }
    assert_eq!(store.begin_idempotent(&claim(&mine, "fp-1", 2_000)).await.unwrap(), IdempotencyStart::InProgress);
    // Keys are compared exactly (case and spaces matter).
    let upper = scope(&a(), "client-1", "SHARED KEY");
    assert_eq!(store.begin_idempotent(&claim(&upper, "fp-1", 2_000)).await.unwrap(), IdempotencyStart::Started);
}

pub async fn idempotency_abandon_and_lease_takeover(store: Arc<dyn Store>) {
    let key = scope(&a(), "client-1", "key");
    let first = claim(&key, "fp-1", 1_000);
    assert_eq!(store.begin_idempotent(&first).await.unwrap(), IdempotencyStart::Started);
    // Abandoning with another attempt does nothing; the holder's abandon frees the key, for any
    // request.
    store.abandon_idempotent(&key, Uuid::new_v4()).await.unwrap();
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-1", 2_000)).await.unwrap(), IdempotencyStart::InProgress);
    store.abandon_idempotent(&key, first.attempt).await.unwrap();
    let second = claim(&key, "fp-2", 3_000);
    assert_eq!(store.begin_idempotent(&second).await.unwrap(), IdempotencyStart::Started);

    // The holder crashed: its lease (until 63 000) runs out, and the same request takes over.
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", 62_999)).await.unwrap(), IdempotencyStart::InProgress);
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-1", 63_000)).await.unwrap(), IdempotencyStart::Mismatch);
    let third = claim(&key, "fp-2", 63_000);
    assert_eq!(store.begin_idempotent(&third).await.unwrap(), IdempotencyStart::Started);
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", 64_000)).await.unwrap(), IdempotencyStart::InProgress);
    // The late first holder can neither finish nor abandon any more.
    store.finish_idempotent(&key, second.attempt, &stored(200, "late")).await.unwrap();
    store.abandon_idempotent(&key, second.attempt).await.unwrap();
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", 65_000)).await.unwrap(), IdempotencyStart::InProgress);
    let response = stored(200, "third");
    store.finish_idempotent(&key, third.attempt, &response).await.unwrap();
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", 66_000)).await.unwrap(), IdempotencyStart::Replay(response));
}

pub async fn idempotency_keys_expire(store: Arc<dyn Store>) {
    let day = 86_400_000;
    let key = scope(&a(), "client-1", "key");
    let first = claim(&key, "fp-1", 1_000);
    assert_eq!(store.begin_idempotent(&first).await.unwrap(), IdempotencyStart::Started);
    store.finish_idempotent(&key, first.attempt, &stored(201, "first")).await.unwrap();
    // Past its expiry the key counts as never used: any request claims it afresh.
    let later = claim(&key, "fp-2", 1_000 + day);
    assert_eq!(store.begin_idempotent(&later).await.unwrap(), IdempotencyStart::Started);
    assert_eq!(store.begin_idempotent(&claim(&key, "fp-2", 2_000 + day)).await.unwrap(), IdempotencyStart::InProgress);
    let response = stored(201, "second");
    store.finish_idempotent(&key, later.attempt, &response).await.unwrap();
    assert_eq!(
        store.begin_idempotent(&claim(&key, "fp-2", 3_000 + day)).await.unwrap(),
        IdempotencyStart::Replay(response)
    );

    // An unfinished key expires too, and many expired keys are purged as new ones arrive.
    let stale = scope(&a(), "client-1", "stale");
    assert_eq!(store.begin_idempotent(&claim(&stale, "fp-1", 1_000)).await.unwrap(), IdempotencyStart::Started);
    for i in 0..40 {
        let old = scope(&b(), "client-1", &format!("old-{i}"));
        assert_eq!(store.begin_idempotent(&claim(&old, "fp", 1_000)).await.unwrap(), IdempotencyStart::Started);
    }
    for i in 0..5 {
        let new = scope(&b(), "client-1", &format!("new-{i}"));
        assert_eq!(store.begin_idempotent(&claim(&new, "fp", 5 * day)).await.unwrap(), IdempotencyStart::Started);
    }
    assert_eq!(store.begin_idempotent(&claim(&stale, "fp-9", 5 * day)).await.unwrap(), IdempotencyStart::Started);
    for i in 0..40 {
        let old = scope(&b(), "client-1", &format!("old-{i}"));
        assert_eq!(store.begin_idempotent(&claim(&old, "fp-9", 5 * day)).await.unwrap(), IdempotencyStart::Started);
    }
}

/// For the backends' own tests, which count rows behind the store's back: 40 keys used at 1 s,
/// then 3 new ones 5 days later. Each claim purges up to 16 expired keys, so afterwards only the
/// 3 new keys remain.
pub async fn idempotency_purge_leaves_three_keys(store: &Arc<dyn Store>) {
    for i in 0..40 {
        let old = scope(&a(), "client-1", &format!("old-{i}"));
        assert_eq!(store.begin_idempotent(&claim(&old, "fp", 1_000)).await.unwrap(), IdempotencyStart::Started);
    }
    for i in 0..3 {
        let new = scope(&b(), "client-1", &format!("new-{i}"));
        let later = 5 * 86_400_000;
        assert_eq!(store.begin_idempotent(&claim(&new, "fp", later)).await.unwrap(), IdempotencyStart::Started);
    }
}

pub async fn reset_forgets_finished_idempotency_keys(store: Arc<dyn Store>) {
    let (done, running, other) =
        (scope(&a(), "client-1", "done"), scope(&a(), "client-1", "running"), scope(&b(), "client-1", "done"));
    for key in [&done, &other] {
        let claimed = claim(key, "fp-1", 1_000);
        assert_eq!(store.begin_idempotent(&claimed).await.unwrap(), IdempotencyStart::Started);
        store.finish_idempotent(key, claimed.attempt, &stored(201, "created")).await.unwrap();
    }
    let running_claim = claim(&running, "fp-1", 1_000);
    assert_eq!(store.begin_idempotent(&running_claim).await.unwrap(), IdempotencyStart::Started);

    store.reset_account(&a(), ResetParts::ALL, "admin", t(2_000)).await.unwrap();
    // The finished key of the reset account runs afresh; a claim in progress still holds and can
    // still be finished; another account's keys are untouched.
    assert_eq!(store.begin_idempotent(&claim(&done, "fp-2", 3_000)).await.unwrap(), IdempotencyStart::Started);
    assert_eq!(store.begin_idempotent(&claim(&running, "fp-1", 3_000)).await.unwrap(), IdempotencyStart::InProgress);
    store.finish_idempotent(&running, running_claim.attempt, &stored(200, "reset")).await.unwrap();
    assert_eq!(
        store.begin_idempotent(&claim(&running, "fp-1", 4_000)).await.unwrap(),
        IdempotencyStart::Replay(stored(200, "reset"))
    );
    assert_eq!(
        store.begin_idempotent(&claim(&other, "fp-1", 4_000)).await.unwrap(),
        IdempotencyStart::Replay(stored(201, "created"))
    );
}

pub async fn data_keys_and_sealed_value_walks(store: Arc<dyn Store>) {
    assert_eq!(store.data_keys().await.unwrap(), vec![]);
    let key = |id: u32| DataKeyRecord {
        id,
        wrapped: vec![id as u8; 40],
        created_at: t(5000 + i64::from(id)),
        created_by: "cli".into(),
    };
    store.insert_data_key(&key(1)).await.unwrap();
    store.insert_data_key(&key(2)).await.unwrap();
    assert!(matches!(store.insert_data_key(&key(2)).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.data_keys().await.unwrap(), vec![key(1), key(2)]);
    let added: Vec<crate::domain::audit::AuditRecord> = store
        .list_audit(None, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "encryption_key.add")
        .collect();
    assert_eq!(
        added.iter().map(|r| (r.account_id.as_str(), r.actor.as_str(), r.resource_id.as_str())).collect::<Vec<_>>(),
        vec![("", "cli", "1"), ("", "cli", "2")]
    );

    // Card tokens sealed "under" two keys (the first bytes name the key), one without a token.
    let account = a();
    let under = |prefix: &[u8], name: &str| SealedToken {
        ciphertext: [prefix, name.as_bytes()].concat(),
        fingerprint: format!("fp-{name}"),
    };
    let old_prefix = [2u8, 0, 0, 0, 1];
    let new_prefix = [2u8, 0, 0, 0, 2];
    let mut ids = Vec::new();
    for (index, prefix) in [&old_prefix, &new_prefix, &old_prefix, &old_prefix].into_iter().enumerate() {
        let card = card(&account, json!({}));
        store.create_card_token(&card, Some(&under(prefix, &format!("c{index}")))).await.unwrap();
        ids.push(card.id);
    }
    store.create_card_token(&card(&account, json!({})), None).await.unwrap();
    let hook = subscribe(&store, &account, &[CARD_TOKEN_ADD]).await;

    let walk = |after: i64, limit: u32| {
        let store = store.clone();
        async move { store.sealed_values(SealedColumn::CardToken, after, &new_prefix, limit).await.unwrap() }
    };
    let first = walk(0, 2).await;
    assert_eq!(first.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), vec![ids[0].as_str(), ids[2].as_str()]);
    assert_eq!(first[0].sealed, under(&old_prefix, "c0").ciphertext);
    assert_eq!(first[0].account, account);
    let rest = walk(first[1].row, 2).await;
    assert_eq!(rest.iter().map(|v| v.id.as_str()).collect::<Vec<_>>(), vec![ids[3].as_str()]);
    assert_eq!(walk(rest[0].row, 2).await, vec![]);

    // Replacing writes only where the row still holds the old value.
    let changes = vec![
        Resealed { row: first[0].row, old: first[0].sealed.clone(), new: under(&new_prefix, "c0").ciphertext },
        Resealed { row: first[1].row, old: b"changed meanwhile".to_vec(), new: under(&new_prefix, "c2").ciphertext },
    ];
    assert_eq!(store.replace_sealed_values(SealedColumn::CardToken, &changes).await.unwrap(), 1);
    let stored = store.get_card_token(&account, &ids[0]).await.unwrap().unwrap();
    assert_eq!(stored.sealed_token, Some(under(&new_prefix, "c0").ciphertext));
    let stored = store.get_card_token(&account, &ids[2]).await.unwrap().unwrap();
    assert_eq!(stored.sealed_token, Some(under(&old_prefix, "c2").ciphertext));
    assert_eq!(walk(0, 10).await.len(), 2);

    // Webhook secrets are walked the same way.
    let secrets = store.sealed_values(SealedColumn::HookSecret, 0, &new_prefix, 10).await.unwrap();
    assert_eq!(secrets.len(), 1);
    assert_eq!((secrets[0].id.as_str(), &secrets[0].account), (hook.id.to_string().as_str(), &account));
    let change = Resealed { row: secrets[0].row, old: secrets[0].sealed.clone(), new: new_prefix.to_vec() };
    assert_eq!(store.replace_sealed_values(SealedColumn::HookSecret, &[change]).await.unwrap(), 1);
    assert_eq!(store.sealed_values(SealedColumn::HookSecret, 0, &new_prefix, 10).await.unwrap(), vec![]);
}

pub async fn webhook_outbox_pruning(store: Arc<dyn Store>) {
    subscribe(&store, &a(), &[CARD_TOKEN_ADD]).await;
    take_pings(&store).await;
    for i in 1..=3 {
        store.create_card_token(&card(&a(), json!({"id": format!("ct-{i}")})), None).await.unwrap();
    }
    let now = Timestamp::now().plus_seconds(1);
    let claimed = store.claim_webhook_deliveries(now, now.plus_seconds(60), 10).await.unwrap();
    assert_eq!(claimed.len(), 3);
    store
        .complete_webhook_delivery(claimed[0].id, &DeliveryResult::Delivered { at: now }, &attempt(Some(200)), 0)
        .await
        .unwrap();
    let give_up = DeliveryResult::GiveUp { error: "connection refused".into() };
    store.complete_webhook_delivery(claimed[1].id, &give_up, &attempt(Some(200)), 0).await.unwrap();
    let retry = DeliveryResult::Retry { at: now.plus_seconds(3600), error: "the receiver answered 500".into() };
    store.complete_webhook_delivery(claimed[2].id, &retry, &attempt(Some(200)), 0).await.unwrap();

    // Before `now - 1 s` only the ping finished (at the subscription's `t(1000)`); then the
    // delivered and the given-up one go, a batch of one at a time; the pending retry is never
    // pruned.
    assert_eq!(store.prune_webhook_outbox(now.plus_seconds(-1), 10).await.unwrap(), 1);
    let later = now.plus_seconds(86_400);
    assert_eq!(store.prune_webhook_outbox(later, 1).await.unwrap(), 1);
    assert_eq!(store.prune_webhook_outbox(later, 10).await.unwrap(), 1);
    assert_eq!(store.prune_webhook_outbox(later, 10).await.unwrap(), 0);
    assert_eq!(store.stats().await.unwrap().webhook_outbox_pending, 1);
    let back = store.claim_webhook_deliveries(now.plus_seconds(3600), now.plus_seconds(4000), 10).await.unwrap();
    assert_eq!(back.iter().map(|d| d.id).collect::<Vec<_>>(), [claimed[2].id]);
}

// ---- fault rules ----------------------------------------------------------------------------

/// A rule of `account` made at t(1000) from a `POST …/sandbox/faults` body.
fn fault_rule(account: &AccountId, body: Value) -> FaultRule {
    FaultRule::from_body(&object(body), account, "client", t(1000)).unwrap()
}

pub async fn fault_rules_count_matches_atomically(store: Arc<dyn Store>) {
    let times = fault_rule(
        &a(),
        json!({"path": "/v1/**", "fault": {"type": "drop"}, "frequency": {"type": "times", "times": 2}}),
    );
    // Until t(10_000).
    let always = fault_rule(
        &a(),
        json!({"method": "GET", "path": "/x", "fault": {"type": "delay", "delay_ms": 5}, "until": "1970-01-01T00:00:10Z"}),
    );
    let other = fault_rule(&b(), json!({"path": "/x", "fault": {"type": "status", "status": 500}}));
    for rule in [&times, &always, &other] {
        store.add_fault(rule).await.unwrap();
    }
    assert_eq!(store.list_faults(&a(), t(2000)).await.unwrap(), [times.clone(), always.clone()]);

    // Five requests at once against "the next 2": exactly two are counted, as matches 1 and 2.
    let counted = futures_join_all((0..5).map(|_| {
        let store = store.clone();
        let id = times.id;
        async move { store.count_fault_match(&a(), id, t(2000)).await.unwrap() }
    }))
    .await;
    let mut numbers: Vec<i64> = counted.into_iter().flatten().collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(store.count_fault_match(&a(), always.id, t(2000)).await.unwrap(), Some(1));
    assert_eq!(store.count_fault_match(&a(), always.id, t(2000)).await.unwrap(), Some(2));
    // Expired, of another account, or unknown: nothing is counted.
    assert_eq!(store.count_fault_match(&a(), always.id, t(10_000)).await.unwrap(), None);
    assert_eq!(store.count_fault_match(&a(), other.id, t(2000)).await.unwrap(), None);
    assert_eq!(store.count_fault_match(&a(), Uuid::new_v4(), t(2000)).await.unwrap(), None);

    let listed = store.list_faults(&a(), t(2000)).await.unwrap();
    assert_eq!(
        listed.iter().map(|rule| (rule.id, rule.remaining, rule.matched)).collect::<Vec<_>>(),
        [(times.id, Some(0), 2), (always.id, None, 2)]
    );
    // Expired rules are not listed.
    assert_eq!(store.list_faults(&a(), t(10_000)).await.unwrap().len(), 1);

    assert!(store.delete_fault(&a(), always.id, "admin", t(3000)).await.unwrap());
    assert!(!store.delete_fault(&a(), always.id, "admin", t(3000)).await.unwrap());
    assert!(!store.delete_fault(&a(), other.id, "admin", t(3000)).await.unwrap());
    assert_eq!(store.delete_faults(&a(), "admin", t(3000)).await.unwrap(), 1);
    assert_eq!(store.list_faults(&a(), t(3000)).await.unwrap(), []);
    assert_eq!(store.list_faults(&b(), t(3000)).await.unwrap(), [other]);

    let actions = audit_actions(&store, &a()).await;
    assert_eq!(actions, ["sandbox.fault.add", "sandbox.fault.add", "sandbox.fault.delete", "sandbox.faults.clear"]);
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

fn journal_entry(account: &AccountId, n: i64, status: u16) -> crate::domain::journal::JournalEntry {
    crate::domain::journal::JournalEntry {
        id: format!("j{n}"),
        account: account.clone(),
        recorded_at: t(n * 1000 + 86_400_000),
        received_at: t(n * 1000),
        method: if n % 2 == 0 { "GET" } else { "POST" }.to_owned(),
        path: format!("/v1/accounts/{account}/customers/users/c{n}"),
        query: None,
        status,
        latency_ms: 1,
        request_id: Some(format!("r{n}")),
        client_id: Some("client".into()),
        idempotency_key: None,
        request_headers: Some("{}".into()),
        request_body: None,
        response_body: Some("{}".into()),
        fault: None,
    }
}

pub async fn journal_lists_filters_and_prunes(store: Arc<dyn Store>) {
    use crate::domain::journal::{JournalFilter, StatusFilter};
    let entries: Vec<_> = (1..=6).map(|n| journal_entry(&a(), n, if n == 3 { 503 } else { 200 })).collect();
    store.append_journal(&entries).await.unwrap();
    store.append_journal(&[journal_entry(&b(), 7, 200)]).await.unwrap();
    let ids =
        |page: &Page<crate::domain::journal::JournalEntry>| page.items.iter().map(|e| e.id.clone()).collect::<Vec<_>>();

    let page = PageRequest { limit: 2, starting_after: None, include_total: true };
    let first = store.list_journal(&a(), &JournalFilter::default(), &page).await.unwrap();
    assert_eq!((ids(&first), first.has_more, first.total), (vec!["j6".to_owned(), "j5".to_owned()], true, Some(6)));
    let next = PageRequest { starting_after: Some("j5".into()), ..page.clone() };
    assert_eq!(ids(&store.list_journal(&a(), &JournalFilter::default(), &next).await.unwrap()), ["j4", "j3"]);
    let filter = JournalFilter { status: Some(StatusFilter::parse("5xx").unwrap()), ..JournalFilter::default() };
    assert_eq!(ids(&store.list_journal(&a(), &filter, &PageRequest::default()).await.unwrap()), ["j3"]);
    let filter = JournalFilter {
        method: Some("POST".into()),
        path_prefix: Some("/v1/accounts/T00000001/customers/users/c".into()),
        since: Some(t(2000 + 86_400_000)), // the account's time, not real time
        client_id: Some("client".into()),
        ..JournalFilter::default()
    };
    assert_eq!(ids(&store.list_journal(&a(), &filter, &PageRequest::default()).await.unwrap()), ["j5", "j3"]);
    let filter = JournalFilter { request_id: Some("r7".into()), ..JournalFilter::default() };
    assert!(store.list_journal(&a(), &filter, &PageRequest::default()).await.unwrap().items.is_empty());
    assert_eq!(store.get_journal_entry(&a(), "j2").await.unwrap(), entries[1]);
    assert!(matches!(store.get_journal_entry(&a(), "j7").await, Err(StoreError::NotFound("request"))));
    let unknown = PageRequest { starting_after: Some("j7".into()), ..PageRequest::default() };
    assert!(matches!(
        store.list_journal(&a(), &JournalFilter::default(), &unknown).await,
        Err(StoreError::UnknownCursor)
    ));

    // Count: the newest 4 of `a` stay; age: what was recorded before 2 s goes (of every account).
    assert_eq!(store.prune_journal(&[a()], 4, t(0)).await.unwrap(), 2);
    assert_eq!(
        ids(&store.list_journal(&a(), &JournalFilter::default(), &PageRequest::default()).await.unwrap()),
        ["j6", "j5", "j4", "j3"]
    );
    assert_eq!(store.prune_journal(&[], 4, t(4000)).await.unwrap(), 1);
    assert_eq!(store.clear_journal(&a()).await.unwrap(), 3);
    assert_eq!(
        ids(&store.list_journal(&b(), &JournalFilter::default(), &PageRequest::default()).await.unwrap()),
        ["j7"]
    );
}

fn clock(account: &AccountId, offset_ms: i64) -> AccountClock {
    AccountClock { account_id: account.clone(), offset_ms, updated_at: t(7000), updated_by: "admin".into() }
}

pub async fn account_clocks_are_kept_audited_and_shift_the_outbox(store: Arc<dyn Store>) {
    subscribe(&store, &a(), &[CARD_TOKEN_ADD]).await;
    subscribe(&store, &b(), &[CARD_TOKEN_ADD]).await;
    take_pings(&store).await;
    assert_eq!(store.account_clock(&a()).await.unwrap(), None);
    assert!(!store.clear_account_clock(&a(), "admin", t(7000)).await.unwrap());
    // Only a clock in the past (a negative offset) anywhere: accounts without one are due on
    // real time all the same.
    let long_ago = -Timestamp::now().millis();
    store.set_account_clock(&clock(&a(), long_ago)).await.unwrap();
    assert_eq!(store.account_clock(&a()).await.unwrap(), Some(clock(&a(), long_ago)));
    store.set_account_clock(&clock(&a(), long_ago - 1000)).await.unwrap();
    assert_eq!(store.account_clock(&a()).await.unwrap().map(|c| c.offset_ms), Some(long_ago - 1000));
    assert_eq!(store.account_clock(&b()).await.unwrap(), None);

    store.create_card_token(&card(&b(), json!({"id": "ct-b"})), None).await.unwrap();
    // Queued "at once" in the account's time: about the epoch for `a`.
    store.create_card_token(&card(&a(), json!({"id": "ct-a"})), None).await.unwrap();
    let now = Timestamp::now().plus_seconds(1);
    let claimed = store.claim_webhook_deliveries(now, now.plus_seconds(60), 100).await.unwrap();
    let mut announced_now: Vec<String> = claimed.iter().map(announced).collect();
    announced_now.sort();
    assert_eq!(announced_now, ["ct-a", "ct-b"]);
    let delivery = claimed.iter().find(|d| announced(d) == "ct-a").unwrap();
    let record = store.get_webhook_delivery(&a(), delivery.subscription_id, delivery.id).await.unwrap();
    assert!(record.created_at.millis() < 10_000, "queued in the account's time: {:?}", record.created_at);
    // Leased in the account's time too: due again when the lease ends in real time.
    assert_eq!(
        record.state,
        DeliveryState::Pending { next_attempt_at: now.plus_seconds(60).plus_millis(long_ago - 1000) }
    );
    assert_eq!(store.claim_webhook_deliveries(now.plus_seconds(59), now.plus_seconds(120), 100).await.unwrap(), []);
    let again = store.claim_webhook_deliveries(now.plus_seconds(60), now.plus_seconds(120), 100).await.unwrap();
    assert_eq!(again.len(), claimed.len());

    // A retry scheduled an hour ahead in `a`'s time comes due when `a`'s clock moves an hour on.
    let retry = DeliveryResult::Retry { at: record.created_at.plus_seconds(3600), error: "503".into() };
    store.complete_webhook_delivery(delivery.id, &retry, &attempt(Some(503)), 0).await.unwrap();
    let later = now.plus_seconds(120);
    let others = store.claim_webhook_deliveries(later, later.plus_seconds(600), 100).await.unwrap();
    assert!(others.iter().all(|d| d.id != delivery.id));
    store.set_account_clock(&clock(&a(), long_ago - 1000 + 3_600_000)).await.unwrap();
    let due = store.claim_webhook_deliveries(later, later.plus_seconds(600), 100).await.unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), [delivery.id]);

    // Audited; a reset returns the account to real time.
    let actions: Vec<String> =
        store.list_audit(Some(&a()), 0, 1000).await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(actions.iter().filter(|a| a.as_str() == "sandbox.clock.set").count(), 3);
    let parts = ResetParts { customers: false, card_tokens: false, hooks: false, faults: false, clock: true };
    assert_eq!(store.reset_account(&a(), parts, "admin", t(8000)).await.unwrap().clocks, Some(1));
    assert_eq!(store.account_clock(&a()).await.unwrap(), None);
    store.set_account_clock(&clock(&b(), 5)).await.unwrap();
    assert!(store.clear_account_clock(&b(), "admin", t(9000)).await.unwrap());
    let actions: Vec<String> =
        store.list_audit(Some(&b()), 0, 1000).await.unwrap().into_iter().map(|r| r.action).collect();
    assert_eq!(
        actions.iter().filter(|a| a.starts_with("sandbox.clock")).collect::<Vec<_>>(),
        ["sandbox.clock.set", "sandbox.clock.clear"]
    );
}
