//! The request journal of test accounts (`/v1/accounts/{aid}/sandbox/requests`): every request
//! recorded with its secrets redacted, filters, paging, one entry, clearing; production accounts
//! and readers refused; nothing recorded with the journal off.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    requests_are_recorded_with_secrets_redacted,
    the_journal_filters_pages_and_clears,
    the_journal_is_for_test_accounts_and_administrators,
    nothing_is_recorded_with_the_journal_off,
    requests_beyond_the_rate_are_counted_not_recorded,
    faulted_requests_are_journaled_as_faulted,
);

fn journal_path(account: &str) -> String {
    format!("/v1/accounts/{account}/sandbox/requests")
}

/// Polls the journal (written off the requests' path) until `query` lists `count` entries.
async fn wait_for(app: &TestApp, token: &str, query: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.get(&format!("{}?limit=100&{query}", journal_path(ACCOUNT)), token).await;
        let entries = response.expect_json(200).as_array().expect("an array").clone();
        if entries.len() >= count || Instant::now() > deadline {
            assert_eq!(entries.len(), count, "entries for {query}: {entries:#?}");
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn requests_are_recorded_with_secrets_redacted(app: TestApp) {
    let admin = app.auth(ACCOUNT, &["admin:customers", "admin:checkout", "admin:hooks"]).await;
    let card = json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard",
                      "token": "psp-secret-value-1", "customer_id": "c1"});
    let created = app
        .send(
            Method::POST,
            "/v1/card-tokens",
            Some(&admin.token),
            Some(&card),
            &[("idempotency-key", "key-1".to_owned()), ("request-id", "my-request-1".to_owned())],
        )
        .await
        .expect_json(201);
    // A webhook secret, in a subscription refused for its loopback target.
    let hook = json!({"config": {"url": "http://127.0.0.1:9/hook", "secret": "hook-secret-value-2"},
                      "events": ["checkout_token_add"]});
    let refused = app.post_json(&format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"), &admin.token, &hook).await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    // Client credentials in a token request's body and header, and a malformed card body.
    app.send(
        Method::POST,
        &format!("/v1/accounts/{ACCOUNT}/auth/token"),
        None,
        Some(&json!({"grant_type": "client_credentials", "client_secret": admin.client_secret})),
        &[("authorization", basic(&admin.client_id, &admin.client_secret))],
    )
    .await;
    let broken =
        app.raw_post("/v1/card-tokens", &admin.token, "application/json", br#"{"token": "psp-secret-value-3", "#).await;
    assert_eq!(broken.status, 400);

    let entries = wait_for(&app, &admin.token, "", 5).await;
    let text = serde_json::to_string(&entries).unwrap();
    for secret in [
        admin.client_secret.as_str(),
        admin.token.as_str(),
        "psp-secret-value-1",
        "hook-secret-value-2",
        "psp-secret-value-3",
        &basic(&admin.client_id, &admin.client_secret)["Basic ".len()..],
    ] {
        assert!(!text.contains(secret), "{secret:?} is in the journal: {text}");
    }

    // Newest first: the malformed body, the token requests, the hook, the card token.
    let paths: Vec<(&str, u64)> =
        entries.iter().map(|e| (e["path"].as_str().unwrap(), e["status"].as_u64().unwrap())).collect();
    let token_path = format!("/v1/accounts/{ACCOUNT}/auth/token");
    let hooks_path = format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions");
    assert_eq!(paths[0], ("/v1/card-tokens", 400));
    assert_eq!(paths[1].0, token_path);
    assert_eq!(paths[2], (hooks_path.as_str(), 400));
    assert_eq!(paths[3], ("/v1/card-tokens", 201));
    assert_eq!(paths[4], (token_path.as_str(), 200));
    assert_eq!(entries[0]["request"]["body"], json!(r#"{"token": "[redacted]", "#));
    assert_eq!(entries[1]["request"]["body"]["client_secret"], "[redacted]");
    assert_eq!(entries[2]["request"]["body"]["config"]["secret"], "[redacted]");
    assert_eq!(entries[4]["response"]["body"]["access_token"], "[redacted]");

    // The card token's entry, whole.
    let mut entry = entries[3].clone();
    let id = entry["id"].as_str().unwrap().to_owned();
    entry["id"] = json!("<id>");
    let recorded_at = entry["recorded_at"].as_str().unwrap().to_owned();
    assert!(chrono::DateTime::parse_from_rfc3339(&recorded_at).is_ok(), "{recorded_at}");
    entry["recorded_at"] = json!("<ts>");
    assert!(entry["latency_ms"].as_u64().is_some());
    entry["latency_ms"] = json!(0);
    let headers = entry["request"]["headers"].take();
    assert_eq!(headers["authorization"], "[redacted]");
    assert_eq!(headers["idempotency-key"], "key-1");
    assert_eq!(headers["content-type"], "application/json");
    let mut response_body = created.clone();
    response_body["token"] = json!("[redacted]");
    let mut expected_card = card.clone();
    expected_card["token"] = json!("[redacted]");
    assert_json_eq(
        &entry,
        &json!({
            "id": "<id>", "account_id": ACCOUNT, "recorded_at": "<ts>", "method": "POST",
            "path": "/v1/card-tokens", "query": null, "status": 201, "latency_ms": 0,
            "request_id": "my-request-1", "client_id": admin.client_id, "idempotency_key": "key-1",
            "request": {"headers": null, "body": expected_card},
            "response": {"body": if created.get("token").is_some() { response_body } else { created.clone() }},
            "fault": null,
        }),
    );

    // One entry by id: the same as listed.
    let one = app.get(&format!("{}/{id}", journal_path(ACCOUNT)), &admin.token).await.expect_json(200);
    assert_json_eq(&one, &entries[3]);
    let missing = app.get(&format!("{}/nope", journal_path(ACCOUNT)), &admin.token).await;
    assert_error(&missing, 404, "request not found", json!([]));
}

async fn the_journal_filters_pages_and_clears(app: TestApp) {
    let admin = app.admin().await;
    let other = app.auth(ACCOUNT, &["admin:customers"]).await;
    app.post_json(&customers_path(ACCOUNT), &admin.token, &json!({"customer_id": "c1"})).await.expect_json(200);
    app.get(&customer_path(ACCOUNT, "c1"), &admin.token).await.expect_json(200);
    assert_eq!(app.get(&customer_path(ACCOUNT, "missing"), &other.token).await.status, 404);
    app.send(
        Method::GET,
        &format!("{}?limit=1", customers_path(ACCOUNT)),
        Some(&admin.token),
        None,
        &[("request-id", "find-me".to_owned())],
    )
    .await
    .expect_json(200);
    let customers = format!("path_prefix={}", customers_path(ACCOUNT));
    let all = wait_for(&app, &admin.token, &customers, 4).await;

    assert_eq!(wait_for(&app, &admin.token, &format!("{customers}&method=post"), 1).await[0]["status"], 200);
    assert_eq!(wait_for(&app, &admin.token, "status=4xx", 1).await[0]["path"], customer_path(ACCOUNT, "missing"));
    assert_eq!(wait_for(&app, &admin.token, "status=404", 1).await[0]["client_id"], other.client_id.as_str());
    wait_for(&app, &admin.token, "status=5xx", 0).await;
    let mine = wait_for(&app, &admin.token, &format!("{customers}&client_id={}", admin.client_id), 3).await;
    assert!(mine.iter().all(|e| e["client_id"] == admin.client_id.as_str()));
    let found = wait_for(&app, &admin.token, "request_id=find-me", 1).await;
    assert_eq!(found[0]["query"], "limit=1");
    wait_for(&app, &admin.token, "since=2999-01-01T00:00:00Z", 0).await;
    let since = format!("since={}", urlencode(all[3]["recorded_at"].as_str().unwrap()));
    assert!(wait_for(&app, &admin.token, &format!("{customers}&{since}"), 4).await.len() == 4);

    // Paging: one at a time, newest first, with Dintero's paging headers.
    let pages = app.walk(&format!("{}?{customers}&limit=1", journal_path(ACCOUNT)), &admin.token).await;
    let walked: Vec<Value> = pages.iter().flat_map(|page| page.json().as_array().unwrap().clone()).collect();
    assert_eq!(walked, all);
    assert_eq!(pages[0].header("paging-token"), all[0]["id"].as_str());
    pages.last().unwrap().assert_last_page();

    // Bad input is 400 in Dintero's error body.
    let bad = |query: &'static str| {
        let app = &app;
        let token = admin.token.clone();
        async move { app.get(&format!("{}?{query}", journal_path(ACCOUNT)), &token).await }
    };
    assert_validation(
        &bad("status=6xx").await,
        &[("status", "must be an HTTP status (100-599) or a class such as 5xx")],
    );
    assert_validation(
        &bad("since=yesterday").await,
        &[("since", "must be an RFC 3339 date-time such as 2026-12-03T06:00:00Z")],
    );
    assert_validation(&bad("limit=0").await, &[("limit", "must be an integer between 1 and 100")]);
    assert_validation(&bad("path_prefix=customers").await, &[("path_prefix", "must start with /")]);
    assert_validation(
        &bad("method=FETCH").await,
        &[("method", "unknown method \"FETCH\": must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")],
    );
    assert_validation(&bad("starting_after=nope").await, &[("starting_after", "does not name an item of this list")]);

    // Clearing empties the account's journal; the journal's own calls are not recorded.
    let everything = wait_for(&app, &admin.token, "", all.len() + 2).await.len() as u64;
    let cleared = app.delete(&journal_path(ACCOUNT), &admin.token).await.expect_json(200);
    assert_json_eq(&cleared, &json!({"account_id": ACCOUNT, "deleted": everything}));
    wait_for(&app, &admin.token, "", 0).await;
}

async fn the_journal_is_for_test_accounts_and_administrators(app: TestApp) {
    let production = app.auth("P12345678", ALL_SCOPES).await;
    app.post_json(&customers_path("P12345678"), &production.token, &json!({"customer_id": "c1"}))
        .await
        .expect_json(200);
    let response = app.get(&journal_path("P12345678"), &production.token).await;
    assert_error(&response, 403, "request journals are only for test accounts (T…), not P12345678", json!([]));

    let reader = app.auth(ACCOUNT, &["read:customers", "read:checkout", "admin:hooks"]).await;
    let response = app.get(&journal_path(ACCOUNT), &reader.token).await;
    assert_eq!(response.status, 403, "{}", response.text);
    let response = app.delete(&journal_path(ACCOUNT), &reader.token).await;
    assert_eq!(response.status, 403, "{}", response.text);
    let response = app.get(&journal_path(ACCOUNT), "not-a-token").await;
    assert_eq!(response.status, 401, "{}", response.text);

    // Another test account's caller sees nothing of this account, and records into its own.
    let admin = app.admin().await;
    let other = app.auth(OTHER_ACCOUNT, ALL_SCOPES).await;
    app.get(&customers_path(OTHER_ACCOUNT), &other.token).await.expect_json(200);
    let response = app.get(&journal_path(ACCOUNT), &other.token).await;
    assert_eq!(response.status, 403, "{}", response.text);
    // Only the token requests of `reader` and `admin`: the journal's own calls are not recorded.
    let mine = wait_for(&app, &admin.token, "", 2).await;
    assert!(mine.iter().all(|e| e["path"] == format!("/v1/accounts/{ACCOUNT}/auth/token")), "{mine:#?}");

    // The production account recorded nothing, not even in the store.
    let store = app.store();
    let page = store
        .list_journal(
            &tokenvault::domain::AccountId::parse("aid", "P12345678").unwrap(),
            &Default::default(),
            &Default::default(),
        )
        .await
        .unwrap();
    assert!(page.items.is_empty(), "{:?}", page.items);
}

async fn nothing_is_recorded_with_the_journal_off(on: TestApp) {
    let backend = on.backend;
    drop(on);
    let app = spawn_app_with(backend, |config| config.journal.enabled = false).await;
    let admin = app.admin().await;
    app.post_json(&customers_path(ACCOUNT), &admin.token, &json!({"customer_id": "c1"})).await.expect_json(200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_json_eq(&app.get(&journal_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
}

fn urlencode(value: &str) -> String {
    value.replace(':', "%3A").replace('+', "%2B")
}

async fn requests_beyond_the_rate_are_counted_not_recorded(on: TestApp) {
    let backend = on.backend;
    drop(on);
    let app = spawn_app_with(backend, |config| config.journal.max_per_second = 1).await;
    let admin = app.admin().await;
    let started = Instant::now();
    for _ in 0..6 {
        app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200);
    }
    // One request a second at most: the token request and the six lists span a few seconds.
    let seconds = started.elapsed().as_secs() + 2;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = app.get(&format!("{}?limit=100", journal_path(ACCOUNT)), &admin.token).await.expect_json(200);
    let recorded = listed.as_array().unwrap().len() as u64;
    assert!((1..=seconds).contains(&recorded), "{recorded} recorded in about {seconds} s");
    let metrics = app.send(Method::GET, "/metrics", None, None, &[]).await.text;
    let dropped: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("tokenvault_journal_dropped_total "))
        .expect("the dropped counter")
        .parse()
        .unwrap();
    assert_eq!(recorded + dropped, 7, "{metrics}");
}

async fn faulted_requests_are_journaled_as_faulted(app: TestApp) {
    let admin = app.admin().await;
    let faulted = app
        .send(
            Method::GET,
            &customers_path(ACCOUNT),
            Some(&admin.token),
            None,
            &[("tokenvault-fault", "503".to_owned())],
        )
        .await;
    assert_eq!(faulted.status, 503, "{}", faulted.text);
    app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200);
    let entries = wait_for(&app, &admin.token, &format!("path_prefix={}", customers_path(ACCOUNT)), 2).await;
    // Newest first: the plain request, then the faulted one.
    assert_eq!((entries[0]["status"].clone(), entries[0]["fault"].clone()), (json!(200), Value::Null));
    assert_eq!(
        (entries[1]["status"].clone(), entries[1]["fault"].clone()),
        (json!(503), json!("the tokenvault-fault header"))
    );
}

/// Requests the server's limits answer before (or instead of) a handler.
mod limits {
    use super::*;

    backend_tests!(backend: shed_and_timed_out_requests_are_journaled);

    async fn shed_and_timed_out_requests_are_journaled(backend: Backend) {
        let app = spawn_app_with(backend, |config| {
            config.requests.max_in_flight = 1;
            config.requests.request_timeout = Duration::from_millis(700);
        })
        .await;
        let admin = app.admin().await;
        let slow_path = format!("{}?slow=1", customers_path(ACCOUNT));
        let delay = [("tokenvault-fault", "delay=5000".to_owned())];
        let (list, slow) = tokio::join!(
            async {
                // Sent while the slow request holds the one place.
                tokio::time::sleep(Duration::from_millis(250)).await;
                app.get(&customers_path(ACCOUNT), &admin.token).await
            },
            // A delay longer than the request timeout: cut by it.
            app.send(Method::GET, &slow_path, Some(&admin.token), None, &delay),
        );
        assert_error(&list, 503, "the server is overloaded; retry shortly", json!([]));
        assert_error(&slow, 503, "the request took too long", json!([]));

        let entries = wait_for(&app, &admin.token, &format!("path_prefix={}", customers_path(ACCOUNT)), 2).await;
        let shown: Vec<Value> = entries
            .iter()
            .map(|entry| {
                json!({"query": entry["query"], "status": entry["status"], "fault": entry["fault"],
                       "response": entry["response"]["body"]["error"]["message"], "request_id": entry["request_id"]})
            })
            .collect();
        assert_json_eq(
            &json!(shown),
            &json!([
                {"query": "slow=1", "status": 503, "fault": "the tokenvault-fault header",
                 "response": "the request took too long", "request_id": slow.header("request-id")},
                {"query": null, "status": 503, "fault": null,
                 "response": "the server is overloaded; retry shortly", "request_id": list.header("request-id")},
            ]),
        );
        assert!(entries[0]["latency_ms"].as_u64().unwrap() >= 700, "{}", entries[0]);
    }
}
