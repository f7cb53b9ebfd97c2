//! `POST /v1/accounts/{aid}/sandbox/webhooks/trigger`: a card-token event when you want one,
//! through the real outbox, signed as usual: for a given card token (announced unchanged), or
//! for one made for the purpose (created, then suspended or deleted as the event says).

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::helpers::*;
use crate::receiver::RunningReceiver;

backend_tests!(backend: triggered_events_are_delivered_signed, triggers_are_checked);

const SECRET: &str = "trigger-secret-1";

fn trigger_path(account: &str) -> String {
    format!("/v1/accounts/{account}/sandbox/webhooks/trigger")
}

fn signature(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// What arrived, as (event, token id, token status), each delivery's signature checked.
fn events(received: &[crate::receiver::Received]) -> Vec<(String, String, String)> {
    received
        .iter()
        .map(|delivery| {
            assert_eq!(delivery.headers["event-signature"].to_str().unwrap(), signature(&delivery.body));
            let body: Value = serde_json::from_slice(&delivery.body).unwrap();
            assert_eq!(body["event"], delivery.headers["event"].to_str().unwrap());
            assert_eq!(body["account_id"], json!(ACCOUNT));
            assert!(body["token"].get("token").is_none(), "the secret token is never sent");
            (
                body["event"].as_str().unwrap().to_owned(),
                body["token"]["id"].as_str().unwrap().to_owned(),
                body["token"]["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn triggered_events_are_delivered_signed(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.webhooks.allow_private_targets = true).await;
    let admin = app.auth(ACCOUNT, &["admin:checkout", "admin:hooks"]).await;
    let receiver = RunningReceiver::start().await;
    app.post_json(
        &format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"),
        &admin.token,
        &json!({"config": {"url": format!("{}/hooks", receiver.url), "secret": SECRET},
                "events": ["checkout_token_add", "checkout_token_update", "checkout_token_delete"]}),
    )
    .await
    .expect_json(200);

    // A fresh card token: created (its add is the event asked for).
    let response = app.post_json(&trigger_path(ACCOUNT), &admin.token, &json!({"event": "checkout_token_add"})).await;
    let mut body = response.expect_json(202);
    let added = take_uuid(&mut body, "token_id");
    assert_json_eq(
        &body,
        &json!({"account_id": ACCOUNT, "event": "checkout_token_add", "token_id": "<id>", "created": true, "deliveries": 1}),
    );
    let received = receiver.wait_for("/hooks", 1).await;
    assert_eq!(events(&received), [("checkout_token_add".into(), added.clone(), "ACTIVE".into())]);

    // A fresh one deleted: its add and its delete; it is deleted indeed.
    let response =
        app.post_json(&trigger_path(ACCOUNT), &admin.token, &json!({"event": "checkout_token_delete"})).await;
    let body = response.expect_json(202);
    let deleted = body["token_id"].as_str().unwrap().to_owned();
    assert_eq!((&body["created"], &body["deliveries"]), (&json!(true), &json!(1)));
    let received = receiver.wait_for("/hooks", 3).await;
    // Both are queued at once; the worker may send them side by side, so they arrive in either order.
    let mut arrived = events(&received[1..]);
    arrived.sort();
    assert_eq!(
        arrived,
        [
            ("checkout_token_add".into(), deleted.clone(), "ACTIVE".into()),
            ("checkout_token_delete".into(), deleted.clone(), "DELETED".into())
        ]
    );
    let card = app.get(&format!("/v1/card-tokens/{deleted}"), &admin.token).await;
    assert_eq!(card.expect_json(200)["status"], json!("DELETED"));

    // A given token, announced as it is: unchanged.
    let response = app
        .post_json(&trigger_path(ACCOUNT), &admin.token, &json!({"event": "checkout_token_update", "token_id": added}))
        .await;
    assert_json_eq(
        &response.expect_json(202),
        &json!({"account_id": ACCOUNT, "event": "checkout_token_update", "token_id": added, "created": false, "deliveries": 1}),
    );
    let received = receiver.wait_for("/hooks", 4).await;
    assert_eq!(events(&received[3..]), [("checkout_token_update".into(), added.clone(), "ACTIVE".into())]);
    assert_eq!(
        app.get(&format!("/v1/card-tokens/{added}"), &admin.token).await.expect_json(200)["status"],
        json!("ACTIVE")
    );

    // Audited.
    let account = tokenvault::domain::AccountId::parse("aid", ACCOUNT).unwrap();
    let triggers: Vec<(String, Value)> = app
        .store()
        .list_audit(Some(&account), 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.action == "sandbox.webhook.trigger")
        .map(|record| (record.resource_id, record.details))
        .collect();
    assert_eq!(triggers, [(added, json!({"event": "checkout_token_update", "deliveries": 1}))]);
}

async fn triggers_are_checked(backend: Backend) {
    let app = spawn_app(backend).await;
    let admin = app.admin().await;
    let post = |body: Value| {
        let (app, token) = (&app, admin.token.clone());
        async move { app.post_json(&trigger_path(ACCOUNT), &token, &body).await }
    };
    assert_validation(&post(json!({})).await, &[("event", "is required")]);
    assert_validation(
        &post(json!({"event": "ping", "token_id": 5, "extra": true})).await,
        &[
            ("extra", "is not a field of a trigger"),
            ("event", "must be one of checkout_token_add, checkout_token_update, checkout_token_delete"),
            ("token_id", "must be a string"),
        ],
    );
    assert_error(
        &post(json!({"event": "checkout_token_add", "token_id": "nope"})).await,
        404,
        "card token not found",
        json!([]),
    );
    // Without subscriptions, nothing is delivered, and that is no error.
    let body = post(json!({"event": "checkout_token_update"})).await.expect_json(202);
    assert_eq!((&body["created"], &body["deliveries"]), (&json!(true), &json!(0)));
    let card = app.get(&format!("/v1/card-tokens/{}", body["token_id"].as_str().unwrap()), &admin.token).await;
    assert_eq!(card.expect_json(200)["status"], json!("SUSPENDED"));

    let production = app.auth("P12345678", ALL_SCOPES).await;
    let response =
        app.post_json(&trigger_path("P12345678"), &production.token, &json!({"event": "checkout_token_add"})).await;
    assert_error(&response, 403, "sandbox operations are only for test accounts (T…), not P12345678", json!([]));
    let customers_admin = app.token_for(ACCOUNT, &["admin:customers", "admin:hooks"]).await;
    let response =
        app.post_json(&trigger_path(ACCOUNT), &customers_admin, &json!({"event": "checkout_token_add"})).await;
    assert_error(&response, 403, "the access token lacks the required scope: one of admin:checkout", json!([]));
}
