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
    other_transaction_operations_answer_501,
    recurrence_tokens_where_the_token_provider_offers_them,
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
    create_session_with(app, token, None).await
}

/// A session of [`session_body`], with `url.callback_url` when given; returns its id.
async fn create_session_with(app: &TestApp, token: &str, callback_url: Option<&str>) -> String {
    let mut body = session_body();
    if let Some(callback_url) = callback_url {
        body["session"]["url"]["callback_url"] = json!(callback_url);
    }
    let body = app.post_json("/v1/sessions/payment-token", token, &body).await.expect_json(200);
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
    let mut control = false;
    let mut check = |what: &str, bytes: &[u8]| {
        control |= bytes.windows(16).any(|w| w == b"555555******4444");
        assert!(!bytes.windows(16).any(|w| w == b"5555555555554444"), "a full card number is stored in {what}");
        assert!(!bytes.windows(5).any(|w| w == b"\"987\"" || w == b"cvc\":"), "a CVC is stored in {what}");
    };
    match app.backend {
        Backend::Sqlite => {
            for entry in std::fs::read_dir(app.dir.as_ref().unwrap().path()).unwrap() {
                let path = entry.unwrap().path();
                check(&path.display().to_string(), &std::fs::read(&path).unwrap());
            }
        }
        Backend::Postgres => {
            // Every row of every table of the test's database, as text.
            let client = crate::pg::connect_plain(&app.database_url).await.unwrap();
            let tables = client
                .query(
                    "SELECT table_name::text FROM information_schema.tables \
                     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'",
                    &[],
                )
                .await
                .unwrap();
            assert!(tables.len() >= 10, "{} tables", tables.len());
            for table in tables {
                let table: String = table.get(0);
                let rows = client.query(&format!("SELECT t::text FROM \"{table}\" t"), &[]).await.unwrap();
                for row in rows {
                    let text: String = row.get(0);
                    check(&table, text.as_bytes());
                }
            }
        }
    }
    assert!(control, "the masked PAN (positive control) was not found");
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

async fn other_transaction_operations_answer_501(app: TestApp) {
    let admin = app.admin().await;
    let id = create_session(&app, &admin.token).await;
    let done = app
        .post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": "approve", "card": visa()}))
        .await
        .expect_json(200);
    let transaction_id = done["transaction_id"].as_str().unwrap();
    let reader = app.token_for(ACCOUNT, &["read:checkout"]).await;
    let writer = app.token_for(ACCOUNT, &["write:checkout"]).await;
    use reqwest::Method;
    // Dintero's transaction operations besides transactions_id_get (spec-payments, Checkout API).
    let operations = [
        (Method::GET, "/v1/transactions".to_owned(), "listing transactions", &reader),
        (Method::PUT, format!("/v1/transactions/{transaction_id}"), "updating a transaction", &writer),
        (Method::POST, format!("/v1/transactions/{transaction_id}/capture"), "capturing a transaction", &writer),
        (Method::POST, format!("/v1/transactions/{transaction_id}/refund"), "refunding a transaction", &writer),
        (Method::POST, format!("/v1/transactions/{transaction_id}/void"), "voiding a transaction", &writer),
        (
            Method::POST,
            format!("/v1/transactions/{transaction_id}/authorization"),
            "extending a transaction's authorization",
            &writer,
        ),
    ];
    for (method, path, what, token) in operations {
        let body = (method != Method::GET).then(|| json!({"amount": 0}));
        for token in [&admin.token, token] {
            let answer = app.send(method.clone(), &path, Some(token), body.as_ref(), &[]).await;
            assert_error(
                &answer,
                501,
                &format!("{what} is not implemented: tokenvault processes no payments"),
                json!([]),
            );
        }
        // Credentials and scopes first, as for an implemented operation.
        let anonymous = app.send(method.clone(), &path, None, body.as_ref(), &[]).await;
        assert_error_status(&anonymous, 401);
        let customers = app.token_for(ACCOUNT, &["admin:customers"]).await;
        let refused = app.send(method.clone(), &path, Some(&customers), body.as_ref(), &[]).await;
        assert_error_status(&refused, 403);
    }
    // A read-only client may not write, a write-only one may not list.
    assert_error_status(
        &app.send(Method::POST, &format!("/v1/transactions/{transaction_id}/void"), Some(&reader), None, &[]).await,
        403,
    );
    assert_error_status(&app.get("/v1/transactions", &writer).await, 403);
    // The transaction is untouched.
    let transaction = app.get(&format!("/v1/transactions/{transaction_id}"), &admin.token).await.expect_json(200);
    assert_eq!(transaction["status"], json!("AUTHORIZED"));
}

async fn recurrence_tokens_where_the_token_provider_offers_them(app: TestApp) {
    let admin = app.admin().await;
    let with_provider = |provider: Value| {
        let mut body = session_body();
        body["token_provider"] = provider;
        body
    };
    // PayExTokenProvider and BamboraTokenProvider require token_types; the base TokenProvider
    // (dintero_psp.creditcard) has none, so no recurrence token.
    for ppt in ["payex.creditcard", "bambora.creditcard"] {
        let missing = app
            .post_json("/v1/sessions/payment-token", &admin.token, &with_provider(json!({"payment_product_type": ppt})))
            .await;
        assert_validation(&missing, &[("token_provider.token_types", "is required")]);
    }
    let psp =
        with_provider(json!({"payment_product_type": "dintero_psp.creditcard", "token_types": ["recurrence_token"]}));
    assert_validation(
        &app.post_json("/v1/sessions/payment-token", &admin.token, &psp).await,
        &[("token_provider.token_types", "recurrence_token is offered by bambora.creditcard, payex.creditcard only")],
    );

    // Both tokens: two card tokens of the transaction, each readable through `includes`.
    let both = with_provider(
        json!({"payment_product_type": "payex.creditcard", "token_types": ["payment_token", "recurrence_token"]}),
    );
    let id = app.post_json("/v1/sessions/payment-token", &admin.token, &both).await.expect_json(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": "approve", "card": visa()}))
        .await
        .expect_json(200);
    let transaction_id = done["transaction_id"].as_str().unwrap();
    let path = format!("/v1/transactions/{transaction_id}");
    let plain = app.get(&path, &admin.token).await.expect_json(200);
    let card = plain["card"].as_object().unwrap();
    let keys: Vec<&str> = card.keys().map(String::as_str).collect();
    assert_eq!(keys, ["brand", "masked_pan", "expiry_date", "payment_token_id", "recurrence_token_id"]);
    let payment_id = card["payment_token_id"].as_str().unwrap();
    let recurrence_id = card["recurrence_token_id"].as_str().unwrap();
    assert_ne!(payment_id, recurrence_id);
    let payment = app.get(&format!("/v1/card-tokens/{payment_id}"), &admin.token).await.expect_json(200);
    let recurrence = app.get(&format!("/v1/card-tokens/{recurrence_id}"), &admin.token).await.expect_json(200);
    assert_eq!(payment["type"], json!("payment_token"));
    assert_eq!(recurrence["type"], json!("recurrence_token"));
    for token in [&payment, &recurrence] {
        assert_eq!(token["transaction_id"], json!(transaction_id));
        assert_eq!(token["payment_product_type"], json!("payex.creditcard"));
        assert_eq!(token["masked_pan"], json!("411111******1111"));
        assert_eq!(token["status"], json!("ACTIVE"));
    }
    assert_ne!(payment["token"], recurrence["token"]);
    let only_recurrence =
        app.get(&format!("{path}?includes=card.recurrence_token"), &admin.token).await.expect_json(200);
    assert_eq!(only_recurrence["card"]["recurrence_token"], recurrence["token"]);
    assert_eq!(only_recurrence["card"].get("payment_token"), None);
    let everything = app
        .get(&format!("{path}?includes=card.payment_token&includes=card.recurrence_token"), &admin.token)
        .await
        .expect_json(200);
    assert_eq!(everything["card"]["payment_token"], payment["token"]);
    assert_eq!(everything["card"]["recurrence_token"], recurrence["token"]);

    // A recurrence token alone.
    let alone =
        with_provider(json!({"payment_product_type": "bambora.creditcard", "token_types": ["recurrence_token"]}));
    let id = app.post_json("/v1/sessions/payment-token", &admin.token, &alone).await.expect_json(200)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = app
        .post_json(&format!("/v1/sessions/{id}/complete"), &admin.token, &json!({"outcome": "approve", "card": visa()}))
        .await
        .expect_json(200);
    let transaction = app
        .get(
            &format!(
                "/v1/transactions/{}?includes=card.payment_token&includes=card.recurrence_token",
                done["transaction_id"].as_str().unwrap()
            ),
            &admin.token,
        )
        .await
        .expect_json(200);
    let card = transaction["card"].as_object().unwrap();
    let keys: Vec<&str> = card.keys().map(String::as_str).collect();
    assert_eq!(keys, ["brand", "masked_pan", "expiry_date", "recurrence_token_id", "recurrence_token"]);
    let cards = app.get("/v1/card-tokens?limit=10", &admin.token).await.expect_json(200);
    let types: Vec<&str> = cards.as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment_token", "recurrence_token", "recurrence_token"]);
}

// ---- webhooks and callback_url (both backends) ----------------------------------------------

mod announcements {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use axum::http::Method;
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};
    use sha1::Sha1;
    use tokenvault::service::webhook_worker::WebhookSettings;

    use super::{create_session_with, visa};
    use crate::helpers::*;
    use crate::receiver::RunningReceiver;

    backend_tests!(backend:
        approval_announces_the_token_once_and_calls_back,
        a_post_callback_carries_the_transaction,
        declines_fails_and_cancels_announce_no_token,
    );

    const SECRET: &str = "sessions-hook-secret";
    /// How long "nothing more arrives" is watched for.
    const QUIET: Duration = Duration::from_millis(600);

    /// A server whose webhook worker polls often and may reach the receiver on 127.0.0.1, a
    /// receiver, and a client with checkout and hooks scopes subscribed to `checkout_token_add`.
    async fn start(backend: Backend) -> (TestApp, RunningReceiver, Auth) {
        let app = spawn_app_with(backend, |config| {
            config.webhooks = WebhookSettings {
                poll_interval: Duration::from_millis(50),
                allow_private_targets: true,
                ..Default::default()
            };
        })
        .await;
        let receiver = RunningReceiver::start().await;
        let auth = app.auth(ACCOUNT, &["admin:checkout", "admin:hooks"]).await;
        let subscription = json!({
            "config": {"url": format!("{}/hook", receiver.url), "secret": SECRET},
            "events": ["checkout_token_add"],
        });
        app.post_json(&format!("/v1/accounts/{ACCOUNT}/hooks/subscriptions"), &auth.token, &subscription)
            .await
            .expect_json(200);
        (app, receiver, auth)
    }

    fn hmac_sha1_hex(body: &[u8]) -> String {
        let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn keys(query: &[(String, String)]) -> Vec<&str> {
        query.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn param<'a>(query: &'a [(String, String)], name: &str) -> &'a str {
        query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {name}"))
    }

    async fn approval_announces_the_token_once_and_calls_back(backend: Backend) {
        let (app, receiver, auth) = start(backend).await;
        let callback_url = format!("{}/callback", receiver.url);
        let id = create_session_with(&app, &auth.token, Some(&callback_url)).await;
        let done = app
            .post_json(
                &format!("/v1/sessions/{id}/complete"),
                &auth.token,
                &json!({"outcome": "approve", "card": visa()}),
            )
            .await
            .expect_json(200);
        let transaction_id = done["transaction_id"].as_str().unwrap().to_owned();

        // One signed checkout_token_add delivery, carrying the card token (with its
        // transaction_id) as the API shows it, without its secret token.
        let deliveries = receiver.wait_for("/hook", 1).await;
        let delivery = &deliveries[0];
        assert_eq!(delivery.method, Method::POST);
        assert_eq!(delivery.headers["content-type"], "application/json");
        assert_eq!(delivery.headers["event"], "checkout_token_add");
        assert_eq!(delivery.headers["event-signature"].to_str().unwrap(), hmac_sha1_hex(&delivery.body));
        let body: Value = serde_json::from_slice(&delivery.body).unwrap();
        let cards = app.get("/v1/card-tokens", &auth.token).await.expect_json(200);
        let mut card = cards[0].clone();
        assert_eq!(card["transaction_id"], json!(transaction_id));
        let secret = card.as_object_mut().unwrap().shift_remove("token").unwrap();
        assert_json_eq(
            &body,
            &json!({
                "account_id": ACCOUNT,
                "event_delivery": delivery.headers["event-delivery"].to_str().unwrap(),
                "event": "checkout_token_add",
                "token": card,
            }),
        );
        assert!(!String::from_utf8_lossy(&delivery.body).contains(secret.as_str().unwrap()));

        // The callback: GET with transaction_id, merchant_reference, session_id and time.
        let callbacks = receiver.wait_for("/callback", 1).await;
        let callback = &callbacks[0];
        assert_eq!(callback.method, Method::GET);
        assert!(callback.body.is_empty());
        assert_eq!(keys(&callback.query), ["transaction_id", "merchant_reference", "session_id", "time"]);
        assert_eq!(param(&callback.query, "transaction_id"), transaction_id);
        assert_eq!(param(&callback.query, "merchant_reference"), "order-1");
        assert_eq!(param(&callback.query, "session_id"), id);
        let time = param(&callback.query, "time");
        let sent = chrono::DateTime::parse_from_rfc3339(time).unwrap_or_else(|e| panic!("time {time}: {e}"));
        assert!((chrono::Utc::now().timestamp() - sent.timestamp()).abs() < 60, "{time}");

        // Exactly one of each.
        tokio::time::sleep(QUIET).await;
        assert_eq!(receiver.received("/hook").len(), 1);
        assert_eq!(receiver.received("/callback").len(), 1);
    }

    async fn a_post_callback_carries_the_transaction(backend: Backend) {
        let (app, receiver, auth) = start(backend).await;
        let callback_url = format!("{}/callback?method=POST", receiver.url);
        let id = create_session_with(&app, &auth.token, Some(&callback_url)).await;
        let done = app
            .post_json(
                &format!("/v1/sessions/{id}/complete"),
                &auth.token,
                &json!({"outcome": "approve", "card": visa()}),
            )
            .await
            .expect_json(200);
        let transaction_id = done["transaction_id"].as_str().unwrap();
        let callback = receiver.wait_for("/callback", 1).await.remove(0);
        assert_eq!(callback.method, Method::POST);
        assert_eq!(callback.headers["content-type"], "application/json");
        assert_eq!(keys(&callback.query), ["method", "transaction_id", "merchant_reference", "session_id", "time"]);
        let body: Value = serde_json::from_slice(&callback.body).unwrap();
        let transaction = app.get(&format!("/v1/transactions/{transaction_id}"), &auth.token).await.expect_json(200);
        assert_json_eq(&body, &transaction);
    }

    async fn declines_fails_and_cancels_announce_no_token(backend: Backend) {
        let (app, receiver, auth) = start(backend).await;
        let quiet = format!("{}/quiet", receiver.url);
        let reporting = format!("{}/reported?report_error=true", receiver.url);
        let mut reported = BTreeMap::new();
        for (outcome, error) in [("decline", "authorization"), ("fail", "failed"), ("cancel", "cancelled")] {
            for callback in [&quiet, &reporting] {
                let id = create_session_with(&app, &auth.token, Some(callback)).await;
                app.post_json(&format!("/v1/sessions/{id}/complete"), &auth.token, &json!({"outcome": outcome}))
                    .await
                    .expect_json(200);
                if callback == &reporting {
                    reported.insert(id, error);
                }
            }
        }
        // The session page's cancel button too.
        let id = create_session_with(&app, &auth.token, Some(&reporting)).await;
        let page = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let cancelled =
            page.post(format!("{}/v1/view/{id}", app.url)).form(&[("outcome", "cancel")]).send().await.unwrap();
        assert_eq!(cancelled.status(), 303);
        reported.insert(id, "cancelled");

        // With report_error=true: a GET with the error and no transaction_id; without: nothing.
        let callbacks = receiver.wait_for("/reported", reported.len()).await;
        let mut seen = BTreeMap::new();
        for callback in &callbacks {
            assert_eq!(callback.method, Method::GET);
            assert_eq!(keys(&callback.query), ["report_error", "error", "merchant_reference", "session_id", "time"]);
            seen.insert(param(&callback.query, "session_id").to_owned(), param(&callback.query, "error").to_owned());
        }
        let expected: BTreeMap<String, String> = reported.into_iter().map(|(k, v)| (k, v.to_owned())).collect();
        assert_eq!(seen, expected);
        tokio::time::sleep(QUIET).await;
        assert_eq!(receiver.received("/quiet").len(), 0, "no callback without report_error");
        assert_eq!(receiver.received("/reported").len(), expected.len());
        assert_eq!(receiver.received("/hook").len(), 0, "no token, so no checkout_token_add");
        assert_eq!(app.get("/v1/card-tokens", &auth.token).await.expect_json(200), json!([]));
    }
}

// ---- --public-url ----------------------------------------------------------------------------

mod public_url {
    use crate::helpers::*;

    backend_tests!(backend: the_session_url_uses_the_public_url_when_set);

    /// Behind a proxy the request's `Host` is not what a browser opens: `--public-url` wins, with
    /// its path prefix; the page itself is still served at `/v1/view/{id}`.
    async fn the_session_url_uses_the_public_url_when_set(backend: Backend) {
        let app = spawn_app_with(backend, |config| {
            config.public_url = Some("https://vault.example.com/sandbox".to_owned());
        })
        .await;
        let admin = app.admin().await;
        let body =
            app.post_json("/v1/sessions/payment-token", &admin.token, &super::session_body()).await.expect_json(200);
        let id = body["id"].as_str().unwrap();
        assert_eq!(body["url"], serde_json::json!(format!("https://vault.example.com/sandbox/v1/view/{id}")));
        let page = app.http.get(format!("{}/v1/view/{id}", app.url)).send().await.unwrap();
        assert_eq!(page.status(), 200);
    }
}
