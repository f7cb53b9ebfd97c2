//! `POST /v1/accounts/{aid}/sandbox/reset`: wipes one test account between CI runs; refused for
//! production accounts and for callers without an admin scope.

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(reset_wipes_one_test_account, reset_is_refused_for_production_and_readers);

/// Every admin scope: a reset by this caller wipes the whole account.
const EVERY_ADMIN_SCOPE: &[&str] = &["admin:customers", "admin:checkout", "admin:hooks"];

fn reset_path(account: &str) -> String {
    format!("/v1/accounts/{account}/sandbox/reset")
}

async fn reset_wipes_one_test_account(app: TestApp) {
    let admin = app.auth(ACCOUNT, EVERY_ADMIN_SCOPE).await;
    let other = app.auth(OTHER_ACCOUNT, EVERY_ADMIN_SCOPE).await;
    for (account, auth) in [(ACCOUNT, &admin), (OTHER_ACCOUNT, &other)] {
        app.post_json(&customers_path(account), &auth.token, &json!({"customer_id": "c1"})).await.expect_json(200);
        app.post_json(&tokens_path(account, "c1"), &auth.token, &json!({"type": "sha1:email", "value": account}))
            .await
            .expect_json(201);
        app.post_json(
            &events_path(account),
            &auth.token,
            &json!({"token": {"type": "sha1:email", "value": "v"}, "event": {"event": "seen", "status": "OPT_IN"}}),
        )
        .await
        .expect_json(200);
        app.post_json(
            "/v1/card-tokens",
            &auth.token,
            &json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard"}),
        )
        .await
        .expect_json(201);
    }

    let response = app.post_json(&reset_path(ACCOUNT), &admin.token, &json!({})).await;
    assert_json_eq(
        &response.expect_json(200),
        &json!({"account_id": ACCOUNT, "deleted": {
            "customers": 1, "customer_tokens": 1, "token_events": 1, "card_tokens": 1,
            "hook_subscriptions": 0, "webhook_deliveries": 0, "fault_rules": 0, "clocks": 0
        }}),
    );
    assert_eq!(response.header("content-type"), Some("application/json; charset=utf-8"));

    // The account is empty, and its credentials still work; the other account is untouched.
    assert_json_eq(&app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
    assert_json_eq(&app.get("/v1/card-tokens", &admin.token).await.expect_json(200), &json!([]));
    assert_json_eq(&app.get(&events_path(ACCOUNT), &admin.token).await.expect_json(200), &json!([]));
    assert_eq!(
        app.get(&customers_path(OTHER_ACCOUNT), &other.token).await.expect_json(200).as_array().unwrap().len(),
        1
    );
    assert_eq!(app.get("/v1/card-tokens", &other.token).await.expect_json(200).as_array().unwrap().len(), 1);
    // The same ids can be used again.
    app.post_json(&customers_path(ACCOUNT), &admin.token, &json!({"customer_id": "c1"})).await.expect_json(200);
}

async fn reset_is_refused_for_production_and_readers(app: TestApp) {
    let production = app.auth("P12345678", ALL_SCOPES).await;
    app.post_json(&customers_path("P12345678"), &production.token, &json!({"customer_id": "keep"}))
        .await
        .expect_json(200);
    let response = app.post_json(&reset_path("P12345678"), &production.token, &json!({})).await;
    assert_error(&response, 403, "sandbox operations are only for test accounts (T…), not P12345678", json!([]));
    assert_eq!(
        app.get(&customers_path("P12345678"), &production.token).await.expect_json(200).as_array().unwrap().len(),
        1
    );

    let reader = app.auth(ACCOUNT, &["read:customers", "read:checkout"]).await;
    let response = app.post_json(&reset_path(ACCOUNT), &reader.token, &json!({})).await;
    assert_error(
        &response,
        403,
        "the access token lacks the required scope: one of admin:customers, admin:checkout, admin:hooks",
        json!([]),
    );
    let admin = app.admin().await;
    let response = app.post_json(&reset_path(OTHER_ACCOUNT), &admin.token, &json!({})).await;
    assert_error(&response, 403, "the access token is not valid for account T87654321", json!([]));
}

/// Servers configured for one test (the macro names its modules `sqlite` and `postgres`).
mod configured {
    use super::*;

    backend_tests!(backend: reset_wipes_only_what_the_caller_administers);

    /// A reset wipes only the parts of the account the caller administers: `admin:customers` its
    /// customers, customer tokens and token events; `admin:checkout` its card tokens;
    /// `admin:hooks` its webhook subscriptions and their pending deliveries. Parts not reset are
    /// left out of `deleted`.
    async fn reset_wipes_only_what_the_caller_administers(backend: Backend) {
        // The subscription below points at 127.0.0.1:9 (nothing listens; deliveries stay pending).
        let app = spawn_app_with(backend, |config| config.webhooks.allow_private_targets = true).await;
        let admin = app.auth(ACCOUNT, EVERY_ADMIN_SCOPE).await;
        app.post_json(&customers_path(ACCOUNT), &admin.token, &json!({"customer_id": "c1"})).await.expect_json(200);
        app.post_json(&tokens_path(ACCOUNT, "c1"), &admin.token, &json!({"type": "sha1:email", "value": "v1"}))
            .await
            .expect_json(201);
        app.post_json(
            &events_path(ACCOUNT),
            &admin.token,
            &json!({"token": {"type": "sha1:email", "value": "v"}, "event": {"event": "seen", "status": "OPT_IN"}}),
        )
        .await
        .expect_json(200);
        let hooks = format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions");
        app.post_json(
            &hooks,
            &admin.token,
            &json!({"config": {"url": "http://127.0.0.1:9/hook"}, "events": ["checkout_token_add"]}),
        )
        .await
        .expect_json(200);
        app.post_json("/v1/card-tokens", &admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"}))
            .await
            .expect_json(201);

        let count = |body: Value| body.as_array().unwrap().len();
        let customers_admin = app.token_for(ACCOUNT, &["admin:customers"]).await;
        let response = app.post_json(&reset_path(ACCOUNT), &customers_admin, &json!({})).await;
        assert_json_eq(
            &response.expect_json(200),
            &json!({"account_id": ACCOUNT, "deleted": {"customers": 1, "customer_tokens": 1, "token_events": 1, "fault_rules": 0, "clocks": 0}}),
        );
        assert_eq!(count(app.get(&customers_path(ACCOUNT), &admin.token).await.expect_json(200)), 0);
        assert_eq!(count(app.get(&events_path(ACCOUNT), &admin.token).await.expect_json(200)), 0);
        assert_eq!(count(app.get("/v1/card-tokens", &admin.token).await.expect_json(200)), 1);
        assert_eq!(count(app.get(&hooks, &admin.token).await.expect_json(200)), 1);

        let checkout_admin = app.token_for(ACCOUNT, &["admin:checkout", "read:customers", "write:hooks"]).await;
        let response = app.post_json(&reset_path(ACCOUNT), &checkout_admin, &json!({})).await;
        assert_json_eq(
            &response.expect_json(200),
            &json!({"account_id": ACCOUNT, "deleted": {"card_tokens": 1, "fault_rules": 0, "clocks": 0}}),
        );
        assert_eq!(count(app.get("/v1/card-tokens", &admin.token).await.expect_json(200)), 0);
        assert_eq!(count(app.get(&hooks, &admin.token).await.expect_json(200)), 1);

        let hooks_admin = app.token_for(ACCOUNT, &["admin:hooks"]).await;
        let response = app.post_json(&reset_path(ACCOUNT), &hooks_admin, &json!({})).await;
        assert_json_eq(
            &response.expect_json(200),
            // The subscription's ping (Dintero pings every new one) and the card token's event.
            &json!({"account_id": ACCOUNT, "deleted": {"hook_subscriptions": 1, "webhook_deliveries": 2}}),
        );
        assert_eq!(count(app.get(&hooks, &admin.token).await.expect_json(200)), 0);

        // The audit trail records what each reset did.
        let account = tokenvault::domain::AccountId::parse("aid", ACCOUNT).unwrap();
        let resets: Vec<Value> = app
            .store()
            .list_audit(Some(&account), 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|record| record.action == "sandbox.reset")
            .map(|record| record.details)
            .collect();
        assert_eq!(
            resets,
            [
                json!({"customers": 1, "customer_tokens": 1, "token_events": 1, "fault_rules": 0, "clocks": 0}),
                json!({"card_tokens": 1, "fault_rules": 0, "clocks": 0}),
                json!({"hook_subscriptions": 1, "webhook_deliveries": 2}),
            ]
        );
    }
}
