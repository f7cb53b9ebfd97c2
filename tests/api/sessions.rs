//! Payment-token sessions (`checkout_payment_token_session_post`, `checkout_session_get`), the
//! test-account completion call, and `transactions_id_get` for the transactions they create.

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    session_create_answers_id_and_url_and_get_reads_it,
    session_create_validates_what_the_spec_states,
    session_scopes_are_the_specs,
    approving_creates_the_card_token_and_the_transaction,
    decline_fail_and_cancel_create_no_token,
    sessions_are_isolated_between_accounts,
    no_card_number_or_cvc_is_stored,
    the_session_page_approves_and_redirects,
);

fn session_body() -> Value {
    json!({
        "session": {
            "order": {"currency": "NOK", "merchant_reference": "order-1"},
            "url": {"return_url": "https://shop.example.com/return"},
            "customer": {"customer_id": "cust-1", "email": "a@example.com"},
        },
        "token_provider": {"payment_product_type": "dintero_psp.creditcard"},
    })
}

async fn create_session(app: &TestApp, token: &str) -> String {
    let body = app.post_json("/v1/sessions/payment-token", token, &session_body()).await.expect_json(200);
    body["id"].as_str().unwrap().to_owned()
}

async fn session_create_answers_id_and_url_and_get_reads_it(app: TestApp) {
    let admin = app.admin().await;
    let response = app.post_json("/v1/sessions/payment-token", &admin.token, &session_body()).await;
    let body = response.expect_json(200);
    let id = body["id"].as_str().unwrap();
    assert!(id.starts_with(&format!("{ACCOUNT}.")) && id.len() == 32, "{id}");
    assert_eq!(body["url"], json!(format!("http://{}/v1/view/{id}", app.addr)));
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");

    let response =
        app.post_json("/v1/sessions/payment-token?include_session=true", &admin.token, &session_body()).await;
    let body = response.expect_json(200);
    let session = &body["session"];
    assert_eq!(session["id"], body["id"]);
    assert_eq!(session["order"], json!({"currency": "NOK", "merchant_reference": "order-1"}));
    assert_eq!(session["url"], json!({"return_url": "https://shop.example.com/return"}));

    let read = app.get(&format!("/v1/sessions/{id}"), &admin.token).await.expect_json(200);
    assert_eq!(read["id"], json!(id));
    assert_eq!(read["order"]["merchant_reference"], json!("order-1"));
    assert_eq!(read.get("transaction_id"), None);
    let missing = app.get(&format!("/v1/sessions/{ACCOUNT}.nope"), &admin.token).await;
    assert_error(&missing, 404, "session not found", json!([]));
}

async fn session_create_validates_what_the_spec_states(app: TestApp) {
    let admin = app.admin().await;
    let post = |body: Value| {
        let (app, token) = (&app, admin.token.clone());
        async move { app.post_json("/v1/sessions/payment-token", &token, &body).await }
    };
    assert_validation(&post(json!({})).await, &[("session", "is required"), ("token_provider", "is required")]);
    assert_validation(
        &post(json!({"session": {}, "token_provider": {}})).await,
        &[
            ("session.order", "is required"),
            ("session.url", "is required"),
            ("token_provider.payment_product_type", "is required"),
        ],
    );
    let mut body = session_body();
    body["session"]["order"] = json!({"currency": "nok"});
    body["session"]["url"] = json!({"return_url": "not a url", "callback_url": "ftp://x"});
    body["token_provider"] = json!({"payment_product_type": "vipps", "token_types": ["other"]});
    assert_validation(
        &post(body).await,
        &[
            ("session.order.currency", "must be a three-letter ISO 4217 currency code"),
            ("session.order.merchant_reference", "is required"),
            ("session.url.return_url", "must be an absolute http(s) URL"),
            ("session.url.callback_url", "must be an absolute http(s) URL"),
            (
                "token_provider.payment_product_type",
                "must be one of dintero_psp.creditcard, bambora.creditcard, payex.creditcard",
            ),
            ("token_provider.token_types", "must be a non-empty array of payment_token, recurrence_token"),
        ],
    );
}

async fn session_scopes_are_the_specs(app: TestApp) {
    let writer = app.token_for(ACCOUNT, &["write:checkout"]).await;
    let reader = app.token_for(ACCOUNT, &["read:checkout"]).await;
    let id = create_session(&app, &writer).await;
    let refused = app.post_json("/v1/sessions/payment-token", &reader, &session_body()).await;
    assert_error_status(&refused, 403);
    app.get(&format!("/v1/sessions/{id}"), &reader).await.expect_json(200);
    assert_error_status(&app.get(&format!("/v1/sessions/{id}"), &writer).await, 403);
    let customers = app.token_for(ACCOUNT, &["admin:customers"]).await;
    assert_error_status(&app.post_json("/v1/sessions/payment-token", &customers, &session_body()).await, 403);
}

fn visa() -> Value {
    json!({"number": "4111 1111 1111 1111", "expiry": "12/39", "cvc": "123"})
}

async fn approving_creates_the_card_token_and_the_transaction(app: TestApp) {
    let admin = app.admin().await;
    let id = create_session(&app, &admin.token).await;
    let path = format!("/v1/sessions/{id}/complete");
    let no_card = app.post_json(&path, &admin.token, &json!({"outcome": "approve"})).await;
    assert_validation(&no_card, &[("card", "is required to approve")]);
    let bad = app
        .post_json(
            &path,
            &admin.token,
            &json!({"outcome": "approve", "card": {"number": "4111111111111112", "expiry": "1/2", "cvc": "1"}}),
        )
        .await;
    assert_validation(
        &bad,
        &[
            ("card.number", "must be a valid card number"),
            ("card.expiry", "the card has expired"),
            ("card.cvc", "must be three digits"),
        ],
    );

    let done =
        app.post_json(&path, &admin.token, &json!({"outcome": "approve", "card": visa()})).await.expect_json(200);
    let transaction_id = done["transaction_id"].as_str().unwrap().to_owned();
    assert_eq!(
        done["redirect_url"],
        json!(format!(
            "https://shop.example.com/return?transaction_id={}&merchant_reference=order-1&session_id={}",
            transaction_id, id
        ))
    );
    let again = app.post_json(&path, &admin.token, &json!({"outcome": "approve", "card": visa()})).await;
    assert_error(&again, 409, &format!("session '{id}' is already completed"), json!([]));

    let session = app.get(&format!("/v1/sessions/{id}"), &admin.token).await.expect_json(200);
    assert_eq!(session["transaction_id"], json!(transaction_id));

    let plain = app.get(&format!("/v1/transactions/{transaction_id}"), &admin.token).await.expect_json(200);
    assert_eq!(plain["id"], json!(transaction_id));
    assert_eq!(plain["session_id"], json!(id));
    assert_eq!(plain["amount"], json!(0));
    assert_eq!(plain["currency"], json!("NOK"));
    assert_eq!(plain["merchant_reference"], json!("order-1"));
    assert_eq!(plain["payment_product_type"], json!("dintero_psp.creditcard"));
    assert_eq!(plain["card"]["masked_pan"], json!("411111******1111"));
    assert_eq!(plain["card"]["expiry_date"], json!("12/2039"));
    assert_eq!(plain["card"].get("payment_token"), None);
    let token_id = plain["card"]["payment_token_id"].as_str().unwrap().to_owned();

    let with_token = app
        .get(&format!("/v1/transactions/{transaction_id}?includes=card.payment_token"), &admin.token)
        .await
        .expect_json(200);
    let card = app.get(&format!("/v1/card-tokens/{token_id}"), &admin.token).await.expect_json(200);
    assert_eq!(with_token["card"]["payment_token"], card["token"]);
    assert_eq!(card["status"], json!("ACTIVE"));
    assert_eq!(card["card_brand"], json!("visa"));
    assert_eq!(card["masked_pan"], json!("411111******1111"));
    assert_eq!(card["pan_expiry_date"], json!("12/2039"));
    assert_eq!(card["transaction_id"], json!(transaction_id));
    assert_eq!(card["customer_id"], json!("cust-1"));
    let missing = app.get(&format!("/v1/transactions/{ACCOUNT}.nope"), &admin.token).await;
    assert_error(&missing, 404, "transaction not found", json!([]));
}

async fn decline_fail_and_cancel_create_no_token(app: TestApp) {
    let admin = app.admin().await;
    for (outcome, error) in [("decline", "authorization"), ("fail", "failed"), ("cancel", "cancelled")] {
        let id = create_session(&app, &admin.token).await;
        let done = app
            .post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": outcome}))
            .await
            .expect_json(200);
        assert_eq!(
            done,
            json!({
                "session_id": id,
                "redirect_url": format!("https://shop.example.com/return?error={error}&merchant_reference=order-1&session_id={id}"),
            })
        );
        let session = app.get(&format!("/v1/sessions/{id}"), &admin.token).await.expect_json(200);
        assert_eq!(session.get("transaction_id"), None);
    }
    let tokens = app.get("/v1/card-tokens", &admin.token).await.expect_json(200);
    assert_eq!(tokens, json!([]));
    let id = create_session(&app, &admin.token).await;
    let bad = app.post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": "maybe"})).await;
    assert_validation(&bad, &[("outcome", "must be approve, decline, fail or cancel")]);
}

async fn sessions_are_isolated_between_accounts(app: TestApp) {
    let admin = app.admin().await;
    let other = app.token_for("T87654321", &["admin:checkout"]).await;
    let id = create_session(&app, &admin.token).await;
    assert_error(&app.get(&format!("/v1/sessions/{id}"), &other).await, 404, "session not found", json!([]));
    let steal = app
        .post_json(&format!("/v1/sessions/{id}/complete"), &other, &json!({"outcome": "approve", "card": visa()}))
        .await;
    assert_error(&steal, 404, "session not found", json!([]));
    let done = app
        .post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": "approve", "card": visa()}))
        .await
        .expect_json(200);
    let transaction_id = done["transaction_id"].as_str().unwrap();
    let read = app.get(&format!("/v1/transactions/{transaction_id}"), &other).await;
    assert_error(&read, 404, "transaction not found", json!([]));
    // Production accounts cannot use the completion call.
    let production = app.token_for("P12345678", &["admin:checkout"]).await;
    let id = create_session(&app, &production).await;
    let refused =
        app.post_json(&format!("/v1/sessions/{id}/complete"), &production, &json!({"outcome": "cancel"})).await;
    assert_error_status(&refused, 403);
}

async fn no_card_number_or_cvc_is_stored(app: TestApp) {
    let admin = app.admin().await;
    let id = create_session(&app, &admin.token).await;
    let card = json!({"number": "5555555555554444", "expiry": "11/38", "cvc": "987"});
    app.post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": "approve", "card": card}))
        .await
        .expect_json(200);
    if let Backend::Sqlite = app.backend {
        let dir = app.dir.as_ref().unwrap().path();
        let mut control = false;
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            control |= bytes.windows(16).any(|w| w == b"555555******4444");
            assert!(!bytes.windows(16).any(|w| w == b"5555555555554444"), "a full card number is stored");
            assert!(!bytes.windows(5).any(|w| w == b"\"987\"" || w == b"cvc\":"), "a CVC is stored");
        }
        assert!(control, "the masked PAN (positive control) was not found");
    }
}

async fn the_session_page_approves_and_redirects(app: TestApp) {
    let admin = app.admin().await;
    let id = create_session(&app, &admin.token).await;
    let page = app.http.get(format!("{}/v1/view/{id}", app.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    assert!(html.contains("4111111111111111") && html.contains("5555555555554444"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "no external assets: {html}");

    let no_redirect = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let submit = |form: Vec<(&'static str, &'static str)>| {
        let (client, url) = (no_redirect.clone(), format!("{}/v1/view/{id}", app.url));
        async move { client.post(url).form(&form).send().await.unwrap() }
    };
    let bad =
        submit(vec![("outcome", "approve"), ("number", "4111111111111112"), ("expiry", "12/39"), ("cvc", "123")]).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("card.number: must be a valid card number"));
    let done =
        submit(vec![("outcome", "approve"), ("number", "4111111111111111"), ("expiry", "12/39"), ("cvc", "123")]).await;
    assert_eq!(done.status(), 303);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    let session = app.get(&format!("/v1/sessions/{id}"), &admin.token).await.expect_json(200);
    let transaction_id = session["transaction_id"].as_str().unwrap();
    assert_eq!(
        location,
        format!("https://shop.example.com/return?transaction_id={transaction_id}&merchant_reference=order-1&session_id={id}")
    );
    let again = app.http.get(format!("{}/v1/view/{id}", app.url)).send().await.unwrap();
    assert_eq!(again.status(), 409);

    let id = create_session(&app, &admin.token).await;
    let (client, url) = (no_redirect.clone(), format!("{}/v1/view/{id}", app.url));
    let cancelled = client.post(url).form(&[("outcome", "cancel")]).send().await.unwrap();
    assert_eq!(cancelled.status(), 303);
    assert_eq!(
        cancelled.headers()["location"].to_str().unwrap(),
        format!("https://shop.example.com/return?error=cancelled&merchant_reference=order-1&session_id={id}")
    );
}
