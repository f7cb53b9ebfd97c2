//! `/v1/accounts/{aid}/customers/users[/{customer_id}]`: create, get, list, delete.

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    create_returns_200_with_the_stored_body,
    fields_keep_the_order_they_were_sent_in,
    customer_id_is_generated_when_absent,
    a_sent_type_keeps_its_place,
    create_validates_every_field,
    duplicates_of_live_customers_are_400_naming_the_field,
    get_returns_the_customer_or_404,
    list_is_oldest_first_and_filters,
    list_finds_the_owner_of_a_token,
    list_pages_with_link_headers,
    delete_keeps_only_the_audit_fields,
    delete_tokens_removes_the_customers_tokens,
);

/// Checks the server-set fields of a created customer and blanks them.
fn normalize_customer(body: &mut Value, client_id: &str) -> (String, String) {
    let id = take_uuid(body, "id");
    let created = take_ts(body, "created_at");
    let updated = take_ts(body, "updated_at");
    assert_eq!(created, updated, "a new customer's updated_at is its created_at");
    assert_eq!(body["created_by"], json!(client_id));
    (id, created)
}

async fn create_returns_200_with_the_stored_body(app: TestApp) {
    let admin = app.admin().await;
    // (customer_id last: `fields_keep_the_order_they_were_sent_in` covers it anywhere else)
    let sent = json!({
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone_number": "+4799999999",
        "metadata": {"z": 1, "a": [true, null, {"nested": "x"}]},
        "marketing_consent": {"sms": {"consentGiven": false}},
        "status": "ACTIVE",
        "customer_id": "c-1"
    });
    let response = app.post_json(&customers_path(ACCOUNT), &admin.token, &sent).await;
    let mut body = response.expect_json(200);
    let (id, _) = normalize_customer(&mut body, &admin.client_id);
    let expected = json!({
        "id": "<id>",
        "customer_id": "c-1",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.com",
        "phone_number": "+4799999999",
        "metadata": {"z": 1, "a": [true, null, {"nested": "x"}]},
        "marketing_consent": {"sms": {"consentGiven": false}},
        "status": "ACTIVE",
        "type": "customer",
        "created_at": "<ts>",
        "created_by": admin.client_id,
        "updated_at": "<ts>"
    });
    assert_json_eq(&body, &expected);

    // Read-only fields a client sends are not taken over.
    let response = app
        .post_json(
            &customers_path(ACCOUNT),
            &admin.token,
            &json!({"customer_id": "c-2", "id": id, "created_by": "forged", "created_at": "2000-01-01T00:00:00Z"}),
        )
        .await;
    let mut body = response.expect_json(200);
    let (other_id, _) = normalize_customer(&mut body, &admin.client_id);
    assert_ne!(other_id, id);
    assert_json_eq(
        &body,
        &json!({"id": "<id>", "customer_id": "c-2", "type": "customer", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>"}),
    );
}

/// "Other fields kept verbatim in the order sent": also when `customer_id` and read-only fields
/// come first.
async fn fields_keep_the_order_they_were_sent_in(app: TestApp) {
    let admin = app.admin().await;
    let sent = json!({
        "customer_id": "c-1",
        "id": "forged",
        "status": "ACTIVE",
        "first_name": "Ada",
        "created_by": "forged",
        "last_name": "Lovelace",
        "metadata": {"k": 1},
        "email": "ada@example.com"
    });
    let created = app.create_customer(&admin.token, &sent).await;
    let mut body = created.clone();
    normalize_customer(&mut body, &admin.client_id);
    assert_json_eq(
        &body,
        &json!({
            "id": "<id>",
            "customer_id": "c-1",
            "status": "ACTIVE",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "metadata": {"k": 1},
            "email": "ada@example.com",
            "type": "customer",
            "created_at": "<ts>",
            "created_by": admin.client_id,
            "updated_at": "<ts>"
        }),
    );
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &created);
}

async fn customer_id_is_generated_when_absent(app: TestApp) {
    let admin = app.admin().await;
    let mut body = app.create_customer(&admin.token, &json!({"first_name": "Grace"})).await;
    normalize_customer(&mut body, &admin.client_id);
    let customer_id = take_uuid(&mut body, "customer_id");
    assert_json_eq(
        &body,
        &json!({"id": "<id>", "customer_id": "<id>", "first_name": "Grace", "type": "customer", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>"}),
    );
    let response = app.get(&customer_path(ACCOUNT, &customer_id), &admin.token).await;
    assert_eq!(response.expect_json(200)["customer_id"], json!(customer_id));

    // An empty object is a valid customer too.
    let mut body = app.create_customer(&admin.token, &json!({})).await;
    normalize_customer(&mut body, &admin.client_id);
    take_uuid(&mut body, "customer_id");
    assert_json_eq(
        &body,
        &json!({"id": "<id>", "customer_id": "<id>", "type": "customer", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>"}),
    );
}

async fn a_sent_type_keeps_its_place(app: TestApp) {
    let admin = app.admin().await;
    for kind in ["customer", "company", "contact", "employee", "other"] {
        let sent = json!({"type": kind, "customer_id": format!("c-{kind}"), "first_name": "X"});
        let mut body = app.create_customer(&admin.token, &sent).await;
        normalize_customer(&mut body, &admin.client_id);
        assert_json_eq(
            &body,
            &json!({
                "id": "<id>", "customer_id": format!("c-{kind}"), "type": kind, "first_name": "X",
                "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>"
            }),
        );
    }
}

async fn create_validates_every_field(app: TestApp) {
    let admin = app.admin().await;
    let path = customers_path(ACCOUNT);
    let type_message = "must be one of customer, company, contact, employee, other";
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({"customer_id": ""}), vec![("customer_id", "length must be between 1 and 255")]),
        (json!({"customer_id": "x".repeat(256)}), vec![("customer_id", "length must be between 1 and 255")]),
        (json!({"customer_id": " c-1"}), vec![("customer_id", "must not have leading or trailing spaces")]),
        (json!({"customer_id": "c-1 "}), vec![("customer_id", "must not have leading or trailing spaces")]),
        (json!({"customer_id": 42}), vec![("customer_id", "must be a string")]),
        (json!({"type": "robot"}), vec![("type", type_message)]),
        (json!({"type": "any"}), vec![("type", type_message)]),
        (json!({"email": "not-an-address"}), vec![("email", "must be an e-mail address")]),
        (json!({"phone_number": "1"}), vec![("phone_number", "must match ^\\+?[1-9]\\d{1,14}$")]),
        (json!({"phone_number": "+1234567890123456"}), vec![("phone_number", "must match ^\\+?[1-9]\\d{1,14}$")]),
        (json!({"phone_number": "+0471234567"}), vec![("phone_number", "must match ^\\+?[1-9]\\d{1,14}$")]),
        (json!({"phone_number": "+47 99999999"}), vec![("phone_number", "must match ^\\+?[1-9]\\d{1,14}$")]),
        (json!({"metadata": 3}), vec![("metadata", "must be an object")]),
        (json!({"metadata": "x"}), vec![("metadata", "must be an object")]),
        (
            json!({"customer_id": " c", "type": "robot", "phone_number": "x12", "metadata": []}),
            vec![
                ("customer_id", "must not have leading or trailing spaces"),
                ("type", type_message),
                ("phone_number", "must match ^\\+?[1-9]\\d{1,14}$"),
                ("metadata", "must be an object"),
            ],
        ),
    ];
    for (body, fields) in cases {
        let response = app.post_json(&path, &admin.token, &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        assert_validation(&response, &fields);
    }
    // 255 characters is fine.
    let long = "x".repeat(255);
    app.create_customer(&admin.token, &json!({"customer_id": long})).await;

    // A body that is not an object.
    for body in [json!([]), json!("c-1"), json!(null), json!(3)] {
        let response = app.post_json(&path, &admin.token, &body).await;
        assert_error(&response, 400, "the request body must be a JSON object", json!([]));
    }
    // Nothing was stored by the refused requests.
    let response = app.get(&format!("{path}?limit=100"), &admin.token).await;
    let list = response.expect_json(200);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

/// aid_customers_post, 400: "Bad request - missing required fields or duplicate field detected";
/// the description: "`customer_id`, `email` and `phone_number` must be unique if specified".
/// Dintero documents no 409 here: a duplicate is 400, with a code and `errors` naming the field.
async fn duplicates_of_live_customers_are_400_naming_the_field(app: TestApp) {
    let admin = app.admin().await;
    let first = app
        .create_customer(
            &admin.token,
            &json!({"customer_id": "c-1", "email": "Ada@Example.com", "phone_number": "+4799999999"}),
        )
        .await;
    let path = customers_path(ACCOUNT);
    let email = "a customer with this email already exists";
    let phone = "a customer with this phone_number already exists";
    for (body, code, field, message) in [
        (
            json!({"customer_id": "c-1"}),
            "DUPLICATE_CUSTOMER_ID",
            "customer_id",
            "a customer with customer_id 'c-1' already exists",
        ),
        (json!({"customer_id": "c-2", "email": "Ada@Example.com"}), "DUPLICATE_EMAIL", "email", email),
        (json!({"customer_id": "c-3", "email": "ada@example.COM"}), "DUPLICATE_EMAIL", "email", email),
        (json!({"customer_id": "c-4", "phone_number": "+4799999999"}), "DUPLICATE_PHONE_NUMBER", "phone_number", phone),
    ] {
        let response = app.post_json(&path, &admin.token, &body).await;
        assert_json_eq(
            &response.expect_json(400),
            &json!({"error": {"code": code, "message": message, "errors": [{"field": field, "message": "is already in use"}]}}),
        );
    }
    // E-mails are unique per customer type.
    app.create_customer(&admin.token, &json!({"customer_id": "c-5", "email": "ada@example.com", "type": "company"}))
        .await;
    // The first customer is unchanged.
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &first);

    // Another account may use the same values.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:customers"]).await;
    let response = app
        .post_json(
            &customers_path(OTHER_ACCOUNT),
            &other,
            &json!({"customer_id": "c-1", "email": "Ada@Example.com", "phone_number": "+4799999999"}),
        )
        .await;
    response.expect_json(200);

    // Once deleted, the values are free again (a new customer, a new id).
    app.delete(&customer_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    let again = app
        .create_customer(
            &admin.token,
            &json!({"customer_id": "c-1", "email": "ada@example.com", "phone_number": "+4799999999"}),
        )
        .await;
    assert_ne!(again["id"], first["id"]);
}

async fn get_returns_the_customer_or_404(app: TestApp) {
    let admin = app.admin().await;
    let created =
        app.create_customer(&admin.token, &json!({"customer_id": "c-1", "first_name": "Ada", "type": "company"})).await;
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &created);
    // Read scope is enough.
    let read = app.token_for(ACCOUNT, &["read:customers"]).await;
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &read).await;
    assert_json_eq(&response.expect_json(200), &created);

    for missing in ["c-2", "C-1"] {
        let response = app.get(&customer_path(ACCOUNT, missing), &admin.token).await;
        assert_eq!(response.status.as_u16(), 404, "{missing}: {}", response.text);
        assert_error(&response, 404, "customer not found", json!([]));
    }
    // Ids are URL-decoded.
    let created = app.create_customer(&admin.token, &json!({"customer_id": "a b/ø"})).await;
    let response = app.get(&customer_path(ACCOUNT, "a%20b%2F%C3%B8"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &created);
}

fn customer_ids(list: &Value) -> Vec<&str> {
    list.as_array().expect("a bare array").iter().map(|c| c["customer_id"].as_str().unwrap()).collect()
}

async fn list_is_oldest_first_and_filters(app: TestApp) {
    let admin = app.admin().await;
    let a = app
        .create_customer(
            &admin.token,
            &json!({"customer_id": "a", "email": "ada@example.com", "phone_number": "+4791111111"}),
        )
        .await;
    let b = app
        .create_customer(
            &admin.token,
            &json!({"customer_id": "b", "email": "adam@example.com", "phone_number": "+4692222222", "type": "company"}),
        )
        .await;
    let c = app
        .create_customer(&admin.token, &json!({"customer_id": "c", "email": "bob@example.com", "type": "contact"}))
        .await;
    let d = app
        .create_customer(&admin.token, &json!({"customer_id": "d", "phone_number": "+4793333333", "type": "employee"}))
        .await;
    let path = customers_path(ACCOUNT);

    // Default: every type but contact, oldest first, whole customers.
    let response = app.get(&path, &admin.token).await;
    assert_eq!(response.header("total-count"), None);
    response.assert_last_page();
    assert_json_eq(&response.expect_json(200), &json!([a, b, d]));

    let response = app.get(&format!("{path}?type=any"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([a, b, c, d]));

    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("type=any", vec!["a", "b", "c", "d"]),
        ("type=contact", vec!["c"]),
        ("type=company", vec!["b"]),
        ("email=ada", vec!["a", "b"]),
        ("email=ADAM", vec!["b"]),
        ("email=bob&type=any", vec!["c"]),
        ("email=zed", vec![]),
        ("phone_number=%2B479", vec!["a", "d"]),
        ("phone_number=%2B46", vec!["b"]),
        ("phone_number=%2B479&email=ada", vec!["a"]),
        ("limit=2", vec!["a", "b"]),
        ("type=any&limit=100", vec!["a", "b", "c", "d"]),
    ];
    for (query, expected) in cases {
        let response = app.get(&format!("{path}?{query}"), &admin.token).await;
        let list = response.expect_json(200);
        assert_eq!(customer_ids(&list), expected, "?{query}");
    }

    let response = app.get(&format!("{path}?total=true&type=any&limit=1"), &admin.token).await;
    assert_eq!(response.header("total-count"), Some("4"));
    assert_eq!(customer_ids(&response.expect_json(200)), ["a"]);

    // Deleted customers appear, stripped, only with include_deleted=true.
    let deleted = app.delete(&customer_path(ACCOUNT, "a"), &admin.token).await.expect_json(200);
    let response = app.get(&path, &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([b, d]));
    let response = app.get(&format!("{path}?include_deleted=true"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([deleted, b, d]));

    for (query, field, message) in [
        ("limit=0", "limit", "must be an integer between 1 and 100"),
        ("limit=101", "limit", "must be an integer between 1 and 100"),
        ("limit=x", "limit", "must be an integer between 1 and 100"),
        ("include_deleted=yes", "include_deleted", "must be true or false"),
        ("total=1", "total", "must be true or false"),
    ] {
        let response = app.get(&format!("{path}?{query}"), &admin.token).await;
        assert_validation(&response, &[(field, message)]);
    }
    let response = app.get(&format!("{path}?starting_after=00000000-0000-4000-8000-000000000000"), &admin.token).await;
    assert_error(
        &response,
        400,
        "starting_after: does not name an item of this list",
        json!([{"field": "starting_after", "message": "does not name an item of this list"}]),
    );
}

async fn list_finds_the_owner_of_a_token(app: TestApp) {
    let admin = app.admin().await;
    let owner = app.create_customer(&admin.token, &json!({"customer_id": "owner"})).await;
    app.create_customer(&admin.token, &json!({"customer_id": "bystander"})).await;
    app.create_token(&admin.token, "owner", &json!({"type": "sha1:email", "value": "abc"})).await;
    app.create_token(&admin.token, "bystander", &json!({"type": "sha1:email", "value": "abcd"})).await;
    let path = customers_path(ACCOUNT);

    let response = app.get(&format!("{path}?token_type=sha1:email&token_value=abc"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([owner]));
    let response = app.get(&format!("{path}?token_type=sha1:phone&token_value=abc"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    let response = app.get(&format!("{path}?token_type=sha1:email&token_value=ab"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
}

async fn list_pages_with_link_headers(app: TestApp) {
    let admin = app.admin().await;
    let mut created = vec![];
    for i in 0..5 {
        created.push(app.create_customer(&admin.token, &json!({"customer_id": format!("c-{i}")})).await);
    }
    let path = customers_path(ACCOUNT);
    let pages = app.walk(&format!("{path}?limit=2"), &admin.token).await;
    assert_eq!(pages.len(), 3);
    let mut seen = vec![];
    for (index, page) in pages.iter().enumerate() {
        let items = page.json();
        if let Some(token) = page.header("paging-token") {
            let last = items.as_array().unwrap().last().unwrap();
            assert_eq!(token, last["id"].as_str().unwrap());
            assert_eq!(page.header("link").unwrap(), format!("<{path}?limit=2&starting_after={token}>; rel=\"next\""));
        } else {
            assert_eq!(index, 2);
        }
        seen.extend(items.as_array().unwrap().iter().cloned());
    }
    assert_json_eq(&Value::Array(seen), &Value::Array(created));
}

async fn delete_keeps_only_the_audit_fields(app: TestApp) {
    let admin = app.admin().await;
    let created = app
        .create_customer(
            &admin.token,
            &json!({"customer_id": "c-1", "first_name": "Ada", "email": "ada@example.com", "metadata": {"k": 1}}),
        )
        .await;
    let deleter = app.auth(ACCOUNT, &["write:customers"]).await;
    let response = app.delete(&customer_path(ACCOUNT, "c-1"), &deleter.token).await;
    let mut body = response.expect_json(200);
    // aid_customers_cid_delete answers a CustomerResponse, which requires `customer_id` and
    // `type` (S-CUST: `{type (required, enum …, default customer)} & {customer_id (required)}`):
    // a deleted customer keeps its `type`, and only it, besides the ids and audit fields.
    let updated = take_ts(&mut body, "updated_at");
    let deleted_at = take_ts(&mut body, "deleted_at");
    assert!(assert_timestamp(&updated) >= assert_timestamp(created["created_at"].as_str().unwrap()));
    assert!(assert_timestamp(&deleted_at) >= assert_timestamp(created["created_at"].as_str().unwrap()));
    assert_json_eq(
        &body,
        &json!({
            "id": created["id"],
            "customer_id": "c-1",
            "type": "customer",
            "created_at": created["created_at"],
            "created_by": admin.client_id,
            "updated_at": "<ts>",
            "deleted_at": "<ts>",
            "deleted_by": deleter.client_id,
        }),
    );

    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));
    let response = app.delete(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));
    let response = app.delete(&customer_path(ACCOUNT, "never"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));

    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    let response = app.delete(&format!("{}?delete_tokens=maybe", customer_path(ACCOUNT, "c-2")), &admin.token).await;
    assert_validation(&response, &[("delete_tokens", "must be true or false")]);
    app.get(&customer_path(ACCOUNT, "c-2"), &admin.token).await.expect_json(200);
}

async fn delete_tokens_removes_the_customers_tokens(app: TestApp) {
    let admin = app.admin().await;
    for (customer, flag) in [("keeps", "false"), ("drops", "true")] {
        app.create_customer(&admin.token, &json!({"customer_id": customer})).await;
        app.create_token(&admin.token, customer, &json!({"type": "sha1:email", "value": customer, "token_id": "t-1"}))
            .await;
        let response =
            app.delete(&format!("{}?delete_tokens={flag}", customer_path(ACCOUNT, customer)), &admin.token).await;
        response.expect_json(200);
    }
    // With delete_tokens=true the token is gone: its type/value resolves to nothing and can be
    // given to another customer.
    let detail = app.token_detail(&admin.token, &json!({"token": {"type": "sha1:email", "value": "drops"}})).await;
    assert_eq!(detail.get("token"), None, "{detail}");
    assert_eq!(detail.get("customer"), None, "{detail}");
    app.create_customer(&admin.token, &json!({"customer_id": "next"})).await;
    app.create_token(&admin.token, "next", &json!({"type": "sha1:email", "value": "drops"})).await;

    // Either way the deleted customer's tokens cannot be listed any more.
    for customer in ["keeps", "drops"] {
        let response = app.get(&tokens_path(ACCOUNT, customer), &admin.token).await;
        assert_error(&response, 404, "customer not found", json!([]));
    }
}
