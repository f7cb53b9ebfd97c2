//! Faults on demand (`/v1/accounts/{aid}/sandbox/faults` and the `tokenvault-fault` request
//! header): rules are kept, listed and removed; a matching request gets the fault (a status in
//! Dintero's error body, a delay, a closed connection) and changes no data; "the next N" holds
//! across two servers on one PostgreSQL database; a seeded probability faults the same requests
//! on every run; production accounts never take faults.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    rules_are_added_listed_and_removed,
    rule_bodies_are_validated,
    faults_are_for_test_accounts_and_sandbox_admins,
    status_faults_answer_before_the_handler,
    rules_match_method_path_and_client,
    delays_let_the_request_proceed,
    dropped_connections_get_no_answer,
    seeded_probabilities_repeat,
    the_fault_header_faults_one_request,
    reset_removes_fault_rules,
);

fn faults_path(account: &str) -> String {
    format!("/v1/accounts/{account}/sandbox/faults")
}

/// Adds a rule (201) and returns its body.
async fn add_rule(app: &TestApp, token: &str, body: Value) -> Value {
    app.post_json(&faults_path(ACCOUNT), token, &body).await.expect_json(201)
}

/// The rule's `id`, `until` and `created_at` checked and replaced by placeholders.
fn placeholders(mut rule: Value) -> (String, Value) {
    let id = take_uuid(&mut rule, "id");
    take_ts(&mut rule, "created_at");
    let until = rule["until"].as_str().unwrap().to_owned();
    assert_timestamp(&until);
    rule["until"] = json!("<until>");
    (id, rule)
}

async fn rules_are_added_listed_and_removed(app: TestApp) {
    let admin = app.admin().await;
    let created = add_rule(
        &app,
        &admin.token,
        json!({"method": "post", "path": "/v1/accounts/*/customers/users/*/tokens",
               "fault": {"type": "status", "status": 503}, "frequency": {"type": "times", "times": 3}}),
    )
    .await;
    let created_at = assert_timestamp(created["created_at"].as_str().unwrap());
    // An hour unless `until` says otherwise.
    assert_eq!(assert_timestamp(created["until"].as_str().unwrap()), created_at + 3600);
    let (first, shown) = placeholders(created.clone());
    assert_json_eq(
        &shown,
        &json!({"id": "<id>", "account_id": ACCOUNT, "method": "POST", "path": "/v1/accounts/*/customers/users/*/tokens",
                "client_id": null, "fault": {"type": "status", "status": 503, "retry_after": 1},
                "frequency": {"type": "times", "times": 3, "remaining": 3}, "matched": 0, "until": "<until>",
                "created_at": "<ts>", "created_by": admin.client_id}),
    );
    let in_a_week = chrono::Utc::now() + chrono::Duration::days(7);
    let until_week = in_a_week.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let second = add_rule(
        &app,
        &admin.token,
        json!({"path": "/v1/card-tokens", "client_id": "someone", "fault": {"type": "delay", "delay_ms": 10},
               "frequency": {"type": "probability", "probability": 0.25, "seed": 7}, "until": until_week}),
    )
    .await;
    assert_json_eq(&second["fault"], &json!({"type": "delay", "delay_ms": 10}));
    assert_json_eq(&second["frequency"], &json!({"type": "probability", "probability": 0.25, "seed": 7}));
    assert_eq!(second["until"], json!(until_week));
    let third = add_rule(&app, &admin.token, json!({"path": "/v1/**", "fault": {"type": "drop"}, "method": "*"})).await;
    assert_eq!(third["method"], json!(null));
    assert_json_eq(&third["frequency"], &json!({"type": "always"}));
    // A probability without a seed gets one, shown so that the run can be repeated.
    let seeded = add_rule(
        &app,
        &admin.token,
        json!({"path": "/x", "fault": {"type": "status", "status": 429, "retry_after": 30},
               "frequency": {"type": "probability", "probability": 1}}),
    )
    .await;
    assert!(seeded["frequency"]["seed"].is_u64(), "{seeded}");
    assert_json_eq(&seeded["fault"], &json!({"type": "status", "status": 429, "retry_after": 30}));

    // Listed oldest first, as created.
    let listed = app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200);
    assert_json_eq(&listed, &json!([created, second, third, seeded]));

    // One removed (204, then 404); an id that is no UUID names no rule.
    let one = format!("{}/{}", faults_path(ACCOUNT), second["id"].as_str().unwrap());
    let response = app.delete(&one, &admin.token).await;
    assert_eq!(response.status.as_u16(), 204);
    assert_eq!(response.text, "");
    assert_error(&app.delete(&one, &admin.token).await, 404, "fault rule not found", json!([]));
    let bad = format!("{}/not-a-uuid", faults_path(ACCOUNT));
    assert_error(&app.delete(&bad, &admin.token).await, 404, "fault rule not found", json!([]));
    // Another account's rules are not this one's.
    let other = app.auth(OTHER_ACCOUNT, ALL_SCOPES).await;
    let theirs = format!("{}/{first}", faults_path(OTHER_ACCOUNT));
    assert_error(&app.delete(&theirs, &other.token).await, 404, "fault rule not found", json!([]));
    assert_json_eq(&app.get(&faults_path(OTHER_ACCOUNT), &other.token).await.expect_json(200), &json!([]));

    // Every one removed.
    let response = app.delete(&faults_path(ACCOUNT), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!({"account_id": ACCOUNT, "deleted": 3}));
    assert_json_eq(&app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
    let response = app.delete(&faults_path(ACCOUNT), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!({"account_id": ACCOUNT, "deleted": 0}));

    // The audit trail has each change.
    let account = tokenvault::domain::AccountId::parse("aid", ACCOUNT).unwrap();
    let actions: Vec<String> = app
        .store()
        .list_audit(Some(&account), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.action)
        .filter(|action| action.starts_with("sandbox."))
        .collect();
    assert_eq!(
        actions,
        [
            "sandbox.fault.add",
            "sandbox.fault.add",
            "sandbox.fault.add",
            "sandbox.fault.add",
            "sandbox.fault.delete",
            "sandbox.faults.clear",
            "sandbox.faults.clear"
        ]
    );
}

async fn rule_bodies_are_validated(app: TestApp) {
    let admin = app.admin().await;
    let post = |body: Value| {
        let (app, token) = (&app, admin.token.clone());
        async move { app.post_json(&faults_path(ACCOUNT), &token, &body).await }
    };
    assert_validation(&post(json!({"fault": {"type": "status", "status": 503}})).await, &[("path", "is required")]);
    assert_validation(&post(json!({"path": "/x"})).await, &[("fault", "is required")]);
    assert_validation(
        &post(json!({"method": "FETCH", "path": "x", "client_id": " c", "fault": {"type": "explode"},
                     "frequency": {"type": "sometimes"}, "until": "tomorrow", "colour": "red"}))
        .await,
        &[
            ("colour", "is not a field of a fault rule"),
            ("method", "must be one of GET, HEAD, POST, PUT, PATCH, DELETE or *"),
            ("path", "must start with /"),
            ("client_id", "must not have leading or trailing spaces"),
            ("fault.type", "must be one of status, delay, drop"),
            ("frequency.type", "must be one of always, times, probability"),
            ("until", "must be an RFC 3339 date-time"),
        ],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "status", "status": 404}})).await,
        &[("fault.status", "must be one of 429, 500, 502, 503, 504")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "status", "status": 502, "retry_after": 5}})).await,
        &[("fault.retry_after", "is only sent with 429 and 503")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "delay", "delay_ms": 60001}})).await,
        &[("fault.delay_ms", "must be an integer from 1 to 60000")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "drop", "status": 500}})).await,
        &[("fault.status", "is not a field of this fault type")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "drop"}, "frequency": {"type": "times", "times": 0}})).await,
        &[("frequency.times", "must be an integer from 1 to 1000000")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "drop"},
                     "frequency": {"type": "probability", "probability": 0, "seed": -1}}))
        .await,
        &[("frequency.probability", "must be a number above 0 and at most 1")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "drop"},
                     "frequency": {"type": "probability", "probability": 0.5, "seed": -1}}))
        .await,
        &[("frequency.seed", "must be a non-negative integer")],
    );
    assert_validation(
        &post(json!({"path": "/a/b**", "fault": {"type": "drop"}})).await,
        &[("path", "** must be a whole segment")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "drop"}, "until": "2001-01-01T00:00:00Z"})).await,
        &[("until", "must be in the future")],
    );
    assert_validation(
        &post(json!({"path": "/x", "fault": {"type": "drop"}, "until": "2999-01-01T00:00:00Z"})).await,
        &[("until", "must be at most 30 days ahead")],
    );
    assert_error(
        &app.send(Method::POST, &faults_path(ACCOUNT), Some(&admin.token), None, &[]).await,
        400,
        "a JSON object body is required",
        json!([]),
    );
    assert_error(
        &app.post_json(&faults_path(ACCOUNT), &admin.token, &json!([1])).await,
        400,
        "the request body must be a JSON object",
        json!([]),
    );
    // Nothing was stored.
    assert_json_eq(&app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));

    // At most 100 rules per account.
    for _ in 0..100 {
        add_rule(&app, &admin.token, json!({"path": "/nothing", "fault": {"type": "drop"}})).await;
    }
    let response = post(json!({"path": "/nothing", "fault": {"type": "drop"}})).await;
    assert_error(&response, 409, "an account holds at most 100 fault rules; delete some first", json!([]));
}

async fn faults_are_for_test_accounts_and_sandbox_admins(app: TestApp) {
    let production = app.auth("P12345678", ALL_SCOPES).await;
    let rule = json!({"path": "/v1/**", "fault": {"type": "status", "status": 500}});
    for response in [
        app.post_json(&faults_path("P12345678"), &production.token, &rule).await,
        app.get(&faults_path("P12345678"), &production.token).await,
        app.delete(&faults_path("P12345678"), &production.token).await,
        app.delete(&format!("{}/{}", faults_path("P12345678"), uuid::Uuid::new_v4()), &production.token).await,
    ] {
        assert_error(&response, 403, "sandbox operations are only for test accounts (T…), not P12345678", json!([]));
    }
    // Production requests never take a fault, from the header either.
    let response = app
        .send(
            Method::GET,
            &customers_path("P12345678"),
            Some(&production.token),
            None,
            &[("tokenvault-fault", "503".into())],
        )
        .await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    assert_eq!(response.header("tokenvault-fault"), None);
    let response = app
        .send(Method::GET, "/v1/card-tokens", Some(&production.token), None, &[("tokenvault-fault", "nonsense".into())])
        .await;
    assert_json_eq(&response.expect_json(200), &json!([]));

    for scopes in [&["admin:customers"][..], &["admin:checkout"][..]] {
        let token = app.token_for(ACCOUNT, scopes).await;
        app.get(&faults_path(ACCOUNT), &token).await.expect_json(200);
    }
    let reader = app.token_for(ACCOUNT, &["read:customers", "write:customers", "admin:hooks"]).await;
    for response in [
        app.post_json(&faults_path(ACCOUNT), &reader, &rule).await,
        app.get(&faults_path(ACCOUNT), &reader).await,
        app.delete(&faults_path(ACCOUNT), &reader).await,
    ] {
        assert_error(
            &response,
            403,
            "the access token lacks the required scope: one of admin:customers, admin:checkout",
            json!([]),
        );
    }
    let admin = app.admin().await;
    let response = app.post_json(&faults_path(OTHER_ACCOUNT), &admin.token, &rule).await;
    assert_error(&response, 403, "the access token is not valid for account T87654321", json!([]));
    let response = app.send(Method::GET, &faults_path(ACCOUNT), None, None, &[]).await;
    assert_error(&response, 401, "missing bearer token", json!([]));
}

/// The error body of a fault of rule `id`.
fn fault_body(status: u16, id: &str) -> Value {
    json!({"error": {"code": error_code_of(status), "message": format!("a fault injected by tokenvault (fault rule {id})"), "errors": []}})
}

fn error_code_of(status: u16) -> &'static str {
    match status {
        500 => "INTERNAL SERVER ERROR",
        502 => "BAD GATEWAY",
        504 => "GATEWAY TIMEOUT",
        other => error_code(other),
    }
}

async fn status_faults_answer_before_the_handler(app: TestApp) {
    let admin = app.admin().await;
    let rule = add_rule(
        &app,
        &admin.token,
        json!({"method": "POST", "path": "/v1/accounts/*/customers/users",
               "fault": {"type": "status", "status": 503}, "frequency": {"type": "times", "times": 2}}),
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    for key in ["k1", "k1"] {
        // With an Idempotency-Key too: the fault comes first, so the retry below runs afresh.
        let response = app
            .send(
                Method::POST,
                &customers_path(ACCOUNT),
                Some(&admin.token),
                Some(&json!({"customer_id": "c1"})),
                &[("idempotency-key", key.into())],
            )
            .await;
        assert_json_eq(&response.expect_json(503), &fault_body(503, id));
        assert_eq!(response.header("retry-after"), Some("1"));
        assert_eq!(response.header("tokenvault-fault"), Some(id));
        assert!(response.header("request-id").is_some());
    }
    // Nothing was created.
    assert_json_eq(&app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
    // The third request is not faulted.
    let response = app
        .send(
            Method::POST,
            &customers_path(ACCOUNT),
            Some(&admin.token),
            Some(&json!({"customer_id": "c1"})),
            &[("idempotency-key", "k1".into())],
        )
        .await;
    assert_eq!(response.expect_json(200)["customer_id"], json!("c1"));
    assert_eq!(response.header("tokenvault-fault"), None);
    assert_eq!(response.header("idempotent-replayed"), None);
    let listed = app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200);
    assert_json_eq(&listed[0]["frequency"], &json!({"type": "times", "times": 2, "remaining": 0}));
    assert_eq!(listed[0]["matched"], json!(2));

    // Each status, with Retry-After where it belongs.
    app.delete(&faults_path(ACCOUNT), &admin.token).await.expect_json(200);
    for (status, retry_after) in [(429, Some("30")), (500, None), (502, None), (503, Some("2")), (504, None)] {
        let mut fault = json!({"type": "status", "status": status});
        if let Some(seconds) = retry_after {
            fault["retry_after"] = json!(seconds.parse::<u32>().unwrap());
        }
        let rule = add_rule(&app, &admin.token, json!({"path": "/v1/card-tokens", "fault": fault})).await;
        let id = rule["id"].as_str().unwrap();
        let response = app.get("/v1/card-tokens", &admin.token).await;
        assert_json_eq(&response.expect_json(status), &fault_body(status, id));
        assert_eq!(response.header("retry-after"), retry_after, "{status}");
        assert_eq!(response.header("tokenvault-fault"), Some(id));
        app.delete(&format!("{}/{id}", faults_path(ACCOUNT)), &admin.token).await;
    }
    app.get("/v1/card-tokens", &admin.token).await.expect_json(200);
}

async fn rules_match_method_path_and_client(app: TestApp) {
    let admin = app.admin().await;
    let other_client = app.auth(ACCOUNT, &["admin:customers"]).await;
    let rule = add_rule(
        &app,
        &admin.token,
        json!({"method": "GET", "path": "/v1/accounts/*/customers/**", "client_id": admin.client_id,
               "fault": {"type": "status", "status": 500}}),
    )
    .await;
    let id = rule["id"].as_str().unwrap();
    let faulted = |response: &TestResponse| response.header("tokenvault-fault") == Some(id);
    assert!(faulted(&app.get(&customers_path(ACCOUNT), &admin.token).await));
    assert!(faulted(&app.get(&tokens_path(ACCOUNT, "c1"), &admin.token).await));
    assert!(faulted(&app.get(&events_path(ACCOUNT), &admin.token).await));
    // Another method, path or client, or another account: no fault.
    app.post_json(&customers_path(ACCOUNT), &admin.token, &json!({"customer_id": "c1"})).await.expect_json(200);
    app.get("/v1/card-tokens", &admin.token).await.expect_json(200);
    app.get(&customers_path(ACCOUNT), &other_client.token).await.expect_json(200);
    let other = app.auth(OTHER_ACCOUNT, ALL_SCOPES).await;
    app.get(&customers_path(OTHER_ACCOUNT), &other.token).await.expect_json(200);
    // The token endpoint is a request to the account like any other; its client is the Basic user.
    let token_rule = add_rule(
        &app,
        &admin.token,
        json!({"path": "/v1/accounts/*/auth/token", "client_id": admin.client_id, "fault": {"type": "status", "status": 502}}),
    )
    .await;
    // The sandbox's own operations never are faulted, even by a rule for every path.
    add_rule(&app, &admin.token, json!({"path": "/**", "fault": {"type": "status", "status": 503}})).await;
    assert_eq!(app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200).as_array().unwrap().len(), 3);
    let response = app
        .request_token(
            ACCOUNT,
            Some(&basic(&admin.client_id, &admin.client_secret)),
            &json!({"grant_type": "client_credentials", "audience": audience(ACCOUNT)}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 502, "the older rule fires first: {}", response.text);
    assert_eq!(response.header("tokenvault-fault"), token_rule["id"].as_str());
    // The oldest rule that fires decides.
    assert!(faulted(&app.get(&customers_path(ACCOUNT), &admin.token).await));
    let response = app
        .request_token(
            ACCOUNT,
            Some(&basic(&other_client.client_id, &other_client.client_secret)),
            &json!({"grant_type": "client_credentials", "audience": audience(ACCOUNT)}),
        )
        .await;
    response.expect_json(503);
    // Health and the document belong to no account.
    app.send(Method::GET, "/health", None, None, &[]).await.expect_json(200);
}

async fn delays_let_the_request_proceed(app: TestApp) {
    let admin = app.admin().await;
    let rule = add_rule(
        &app,
        &admin.token,
        json!({"method": "POST", "path": "/v1/accounts/*/customers/users", "fault": {"type": "delay", "delay_ms": 400}}),
    )
    .await;
    let started = Instant::now();
    let response = app.post_json(&customers_path(ACCOUNT), &admin.token, &json!({"customer_id": "late"})).await;
    let took = started.elapsed();
    assert_eq!(response.expect_json(200)["customer_id"], json!("late"));
    assert_eq!(response.header("tokenvault-fault"), rule["id"].as_str());
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Other requests are not delayed (no fault named on them).
    let response = app.get(&customers_path(ACCOUNT), &admin.token).await;
    assert_eq!(response.expect_json(200).as_array().unwrap().len(), 1);
    assert_eq!(response.header("tokenvault-fault"), None);
}

/// Sends `request` on a fresh connection and returns every byte the server sent before closing
/// it (an error reading counts as the end).
async fn raw_exchange(app: &TestApp, request: String) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut bytes = vec![];
    let read = async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.expect("the server closes the connection");
    bytes
}

async fn dropped_connections_get_no_answer(app: TestApp) {
    let admin = app.admin().await;
    add_rule(
        &app,
        &admin.token,
        json!({"method": "POST", "path": "/v1/accounts/*/customers/users", "fault": {"type": "drop"},
               "frequency": {"type": "times", "times": 1}}),
    )
    .await;
    let body = r#"{"customer_id":"dropped"}"#;
    // Keep-alive: the server closes the connection although the client would reuse it.
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        customers_path(ACCOUNT),
        admin.token,
        body.len()
    );
    assert_eq!(String::from_utf8_lossy(&raw_exchange(&app, request.clone()).await), "");
    assert_json_eq(&app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
    // Used up: the same request is answered.
    let answer = raw_exchange(&app, request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")).await;
    let response = parse_raw_response(&answer);
    assert_eq!(response.expect_json(200)["customer_id"], json!("dropped"));

    // From the header too.
    let request = format!(
        "GET /v1/card-tokens HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\ntokenvault-fault: drop\r\n\r\n",
        admin.token
    );
    assert_eq!(String::from_utf8_lossy(&raw_exchange(&app, request).await), "");
    // reqwest sees a failed request, not an answer.
    let error = app
        .http
        .get(format!("{}/v1/card-tokens", app.url))
        .bearer_auth(&admin.token)
        .header("tokenvault-fault", "drop")
        .send()
        .await
        .unwrap_err();
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
}

/// The statuses of `n` list requests, as a string of `F` (faulted) and `.` (answered).
async fn run_pattern(app: &TestApp, token: &str, n: usize) -> String {
    let mut pattern = String::new();
    for _ in 0..n {
        let response = app.get(&customers_path(ACCOUNT), token).await;
        pattern.push(match response.status.as_u16() {
            500 => 'F',
            200 => '.',
            other => panic!("unexpected status {other}: {}", response.text),
        });
    }
    pattern
}

async fn seeded_probabilities_repeat(app: TestApp) {
    let admin = app.admin().await;
    let rule = json!({"method": "GET", "path": "/v1/accounts/*/customers/users", "fault": {"type": "status", "status": 500},
                      "frequency": {"type": "probability", "probability": 0.5, "seed": 42}});
    add_rule(&app, &admin.token, rule.clone()).await;
    let first = run_pattern(&app, &admin.token, 40).await;
    app.delete(&faults_path(ACCOUNT), &admin.token).await.expect_json(200);
    add_rule(&app, &admin.token, rule.clone()).await;
    let second = run_pattern(&app, &admin.token, 40).await;
    assert_eq!(first, second);
    // The n-th match fires as the domain's draw says, on either backend.
    let expected: String =
        (1..=40).map(|n| if tokenvault::domain::fault::fires_by_chance(42, n, 0.5) { 'F' } else { '.' }).collect();
    assert_eq!(first, expected);
    assert!(first.contains('F') && first.contains('.'), "{first}");
    // Another seed, another sequence.
    app.delete(&faults_path(ACCOUNT), &admin.token).await.expect_json(200);
    let mut other = rule;
    other["frequency"]["seed"] = json!(43);
    add_rule(&app, &admin.token, other).await;
    assert_ne!(run_pattern(&app, &admin.token, 40).await, first);
}

async fn the_fault_header_faults_one_request(app: TestApp) {
    let admin = app.admin().await;
    let header = |value: &str| vec![("tokenvault-fault", value.to_owned())];
    let message = "a fault injected by tokenvault (the tokenvault-fault header)";
    for (value, status, retry_after) in
        [("503", 503, Some("1")), ("429", 429, Some("1")), ("500", 500, None), ("502", 502, None), ("504", 504, None)]
    {
        let response = app
            .send(
                Method::POST,
                &customers_path(ACCOUNT),
                Some(&admin.token),
                Some(&json!({"customer_id": "h"})),
                &header(value),
            )
            .await;
        assert_json_eq(
            &response.expect_json(status),
            &json!({"error": {"code": error_code_of(status), "message": message, "errors": []}}),
        );
        assert_eq!(response.header("tokenvault-fault"), Some("header"));
        assert_eq!(response.header("retry-after"), retry_after);
    }
    assert_json_eq(&app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
    let started = Instant::now();
    let response = app.send(Method::GET, "/v1/card-tokens", Some(&admin.token), None, &header("delay=300")).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    assert_eq!(response.header("tokenvault-fault"), Some("header"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    for bad in ["404", "delay=0", "delay=60001", "sometimes"] {
        let response = app.send(Method::GET, "/v1/card-tokens", Some(&admin.token), None, &header(bad)).await;
        assert_validation(
            &response,
            &[("tokenvault-fault", "must be one of 429, 500, 502, 503, 504, delay=<1 to 60000 ms>, drop")],
        );
    }
    // The header wins over a rule.
    add_rule(&app, &admin.token, json!({"path": "/v1/card-tokens", "fault": {"type": "status", "status": 500}})).await;
    let response = app.send(Method::GET, "/v1/card-tokens", Some(&admin.token), None, &header("502")).await;
    assert_eq!((response.status.as_u16(), response.header("tokenvault-fault")), (502, Some("header")));
}

async fn reset_removes_fault_rules(app: TestApp) {
    let admin = app.admin().await;
    add_rule(&app, &admin.token, json!({"path": "/v1/card-tokens", "fault": {"type": "status", "status": 500}})).await;
    app.get("/v1/card-tokens", &admin.token).await.expect_json(500);
    let response = app.post_json(&format!("/v1/accounts/{ACCOUNT}/sandbox/reset"), &admin.token, &json!({})).await;
    assert_eq!(response.expect_json(200)["deleted"]["fault_rules"], json!(1));
    app.get("/v1/card-tokens", &admin.token).await.expect_json(200);
    assert_json_eq(&app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
}

/// Servers configured for one test (the macro names its modules `sqlite` and `postgres`).
mod two_servers {
    use super::*;

    backend_tests!(backend: the_next_n_are_counted_across_servers);

    /// Two servers on one PostgreSQL database share "the next 3": six requests spread over both
    /// get exactly three faults, and a rule added through one applies on the other within a
    /// second. (SQLite: one server, the same count.)
    async fn the_next_n_are_counted_across_servers(backend: Backend) {
        let app = spawn_app(backend).await;
        let admin = app.admin().await;
        let second = app.second_server().await;
        let urls = [app.url.clone(), second.as_ref().map_or(app.url.clone(), |server| server.url())];
        // The second server reads the account's (empty) rules, and keeps them for a second.
        for url in &urls {
            let response =
                app.http.get(format!("{url}{}", customers_path(ACCOUNT))).bearer_auth(&admin.token).send().await;
            assert_eq!(response.unwrap().status().as_u16(), 200);
        }
        add_rule(
            &app,
            &admin.token,
            json!({"method": "GET", "path": "/v1/accounts/*/customers/users", "fault": {"type": "status", "status": 503},
                   "frequency": {"type": "times", "times": 3}}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut statuses = vec![];
        for i in 0..6 {
            let url = &urls[i % 2];
            let response = app
                .http
                .get(format!("{url}{}", customers_path(ACCOUNT)))
                .bearer_auth(&admin.token)
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        assert_eq!(statuses, [503, 503, 503, 200, 200, 200]);
        let listed = app.get(&faults_path(ACCOUNT), &admin.token).await.expect_json(200);
        assert_eq!(listed[0]["matched"], json!(3));
        if let Some(second) = second {
            second.shutdown().await;
        }
    }
}
