//! `/v1/accounts/{aid}/customers/users[/{customer_id}]`: create, get, list (every filter of
//! aid_customers_get), delete.

use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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
    list_search_matches_name_phone_customer_id_or_email,
    list_since_datetime_lists_added_or_modified_customers_by_update,
    list_tag_id_matches_no_customer,
    list_attributes_keys_and_values_match_custom_attributes,
    put_updates_only_the_fields_sent,
    put_status_drives_the_token_status,
    head_answers_200_or_404_once_settings_enable_it,
    change_customer_id_moves_the_customer_and_its_tokens,
    settings_are_stored_and_returned,
    auto_tokens_follow_the_email_and_phone_number,
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

/// aid_customers_get `search`: "lookup customer where search term match name, phone number,
/// customer_id or email" ("Search is done by prefix match"): combined with the other filters
/// (AND) and with paging.
async fn list_search_matches_name_phone_customer_id_or_email(app: TestApp) {
    let admin = app.admin().await;
    let ada = json!({"customer_id": "ada-1", "first_name": "Ada", "last_name": "Lovelace", "email": "Ada.L@example.com", "phone_number": "+4791111111"});
    let grace = json!({"customer_id": "g-2", "first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.example", "phone_number": "+4692222222"});
    let ola = json!({"customer_id": "ola-3", "first_name": "Øla", "last_name": "Adams", "type": "company"});
    let contact = json!({"customer_id": "adc-4", "first_name": "Adrian", "type": "contact"});
    for body in [&ada, &grace, &ola, &contact] {
        app.create_customer(&admin.token, body).await;
    }
    let path = customers_path(ACCOUNT);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        // customer_id prefix, as given (ids are case-sensitive)
        ("search=ada-", vec!["ada-1"]),
        ("search=g-", vec!["g-2"]),
        ("search=G-", vec![]),
        // e-mail prefix, case-insensitive
        ("search=ada.l%40", vec!["ada-1"]),
        ("search=GRACE%40NAVY", vec!["g-2"]),
        // phone number prefix (`+` encoded)
        ("search=%2B4791", vec!["ada-1"]),
        ("search=%2B46", vec!["g-2"]),
        // a name: the first name, the last name or the whole name, case-insensitive
        ("search=lovelace", vec!["ada-1"]),
        ("search=ada%20lov", vec!["ada-1"]),
        ("search=HOP", vec!["g-2"]),
        ("search=%C3%B8la", vec!["ola-3"]),
        // "ada" starts Ada's first name, customer_id and e-mail, and Øla Adams' last name; the
        // contact (Adrian, adc-4) is left out as the list leaves contacts out.
        ("search=ada", vec!["ada-1", "ola-3"]),
        ("search=ad", vec!["ada-1", "ola-3"]),
        ("search=ad&type=any", vec!["ada-1", "ola-3", "adc-4"]),
        // a prefix, not a substring
        ("search=velace", vec![]),
        ("search=example", vec![]),
        // AND with the other filters
        ("search=ada&type=company", vec!["ola-3"]),
        ("search=ada&email=ada", vec!["ada-1"]),
        ("search=ada&phone_number=%2B46", vec![]),
        // LIKE wildcards match literally
        ("search=%25", vec![]),
        ("search=_", vec![]),
    ];
    for (query, expected) in cases {
        let response = app.get(&format!("{path}?{query}"), &admin.token).await;
        assert_eq!(customer_ids(&response.expect_json(200)), expected, "?{query}");
    }
    // Paging and the count follow the filter.
    let response = app.get(&format!("{path}?search=ad&type=any&limit=2&total=true"), &admin.token).await;
    assert_eq!(response.header("total-count"), Some("3"));
    let first = response.expect_json(200);
    assert_eq!(customer_ids(&first), ["ada-1", "ola-3"]);
    let next = parse_next_link(response.header("link").expect("a next page"));
    let response = app.get(&next, &admin.token).await;
    response.assert_last_page();
    assert_eq!(customer_ids(&response.expect_json(200)), ["adc-4"]);

    // A deleted customer keeps only its customer_id to be found by.
    app.delete(&customer_path(ACCOUNT, "ada-1"), &admin.token).await.expect_json(200);
    let response = app.get(&format!("{path}?search=lovelace&include_deleted=true"), &admin.token).await;
    assert_eq!(customer_ids(&response.expect_json(200)), Vec::<&str>::new());
    let response = app.get(&format!("{path}?search=ada-&include_deleted=true"), &admin.token).await;
    assert_eq!(customer_ids(&response.expect_json(200)), ["ada-1"]);

    let response = app.get(&format!("{path}?search="), &admin.token).await;
    assert_validation(&response, &[("search", "must have at least 1 character")]);
}

/// RFC 3339 with whole seconds, as the API writes times.
fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// aid_customers_get `since_datetime`: "lookup customers that has been added or modified since
/// an ISO timestamp. NOTE: this parameter can't be combined with `starting_after` parameter.
/// Retrieve next page by updating since_datetime to the latest updated_at value found in the
/// result" (so the list is in `updated_at` order).
async fn list_since_datetime_lists_added_or_modified_customers_by_update(app: TestApp) {
    let admin = app.admin().await;
    for id in ["a", "b", "c"] {
        app.create_customer(&admin.token, &json!({"customer_id": id})).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // A whole second after a, b and c were created, at or before what follows.
    let since = rfc3339(chrono::Utc::now());
    let d = app.create_customer(&admin.token, &json!({"customer_id": "d"})).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // b is modified (deleted) after d was added: b comes after d although it is older.
    let b = app.delete(&customer_path(ACCOUNT, "b"), &admin.token).await.expect_json(200);
    let path = customers_path(ACCOUNT);
    let since_query = format!("since_datetime={}", since.replace('+', "%2B"));

    let response = app.get(&format!("{path}?{since_query}&include_deleted=true"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([d, b]));
    let response = app.get(&format!("{path}?{since_query}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([d]));
    let response =
        app.get(&format!("{path}?{since_query}&include_deleted=true&total=true&limit=1"), &admin.token).await;
    assert_eq!(response.header("total-count"), Some("2"));
    // The link pages as Dintero says (never with `starting_after`, which would be a 400): from
    // the last item's updated_at on, to the millisecond.
    assert_eq!(response.header("paging-token"), None);
    let d_updated = chrono::DateTime::parse_from_rfc3339(d["updated_at"].as_str().unwrap()).unwrap();
    let link = response.header("link").expect("a next link").to_owned();
    assert!(link.starts_with(&format!("<{path}?include_deleted=true&total=true&limit=1&since_datetime=")), "{link}");
    let next = link.trim_start_matches('<').split('>').next().unwrap().to_owned();
    assert_json_eq(&response.expect_json(200), &json!([d]));
    let followed = app.get(&next, &admin.token).await.expect_json(200);
    assert_eq!(followed[0]["customer_id"], "d", "the page begins where the last ended: {followed}");
    let since_in_link = next.split("since_datetime=").nth(1).unwrap().replace("%3A", ":");
    // d's updated_at (which the API shows in whole seconds), to the millisecond.
    let since_in_link = chrono::DateTime::parse_from_rfc3339(&since_in_link).unwrap();
    assert_eq!(since_in_link.timestamp(), d_updated.timestamp(), "d's updated_at: {link}");
    // The next page: since_datetime moved to the latest updated_at of the result.
    let latest = b["updated_at"].as_str().unwrap();
    let response = app.get(&format!("{path}?since_datetime={latest}&include_deleted=true"), &admin.token).await;
    // (times have whole seconds: d is there too when it was added in b's second)
    let expected = if d["updated_at"] == b["updated_at"] { json!([d, b]) } else { json!([b]) };
    assert_json_eq(&response.expect_json(200), &expected);
    // Before everything: every customer, still in updated_at order (a, c, d, then b).
    let response =
        app.get(&format!("{path}?since_datetime=2000-01-01T00:00:00Z&include_deleted=true"), &admin.token).await;
    assert_eq!(customer_ids(&response.expect_json(200)), ["a", "c", "d", "b"]);
    // An offset other than Z, and a future time.
    let response = app.get(&format!("{path}?since_datetime=2000-01-01T01:00:00%2B01:00"), &admin.token).await;
    assert_eq!(customer_ids(&response.expect_json(200)), ["a", "c", "d"]);
    let response = app.get(&format!("{path}?since_datetime=2999-01-01T00:00:00Z"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));

    let response = app.get(&format!("{path}?since_datetime=yesterday"), &admin.token).await;
    assert_validation(&response, &[("since_datetime", "must be an RFC 3339 date-time")]);
    let cursor = d["id"].as_str().unwrap();
    let response = app.get(&format!("{path}?{since_query}&starting_after={cursor}"), &admin.token).await;
    assert_validation(&response, &[("starting_after", "cannot be combined with since_datetime")]);
}

/// aid_customers_get `tag_id`: "lookup customers by tag id". tokenvault has no tag operations,
/// so no customer has a tag: the filter matches nobody (it is not ignored).
async fn list_tag_id_matches_no_customer(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1", "tags": ["vip"]})).await;
    let path = customers_path(ACCOUNT);
    let response = app.get(&format!("{path}?tag_id=vip&total=true"), &admin.token).await;
    assert_eq!(response.header("total-count"), Some("0"));
    assert_json_eq(&response.expect_json(200), &json!([]));
    let response = app.get(&format!("{path}?tag_id="), &admin.token).await;
    assert_validation(&response, &[("tag_id", "must have at least 1 character")]);
}

/// aid_customers_get `attributes_keys[]` ("include customers that has all the attributes") and
/// `attributes_values[]` ("Combine with `attributes_keys` to include customers with match on
/// attribute values"), in BasicUser's `attributes` ("Custom attributes").
async fn list_attributes_keys_and_values_match_custom_attributes(app: TestApp) {
    let admin = app.admin().await;
    for body in [
        json!({"customer_id": "gold", "attributes": {"tier": "gold", "vip": true, "visits": 12}}),
        json!({"customer_id": "silver", "attributes": {"tier": "silver", "stores": ["oslo", "bergen, sentrum"]}}),
        json!({"customer_id": "plain", "metadata": {"tier": "gold"}}),
        json!({"customer_id": "other", "attributes": {"Tier": "gold", "note": "a,b"}}),
    ] {
        app.create_customer(&admin.token, &body).await;
    }
    let path = customers_path(ACCOUNT);
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("attributes_keys[]=tier", vec!["gold", "silver"]),
        ("attributes_keys=tier", vec!["gold", "silver"]),
        ("attributes_keys[]=tier&attributes_keys[]=vip", vec!["gold"]),
        ("attributes_keys[]=tier&attributes_values[]=gold", vec!["gold"]),
        ("attributes_keys[]=tier&attributes_values[]=GOLD", vec![]),
        ("attributes_keys[]=vip&attributes_values[]=true", vec!["gold"]),
        ("attributes_keys[]=visits&attributes_values[]=12", vec!["gold"]),
        ("attributes_keys[]=stores&attributes_values[]=oslo", vec!["silver"]),
        // a value is taken whole, commas included
        ("attributes_keys[]=stores&attributes_values[]=bergen%2C%20sentrum", vec!["silver"]),
        ("attributes_keys[]=note&attributes_values[]=a%2Cb", vec!["other"]),
        // the n-th value goes with the n-th key; a key without a value only has to be there
        ("attributes_keys[]=tier&attributes_keys[]=vip&attributes_values[]=gold", vec!["gold"]),
        ("attributes_keys[]=tier&attributes_keys[]=vip&attributes_values[]=silver", vec![]),
        ("attributes_keys[]=missing", vec![]),
        ("attributes_keys[]=tier&search=s", vec!["silver"]),
    ];
    for (query, expected) in cases {
        let response = app.get(&format!("{path}?{query}"), &admin.token).await;
        assert_eq!(customer_ids(&response.expect_json(200)), expected, "?{query}");
    }
    let response = app.get(&format!("{path}?attributes_values[]=gold"), &admin.token).await;
    assert_validation(&response, &[("attributes_values", "each value needs an attributes_keys entry at its position")]);
    let response = app.get(&format!("{path}?attributes_keys[]="), &admin.token).await;
    assert_validation(&response, &[("attributes_keys", "must have at least 1 character")]);
    // `attributes` is an object (BasicUser: "Custom attributes").
    let response = app.post_json(&path, &admin.token, &json!({"attributes": ["tier"]})).await;
    assert_validation(&response, &[("attributes", "must be an object")]);
}

/// aid_customers_cid_put: "Update customer properties, properties not included in the body will
/// remain unchanged" (body BasicUser; CustomerData.metadata: "You can unset an individual key by
/// setting its value to null ... To clear all keys, set metadata to null").
async fn put_updates_only_the_fields_sent(app: TestApp) {
    let admin = app.admin().await;
    let created = app
        .create_customer(
            &admin.token,
            &json!({"customer_id": "c-1", "first_name": "Ada", "email": "ada@example.com", "metadata": {"a": 1, "b": 2}, "status": "ACTIVE"}),
        )
        .await;
    let writer = app.auth(ACCOUNT, &["write:customers"]).await;
    let path = customer_path(ACCOUNT, "c-1");
    let response = app
        .put_json(
            &path,
            &writer.token,
            &json!({"last_name": "Lovelace", "first_name": "Grace", "metadata": {"b": null, "c": 3}, "status": null, "customer_id": "c-1", "created_by": "forged"}),
        )
        .await;
    let mut body = response.expect_json(200);
    let updated_at = take_ts(&mut body, "updated_at");
    assert!(assert_timestamp(&updated_at) >= assert_timestamp(created["created_at"].as_str().unwrap()));
    // Changed fields keep their place, new ones follow, removed ones are gone.
    let expected = json!({
        "id": created["id"],
        "customer_id": "c-1",
        "first_name": "Grace",
        "email": "ada@example.com",
        "metadata": {"a": 1, "c": 3},
        "type": "customer",
        "last_name": "Lovelace",
        "created_at": created["created_at"],
        "created_by": admin.client_id,
        "updated_at": "<ts>",
    });
    assert_json_eq(&body, &expected);
    let mut got = app.get(&path, &admin.token).await.expect_json(200);
    take_ts(&mut got, "updated_at");
    assert_json_eq(&got, &expected);
    // The list's search follows the new name.
    let response = app.get(&format!("{}?search=lovelace", customers_path(ACCOUNT)), &admin.token).await;
    assert_eq!(customer_ids(&response.expect_json(200)), ["c-1"]);

    // An empty body changes nothing but updated_at; `metadata: null` clears it.
    let mut body = app.put_json(&path, &admin.token, &json!({})).await.expect_json(200);
    take_ts(&mut body, "updated_at");
    assert_json_eq(&body, &expected);
    let body = app.put_json(&path, &admin.token, &json!({"metadata": null, "type": "company"})).await.expect_json(200);
    assert_eq!(body.get("metadata"), None, "{body}");
    assert_eq!(body["type"], json!("company"));

    // e-mail (per type) and phone number stay unique: 400 naming the duplicate.
    app.create_customer(
        &admin.token,
        &json!({"customer_id": "c-2", "email": "bob@example.com", "phone_number": "+4799999999", "type": "company"}),
    )
    .await;
    for (change, code, field, message) in [
        (
            json!({"phone_number": "+4799999999"}),
            "DUPLICATE_PHONE_NUMBER",
            "phone_number",
            "a customer with this phone_number already exists",
        ),
        (json!({"email": "BOB@example.com"}), "DUPLICATE_EMAIL", "email", "a customer with this email already exists"),
    ] {
        let response = app.put_json(&path, &admin.token, &change).await;
        assert_json_eq(
            &response.expect_json(400),
            &json!({"error": {"code": code, "message": message, "errors": [{"field": field, "message": "is already in use"}]}}),
        );
    }
    // Its own values, and an e-mail of another type, are fine.
    app.put_json(&path, &admin.token, &json!({"email": "ADA@example.com", "type": "customer"})).await.expect_json(200);
    app.put_json(&path, &admin.token, &json!({"email": "bob@example.com"})).await.expect_json(200);

    for (change, fields) in [
        (json!({"email": "nope"}), vec![("email", "must be an e-mail address")]),
        (json!({"type": null}), vec![("type", "must be one of customer, company, contact, employee, other")]),
        (json!({"type": "any"}), vec![("type", "must be one of customer, company, contact, employee, other")]),
        (
            json!({"customer_id": "c-9"}),
            vec![(
                "customer_id",
                "cannot be changed here; use POST …/customers/users/{customer_id}/change_customer_id",
            )],
        ),
        (
            json!({"first_name": 1, "attributes": "x"}),
            vec![("first_name", "must be a string"), ("attributes", "must be an object")],
        ),
    ] {
        let response = app.put_json(&path, &admin.token, &change).await;
        assert_validation(&response, &fields);
    }
    let response = app.put_json(&path, &admin.token, &json!([])).await;
    assert_error(&response, 400, "the request body must be a JSON object", json!([]));

    let response = app.put_json(&customer_path(ACCOUNT, "nobody"), &admin.token, &json!({})).await;
    assert_error(&response, 404, "customer not found", json!([]));
    app.delete(&customer_path(ACCOUNT, "c-2"), &admin.token).await.expect_json(200);
    let response = app.put_json(&customer_path(ACCOUNT, "c-2"), &admin.token, &json!({})).await;
    assert_error(&response, 404, "customer not found", json!([]));
    // Scopes: admin:customers, write:customers (user:customers is an end-user scope tokenvault
    // does not issue).
    let read = app.token_for(ACCOUNT, &["read:customers"]).await;
    let response = app.put_json(&path, &read, &json!({})).await;
    assert_error(
        &response,
        403,
        "the access token lacks the required scope: one of admin:customers, write:customers",
        json!([]),
    );
}

/// aid_customers_cid_put `status` ("Status of the customer") and TokenDetail.status: "The status
/// will be set to `customer.status` and fallback to the status of the latest event."
async fn put_status_drives_the_token_status(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "v1", "token_id": "t-1"})).await;
    let token = json!({"token": {"type": "sha1:email", "value": "v1"}});
    let detail = app
        .token_detail(
            &admin.token,
            &json!({"token": token["token"], "event": {"event": "declined", "status": "OPT_OUT"}}),
        )
        .await;
    assert_eq!(detail["status"], json!("OPT_OUT"));

    app.put_json(&customer_path(ACCOUNT, "c-1"), &admin.token, &json!({"status": "VIP"})).await.expect_json(200);
    let detail = app.token_detail(&admin.token, &token).await;
    assert_eq!(detail["status"], json!("VIP"), "{detail}");
    assert_eq!(detail["customer"]["status"], json!("VIP"), "{detail}");

    app.put_json(&customer_path(ACCOUNT, "c-1"), &admin.token, &json!({"status": null})).await.expect_json(200);
    let detail = app.token_detail(&admin.token, &token).await;
    assert_eq!(detail["status"], json!("OPT_OUT"), "{detail}");
    assert_eq!(detail["customer"].get("status"), None, "{detail}");
}

/// aid_customers_head: "Check if there is users that match the parameters ... This endpoint must
/// be enabled from PUT /customers/settings": 200 "Customer user exist", 404 "No user match given
/// query parameters", 405 "Method not allowed by customer settings"; scopes admin:customers,
/// read:customers, public:customers.
async fn head_answers_200_or_404_once_settings_enable_it(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(
        &admin.token,
        &json!({"customer_id": "c-1", "email": "Ada@Example.com", "phone_number": "+4799999999"}),
    )
    .await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-2", "email": "bob@example.com", "type": "contact"}))
        .await;
    let path = customers_path(ACCOUNT);
    let head = |query: &str| {
        let url = format!("{path}?{query}");
        let (app, token) = (&app, admin.token.clone());
        async move { app.send(Method::HEAD, &url, Some(&token), None, &[]).await }
    };

    // Off by default: 405, not the list's 200.
    let response = head("email=ada%40example.com").await;
    assert_eq!(response.status.as_u16(), 405);
    assert_eq!(response.text, "");
    assert_eq!(response.header("content-type"), Some(JSON_UTF8));

    let enabled = json!({"users": {"head": {"enabled": true}}});
    app.put_json(&settings_path(ACCOUNT), &admin.token, &enabled).await.expect_json(200);
    for (query, status) in [
        ("email=ada%40example.com", 200),
        ("email=ADA%40EXAMPLE.COM", 200),
        ("email=ada", 200),
        ("phone_number=%2B4799999999", 200),
        ("email=ada%40example.com&phone_number=%2B4799999999", 200),
        ("email=ada%40example.com&phone_number=%2B46", 404),
        ("email=nobody%40example.com", 404),
        ("email=bob%40example.com", 404),
    ] {
        let response = head(query).await;
        assert_eq!(response.status.as_u16(), status, "?{query}");
        assert_eq!(response.text, "", "HEAD has no body");
    }
    let response = head("").await;
    assert_eq!(response.status.as_u16(), 400);
    // The list is unchanged (GET still lists).
    let response = app.get(&format!("{path}?email=nobody"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));

    for (scopes, status) in [
        (&["read:customers"][..], 200),
        (&["public:customers"][..], 200),
        (&["write:customers"][..], 403),
        (&["admin:checkout"][..], 403),
    ] {
        let token = app.token_for(ACCOUNT, scopes).await;
        let response = app.send(Method::HEAD, &format!("{path}?email=ada"), Some(&token), None, &[]).await;
        assert_eq!(response.status.as_u16(), status, "{scopes:?}");
    }
    // Disabled again.
    let disabled = json!({"users": {"head": {"enabled": false}}});
    app.put_json(&settings_path(ACCOUNT), &admin.token, &disabled).await.expect_json(200);
    assert_eq!(head("email=ada").await.status.as_u16(), 405);
}

/// aid_customers_cid_change_customer_id_post: "Update customer_id for an customer ... A new
/// metadata property `dintero_change_customer_id_{timestamp}.{hash}` will be added everytime the
/// customer_id is changed" (created_at, created_by, old, new); scopes admin:customers,
/// admin:accounts. The customer's tokens follow it.
async fn change_customer_id_moves_the_customer_and_its_tokens(app: TestApp) {
    let admin = app.admin().await;
    let created = app.create_customer(&admin.token, &json!({"customer_id": "c-1", "metadata": {"k": 1}})).await;
    let token =
        app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "v1", "token_id": "t-1"})).await;
    let change = |from: &str| format!("{}/change_customer_id", customer_path(ACCOUNT, from));

    let response = app.post_json(&change("c-1"), &admin.token, &json!({"customer_id": "c-9"})).await;
    let mut body = response.expect_json(200);
    take_ts(&mut body, "updated_at");
    let metadata = body["metadata"].as_object().unwrap().clone();
    assert_eq!(metadata.len(), 2, "{body}");
    let (key, entry) = metadata.iter().nth(1).unwrap();
    let suffix = key.strip_prefix("dintero_change_customer_id_").unwrap_or_else(|| panic!("{key}"));
    let (millis, hash) = suffix.split_once('.').unwrap();
    assert!(millis.parse::<i64>().is_ok() && hash.len() == 8, "{key}");
    let mut entry = entry.clone();
    take_ts(&mut entry, "created_at");
    assert_json_eq(&entry, &json!({"created_at": "<ts>", "created_by": admin.client_id, "old": "c-1", "new": "c-9"}));
    let changed = app.get(&customer_path(ACCOUNT, "c-9"), &admin.token).await.expect_json(200);
    assert_eq!(changed["id"], created["id"]);
    assert_eq!(changed["customer_id"], json!("c-9"));
    assert_eq!(changed["metadata"]["k"], json!(1));

    // The old id is gone; the tokens are listed under the new one and resolve to it.
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));
    let response = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));
    let response = app.get(&tokens_path(ACCOUNT, "c-9"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([token]));
    let detail = app.token_detail(&admin.token, &json!({"token": {"type": "sha1:email", "value": "v1"}})).await;
    assert_eq!(detail["customer"]["customer_id"], json!("c-9"), "{detail}");
    let response = app.delete(&format!("{}/t-1", tokens_path(ACCOUNT, "c-9")), &admin.token).await;
    assert_eq!(response.expect_json(200)["token_id"], json!("t-1"));

    // An id a live customer has (its own included) is a duplicate: 400, as on create.
    app.create_customer(&admin.token, &json!({"customer_id": "c-2"})).await;
    for taken in ["c-2", "c-9"] {
        let response = app.post_json(&change("c-9"), &admin.token, &json!({"customer_id": taken})).await;
        assert_json_eq(
            &response.expect_json(400),
            &json!({"error": {"code": "DUPLICATE_CUSTOMER_ID", "message": format!("a customer with customer_id '{taken}' already exists"), "errors": [{"field": "customer_id", "message": "is already in use"}]}}),
        );
    }
    // A deleted customer's id, and the old id, are free.
    app.delete(&customer_path(ACCOUNT, "c-2"), &admin.token).await.expect_json(200);
    let body = app.post_json(&change("c-9"), &admin.token, &json!({"customer_id": "c-2"})).await.expect_json(200);
    assert_eq!(body["metadata"].as_object().unwrap().len(), 3, "a second entry: {body}");
    app.post_json(&change("c-2"), &admin.token, &json!({"customer_id": "c-1"})).await.expect_json(200);

    for (body, fields) in [
        (json!({}), vec![("customer_id", "is required")]),
        (json!({"customer_id": null}), vec![("customer_id", "is required")]),
        (json!({"customer_id": 7}), vec![("customer_id", "must be a string")]),
        (json!({"customer_id": " c"}), vec![("customer_id", "must not have leading or trailing spaces")]),
    ] {
        let response = app.post_json(&change("c-1"), &admin.token, &body).await;
        assert_validation(&response, &fields);
    }
    let response = app.post_json(&change("nobody"), &admin.token, &json!({"customer_id": "c-5"})).await;
    assert_error(&response, 404, "customer not found", json!([]));

    let message = "the access token lacks the required scope: one of admin:customers, admin:accounts";
    for scopes in [&["write:customers"][..], &["read:customers"][..]] {
        let token = app.token_for(ACCOUNT, scopes).await;
        let response = app.post_json(&change("c-1"), &token, &json!({"customer_id": "c-5"})).await;
        assert_error(&response, 403, message, json!([]));
    }
    let accounts = app.token_for(ACCOUNT, &["admin:accounts"]).await;
    let body = app.post_json(&change("c-1"), &accounts, &json!({"customer_id": "c-5"})).await.expect_json(200);
    assert_eq!(body["customer_id"], json!("c-5"));
}

fn settings_path(account: &str) -> String {
    format!("/v1/accounts/{account}/customers/settings")
}

/// aid_customers_atributes_get / aid_customers_atributes_put (CustomersSettings): stored and
/// returned as given; read scopes admin/read/public:customers, write admin/write:customers.
async fn settings_are_stored_and_returned(app: TestApp) {
    let admin = app.admin().await;
    let path = settings_path(ACCOUNT);
    let response = app.get(&path, &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!({}));

    let settings = json!({
        "users": {"head": {"enabled": true}, "customer_id_format": "uuid", "phone_number_validation": {"allow_duplicates": false}},
        "auto_tokens": {"email": [{"type": "SHA256"}, {"type": "HMAC-SHA256", "secret": "s3cret"}], "phone_number": []},
        "tokens": {"event_expiry": [{"status": "OPT_OUT", "time_to_live": 15780000}]},
        "attributes": [{"name": "tier", "type": "string"}],
        "custom": {"kept": true}
    });
    let response = app.put_json(&path, &admin.token, &settings).await;
    assert_json_eq(&response.expect_json(200), &settings);
    for scopes in [&["admin:customers"][..], &["read:customers"][..], &["public:customers"][..]] {
        let token = app.token_for(ACCOUNT, scopes).await;
        assert_json_eq(&app.get(&path, &token).await.expect_json(200), &settings);
    }
    // A PUT replaces the whole object.
    let next = json!({"tokens": {"event_expiry": []}});
    app.put_json(&path, &admin.token, &next).await.expect_json(200);
    assert_json_eq(&app.get(&path, &admin.token).await.expect_json(200), &next);
    // Per account.
    let other = app.token_for(OTHER_ACCOUNT, &["admin:customers"]).await;
    assert_json_eq(&app.get(&settings_path(OTHER_ACCOUNT), &other).await.expect_json(200), &json!({}));

    for (body, fields) in [
        (json!({"users": {"head": {"enabled": "yes"}}}), vec![("users.head.enabled", "must be true or false")]),
        (json!({"users": []}), vec![("users", "must be an object")]),
        // `CustomersSettings.attributes` is an array of objects in Dintero's schema.
        (json!({"attributes": 5}), vec![("attributes", "must be an array of objects")]),
        (json!({"attributes": [1]}), vec![("attributes", "must be an array of objects")]),
        (
            json!({"auto_tokens": {"email": [{"type": "MD5"}, {"type": "HMAC-SHA256"}], "phone_number": {}}}),
            vec![
                ("auto_tokens.email[0].type", "must be one of SHA256, HMAC-SHA256"),
                ("auto_tokens.email[1].secret", "is required for HMAC-SHA256"),
                ("auto_tokens.phone_number", "must be an array"),
            ],
        ),
        (
            json!({"tokens": {"event_expiry": [{"status": "", "time_to_live": -1}, {"status": "X", "time_to_live": 1.5}]}}),
            vec![
                ("tokens.event_expiry[0].status", "is required (a non-empty string)"),
                ("tokens.event_expiry[0].time_to_live", "must be a whole number of seconds, 0 or more"),
                ("tokens.event_expiry[1].time_to_live", "must be a whole number of seconds, 0 or more"),
            ],
        ),
    ] {
        let response = app.put_json(&path, &admin.token, &body).await;
        assert_validation(&response, &fields);
    }
    // Refused puts changed nothing.
    assert_json_eq(&app.get(&path, &admin.token).await.expect_json(200), &next);

    let write_scopes = "the access token lacks the required scope: one of admin:customers, write:customers";
    for scopes in [&["read:customers"][..], &["public:customers"][..]] {
        let token = app.token_for(ACCOUNT, scopes).await;
        assert_error(&app.put_json(&path, &token, &json!({})).await, 403, write_scopes, json!([]));
    }
    let write = app.token_for(ACCOUNT, &["write:customers"]).await;
    let read_scopes =
        "the access token lacks the required scope: one of admin:customers, read:customers, public:customers";
    assert_error(&app.get(&path, &write).await, 403, read_scopes, json!([]));
    app.put_json(&path, &write, &json!({})).await.expect_json(200);
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn hmac_sha256_hex(key: &str, text: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// CustomersSettings `auto_tokens` ("Automatically generate tokens for these properties on the
/// customer", AutoTokenType `SHA256` / `HMAC-SHA256` with `secret`: "Use the secret to compute
/// HMAC SHA256 digest of the source value"), on create (aid_customers_post) and update
/// (aid_customers_cid_put).
async fn auto_tokens_follow_the_email_and_phone_number(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "before", "email": "early@example.com"})).await;
    let settings = json!({"auto_tokens": {
        "email": [{"type": "SHA256"}, {"type": "HMAC-SHA256", "secret": "s3cret"}],
        "phone_number": [{"type": "SHA256"}]
    }});
    app.put_json(&settings_path(ACCOUNT), &admin.token, &settings).await.expect_json(200);
    // Customers from before keep what they had.
    assert_json_eq(&app.get(&tokens_path(ACCOUNT, "before"), &admin.token).await.expect_json(200), &json!([]));

    app.create_customer(
        &admin.token,
        &json!({"customer_id": "c-1", "email": "Ada@Example.com", "phone_number": "+4799999999"}),
    )
    .await;
    let summary = |list: &Value| -> Vec<(String, String, String, bool)> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t["created_by"], json!(admin.client_id));
                (
                    t["token_id"].as_str().unwrap().to_owned(),
                    t["type"].as_str().unwrap().to_owned(),
                    t["value"].as_str().unwrap().to_owned(),
                    t.get("deleted_at").is_some(),
                )
            })
            .collect()
    };
    let ada = "ada@example.com";
    let ada_tokens = vec![
        ("auto:sha256:email".to_owned(), "sha256:email".to_owned(), sha256_hex(ada), false),
        ("auto:hmac-sha256:email".to_owned(), "hmac-sha256:email".to_owned(), hmac_sha256_hex("s3cret", ada), false),
        ("auto:sha256:phone_number".to_owned(), "sha256:phone_number".to_owned(), sha256_hex("+4799999999"), false),
    ];
    let list = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    assert_eq!(summary(&list), ada_tokens);
    // They find their customer like any token.
    let path = format!("{}?token_type=sha256:email&token_value={}", customers_path(ACCOUNT), sha256_hex(ada));
    assert_eq!(customer_ids(&app.get(&path, &admin.token).await.expect_json(200)), ["c-1"]);

    // A new e-mail replaces the e-mail tokens; the phone number's stays.
    app.put_json(&customer_path(ACCOUNT, "c-1"), &admin.token, &json!({"email": "grace@example.com"}))
        .await
        .expect_json(200);
    // A removed phone number takes its token away.
    app.put_json(&customer_path(ACCOUNT, "c-1"), &admin.token, &json!({"phone_number": null})).await.expect_json(200);
    let list = app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200);
    let grace = "grace@example.com";
    let mut expected: Vec<_> =
        ada_tokens.iter().map(|(id, t, v, _)| (id.clone(), t.clone(), v.clone(), true)).collect();
    expected.push(("auto:sha256:email".to_owned(), "sha256:email".to_owned(), sha256_hex(grace), false));
    expected.push((
        "auto:hmac-sha256:email".to_owned(),
        "hmac-sha256:email".to_owned(),
        hmac_sha256_hex("s3cret", grace),
        false,
    ));
    assert_eq!(summary(&list), expected);
    // Other changes leave the tokens alone.
    app.put_json(&customer_path(ACCOUNT, "c-1"), &admin.token, &json!({"first_name": "Grace"})).await.expect_json(200);
    assert_eq!(summary(&app.get(&tokens_path(ACCOUNT, "c-1"), &admin.token).await.expect_json(200)), expected);

    // The same e-mail on a customer of another type: its digest belongs to c-1 already, so that
    // token is left out (the customer is created all the same).
    app.create_customer(&admin.token, &json!({"customer_id": "c-2", "email": "GRACE@example.com", "type": "company"}))
        .await;
    assert_json_eq(&app.get(&tokens_path(ACCOUNT, "c-2"), &admin.token).await.expect_json(200), &json!([]));
}
