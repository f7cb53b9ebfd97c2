//! A test account's clock (`/v1/accounts/{aid}/sandbox/clock`): read, set, advanced and returned
//! to real time; what is stored meanwhile takes the account's time (customers, card tokens,
//! deletions, journal entries, webhook deliveries), idempotency keys expire and webhook retries
//! come due on it, while access tokens stay on real time; production accounts never get one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    the_clock_is_read_set_advanced_and_cleared,
    clock_changes_are_checked,
    stored_times_follow_the_clock,
    idempotency_keys_expire_on_the_clock,
    a_reset_returns_the_clock_to_real_time,
);

fn clock_path(account: &str) -> String {
    format!("/v1/accounts/{account}/sandbox/clock")
}

/// Milliseconds since the epoch of an RFC 3339 date-time.
fn millis(value: &Value) -> i64 {
    let raw = value.as_str().unwrap_or_else(|| panic!("not a string: {value}"));
    chrono::DateTime::parse_from_rfc3339(raw).unwrap_or_else(|e| panic!("{raw}: {e}")).timestamp_millis()
}

/// A clock answer with `real_time` checked (close to now, `time` = `real_time` + `offset_ms`)
/// and replaced by `"<real>"`.
#[track_caller]
fn checked(mut clock: Value) -> Value {
    let real = millis(&clock["real_time"]);
    let now = chrono::Utc::now().timestamp_millis();
    assert!((now - 60_000..=now + 1000).contains(&real), "real_time {} is not now", clock["real_time"]);
    assert_eq!(millis(&clock["time"]) - real, clock["offset_ms"].as_i64().unwrap(), "{clock}");
    clock["real_time"] = json!("<real>");
    clock
}

async fn set_clock(app: &TestApp, token: &str, body: Value) -> Value {
    app.put_json(&clock_path(ACCOUNT), token, &body).await.expect_json(200)
}

async fn the_clock_is_read_set_advanced_and_cleared(app: TestApp) {
    let admin = app.admin().await;
    let unset = checked(app.get(&clock_path(ACCOUNT), &admin.token).await.expect_json(200));
    let mut expected = json!({"account_id": ACCOUNT, "time": unset["time"], "real_time": "<real>", "offset_ms": 0,
                              "updated_at": null, "updated_by": null});
    assert_json_eq(&unset, &expected);

    let set = checked(set_clock(&app, &admin.token, json!({"time": "2030-01-01T00:00:00+01:00"})).await);
    let updated_at = take_ts(&mut set.clone(), "updated_at");
    expected = json!({"account_id": ACCOUNT, "time": "2029-12-31T23:00:00.000Z", "real_time": "<real>",
                      "offset_ms": set["offset_ms"], "updated_at": updated_at, "updated_by": admin.client_id});
    assert_json_eq(&set, &expected);

    // It runs on at real speed from there.
    let read = checked(app.get(&clock_path(ACCOUNT), &admin.token).await.expect_json(200));
    let ran = millis(&read["time"]) - millis(&json!("2029-12-31T23:00:00Z"));
    assert!((0..60_000).contains(&ran), "{read}");
    assert_eq!(read["offset_ms"], set["offset_ms"]);

    // Advanced a day: the offset grows by exactly that.
    let advanced = checked(set_clock(&app, &admin.token, json!({"advance_seconds": 86_400})).await);
    assert_eq!(advanced["offset_ms"].as_i64().unwrap(), set["offset_ms"].as_i64().unwrap() + 86_400_000);
    assert!(advanced["time"].as_str().unwrap().starts_with("2030-01-01T23:0"), "{advanced}");

    // The access token obtained before the clock moved a day ahead still works: tokens expire
    // on real time.
    app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200);

    // Back: a clock may be set earlier than it shows.
    let earlier = checked(set_clock(&app, &admin.token, json!({"time": "2001-09-09T01:46:40Z"})).await);
    assert_eq!(earlier["time"], json!("2001-09-09T01:46:40.000Z"));

    let cleared = checked(app.delete(&clock_path(ACCOUNT), &admin.token).await.expect_json(200));
    assert_json_eq(
        &cleared,
        &json!({"account_id": ACCOUNT, "time": cleared["time"], "real_time": "<real>", "offset_ms": 0,
                "updated_at": null, "updated_by": null}),
    );
    // Clearing a clock on real time is no error.
    app.delete(&clock_path(ACCOUNT), &admin.token).await.expect_json(200);
    let other = checked(
        app.get(&clock_path(OTHER_ACCOUNT), &app.auth(OTHER_ACCOUNT, ALL_SCOPES).await.token).await.expect_json(200),
    );
    assert_eq!(other["offset_ms"], json!(0));

    // Each change is audited.
    let actions: Vec<String> = app
        .store()
        .list_audit(Some(&tokenvault::domain::AccountId::parse("aid", ACCOUNT).unwrap()), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|record| record.action)
        .filter(|action| action.starts_with("sandbox.clock"))
        .collect();
    assert_eq!(actions, ["sandbox.clock.set", "sandbox.clock.set", "sandbox.clock.set", "sandbox.clock.clear"]);
}

async fn clock_changes_are_checked(app: TestApp) {
    let admin = app.admin().await;
    let cases: [(Value, &[(&str, &str)]); 8] = [
        (json!({}), &[("time", "is required (or advance_seconds)")]),
        (
            json!({"time": "2030-01-01T00:00:00Z", "advance_seconds": 5}),
            &[("advance_seconds", "cannot be given together with time")],
        ),
        (json!({"time": "next tuesday"}), &[("time", "must be an RFC 3339 date-time")]),
        (json!({"time": 1_893_456_000}), &[("time", "must be an RFC 3339 date-time")]),
        (
            json!({"advance_seconds": 0}),
            &[("advance_seconds", "must be a whole number of seconds from 1 to 3155760000")],
        ),
        (
            json!({"advance_seconds": "60"}),
            &[("advance_seconds", "must be a whole number of seconds from 1 to 3155760000")],
        ),
        (
            json!({"time": "3000-01-01T00:00:00Z"}),
            &[("time", "must bring the clock to a moment from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z")],
        ),
        (json!({"frozen": true, "advance_seconds": 60}), &[("frozen", "is not a field of a clock change")]),
    ];
    for (body, fields) in cases {
        let response = app.put_json(&clock_path(ACCOUNT), &admin.token, &body).await;
        assert_validation(&response, fields);
    }
    let response = app.raw_post(&clock_path(ACCOUNT), &admin.token, "application/json", b"{").await;
    assert_eq!(response.status, 405, "POST is not an operation of the clock");
    // Nothing changed.
    let clock = checked(app.get(&clock_path(ACCOUNT), &admin.token).await.expect_json(200));
    assert_eq!(clock["offset_ms"], json!(0));

    let production = app.auth("P12345678", ALL_SCOPES).await;
    for response in [
        app.get(&clock_path("P12345678"), &production.token).await,
        app.put_json(&clock_path("P12345678"), &production.token, &json!({"advance_seconds": 60})).await,
        app.delete(&clock_path("P12345678"), &production.token).await,
    ] {
        assert_error(&response, 403, "sandbox operations are only for test accounts (T…), not P12345678", json!([]));
    }
    let reader = app.token_for(ACCOUNT, &["read:customers", "write:customers", "admin:hooks"]).await;
    for response in [
        app.get(&clock_path(ACCOUNT), &reader).await,
        app.put_json(&clock_path(ACCOUNT), &reader, &json!({"advance_seconds": 60})).await,
        app.delete(&clock_path(ACCOUNT), &reader).await,
    ] {
        assert_error(
            &response,
            403,
            "the access token lacks the required scope: one of admin:customers, admin:checkout",
            json!([]),
        );
    }
    let response = app.put_json(&clock_path(OTHER_ACCOUNT), &admin.token, &json!({"advance_seconds": 60})).await;
    assert_error(&response, 403, "the access token is not valid for account T87654321", json!([]));
}

/// Within a minute after `start` (RFC 3339, whole seconds).
#[track_caller]
fn shortly_after(value: &Value, start: &str) -> i64 {
    let at = millis(value);
    let start = millis(&json!(start));
    assert!((start..start + 60_000).contains(&at), "{value} is not shortly after {start}");
    at
}

async fn stored_times_follow_the_clock(app: TestApp) {
    let admin = app.admin().await;
    set_clock(&app, &admin.token, json!({"time": "2031-05-01T12:00:00Z"})).await;

    let customer = app.create_customer(&admin.token, &json!({"customer_id": "clocked"})).await;
    shortly_after(&customer["created_at"], "2031-05-01T12:00:00Z");
    let token = app.create_token(&admin.token, "clocked", &json!({"type": "sha1:email", "value": "tok-clock"})).await;
    shortly_after(&token["created_at"], "2031-05-01T12:00:00Z");
    let card = app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    shortly_after(&card["created_at"], "2031-05-01T12:00:00Z");

    // A year later, the card token is deleted.
    set_clock(&app, &admin.token, json!({"advance_seconds": 365 * 86_400})).await;
    let card_id = card["id"].as_str().unwrap();
    app.delete_json(&format!("/v1/card-tokens/{card_id}"), &admin.token, &json!({"reason": "expired"}))
        .await
        .expect_json(200);
    let deleted = app.get(&format!("/v1/card-tokens/{card_id}"), &admin.token).await.expect_json(200);
    shortly_after(&deleted["created_at"], "2031-05-01T12:00:00Z");
    shortly_after(&deleted["deleted_at"], "2032-04-30T12:00:00Z");

    // The journal times each request in the account's time.
    let deadline = Instant::now() + Duration::from_secs(10);
    let entries = loop {
        let page = app.get(&format!("/v1/accounts/{ACCOUNT}/sandbox/requests?limit=100"), &admin.token).await;
        let entries = page.expect_json(200);
        if entries.as_array().unwrap().iter().any(|entry| entry["method"] == "DELETE") {
            break entries;
        }
        assert!(Instant::now() < deadline, "the deletion was not journaled: {entries}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let times: Vec<(&str, &str)> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["path"].as_str().unwrap().contains("card-tokens") && entry["method"] != "GET")
        .map(|entry| (entry["method"].as_str().unwrap(), &entry["recorded_at"].as_str().unwrap()[..13]))
        .collect();
    assert_eq!(times, [("DELETE", "2032-04-30T12"), ("POST", "2031-05-01T12")]);

    // A production account beside it stays on real time.
    let production = app.auth("P12345678", ALL_SCOPES).await;
    let response =
        app.post_json(&customers_path("P12345678"), &production.token, &json!({"customer_id": "real"})).await;
    take_ts(&mut response.expect_json(200), "created_at");
}

async fn idempotency_keys_expire_on_the_clock(app: TestApp) {
    let admin = app.admin().await;
    let keyed = |body: Value| {
        let (app, token) = (&app, admin.token.clone());
        async move {
            app.send(Method::POST, "/v1/card-tokens", Some(&token), Some(&body), &[("idempotency-key", "daily".into())])
                .await
        }
    };
    let visa = json!({"card_brand": "visa", "payment_product_type": "x"});
    let first = keyed(visa.clone()).await;
    first.expect_json(201);
    let other = json!({"card_brand": "mastercard", "payment_product_type": "x"});
    // Within its 24 hours the key is used.
    set_clock(&app, &admin.token, json!({"advance_seconds": 23 * 3600})).await;
    let reused = keyed(other.clone()).await;
    assert_eq!(reused.status, 422, "{}", reused.text);
    // A day on, it is free again.
    set_clock(&app, &admin.token, json!({"advance_seconds": 3600 + 5})).await;
    let again = keyed(other).await;
    assert_eq!(again.expect_json(201)["card_brand"], "mastercard");
}

async fn a_reset_returns_the_clock_to_real_time(app: TestApp) {
    let admin = app.admin().await;
    set_clock(&app, &admin.token, json!({"advance_seconds": 3600})).await;
    let reset = app.post_json(&format!("/v1/accounts/{ACCOUNT}/sandbox/reset"), &admin.token, &json!({})).await;
    assert_json_eq(
        &reset.expect_json(200),
        &json!({"account_id": ACCOUNT, "deleted": {"customers": 0, "customer_tokens": 0, "token_events": 0,
                "card_tokens": 0, "fault_rules": 0, "clocks": 1}}),
    );
    let clock = checked(app.get(&clock_path(ACCOUNT), &admin.token).await.expect_json(200));
    assert_eq!(clock["offset_ms"], json!(0));
    let customer = app.create_customer(&admin.token, &json!({"customer_id": "after-reset"})).await;
    take_ts(&mut customer.clone(), "created_at");
    let reset = app.post_json(&format!("/v1/accounts/{ACCOUNT}/sandbox/reset"), &admin.token, &json!({})).await;
    assert_eq!(reset.expect_json(200)["deleted"]["clocks"], json!(0));
}

/// Webhook retries, on a server whose retries wait an hour.
mod retries {
    use super::*;

    backend_tests!(backend: webhook_retries_come_due_on_the_clock);

    /// A receiver that answers 500 to the first card-token event and 200 to everything else (pings
    /// included), and notes what reached it.
    #[derive(Clone, Default)]
    struct FailingOnce {
        events: Arc<AtomicUsize>,
        arrived: Arc<Mutex<Vec<Instant>>>,
    }

    async fn failing_once(
        axum::extract::State(receiver): axum::extract::State<FailingOnce>,
        headers: HeaderMap,
    ) -> StatusCode {
        if headers.get("event").is_some_and(|event| event == "ping") {
            return StatusCode::OK;
        }
        receiver.arrived.lock().unwrap().push(Instant::now());
        if receiver.events.fetch_add(1, Ordering::SeqCst) == 0 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    }

    async fn webhook_retries_come_due_on_the_clock(backend: Backend) {
        let app = spawn_app_with(backend, |config| {
            config.webhooks.allow_private_targets = true;
            config.webhooks.retry_base = Duration::from_secs(3600);
            config.webhooks.poll_interval = Duration::from_millis(50);
        })
        .await;
        let receiver = FailingOnce::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let router = axum::Router::new().fallback(failing_once).with_state(receiver.clone());
        let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let admin = app.auth(ACCOUNT, &["admin:checkout", "admin:hooks"]).await;
        set_clock(&app, &admin.token, json!({"time": "2033-03-03T03:00:00Z"})).await;
        let subscription = app
            .post_json(
                &format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"),
                &admin.token,
                &json!({"config": {"url": url, "secret": "clock-secret"}, "events": ["checkout_token_add"]}),
            )
            .await
            .expect_json(200);
        let deliveries =
            format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions/{}/deliveries", subscription["id"].as_str().unwrap());
        app.post_json(
            &format!("/v1/accounts/{ACCOUNT}/sandbox/webhooks/trigger"),
            &admin.token,
            &json!({"event": "checkout_token_add"}),
        )
        .await
        .expect_json(202);

        // The first attempt fails; the retry is an hour away on the account's clock.
        let deadline = Instant::now() + Duration::from_secs(30);
        let pending = loop {
            let listed = app.get(&deliveries, &admin.token).await.expect_json(200);
            let event = listed.as_array().unwrap().iter().find(|d| d["event"] != "ping").cloned();
            if let Some(event) = event.filter(|d| d["status"] == 500) {
                let id = event["id"].as_str().unwrap().to_owned();
                break app.get(&format!("{deliveries}/{id}"), &admin.token).await.expect_json(200);
            }
            assert!(Instant::now() < deadline, "no failed attempt: {listed}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(pending["state"], "PENDING", "{pending}");
        let attempted = shortly_after(&pending["attempts"][0]["attempted_at"], "2033-03-03T03:00:00Z");
        let next = millis(&pending["next_attempt_at"]);
        assert!((attempted + 3_600_000..attempted + 3_610_000).contains(&next), "{pending}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(receiver.arrived.lock().unwrap().len(), 1, "the retry is not due on real time");

        // An hour on the account's clock, and the retry goes out at once.
        let advanced = Instant::now();
        set_clock(&app, &admin.token, json!({"advance_seconds": 3600})).await;
        while receiver.arrived.lock().unwrap().len() < 2 {
            assert!(advanced.elapsed() < Duration::from_secs(30), "the retry did not come due");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let delivered = loop {
            let detail = app
                .get(&format!("{deliveries}/{}", pending["id"].as_str().unwrap()), &admin.token)
                .await
                .expect_json(200);
            if detail["state"] == "DELIVERED" {
                break detail;
            }
            assert!(Instant::now() < deadline, "not recorded as delivered: {detail}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        shortly_after(&delivered["attempts"][1]["attempted_at"], "2033-03-03T04:00:00Z");
        server.abort();
    }
}

/// Two servers on one database (the macro names its modules `sqlite` and `postgres`).
mod two_servers {
    use super::*;

    backend_tests!(backend: a_clock_set_through_one_server_holds_on_the_other);

    /// A clock set through one server holds on another on the same PostgreSQL database within a
    /// second (the other's cached offset expires), and so does its return to real time. (SQLite:
    /// one server, the same steps.)
    async fn a_clock_set_through_one_server_holds_on_the_other(backend: Backend) {
        let app = spawn_app(backend).await;
        let admin = app.admin().await;
        let second = app.second_server().await;
        let other = second.as_ref().map_or(app.url.clone(), |server| server.url());
        let create_on_other = |customer_id: &'static str| {
            let (app, url, token) = (&app, other.clone(), admin.token.clone());
            async move {
                let response = app
                    .http
                    .post(format!("{url}{}", customers_path(ACCOUNT)))
                    .bearer_auth(token)
                    .json(&json!({"customer_id": customer_id}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status().as_u16(), 200);
                response.json::<Value>().await.unwrap()
            }
        };
        // The other server reads the account's clock (real time), and keeps it for a second.
        take_ts(&mut create_on_other("before").await, "created_at");
        set_clock(&app, &admin.token, json!({"time": "2035-06-01T00:00:00Z"})).await;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        shortly_after(&create_on_other("during").await["created_at"], "2035-06-01T00:00:00Z");
        app.delete(&clock_path(ACCOUNT), &admin.token).await.expect_json(200);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        take_ts(&mut create_on_other("after").await, "created_at");
        if let Some(second) = second {
            second.shutdown().await;
        }
    }
}
