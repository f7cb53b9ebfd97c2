//! `/v1/card-tokens[/{token_id}[/status]]` and the account-scoped aliases
//! `/v1/accounts/{aid}/payments/card-tokens[...]` (seeds 001, 004).

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    create_returns_201_in_the_seed_field_order,
    create_with_only_the_required_fields,
    create_validates_every_field,
    duplicate_ids_are_409,
    get_returns_the_token_or_404,
    aliases_reach_the_same_tokens,
    list_filters_by_customer_relationship_and_status,
    list_pages_with_paging_token_and_link,
    delete_returns_200_and_is_idempotent,
    delete_validates_its_body,
    status_can_be_changed_but_not_to_or_from_deleted,
    setting_deleted_on_a_deleted_token_is_409,
    the_plain_token_is_never_stored,
    deleting_erases_the_secret_and_keeps_the_record,
);

pub fn full_body(token: &str) -> Value {
    json!({
        "external_token_references": ["old-ref-1", "old-ref-2"],
        "transaction_id": "T12345678.abcdefghij",
        "relationship_id": "rel-1",
        "customer_id": "c-1",
        "links": [{"href": "https://cdn.example.com/art.png", "rel": "digital_card_art", "mime_type": "image/png"}, {"href": "https://x", "rel": "other"}],
        "token_expiry_date": "10/2031",
        "pan_expiry_date": "09/2030",
        "masked_pan": "476173******0416",
        "token": token,
        "payment_product_type": "dintero_psp.creditcard",
        "card_brand": "visa"
    })
}

/// Checks and blanks `id`, `created_at`, `updated_at` of a new card token.
fn normalize_card(body: &mut Value) -> String {
    let id = take_uuid(body, "id");
    let created = take_ts(body, "created_at");
    let updated = take_ts(body, "updated_at");
    assert_eq!(created, updated);
    id
}

async fn create_returns_201_in_the_seed_field_order(app: TestApp) {
    let admin = app.admin().await;
    let response = app.post_json("/v1/card-tokens", &admin.token, &full_body("tok_abc123")).await;
    let mut body = response.expect_json(201);
    normalize_card(&mut body);
    assert_json_eq(
        &body,
        &json!({
            "id": "<id>",
            "type": "payment_token",
            "status": "ACTIVE",
            "card_brand": "visa",
            "account_id": ACCOUNT,
            "payment_product_type": "dintero_psp.creditcard",
            "created_at": "<ts>",
            "updated_at": "<ts>",
            "token": "tok_abc123",
            "masked_pan": "476173******0416",
            "pan_expiry_date": "09/2030",
            "token_expiry_date": "10/2031",
            "links": [{"href": "https://cdn.example.com/art.png", "rel": "digital_card_art", "mime_type": "image/png"}, {"href": "https://x", "rel": "other"}],
            "customer_id": "c-1",
            "relationship_id": "rel-1",
            "transaction_id": "T12345678.abcdefghij",
            "external_token_references": ["old-ref-1", "old-ref-2"],
            "created_by": admin.client_id
        }),
    );

    // A client-chosen id, the other brand, and the redundant read-only values that match.
    let response = app
        .post_json(
            "/v1/card-tokens",
            &admin.token,
            &json!({"id": "my-token-1", "type": "payment_token", "status": "ACTIVE", "account_id": ACCOUNT, "card_brand": "mastercard", "payment_product_type": "payex.creditcard"}),
        )
        .await;
    let mut body = response.expect_json(201);
    take_ts(&mut body, "created_at");
    take_ts(&mut body, "updated_at");
    assert_json_eq(
        &body,
        &json!({
            "id": "my-token-1", "type": "payment_token", "status": "ACTIVE", "card_brand": "mastercard", "account_id": ACCOUNT,
            "payment_product_type": "payex.creditcard", "created_at": "<ts>", "updated_at": "<ts>", "created_by": admin.client_id
        }),
    );
}

async fn create_with_only_the_required_fields(app: TestApp) {
    let admin = app.admin().await;
    let mut body = app
        .create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "bambora.creditcard"}))
        .await;
    normalize_card(&mut body);
    assert_json_eq(
        &body,
        &json!({
            "id": "<id>", "type": "payment_token", "status": "ACTIVE", "card_brand": "visa", "account_id": ACCOUNT,
            "payment_product_type": "bambora.creditcard", "created_at": "<ts>", "updated_at": "<ts>", "created_by": admin.client_id
        }),
    );
}

async fn create_validates_every_field(app: TestApp) {
    let admin = app.admin().await;
    let base = json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard"});
    let with = |key: &str, value: Value| {
        let mut body = base.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let pan = "must be a masked PAN such as 476173******0416";
    let date = "must be a date of the form MM/YYYY";
    let cases: Vec<(Value, Vec<(String, &str)>)> = vec![
        (without("card_brand"), vec![("card_brand".into(), "is required")]),
        (with("card_brand", json!("amex")), vec![("card_brand".into(), "must be one of visa, mastercard")]),
        (with("card_brand", json!("VISA")), vec![("card_brand".into(), "must be one of visa, mastercard")]),
        (without("payment_product_type"), vec![("payment_product_type".into(), "is required")]),
        (
            with("payment_product_type", json!("")),
            vec![("payment_product_type".into(), "must have at least 1 character")],
        ),
        (with("payment_product_type", json!(5)), vec![("payment_product_type".into(), "must be a string")]),
        (with("masked_pan", json!("4761730416")), vec![("masked_pan".into(), pan)]),
        (with("masked_pan", json!("476173******041")), vec![("masked_pan".into(), pan)]),
        (with("pan_expiry_date", json!("13/2030")), vec![("pan_expiry_date".into(), date)]),
        (with("pan_expiry_date", json!("09/30")), vec![("pan_expiry_date".into(), date)]),
        (with("token_expiry_date", json!("9/2030")), vec![("token_expiry_date".into(), date)]),
        (with("token", json!("")), vec![("token".into(), "must have at least 1 character")]),
        (with("token", json!(12)), vec![("token".into(), "must be a string")]),
        (with("customer_id", json!(" c")), vec![("customer_id".into(), "must not have leading or trailing spaces")]),
        (with("links", json!("x")), vec![("links".into(), "must be an array of at most 20 links")]),
        (
            with("links", json!([{"href": ""}])),
            vec![
                ("links[0].href".into(), "must be a string of 1 to 2048 characters"),
                ("links[0].rel".into(), "is required"),
            ],
        ),
        (
            with("external_token_references", json!([1])),
            vec![("external_token_references[0]".into(), "must be a string")],
        ),
        (with("type", json!("recurrence_token")), vec![("type".into(), "must be payment_token")]),
        (
            with("status", json!("SUSPENDED")),
            vec![("status".into(), "new card tokens are ACTIVE; change it with PUT /v1/card-tokens/{token_id}/status")],
        ),
        (
            with("account_id", json!(OTHER_ACCOUNT)),
            vec![("account_id".into(), "must be the account of the access token")],
        ),
        (with("colour", json!("red")), vec![("colour".into(), "is not a field that can be set")]),
        (with("created_by", json!("me")), vec![("created_by".into(), "is not a field that can be set")]),
        (json!({}), vec![("card_brand".into(), "is required"), ("payment_product_type".into(), "is required")]),
    ];
    for (body, fields) in cases {
        let response = app.post_json("/v1/card-tokens", &admin.token, &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        let fields: Vec<(&str, &str)> = fields.iter().map(|(f, m)| (f.as_str(), *m)).collect();
        assert_validation(&response, &fields);
    }
    let response = app.post_json("/v1/card-tokens", &admin.token, &json!([base])).await;
    assert_error(&response, 400, "the request body must be a JSON object", json!([]));
    let list = app.get("/v1/card-tokens?include_deleted=true", &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([]));
}

async fn duplicate_ids_are_409(app: TestApp) {
    let admin = app.admin().await;
    let first = app
        .create_card_token(
            &admin.token,
            &json!({"id": "ct-1", "card_brand": "visa", "payment_product_type": "x", "token": "tok-1"}),
        )
        .await;
    let response = app
        .post_json(
            "/v1/card-tokens",
            &admin.token,
            &json!({"id": "ct-1", "card_brand": "mastercard", "payment_product_type": "y"}),
        )
        .await;
    assert_error(&response, 409, "a card token with id 'ct-1' already exists", json!([]));
    let response = app.get("/v1/card-tokens/ct-1", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &first);
    // Another account may use the same id.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:checkout"]).await;
    let response = app
        .post_json("/v1/card-tokens", &other, &json!({"id": "ct-1", "card_brand": "visa", "payment_product_type": "x"}))
        .await;
    assert_eq!(response.expect_json(201)["account_id"], json!(OTHER_ACCOUNT));
    let response = app.get("/v1/card-tokens/ct-1", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &first);
}

async fn get_returns_the_token_or_404(app: TestApp) {
    let admin = app.admin().await;
    let created = app.create_card_token(&admin.token, &full_body("tok_get")).await;
    let id = created["id"].as_str().unwrap();
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &created);
    for missing in ["00000000-0000-4000-8000-000000000000", "nope"] {
        let response = app.get(&format!("/v1/card-tokens/{missing}"), &admin.token).await;
        assert_error(&response, 404, "card token not found", json!([]));
    }
}

async fn aliases_reach_the_same_tokens(app: TestApp) {
    let admin = app.admin().await;
    let a = app.create_card_token(&admin.token, &full_body("tok_a")).await;
    let b =
        app.create_card_token(&admin.token, &json!({"card_brand": "mastercard", "payment_product_type": "x"})).await;
    let base = format!("/v1/accounts/{ACCOUNT}/payments/card-tokens");

    let response = app.get(&base, &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([a, b]));
    let response = app.get(&format!("{base}/{}", a["id"].as_str().unwrap()), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &a);

    // Paging links keep the alias path.
    let response = app.get(&format!("{base}?limit=1"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([a]));
    let a_id = a["id"].as_str().unwrap();
    assert_eq!(response.header("paging-token"), Some(a_id));
    assert_eq!(response.header("link"), Some(format!("<{base}?limit=1&starting_after={a_id}>; rel=\"next\"").as_str()));

    // Delete and status through the alias.
    let response = app
        .put_json(
            &format!("{base}/{}/status", b["id"].as_str().unwrap()),
            &admin.token,
            &json!({"status": "SUSPENDED"}),
        )
        .await;
    assert_eq!(response.expect_json(200)["status"], json!("SUSPENDED"));
    let response = app
        .delete_json(
            &format!("{base}/{a_id}"),
            &admin.token,
            &json!({"reason": "Profile deleted", "requestor": "MERCHANT"}),
        )
        .await;
    let deleted = response.expect_json(200);
    assert_eq!(deleted["status"], json!("DELETED"));
    let response = app.get(&format!("/v1/card-tokens/{a_id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);

    // Another account's alias path is forbidden even with checkout scopes.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:checkout"]).await;
    let response = app.get(&format!("{base}/{a_id}"), &other).await;
    assert_error(&response, 403, &crate::auth::wrong_account(ACCOUNT), json!([]));
    let response = app.get(&format!("/v1/accounts/{OTHER_ACCOUNT}/payments/card-tokens/{a_id}"), &other).await;
    assert_error(&response, 404, "card token not found", json!([]));
}

fn card_ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a bare array").iter().map(|c| c["id"].as_str().unwrap().to_owned()).collect()
}

async fn list_filters_by_customer_relationship_and_status(app: TestApp) {
    let admin = app.admin().await;
    let mut ids = vec![];
    for (i, (customer, relationship)) in
        [("c-1", "r-1"), ("c-1", "r-2"), ("c-2", "r-1"), ("c-2", "r-2"), ("c-3", "r-1")].iter().enumerate()
    {
        let card = app
            .create_card_token(
                &admin.token,
                &json!({"id": format!("ct-{i}"), "card_brand": "visa", "payment_product_type": "x", "customer_id": customer, "relationship_id": relationship}),
            )
            .await;
        ids.push(card["id"].as_str().unwrap().to_owned());
    }
    app.put_json("/v1/card-tokens/ct-1/status", &admin.token, &json!({"status": "SUSPENDED"})).await.expect_json(200);
    app.put_json("/v1/card-tokens/ct-2/status", &admin.token, &json!({"status": "CANCELLED"})).await.expect_json(200);
    app.delete("/v1/card-tokens/ct-3", &admin.token).await.expect_json(200);
    // Another account's tokens never show.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:checkout"]).await;
    app.post_json(
        "/v1/card-tokens",
        &other,
        &json!({"id": "theirs", "card_brand": "visa", "payment_product_type": "x", "customer_id": "c-1"}),
    )
    .await
    .expect_json(201);

    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("", vec!["ct-0", "ct-1", "ct-2", "ct-4"]),
        ("?include_deleted=false", vec!["ct-0", "ct-1", "ct-2", "ct-4"]),
        ("?include_deleted=true", vec!["ct-0", "ct-1", "ct-2", "ct-3", "ct-4"]),
        ("?customer_id=c-1", vec!["ct-0", "ct-1"]),
        ("?customer_id=c-2", vec!["ct-2"]),
        ("?customer_id=c-2&include_deleted=true", vec!["ct-2", "ct-3"]),
        ("?relationship_id=r-1", vec!["ct-0", "ct-2", "ct-4"]),
        ("?customer_id=c-1&relationship_id=r-2", vec!["ct-1"]),
        ("?status=ACTIVE", vec!["ct-0", "ct-4"]),
        ("?status=SUSPENDED", vec!["ct-1"]),
        ("?status=ACTIVE&status=SUSPENDED", vec!["ct-0", "ct-1", "ct-4"]),
        ("?status[]=ACTIVE&status[]=CANCELLED", vec!["ct-0", "ct-2", "ct-4"]),
        ("?status%5B%5D=SUSPENDED&status%5B%5D=CANCELLED", vec!["ct-1", "ct-2"]),
        ("?status=SUSPENDED,CANCELLED", vec!["ct-1", "ct-2"]),
        ("?status=SUSPENDED%2CCANCELLED", vec!["ct-1", "ct-2"]),
        ("?status=DELETED", vec!["ct-3"]),
        ("?status=DELETED&status=ACTIVE", vec!["ct-0", "ct-3", "ct-4"]),
        ("?status=INACTIVE", vec![]),
        ("?customer_id=nobody", vec![]),
    ];
    let read = app.token_for(ACCOUNT, &["admin:checkout"]).await;
    for (query, expected) in cases {
        let response = app.get(&format!("/v1/card-tokens{query}"), &read).await;
        let list = response.expect_json(200);
        response.assert_last_page();
        assert_eq!(card_ids(&list), expected, "{query}");
    }

    for query in ["status=FOO", "status=active", "status=ACTIVE,FOO", "status[]=NOPE"] {
        let response = app.get(&format!("/v1/card-tokens?{query}"), &read).await;
        assert_eq!(response.status.as_u16(), 400, "?{query}: {}", response.text);
        let body = response.expect_json(400);
        assert_eq!(body["error"]["code"], json!("BAD REQUEST"));
        assert_eq!(body["error"]["errors"].as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(body["error"]["errors"][0]["field"], json!("status"), "{body}");
    }
    for (query, field, message) in [
        ("include_deleted=yes", "include_deleted", "must be true or false"),
        ("limit=0", "limit", "must be an integer between 1 and 100"),
        ("limit=101", "limit", "must be an integer between 1 and 100"),
        ("limit=x", "limit", "must be an integer between 1 and 100"),
        ("total=2", "total", "must be true or false"),
    ] {
        let response = app.get(&format!("/v1/card-tokens?{query}"), &read).await;
        assert_validation(&response, &[(field, message)]);
    }
    let response = app.get("/v1/card-tokens?starting_after=theirs", &read).await;
    assert_error(
        &response,
        400,
        "starting_after: does not name an item of this list",
        json!([{"field": "starting_after", "message": "does not name an item of this list"}]),
    );
    let response = app.get("/v1/card-tokens?total=true&status=ACTIVE&limit=1", &read).await;
    assert_eq!(response.header("total-count"), Some("2"));
    assert_eq!(card_ids(&response.expect_json(200)), ["ct-0"]);
    let _ = ids;
}

async fn list_pages_with_paging_token_and_link(app: TestApp) {
    let admin = app.admin().await;
    let mut live = vec![];
    for i in 0..13 {
        let card = app
            .create_card_token(
                &admin.token,
                &json!({"card_brand": "visa", "payment_product_type": "x", "customer_id": format!("c{}", i % 2)}),
            )
            .await;
        if i % 4 == 3 {
            app.delete(&format!("/v1/card-tokens/{}", card["id"].as_str().unwrap()), &admin.token)
                .await
                .expect_json(200);
        } else {
            live.push(card);
        }
    }
    assert_eq!(live.len(), 10);
    // Exactly the default limit of live tokens: one page, no paging headers.
    let response = app.get("/v1/card-tokens", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &Value::Array(live.clone()));
    response.assert_last_page();

    let pages = app.walk("/v1/card-tokens?limit=3&total=true", &admin.token).await;
    assert_eq!(pages.len(), 4);
    let mut walked = vec![];
    for page in &pages {
        assert_eq!(page.header("total-count"), Some("10"));
        let list = page.json();
        if let Some(token) = page.header("paging-token") {
            let last = list.as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
            assert_eq!(token, last);
            assert_eq!(
                page.header("link").unwrap(),
                format!("</v1/card-tokens?limit=3&total=true&starting_after={last}>; rel=\"next\"")
            );
        }
        walked.extend(list.as_array().unwrap().iter().cloned());
    }
    assert_json_eq(&Value::Array(walked), &Value::Array(live.clone()));

    // With a filter, and with deleted tokens included.
    let c0: Vec<Value> = live.iter().filter(|c| c["customer_id"] == json!("c0")).cloned().collect();
    let pages = app.walk("/v1/card-tokens?customer_id=c0&limit=2", &admin.token).await;
    let walked: Vec<Value> = pages.iter().flat_map(|p| p.json().as_array().unwrap().clone()).collect();
    assert_json_eq(&Value::Array(walked), &Value::Array(c0));
    let pages = app.walk("/v1/card-tokens?include_deleted=true&limit=4", &admin.token).await;
    let count: usize = pages.iter().map(|p| p.json().as_array().unwrap().len()).sum();
    assert_eq!((pages.len(), count), (4, 13));
}

async fn delete_returns_200_and_is_idempotent(app: TestApp) {
    let admin = app.admin().await;
    let created = app.create_card_token(&admin.token, &full_body("tok_del")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let response = app
        .delete_json(
            &format!("/v1/card-tokens/{id}"),
            &admin.token,
            &json!({"reason": "Profile deleted", "requestor": "CARDHOLDER"}),
        )
        .await;
    let deleted = response.expect_json(200);
    let mut body = deleted.clone();
    let updated_at = take_ts(&mut body, "updated_at");
    let deleted_at = take_ts(&mut body, "deleted_at");
    assert!(assert_timestamp(&updated_at) >= assert_timestamp(created["created_at"].as_str().unwrap()));
    assert!(assert_timestamp(&deleted_at) >= assert_timestamp(created["created_at"].as_str().unwrap()));
    let mut expected = created.clone();
    // The secret is erased with the delete.
    expected.as_object_mut().unwrap().shift_remove("token");
    expected["status"] = json!("DELETED");
    expected["updated_at"] = json!("<ts>");
    expected["deleted_at"] = json!("<ts>");
    expected["deleted_by"] = json!(admin.client_id);
    assert_json_eq(&body, &expected);

    // Again (no body, another client): 200, unchanged.
    let other = app.token_for(ACCOUNT, &["admin:checkout"]).await;
    let response = app.delete(&format!("/v1/card-tokens/{id}"), &other).await;
    assert_json_eq(&response.expect_json(200), &deleted);
    // The deleted token is still readable by id, and hidden from the default list.
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);
    let response = app.get("/v1/card-tokens", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));

    // No body, an empty object and the default requestor all work.
    for (i, body) in
        [None, Some(json!({})), Some(json!({"reason": "x".repeat(128)})), Some(json!({"requestor": "MERCHANT"}))]
            .into_iter()
            .enumerate()
    {
        let card = app
            .create_card_token(
                &admin.token,
                &json!({"id": format!("d-{i}"), "card_brand": "visa", "payment_product_type": "x"}),
            )
            .await;
        let path = format!("/v1/card-tokens/{}", card["id"].as_str().unwrap());
        let response = match &body {
            Some(body) => app.delete_json(&path, &admin.token, body).await,
            None => app.delete(&path, &admin.token).await,
        };
        assert_eq!(response.expect_json(200)["status"], json!("DELETED"), "{body:?}");
    }
    let response = app.delete("/v1/card-tokens/unknown", &admin.token).await;
    assert_error(&response, 404, "card token not found", json!([]));
}

async fn delete_validates_its_body(app: TestApp) {
    let admin = app.admin().await;
    let created =
        app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    let path = format!("/v1/card-tokens/{}", created["id"].as_str().unwrap());
    let response = app.delete_json(&path, &admin.token, &json!({"reason": "x".repeat(129)})).await;
    assert_validation(&response, &[("reason", "must be at most 128 characters")]);
    for body in [json!({"requestor": "BOSS"}), json!({"requestor": "merchant"}), json!({"requestor": 1})] {
        let response = app.delete_json(&path, &admin.token, &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        let error = response.expect_json(400);
        assert_eq!(error["error"]["errors"][0]["field"], json!("requestor"), "{error}");
    }
    let response = app.delete_json(&path, &admin.token, &json!({"reason": 5})).await;
    assert_validation(&response, &[("reason", "must be a string")]);
    // Still active.
    let response = app.get(&path, &admin.token).await;
    assert_json_eq(&response.expect_json(200), &created);
}

async fn status_can_be_changed_but_not_to_or_from_deleted(app: TestApp) {
    let admin = app.admin().await;
    let created = app.create_card_token(&admin.token, &full_body("tok_status")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/card-tokens/{id}/status");

    let response = app.put_json(&path, &admin.token, &json!({"status": "SUSPENDED"})).await;
    let suspended = response.expect_json(200);
    let mut body = suspended.clone();
    let updated = take_ts(&mut body, "updated_at");
    assert!(assert_timestamp(&updated) >= assert_timestamp(created["created_at"].as_str().unwrap()));
    let mut expected = created.clone();
    expected["status"] = json!("SUSPENDED");
    expected["updated_at"] = json!("<ts>");
    assert_json_eq(&body, &expected);
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &suspended);

    // The same status again: a no-op.
    let response = app.put_json(&path, &admin.token, &json!({"status": "SUSPENDED"})).await;
    assert_eq!(response.expect_json(200)["status"], json!("SUSPENDED"));
    for status in ["INACTIVE", "CANCELLED", "ACTIVE"] {
        let response = app.put_json(&path, &admin.token, &json!({"status": status})).await;
        assert_eq!(response.expect_json(200)["status"], json!(status));
    }

    let response = app.put_json(&path, &admin.token, &json!({"status": "DELETED"})).await;
    assert_error(&response, 409, "cannot change status from ACTIVE to DELETED", json!([]));
    for body in [json!({"status": "FOO"}), json!({}), json!({"status": 1}), json!({"status": "active"})] {
        let response = app.put_json(&path, &admin.token, &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        let error = response.expect_json(400);
        assert_eq!(error["error"]["errors"][0]["field"], json!("status"), "{error}");
    }
    let response = app.put_json("/v1/card-tokens/unknown/status", &admin.token, &json!({"status": "ACTIVE"})).await;
    assert_error(&response, 404, "card token not found", json!([]));

    // Nothing leaves DELETED.
    let deleted = app.delete(&format!("/v1/card-tokens/{id}"), &admin.token).await.expect_json(200);
    // (DELETED → DELETED: `setting_deleted_on_a_deleted_token_is_409`)
    for status in ["ACTIVE", "SUSPENDED"] {
        let response = app.put_json(&path, &admin.token, &json!({"status": status})).await;
        assert_eq!(response.status.as_u16(), 409, "{status}: {}", response.text);
        assert_error(&response, 409, &format!("card token '{id}' is DELETED; its status cannot change"), json!([]));
    }
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);
}

/// "to/from DELETED → 409", also when the token already is DELETED.
async fn setting_deleted_on_a_deleted_token_is_409(app: TestApp) {
    let admin = app.admin().await;
    let created =
        app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    let id = created["id"].as_str().unwrap();
    let deleted = app.delete(&format!("/v1/card-tokens/{id}"), &admin.token).await.expect_json(200);
    let response =
        app.put_json(&format!("/v1/card-tokens/{id}/status"), &admin.token, &json!({"status": "DELETED"})).await;
    assert_error_status(&response, 409);
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);
}

/// The plain `token` is stored encrypted: none of the database's bytes contain it.
async fn the_plain_token_is_never_stored(app: TestApp) {
    let admin = app.admin().await;
    let secret = format!("tok_DISTINCTIVE_{}", uuid::Uuid::new_v4().simple());
    // A positive control: a distinctive field stored in clear must be found by the same scan.
    let visible = format!("cust_VISIBLE_{}", uuid::Uuid::new_v4().simple());
    let mut body = full_body(&secret);
    body["customer_id"] = json!(visible);
    let created = app.create_card_token(&admin.token, &body).await;
    assert_eq!(created["token"], json!(secret));
    let id = created["id"].as_str().unwrap().to_owned();
    // Through every path that writes the row.
    app.put_json(&format!("/v1/card-tokens/{id}/status"), &admin.token, &json!({"status": "SUSPENDED"}))
        .await
        .expect_json(200);
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_eq!(response.expect_json(200)["token"], json!(secret));
    let deleted = app.delete(&format!("/v1/card-tokens/{id}"), &admin.token).await.expect_json(200);
    assert_eq!(deleted.get("token"), None, "a delete erases the secret");

    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    match app.backend {
        Backend::Sqlite => {
            let dir = app.dir.as_ref().unwrap().path();
            let mut checked = 0;
            let mut control_found = false;
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                checked += bytes.len();
                control_found |= bytes.windows(visible.len()).any(|w| w == visible.as_bytes());
                for needle in [secret.as_bytes(), hex.as_bytes()] {
                    assert!(
                        !bytes.windows(needle.len()).any(|w| w == needle),
                        "the plain token is in {}",
                        path.display()
                    );
                }
            }
            assert!(checked > 0);
            assert!(control_found, "the scan does not even find the customer_id stored in clear");
            assert!(dir.join("tokenvault.db").exists());
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let tables = client
                .query("SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'", &[])
                .await
                .unwrap();
            assert!(!tables.is_empty());
            let mut control_found = 0;
            for row in tables {
                let table: String = row.get(0);
                let sql = format!(
                    "SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0 OR strpos(lower(t::text), $2) > 0"
                );
                let found: i64 = client.query_one(&sql, &[&secret, &hex]).await.unwrap().get(0);
                assert_eq!(found, 0, "the plain token is in table {table}");
                let sql = format!("SELECT count(*) FROM {table} t WHERE strpos(t::text, $1) > 0");
                let control: i64 = client.query_one(&sql, &[&visible]).await.unwrap().get(0);
                control_found += control;
            }
            assert!(control_found > 0, "the scan does not even find the customer_id stored in clear");
        }
    }
}

/// `token_sealed` and `token_fingerprint` of a card token, read straight from the database.
async fn stored_secret(app: &TestApp, id: &str) -> (Option<Vec<u8>>, Option<String>) {
    const SELECT: &str = "SELECT token_sealed, token_fingerprint FROM card_tokens WHERE id = $1";
    match app.backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(app.dir.as_ref().unwrap().path().join("tokenvault.db")).unwrap();
            conn.query_row(&SELECT.replace("$1", "?1"), [id], |row| Ok((row.get(0)?, row.get(1)?))).unwrap()
        }
        Backend::Postgres => {
            let (client, connection) = tokio_postgres::connect(&app.database_url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let row = client.query_one(SELECT, &[&id]).await.unwrap();
            (row.get(0), row.get(1))
        }
    }
}

/// Deleting a card token erases its secret (crypto-shredding): the sealed `token` and its
/// fingerprint are gone from the row in the delete's own transaction, so no later answer carries
/// `token`; the record (without it) and its audit trail stay.
async fn deleting_erases_the_secret_and_keeps_the_record(app: TestApp) {
    let admin = app.admin().await;
    let mut body = full_body("tok_SHRED_ME");
    body["id"] = json!("ct-shred");
    let created = app.create_card_token(&admin.token, &body).await;
    assert_eq!(created["token"], json!("tok_SHRED_ME"));
    let (sealed, fingerprint) = stored_secret(&app, "ct-shred").await;
    assert!(sealed.is_some_and(|bytes| !bytes.is_empty()) && fingerprint.is_some(), "a live token keeps its secret");

    let deleted = app.delete("/v1/card-tokens/ct-shred", &admin.token).await.expect_json(200);
    let mut expected = created.clone();
    expected.as_object_mut().unwrap().shift_remove("token");
    expected["status"] = json!("DELETED");
    expected["updated_at"] = deleted["updated_at"].clone();
    expected["deleted_at"] = deleted["updated_at"].clone();
    expected["deleted_by"] = json!(admin.client_id);
    assert_json_eq(&deleted, &expected);
    assert_eq!(stored_secret(&app, "ct-shred").await, (None, None), "the sealed token outlived its delete");

    // Every later answer: the record, without `token`.
    let response = app.get("/v1/card-tokens/ct-shred", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);
    let response = app.get(&format!("/v1/accounts/{ACCOUNT}/payments/card-tokens/ct-shred"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);
    let response = app.get("/v1/card-tokens?include_deleted=true", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([deleted]));
    let response = app.delete("/v1/card-tokens/ct-shred", &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);

    // The audit trail keeps the create and the delete.
    let account = tokenvault::domain::AccountId::parse("aid", ACCOUNT).unwrap();
    let actions: Vec<String> = app
        .store()
        .list_audit(Some(&account), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|record| record.resource_id == "ct-shred")
        .map(|record| record.action)
        .collect();
    assert_eq!(actions, ["card_token.create", "card_token.delete"]);

    // With its fingerprint gone, the same PSP token may be stored again, as a new card token.
    body["id"] = json!("ct-again");
    let again = app.create_card_token(&admin.token, &body).await;
    assert_eq!((again["id"].as_str(), again["token"].as_str()), (Some("ct-again"), Some("tok_SHRED_ME")));
}
