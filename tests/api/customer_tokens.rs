//! `/v1/accounts/{aid}/customers/users/{customer_id}/tokens[/{tid}]` (seeds 000, 002, 003).

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    create_returns_201_in_the_seed_field_order,
    token_id_is_generated_and_metadata_omitted_when_absent,
    create_validates_every_field,
    create_for_an_unknown_customer_is_404,
    duplicates_of_live_tokens_are_400_naming_the_field,
    delete_returns_the_deleted_token_and_is_idempotent,
    a_deleted_token_id_can_be_created_again,
    delete_unknown_token_is_404,
    delete_token_events_clears_events_in_the_same_request,
    list_filters_and_defaults_to_include_deleted,
    list_validates_its_query,
    list_pages_with_paging_token_and_link,
    link_keeps_filters_and_replaces_starting_after_in_place,
    total_count_counts_all_matching_tokens,
);

/// Blanks the server-set fields of a token after checking them.
pub fn normalize_token(body: &mut Value) -> String {
    let id = take_uuid(body, "id");
    let created = take_ts(body, "created_at");
    let updated = take_ts(body, "updated_at");
    assert_eq!(created, updated, "a new token's updated_at is its created_at");
    id
}

async fn setup(app: &TestApp) -> Auth {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    admin
}

async fn create_returns_201_in_the_seed_field_order(app: TestApp) {
    let admin = setup(&app).await;
    let writer = app.auth(ACCOUNT, &["write:customers"]).await;
    let sent = json!({
        "metadata": {"exp_month": 10, "exp_year": 20, "mask_pan": "**** **** **** 3477"},
        "token_id": "tok-1",
        "value": "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92",
        "type": "sha1:email"
    });
    let response = app.post_json(&tokens_path(ACCOUNT, "c-1"), &writer.token, &sent).await;
    let mut body = response.expect_json(201);
    let id = normalize_token(&mut body);
    let expected = json!({
        "type": "sha1:email",
        "value": "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92",
        "id": "<id>",
        "created_at": "<ts>",
        "created_by": writer.client_id,
        "updated_at": "<ts>",
        "token_id": "tok-1",
        "metadata": {"exp_month": 10, "exp_year": 20, "mask_pan": "**** **** **** 3477"}
    });
    assert_json_eq(&body, &expected);

    // The list returns the same record.
    let response = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await;
    let mut list = response.expect_json(200);
    response.assert_last_page();
    assert_eq!(list[0]["id"], json!(id));
    normalize_token(&mut list[0]);
    assert_json_eq(&list, &json!([expected]));
}

async fn token_id_is_generated_and_metadata_omitted_when_absent(app: TestApp) {
    let admin = setup(&app).await;
    let mut body = app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "v1"})).await;
    let id = normalize_token(&mut body);
    let token_id = take_uuid(&mut body, "token_id");
    assert_ne!(id, token_id);
    assert_json_eq(
        &body,
        &json!({"type": "sha1:email", "value": "v1", "id": "<id>", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>", "token_id": "<id>"}),
    );
    // Explicit nulls count as absent.
    let mut body = app
        .create_token(
            &admin.token,
            "c-1",
            &json!({"type": "sha1:email", "value": "v2", "token_id": null, "metadata": null}),
        )
        .await;
    normalize_token(&mut body);
    take_uuid(&mut body, "token_id");
    assert_json_eq(
        &body,
        &json!({"type": "sha1:email", "value": "v2", "id": "<id>", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>", "token_id": "<id>"}),
    );
    // Empty metadata is kept as sent.
    let mut body = app
        .create_token(&admin.token, "c-1", &json!({"type": "t", "value": "v3", "token_id": "x", "metadata": {}}))
        .await;
    normalize_token(&mut body);
    assert_json_eq(
        &body,
        &json!({"type": "t", "value": "v3", "id": "<id>", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>", "token_id": "x", "metadata": {}}),
    );
}

async fn create_validates_every_field(app: TestApp) {
    let admin = setup(&app).await;
    let path = tokens_path(ACCOUNT, "c-1");
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({"value": "v"}), vec![("type", "is required")]),
        (json!({"type": "t"}), vec![("value", "is required")]),
        (json!({}), vec![("type", "is required"), ("value", "is required")]),
        (json!({"type": "", "value": "v"}), vec![("type", "must have at least 1 character")]),
        (json!({"type": "t", "value": ""}), vec![("value", "must have at least 1 character")]),
        (json!({"type": 1, "value": "v"}), vec![("type", "must be a string")]),
        (json!({"type": "t", "value": {"a": 1}}), vec![("value", "must be a string")]),
        (json!({"type": "t", "value": "v", "token_id": ""}), vec![("token_id", "length must be between 1 and 255")]),
        (
            json!({"type": "t", "value": "v", "token_id": "x".repeat(256)}),
            vec![("token_id", "length must be between 1 and 255")],
        ),
        (
            json!({"type": "t", "value": "v", "token_id": " x"}),
            vec![("token_id", "must not have leading or trailing spaces")],
        ),
        (
            json!({"type": "t", "value": "v", "token_id": "x "}),
            vec![("token_id", "must not have leading or trailing spaces")],
        ),
        (json!({"type": "t", "value": "v", "token_id": 7}), vec![("token_id", "must be a string")]),
        (json!({"type": "t", "value": "v", "metadata": []}), vec![("metadata", "must be an object")]),
        (json!({"type": "t", "value": "v", "metadata": "m"}), vec![("metadata", "must be an object")]),
        (
            json!({"type": "", "value": 3, "token_id": "t ", "metadata": []}),
            vec![
                ("type", "must have at least 1 character"),
                ("value", "must be a string"),
                ("token_id", "must not have leading or trailing spaces"),
                ("metadata", "must be an object"),
            ],
        ),
    ];
    for (body, fields) in cases {
        let response = app.post_json(&path, &admin.token, &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        assert_validation(&response, &fields);
    }
    for body in [json!([{"type": "t", "value": "v"}]), json!("t")] {
        let response = app.post_json(&path, &admin.token, &body).await;
        assert_error(&response, 400, "the request body must be a JSON object", json!([]));
    }
    let response = app.send(reqwest::Method::POST, &path, Some(&admin.token), None, &[]).await;
    assert_error(&response, 400, "a JSON object body is required", json!([]));
    let response = app
        .post_json(&format!("{path}?delete_token_events=yes"), &admin.token, &json!({"type": "t", "value": "v"}))
        .await;
    assert_validation(&response, &[("delete_token_events", "must be true or false")]);

    // 255 characters is the longest token_id.
    let long = "x".repeat(255);
    let body = app.create_token(&admin.token, "c-1", &json!({"type": "t", "value": "v", "token_id": long})).await;
    assert_eq!(body["token_id"], json!(long));
    let list = app.get(&path, &admin.token).await.expect_json(200);
    assert_eq!(list.as_array().unwrap().len(), 1, "refused tokens were stored: {list}");
}

async fn create_for_an_unknown_customer_is_404(app: TestApp) {
    let admin = setup(&app).await;
    let response = app.post_json(&tokens_path(ACCOUNT, "c-2"), &admin.token, &json!({"type": "t", "value": "v"})).await;
    assert_error(&response, 404, "customer not found", json!([]));
    // A deleted customer is unknown too.
    app.delete(&customer_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    let response = app.post_json(&tokens_path(ACCOUNT, "c-1"), &admin.token, &json!({"type": "t", "value": "v"})).await;
    assert_error(&response, 404, "customer not found", json!([]));
    // And so is a customer of another account.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:customers"]).await;
    app.post_json(&customers_path(OTHER_ACCOUNT), &other, &json!({"customer_id": "theirs"})).await.expect_json(200);
    let response =
        app.post_json(&tokens_path(ACCOUNT, "theirs"), &admin.token, &json!({"type": "t", "value": "v"})).await;
    assert_error(&response, 404, "customer not found", json!([]));
}

fn duplicate_token() -> Value {
    json!({"error": {
        "code": "DUPLICATE_TOKEN",
        "message": "a live token with this type and value already belongs to a customer",
        "errors": [{"field": "type", "message": "is already in use"}, {"field": "value", "message": "is already in use"}],
    }})
}

/// aid_customers_cid_tokens_post documents only 201, 400, 401, 403, 404 and 500: a duplicate
/// `token_id` or a `type`+`value` that already belongs to a customer is 400 (BadRequest), with a
/// code and `errors` naming the duplicate, as aid_customers_post's "duplicate field detected".
async fn duplicates_of_live_tokens_are_400_naming_the_field(app: TestApp) {
    let admin = setup(&app).await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    let first =
        app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "v1", "token_id": "t-1"})).await;

    // Same token_id for the same customer.
    let response = app
        .post_json(
            &tokens_path(ACCOUNT, "c-1"),
            &admin.token,
            &json!({"type": "sha1:email", "value": "v2", "token_id": "t-1"}),
        )
        .await;
    assert_json_eq(
        &response.expect_json(400),
        &json!({"error": {
            "code": "DUPLICATE_TOKEN_ID",
            "message": "a live token with token_id 't-1' already exists for this customer",
            "errors": [{"field": "token_id", "message": "is already in use"}],
        }}),
    );
    // Same type+value anywhere in the account.
    for customer in ["c-1", "c-2"] {
        let response = app
            .post_json(&tokens_path(ACCOUNT, customer), &admin.token, &json!({"type": "sha1:email", "value": "v1"}))
            .await;
        assert_json_eq(&response.expect_json(400), &duplicate_token());
    }
    // The same token_id for another customer, the same value with another type: fine.
    app.create_token(&admin.token, "c-2", &json!({"type": "sha1:email", "value": "v3", "token_id": "t-1"})).await;
    app.create_token(&admin.token, "c-2", &json!({"type": "sha1:phone", "value": "v1"})).await;
    // The same type+value in another account: fine.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:customers"]).await;
    app.post_json(&customers_path(OTHER_ACCOUNT), &other, &json!({"customer_id": "c-1"})).await.expect_json(200);
    let response = app
        .post_json(
            &tokens_path(OTHER_ACCOUNT, "c-1"),
            &other,
            &json!({"type": "sha1:email", "value": "v1", "token_id": "t-1"}),
        )
        .await;
    response.expect_json(201);

    // Nothing changed for c-1.
    let list = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([first]));
}

async fn delete_returns_the_deleted_token_and_is_idempotent(app: TestApp) {
    let admin = setup(&app).await;
    let created = app
        .create_token(
            &admin.token,
            "c-1",
            &json!({"type": "sha1:email", "value": "v1", "token_id": "t-1", "metadata": {"k": "v"}}),
        )
        .await;
    let deleter = app.auth(ACCOUNT, &["write:customers"]).await;
    let path = format!("{}/t-1", tokens_path(ACCOUNT, "c-1"));
    let response = app.delete(&path, &deleter.token).await;
    let deleted = response.expect_json(200);
    let mut body = deleted.clone();
    let updated_at = take_ts(&mut body, "updated_at");
    let deleted_at = take_ts(&mut body, "deleted_at");
    let created_secs = assert_timestamp(created["created_at"].as_str().unwrap());
    assert!(assert_timestamp(&updated_at) >= created_secs && assert_timestamp(&deleted_at) >= created_secs);
    assert_json_eq(
        &body,
        &json!({
            "type": "sha1:email",
            "value": "v1",
            "id": created["id"],
            "created_at": created["created_at"],
            "created_by": admin.client_id,
            "updated_at": "<ts>",
            "deleted_by": deleter.client_id,
            "deleted_at": "<ts>",
            "token_id": "t-1",
            "metadata": {"k": "v"}
        }),
    );

    // Again (by another client): the same record, unchanged.
    let response = app.delete(&path, &admin.token).await;
    assert_json_eq(&response.expect_json(200), &deleted);
    // With a JSON body too.
    let response = app.delete_json(&path, &admin.token, &json!({})).await;
    assert_json_eq(&response.expect_json(200), &deleted);

    // The list shows it deleted (include_deleted defaults to true).
    let list = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([deleted]));
    // And the type+value is free again, also for another customer.
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    app.create_token(&admin.token, "c-2", &json!({"type": "sha1:email", "value": "v1"})).await;
}

async fn a_deleted_token_id_can_be_created_again(app: TestApp) {
    let admin = setup(&app).await;
    let first = app.create_token(&admin.token, "c-1", &json!({"type": "t", "value": "v1", "token_id": "t-1"})).await;
    let path = format!("{}/t-1", tokens_path(ACCOUNT, "c-1"));
    let deleted = app.delete(&path, &admin.token).await.expect_json(200);
    let second = app.create_token(&admin.token, "c-1", &json!({"type": "t", "value": "v1", "token_id": "t-1"})).await;
    assert_ne!(second["id"], first["id"]);
    assert_eq!(second.get("deleted_at"), None);

    let list = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([deleted, second]));
    let list =
        app.get(&format!("{}?include_deleted=false", tokens_path(ACCOUNT, "c-1")), &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([second]));

    // Deleting t-1 now deletes the live one.
    let again = app.delete(&path, &admin.token).await.expect_json(200);
    assert_eq!(again["id"], second["id"]);
    assert!(again["deleted_at"].is_string());
    // And once all are deleted, a retry returns the latest deletion unchanged.
    let retry = app.delete(&path, &admin.token).await.expect_json(200);
    assert_json_eq(&retry, &again);
}

async fn delete_unknown_token_is_404(app: TestApp) {
    let admin = setup(&app).await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    app.create_token(&admin.token, "c-2", &json!({"type": "t", "value": "v", "token_id": "t-2"})).await;
    for tid in ["t-1", "t-2"] {
        let response = app.delete(&format!("{}/{tid}", tokens_path(ACCOUNT, "c-1")), &admin.token).await;
        assert_eq!(response.status.as_u16(), 404, "{tid}: {}", response.text);
        assert_error(&response, 404, "token not found", json!([]));
    }
    // c-2's token is untouched.
    let list = app.get(&tokens_path(ACCOUNT, "c-2"), &admin.token).await.expect_json(200);
    assert_eq!(list[0].get("deleted_at"), None);
}

async fn delete_token_events_clears_events_in_the_same_request(app: TestApp) {
    let admin = setup(&app).await;
    let token = json!({"type": "sha1:email", "value": "v1"});
    let other = json!({"type": "sha1:email", "value": "v2"});
    for t in [&token, &other] {
        app.token_detail(&admin.token, &json!({"token": t, "event": {"event": "seen in store", "status": "OPT_OUT"}}))
            .await;
    }

    // Without the flag, events stay.
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    app.create_token(&admin.token, "c-2", &other).await;
    let detail = app.token_detail(&admin.token, &json!({"token": other})).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");
    assert_eq!(detail["status"], json!("OPT_OUT"));

    // With it, the events of that type+value are gone, and only those.
    let response =
        app.post_json(&format!("{}?delete_token_events=true", tokens_path(ACCOUNT, "c-1")), &admin.token, &token).await;
    let created = response.expect_json(201);
    let detail = app.token_detail(&admin.token, &json!({"token": token})).await;
    assert_eq!(detail["events"], json!([]), "{detail}");
    assert_eq!(detail["status"], json!("UNKNOWN"));
    assert_json_eq(&detail["token"], &created);
    let detail = app.token_detail(&admin.token, &json!({"token": other})).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");

    // delete_token_events=false is the default behaviour.
    let third = json!({"type": "sha1:email", "value": "v3"});
    app.token_detail(&admin.token, &json!({"token": third, "event": {"event": "e"}})).await;
    let response = app
        .post_json(&format!("{}?delete_token_events=false", tokens_path(ACCOUNT, "c-1")), &admin.token, &third)
        .await;
    response.expect_json(201);
    let detail = app.token_detail(&admin.token, &json!({"token": third})).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 1, "{detail}");

    // A refused create leaves the events in place.
    let response =
        app.post_json(&format!("{}?delete_token_events=true", tokens_path(ACCOUNT, "c-1")), &admin.token, &other).await;
    assert_json_eq(&response.expect_json(400), &duplicate_token());
    let detail = app.token_detail(&admin.token, &json!({"token": other})).await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 1, "a refused create cleared events: {detail}");
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().expect("a bare array").iter().map(|t| t["id"].as_str().unwrap().to_owned()).collect()
}

async fn list_filters_and_defaults_to_include_deleted(app: TestApp) {
    let admin = setup(&app).await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    let a = app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "a", "token_id": "a"})).await;
    let b = app.create_token(&admin.token, "c-1", &json!({"type": "sha1:phone", "value": "b", "token_id": "b"})).await;
    let c = app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "c", "token_id": "c"})).await;
    app.create_token(&admin.token, "c-2", &json!({"type": "sha1:email", "value": "d", "token_id": "d"})).await;
    let b = {
        let deleted = app.delete(&format!("{}/b", tokens_path(ACCOUNT, "c-1")), &admin.token).await.expect_json(200);
        assert_eq!(deleted["id"], b["id"]);
        deleted
    };
    let a_deleted = app.delete(&format!("{}/a", tokens_path(ACCOUNT, "c-1")), &admin.token).await.expect_json(200);
    let path = tokens_path(ACCOUNT, "c-1");
    let read = app.token_for(ACCOUNT, &["read:customers"]).await;

    let cases = [
        ("", json!([a_deleted, b, c])),
        ("?include_deleted=true", json!([a_deleted, b, c])),
        ("?include_deleted=false", json!([c])),
        ("?type=sha1:email", json!([a_deleted, c])),
        ("?type=sha1%3Aemail&include_deleted=false", json!([c])),
        ("?type=sha1:phone&include_deleted=false", json!([])),
        ("?type=unknown", json!([])),
    ];
    for (query, expected) in cases {
        let response = app.get(&format!("{path}{query}"), &read).await;
        let list = response.expect_json(200);
        response.assert_last_page();
        assert_eq!(response.header("total-count"), None);
        assert_json_eq(&list, &expected);
    }
    assert_eq!(a_deleted["id"], a["id"]);

    let response = app.get(&tokens_path(ACCOUNT, "nobody"), &read).await;
    assert_error(&response, 404, "customer not found", json!([]));
}

async fn list_validates_its_query(app: TestApp) {
    let admin = setup(&app).await;
    let path = tokens_path(ACCOUNT, "c-1");
    let limit = "must be an integer between 1 and 100";
    for (query, fields) in [
        ("limit=0", vec![("limit", limit)]),
        ("limit=101", vec![("limit", limit)]),
        ("limit=-1", vec![("limit", limit)]),
        ("limit=1.5", vec![("limit", limit)]),
        ("limit=ten", vec![("limit", limit)]),
        ("limit=", vec![("limit", limit)]),
        ("include_deleted=yes", vec![("include_deleted", "must be true or false")]),
        ("include_deleted=1", vec![("include_deleted", "must be true or false")]),
        ("total=yes", vec![("total", "must be true or false")]),
        ("limit=0&total=yes", vec![("limit", limit), ("total", "must be true or false")]),
    ] {
        let response = app.get(&format!("{path}?{query}"), &admin.token).await;
        assert_eq!(response.status.as_u16(), 400, "?{query}: {}", response.text);
        assert_validation(&response, &fields);
    }
    for limit in ["1", "100"] {
        app.get(&format!("{path}?limit={limit}"), &admin.token).await.expect_json(200);
    }

    // starting_after must name an item of this list.
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    let foreign = app.create_token(&admin.token, "c-2", &json!({"type": "t", "value": "v"})).await;
    for cursor in ["00000000-0000-4000-8000-000000000000", "nonsense", foreign["id"].as_str().unwrap()] {
        let response = app.get(&format!("{path}?starting_after={cursor}"), &admin.token).await;
        assert_eq!(response.status.as_u16(), 400, "starting_after={cursor}: {}", response.text);
        assert_error(
            &response,
            400,
            "starting_after: does not name an item of this list",
            json!([{"field": "starting_after", "message": "does not name an item of this list"}]),
        );
    }
}

async fn list_pages_with_paging_token_and_link(app: TestApp) {
    let admin = setup(&app).await;
    let mut created = vec![];
    for i in 0..12 {
        created.push(
            app.create_token(
                &admin.token,
                "c-1",
                &json!({"type": "t", "value": format!("v{i}"), "token_id": format!("t{i}")}),
            )
            .await,
        );
    }
    let path = tokens_path(ACCOUNT, "c-1");

    // Default limit 10.
    let response = app.get(&path, &admin.token).await;
    let list = response.expect_json(200);
    assert_json_eq(&list, &Value::Array(created[..10].to_vec()));
    let last = created[9]["id"].as_str().unwrap();
    assert_eq!(response.header("paging-token"), Some(last));
    assert_eq!(response.header("link"), Some(format!("<{path}?starting_after={last}>; rel=\"next\"").as_str()));
    let response = app.get(&format!("{path}?starting_after={last}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &Value::Array(created[10..].to_vec()));
    response.assert_last_page();

    // Walking the links with limit=5: 5 + 5 + 2, each token once, in creation order.
    let pages = app.walk(&format!("{path}?limit=5"), &admin.token).await;
    let sizes: Vec<usize> = pages.iter().map(|p| p.json().as_array().unwrap().len()).collect();
    assert_eq!(sizes, [5, 5, 2]);
    let walked: Vec<Value> = pages.iter().flat_map(|p| p.json().as_array().unwrap().clone()).collect();
    assert_json_eq(&Value::Array(walked), &Value::Array(created.clone()));
    for page in &pages[..2] {
        let list = page.json();
        let last = list.as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
        assert_eq!(page.header("paging-token"), Some(last.as_str()));
        assert_eq!(page.header("link"), Some(format!("<{path}?limit=5&starting_after={last}>; rel=\"next\"").as_str()));
    }

    // An exact multiple: the page that ends the list has no paging headers.
    let response = app.get(&format!("{path}?limit=12"), &admin.token).await;
    assert_eq!(response.expect_json(200).as_array().unwrap().len(), 12);
    response.assert_last_page();
    let response =
        app.get(&format!("{path}?limit=6&starting_after={}", created[5]["id"].as_str().unwrap()), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &Value::Array(created[6..].to_vec()));
    response.assert_last_page();
    // Starting after the last item: an empty page.
    let response =
        app.get(&format!("{path}?starting_after={}", created[11]["id"].as_str().unwrap()), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    response.assert_last_page();
}

async fn link_keeps_filters_and_replaces_starting_after_in_place(app: TestApp) {
    let admin = setup(&app).await;
    let mut emails = vec![];
    for i in 0..7 {
        let kind = if i % 2 == 0 { "sha1:email" } else { "sha1:phone" };
        let token = app.create_token(&admin.token, "c-1", &json!({"type": kind, "value": format!("v{i}")})).await;
        if kind == "sha1:email" {
            emails.push(token);
        }
    }
    // Delete one email token: include_deleted=false must skip it across pages.
    let deleted_token_id = emails[1]["token_id"].as_str().unwrap().to_owned();
    app.delete(&format!("{}/{deleted_token_id}", tokens_path(ACCOUNT, "c-1")), &admin.token).await.expect_json(200);
    let live: Vec<Value> = emails.iter().filter(|t| t["token_id"] != json!(deleted_token_id)).cloned().collect();

    let path = tokens_path(ACCOUNT, "c-1");
    let start = format!("{path}?type=sha1%3Aemail&include_deleted=false&limit=1");
    let pages = app.walk(&start, &admin.token).await;
    let walked: Vec<Value> = pages.iter().flat_map(|p| p.json().as_array().unwrap().clone()).collect();
    assert_json_eq(&Value::Array(walked), &Value::Array(live.clone()));
    let first_id = live[0]["id"].as_str().unwrap();
    assert_eq!(pages[0].header("link"), Some(format!("<{start}&starting_after={first_id}>; rel=\"next\"").as_str()));

    // A request that already has starting_after: replaced where it stands.
    let request = format!("{path}?starting_after={first_id}&type=sha1%3Aemail&limit=1&include_deleted=false");
    let response = app.get(&request, &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([live[1]]));
    let second_id = live[1]["id"].as_str().unwrap();
    assert_eq!(response.header("paging-token"), Some(second_id));
    assert_eq!(
        response.header("link"),
        Some(
            format!(
                "<{path}?starting_after={second_id}&type=sha1%3Aemail&limit=1&include_deleted=false>; rel=\"next\""
            )
            .as_str()
        )
    );
}

async fn total_count_counts_all_matching_tokens(app: TestApp) {
    let admin = setup(&app).await;
    for i in 0..5 {
        let kind = if i < 3 { "a" } else { "b" };
        app.create_token(
            &admin.token,
            "c-1",
            &json!({"type": kind, "value": format!("v{i}"), "token_id": format!("t{i}")}),
        )
        .await;
    }
    app.delete(&format!("{}/t0", tokens_path(ACCOUNT, "c-1")), &admin.token).await.expect_json(200);
    let path = tokens_path(ACCOUNT, "c-1");
    for (query, total, page) in [
        ("total=true", "5", 5),
        ("total=true&limit=2", "5", 2),
        ("total=true&include_deleted=false", "4", 4),
        ("total=true&type=a&limit=1", "3", 1),
        ("total=true&type=a&include_deleted=false", "2", 2),
        ("total=true&type=c", "0", 0),
    ] {
        let response = app.get(&format!("{path}?{query}"), &admin.token).await;
        let list = response.expect_json(200);
        assert_eq!(response.header("total-count"), Some(total), "?{query}");
        assert_eq!(list.as_array().unwrap().len(), page, "?{query}");
    }
    let response = app.get(&format!("{path}?total=false"), &admin.token).await;
    response.expect_json(200);
    assert_eq!(response.header("total-count"), None);
    // The total stays the count of the whole filtered list on later pages.
    let first = app.get(&format!("{path}?total=true&limit=2"), &admin.token).await;
    let next = parse_next_link(first.header("link").unwrap());
    assert_eq!(next, format!("{path}?total=true&limit=2&starting_after={}", first.header("paging-token").unwrap()));
    let response = app.get(&next, &admin.token).await;
    assert_eq!(response.header("total-count"), Some("5"));
    let _ = ids(&response.json());
}
