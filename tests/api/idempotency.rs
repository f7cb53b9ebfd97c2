//! `Idempotency-Key` on POST and DELETE (Stripe's semantics): a retry with the same key and
//! request replays the first response byte for byte and does nothing twice; the same key with
//! another request is 422; a retry while the first request runs is 409; keys are the caller's
//! own and expire.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use tokenvault::domain::AccountId;

use crate::helpers::*;

backend_tests!(
    a_retry_replays_the_first_response_and_creates_nothing_twice,
    a_card_token_create_is_replayed_but_its_token_is_not_stored_in_clear,
    the_same_key_with_another_request_is_422,
    concurrent_requests_with_one_key_run_once,
    keys_belong_to_their_client_and_account,
    a_delete_is_replayed,
    client_errors_are_replayed,
    keys_are_validated_after_authentication,
    only_post_and_delete_take_keys,
    a_sandbox_reset_forgets_the_accounts_keys,
);

/// Tests that start their own server (a short key lifetime).
mod own_server {
    use super::keys_expire;

    backend_tests!(backend: keys_expire);
}

const REPLAYED: &str = "idempotent-replayed";

async fn send_keyed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    key: &str,
) -> TestResponse {
    app.send(method, path, Some(token), body, &[("idempotency-key", key.to_owned())]).await
}

/// Every header but those that differ between any two responses (`request-id`, `date`) and the
/// replay marker.
fn stable_headers(response: &TestResponse) -> BTreeMap<String, Vec<String>> {
    let mut headers = BTreeMap::<String, Vec<String>>::new();
    for (name, value) in &response.headers {
        if !matches!(name.as_str(), "request-id" | "date" | REPLAYED) {
            headers.entry(name.as_str().to_owned()).or_default().push(value.to_str().unwrap().to_owned());
        }
    }
    headers
}

/// `replay` is `first` again: same status, headers (but `request-id`) and body bytes, marked as a
/// replay with a fresh request id.
#[track_caller]
fn assert_replay(first: &TestResponse, replay: &TestResponse) {
    assert_eq!(first.header(REPLAYED), None, "the first response is no replay");
    assert_eq!(replay.header(REPLAYED), Some("true"), "not marked as a replay: {}", replay.text);
    assert_eq!(replay.status, first.status);
    assert_eq!(stable_headers(replay), stable_headers(first));
    assert_eq!(replay.text.as_bytes(), first.text.as_bytes());
    let (first_id, replay_id) = (first.header("request-id").unwrap(), replay.header("request-id").unwrap());
    assert_ne!(first_id, replay_id, "a replay gets a request id of its own");
}

async fn audit_count(app: &TestApp, account: &str, action: &str) -> usize {
    let account = AccountId::parse("aid", account).unwrap();
    let records = app.store().list_audit(Some(&account), 0, 10_000).await.unwrap();
    records.iter().filter(|record| record.action == action).count()
}

async fn a_retry_replays_the_first_response_and_creates_nothing_twice(app: TestApp) {
    let admin = app.admin().await;
    let customers = customers_path(ACCOUNT);
    let body = json!({"customer_id": "c-1", "email": "a@example.com"});
    let first = send_keyed(&app, Method::POST, &customers, &admin.token, Some(&body), "create c-1").await;
    first.expect_json(200);
    let replay = send_keyed(&app, Method::POST, &customers, &admin.token, Some(&body), "create c-1").await;
    assert_replay(&first, &replay);

    // A token with a generated token_id: running twice would create two.
    let tokens = tokens_path(ACCOUNT, "c-1");
    let body = json!({"type": "sha1:email", "value": "v1"});
    let first = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "k-token").await;
    first.expect_json(201);
    for _ in 0..3 {
        let replay = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "k-token").await;
        assert_replay(&first, &replay);
    }
    // A token event recorded once.
    let events = events_path(ACCOUNT);
    let body =
        json!({"token": {"type": "sha1:email", "value": "other"}, "event": {"event": "seen", "status": "OPT_OUT"}});
    let first = send_keyed(&app, Method::POST, &events, &admin.token, Some(&body), "k-event").await;
    first.expect_json(200);
    let replay = send_keyed(&app, Method::POST, &events, &admin.token, Some(&body), "k-event").await;
    assert_replay(&first, &replay);

    let listed = app.get(&format!("{tokens}?total=true"), &admin.token).await;
    assert_eq!(listed.expect_json(200).as_array().unwrap().len(), 1);
    assert_eq!(listed.header("total-count"), Some("1"));
    let listed = app.get(&format!("{customers}?total=true"), &admin.token).await;
    assert_eq!(listed.header("total-count"), Some("1"));
    assert_eq!(audit_count(&app, ACCOUNT, "customer.create").await, 1);
    assert_eq!(audit_count(&app, ACCOUNT, "customer_token.create").await, 1);
    assert_eq!(audit_count(&app, ACCOUNT, "token_event.record").await, 1);

    // Without the header, nothing changes: the same body creates a second token.
    app.create_token(&admin.token, "c-1", &body_without_id()).await;
    let listed = app.get(&format!("{tokens}?total=true"), &admin.token).await;
    assert_eq!(listed.header("total-count"), Some("2"));
}

fn body_without_id() -> Value {
    json!({"type": "sha1:email", "value": "v2"})
}

async fn a_card_token_create_is_replayed_but_its_token_is_not_stored_in_clear(app: TestApp) {
    let admin = app.admin().await;
    let secret = "psp_secret_idempotent_4242";
    let body = json!({"card_brand": "visa", "payment_product_type": "x", "token": secret});
    let first = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "card-1").await;
    assert_eq!(first.expect_json(201)["token"], secret);
    let replay = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "card-1").await;
    assert_replay(&first, &replay);
    let listed = app.get("/v1/card-tokens?total=true", &admin.token).await;
    assert_eq!(listed.header("total-count"), Some("1"));

    // The stored response is sealed: neither the token nor the body is readable in the table.
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let bodies: Vec<Vec<u8>> = match app.backend {
        Backend::Sqlite => {
            let path = app.dir.as_ref().unwrap().path().join("tokenvault.db");
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut statement = conn.prepare("SELECT body FROM idempotency_keys").unwrap();
            statement.query_map([], |row| row.get(0)).unwrap().map(Result::unwrap).collect()
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let rows = client.query("SELECT body FROM idempotency_keys", &[]).await.unwrap();
            rows.iter().map(|row| row.get(0)).collect()
        }
    };
    assert_eq!(bodies.len(), 1);
    for needle in [secret.as_bytes(), id.as_bytes()] {
        assert!(!bodies[0].windows(needle.len()).any(|w| w == needle), "the stored body is readable");
    }
}

async fn the_same_key_with_another_request_is_422(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let tokens = tokens_path(ACCOUNT, "c-1");
    let body = json!({"type": "sha1:email", "value": "v1"});
    send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "k").await.expect_json(201);

    let message = "this Idempotency-Key was already used with a different request (method, path, query or body)";
    let other_body = json!({"type": "sha1:email", "value": "v2"});
    // Another body, even one that differs only in its bytes (key order), query, path or method.
    let same_json_other_bytes = json!({"value": "v1", "type": "sha1:email"});
    for (method, path, body) in [
        (Method::POST, tokens.clone(), Some(&other_body)),
        (Method::POST, tokens.clone(), Some(&same_json_other_bytes)),
        (Method::POST, format!("{tokens}?delete_token_events=false"), Some(&body)),
        (Method::POST, "/v1/card-tokens".to_owned(), Some(&body)),
        (Method::DELETE, format!("{tokens}/x"), None),
    ] {
        let response = send_keyed(&app, method, &path, &admin.token, body, "k").await;
        assert_error(&response, 422, message, json!([]));
        assert_eq!(response.json()["error"]["code"], "UNPROCESSABLE ENTITY");
    }
    let listed = app.get(&format!("{tokens}?total=true"), &admin.token).await;
    assert_eq!(listed.header("total-count"), Some("1"));
    // The original request still replays.
    let replay = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "k").await;
    assert_eq!(replay.header(REPLAYED), Some("true"));
}

async fn concurrent_requests_with_one_key_run_once(app: TestApp) {
    let admin = app.admin().await;
    // A generated id each time: every run that is not deduplicated adds a card token.
    let body = json!({"card_brand": "visa", "payment_product_type": "x"});
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url, token, barrier) = (app.http.clone(), app.url.clone(), admin.token.clone(), barrier.clone());
        let body = serde_json::to_vec(&body).unwrap();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let response = http
                .post(format!("{url}/v1/card-tokens"))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .header("idempotency-key", "concurrent")
                .body(body)
                .send()
                .await
                .unwrap();
            let (status, headers) = (response.status(), response.headers().clone());
            TestResponse { status, headers, text: response.text().await.unwrap() }
        }));
    }
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }

    let originals: Vec<&TestResponse> =
        responses.iter().filter(|r| r.status == 201 && r.header(REPLAYED).is_none()).collect();
    assert_eq!(originals.len(), 1, "exactly one request runs: {responses:#?}");
    for response in &responses {
        match response.status.as_u16() {
            201 if response.header(REPLAYED).is_some() => assert_replay(originals[0], response),
            201 => {}
            409 => {
                let message = "a request with this Idempotency-Key is in progress; retry shortly";
                assert_error(response, 409, message, json!([]));
                assert_eq!(response.header("retry-after"), Some("1"));
            }
            other => panic!("unexpected {other}: {}", response.text),
        }
    }
    let listed = app.get("/v1/card-tokens?total=true", &admin.token).await;
    assert_eq!(listed.header("total-count"), Some("1"));
    let replay = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "concurrent").await;
    assert_replay(originals[0], &replay);
}

async fn keys_belong_to_their_client_and_account(app: TestApp) {
    let body = json!({"card_brand": "visa", "payment_product_type": "x"});
    let mine = app.admin().await;
    let colleague = app.auth(ACCOUNT, &["admin:checkout"]).await;
    let stranger = app.auth(OTHER_ACCOUNT, ALL_SCOPES).await;
    let first = send_keyed(&app, Method::POST, "/v1/card-tokens", &mine.token, Some(&body), "shared").await;
    first.expect_json(201);
    // The same key and request from another client of the account, or from another account, is
    // theirs: it runs (and a different request under it is no mismatch).
    for caller in [&colleague, &stranger] {
        let response = send_keyed(&app, Method::POST, "/v1/card-tokens", &caller.token, Some(&body), "shared").await;
        response.expect_json(201);
        assert_eq!(response.header(REPLAYED), None);
        assert_ne!(response.json()["id"], first.json()["id"]);
    }
    let listed = app.get("/v1/card-tokens?total=true", &mine.token).await;
    assert_eq!(listed.header("total-count"), Some("2"));
    let listed = app.get("/v1/card-tokens?total=true", &stranger.token).await;
    assert_eq!(listed.header("total-count"), Some("1"));
    // Each caller's retry replays its own response.
    let replay = send_keyed(&app, Method::POST, "/v1/card-tokens", &mine.token, Some(&body), "shared").await;
    assert_replay(&first, &replay);
}

async fn a_delete_is_replayed(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    app.create_token(&admin.token, "c-1", &json!({"type": "t", "value": "v", "token_id": "tid-1"})).await;
    let path = format!("{}/tid-1", tokens_path(ACCOUNT, "c-1"));
    let first = send_keyed(&app, Method::DELETE, &path, &admin.token, None, "delete tid-1").await;
    first.expect_json(200);
    let replay = send_keyed(&app, Method::DELETE, &path, &admin.token, None, "delete tid-1").await;
    assert_replay(&first, &replay);
    assert_eq!(audit_count(&app, ACCOUNT, "customer_token.delete").await, 1);

    // A card-token DELETE with a JSON body, as Dintero's clients send it.
    let card = app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    let path = format!("/v1/card-tokens/{}", card["id"].as_str().unwrap());
    let body = json!({"reason": "Profile deleted", "requestor": "MERCHANT"});
    let first = send_keyed(&app, Method::DELETE, &path, &admin.token, Some(&body), "delete card").await;
    assert_eq!(first.expect_json(200)["status"], "DELETED");
    let replay = send_keyed(&app, Method::DELETE, &path, &admin.token, Some(&body), "delete card").await;
    assert_replay(&first, &replay);
    assert_eq!(audit_count(&app, ACCOUNT, "card_token.delete").await, 1);
}

async fn client_errors_are_replayed(app: TestApp) {
    let admin = app.admin().await;
    let tokens = tokens_path(ACCOUNT, "later");
    let body = json!({"type": "t", "value": "v"});
    let first = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "early").await;
    assert_error_status(&first, 404);
    // Once the customer exists the request would succeed, but the key's answer stays 404.
    app.create_customer(&admin.token, &json!({"customer_id": "later"})).await;
    let replay = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "early").await;
    assert_replay(&first, &replay);
    // A fresh key runs it.
    let body = json!({"type": "t", "value": "v", "token_id": "tid"});
    send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "late").await.expect_json(201);

    // Validation errors and duplicates (400, as aid_customers_cid_tokens_post documents) are kept as well.
    let bad = json!({"type": "", "value": "v"});
    let first = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&bad), "bad").await;
    first.expect_json(400);
    assert_replay(&first, &send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&bad), "bad").await);
    let first = send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "clash").await;
    assert_eq!(first.expect_json(400)["error"]["code"], json!("DUPLICATE_TOKEN_ID"));
    assert_replay(&first, &send_keyed(&app, Method::POST, &tokens, &admin.token, Some(&body), "clash").await);
    // A 403 (a scope the client lacks) too: it is the same caller's answer.
    let reader = app.auth(ACCOUNT, &["read:customers"]).await;
    let first = send_keyed(&app, Method::POST, &tokens, &reader.token, Some(&body), "k").await;
    assert_error_status(&first, 403);
    assert_replay(&first, &send_keyed(&app, Method::POST, &tokens, &reader.token, Some(&body), "k").await);
}

async fn keys_are_validated_after_authentication(app: TestApp) {
    let admin = app.admin().await;
    let body = json!({"card_brand": "visa", "payment_product_type": "x"});
    let message = "Idempotency-Key: must be 1 to 255 printable ASCII characters";
    let errors = json!([{"field": "Idempotency-Key", "message": "must be 1 to 255 printable ASCII characters"}]);
    for key in [String::new(), "k".repeat(256), "tab\there".to_owned()] {
        let response = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), &key).await;
        assert_error(&response, 400, message, errors.clone());
    }
    let longest = "~".repeat(255);
    let response = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), &longest).await;
    response.expect_json(201);

    // The body is read before the handler runs, within the same limit; the key stays unused.
    let limit = 1024 * 1024;
    let big = json!({"card_brand": "visa", "payment_product_type": "x", "customer_id": "x".repeat(limit)});
    let response = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&big), "big").await;
    assert_error(&response, 413, &format!("request body is larger than {limit} bytes"), json!([]));
    let response = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "big").await;
    response.expect_json(201);
    assert_eq!(response.header(REPLAYED), None);

    // Without valid credentials the key is not even looked at: the usual 401.
    for token in [None, Some("garbage")] {
        let response =
            app.send(Method::POST, "/v1/card-tokens", token, Some(&body), &[("idempotency-key", String::new())]).await;
        assert_error_status(&response, 401);
    }
}

async fn only_post_and_delete_take_keys(app: TestApp) {
    let admin = app.admin().await;
    let card = app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    let id = card["id"].as_str().unwrap();
    // GET and PUT ignore the header (even an invalid one).
    let headers = [("idempotency-key", "\t".to_owned())];
    let response = app.send(Method::GET, &format!("/v1/card-tokens/{id}"), Some(&admin.token), None, &headers).await;
    response.expect_json(200);
    let status = json!({"status": "SUSPENDED"});
    for expected in ["SUSPENDED", "SUSPENDED"] {
        let response = app
            .send(Method::PUT, &format!("/v1/card-tokens/{id}/status"), Some(&admin.token), Some(&status), &headers)
            .await;
        assert_eq!(response.expect_json(200)["status"], expected);
        assert_eq!(response.header(REPLAYED), None);
    }
    // The token endpoint mints a new token each time: it takes no key.
    let credentials = app.new_client(ACCOUNT, &["admin:checkout"]).await;
    let authorization = basic(&credentials.client_id, &credentials.client_secret);
    let body = json!({"grant_type": "client_credentials", "audience": audience(ACCOUNT)});
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let response = app
            .send(
                Method::POST,
                &format!("/v1/accounts/{ACCOUNT}/auth/token"),
                None,
                Some(&body),
                &[("authorization", authorization.clone()), ("idempotency-key", "same".to_owned())],
            )
            .await;
        assert_eq!(response.header(REPLAYED), None);
        tokens.push(response.expect_json(200)["access_token"].as_str().unwrap().to_owned());
    }
    assert_ne!(tokens[0], tokens[1]);
}

async fn keys_expire(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.idempotency.ttl = Duration::from_millis(1500)).await;
    let admin = app.admin().await;
    let body = json!({"card_brand": "visa", "payment_product_type": "x"});
    let first = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "short-lived").await;
    first.expect_json(201);
    let replay = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "short-lived").await;
    assert_replay(&first, &replay);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // Expired: the key is free again, for any request.
    let other = json!({"card_brand": "mastercard", "payment_product_type": "x"});
    let again = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&other), "short-lived").await;
    assert_eq!(again.expect_json(201)["card_brand"], "mastercard");
    assert_eq!(again.header(REPLAYED), None);
    let listed = app.get("/v1/card-tokens?total=true", &admin.token).await;
    assert_eq!(listed.header("total-count"), Some("2"));
}

async fn a_sandbox_reset_forgets_the_accounts_keys(app: TestApp) {
    let admin = app.admin().await;
    let body = json!({"card_brand": "visa", "payment_product_type": "x"});
    let first = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "ci-run").await;
    first.expect_json(201);
    let reset_path = format!("/v1/accounts/{ACCOUNT}/sandbox/reset");
    let reset = send_keyed(&app, Method::POST, &reset_path, &admin.token, None, "reset-1").await;
    assert_eq!(reset.expect_json(200)["deleted"]["card_tokens"], 1);
    // The reset's own key replays; the key of the wiped card token runs afresh (a CI run that
    // reuses its keys after a reset creates its data again).
    assert_replay(&reset, &send_keyed(&app, Method::POST, &reset_path, &admin.token, None, "reset-1").await);
    let again = send_keyed(&app, Method::POST, "/v1/card-tokens", &admin.token, Some(&body), "ci-run").await;
    again.expect_json(201);
    assert_eq!(again.header(REPLAYED), None);
    assert_ne!(again.json()["id"], first.json()["id"]);
}
