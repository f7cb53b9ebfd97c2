//! `POST /v1/accounts/{aid}/sandbox/reset`: wipes one test account between CI runs; refused for
//! production accounts and for callers without an admin scope.

use serde_json::json;

use crate::helpers::*;

backend_tests!(reset_wipes_one_test_account, reset_is_refused_for_production_and_readers);

fn reset_path(account: &str) -> String {
    format!("/v1/accounts/{account}/sandbox/reset")
}

async fn reset_wipes_one_test_account(app: TestApp) {
    let admin = app.admin().await;
    let other = app.auth(OTHER_ACCOUNT, ALL_SCOPES).await;
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
            "hook_subscriptions": 0, "webhook_deliveries": 0
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
        "the access token lacks the required scope: one of admin:customers, admin:checkout",
        json!([]),
    );
    let admin = app.admin().await;
    let response = app.post_json(&reset_path(OTHER_ACCOUNT), &admin.token, &json!({})).await;
    assert_error(&response, 403, "the access token is not valid for account T87654321", json!([]));
}
