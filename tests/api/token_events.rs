//! `/v1/accounts/{aid}/customers/tokens/events`: find/add (POST), list (GET), clear (DELETE).

use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    lookup_of_an_unknown_token_is_unknown,
    recorded_events_set_the_status,
    expired_events_fall_back,
    customer_and_token_are_included_and_the_customer_status_wins,
    post_validates_the_body,
    list_returns_tokens_with_events_and_pages,
    list_since_datetime,
    delete_clears_events_and_records_a_deleted_event,
    delete_validates_the_body,
    token_detail_id_is_stable_once_added_or_recorded,
    list_deleted_since,
    settings_event_expiry_hides_events_past_their_time_to_live,
);

fn token(value: &str) -> Value {
    json!({"type": "sha1:email", "value": value})
}

/// Blanks (after checking) each event's `created_at`.
fn normalize_events(detail: &mut Value) {
    for event in detail["events"].as_array_mut().expect("events") {
        take_ts(event, "created_at");
    }
}

async fn lookup_of_an_unknown_token_is_unknown(app: TestApp) {
    let admin = app.admin().await;
    let response = app.post_json(&events_path(ACCOUNT), &admin.token, &json!({"token": token("nobody")})).await;
    let mut body = response.expect_json(200);
    take_uuid(&mut body, "id");
    assert_json_eq(&body, &json!({"id": "<id>", "status": "UNKNOWN", "events": []}));
    // A lookup records nothing.
    let list = app.get(&events_path(ACCOUNT), &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([]));
}

async fn recorded_events_set_the_status(app: TestApp) {
    let admin = app.admin().await;
    let first = app
        .token_detail(
            &admin.token,
            &json!({"token": token("v1"), "event": {"event": "customer declined signup in store", "status": "OPT_OUT", "metadata": {"store_id": "SID1234"}}}),
        )
        .await;
    let mut body = first.clone();
    let id = take_uuid(&mut body, "id");
    normalize_events(&mut body);
    assert_json_eq(
        &body,
        &json!({
            "id": "<id>",
            "status": "OPT_OUT",
            "events": [{"event": "customer declined signup in store", "status": "OPT_OUT", "metadata": {"store_id": "SID1234"}, "created_at": "<ts>"}]
        }),
    );

    // An event without a status keeps the previous status; the id stays.
    let second = app.token_detail(&admin.token, &json!({"token": token("v1"), "event": {"event": "visited"}})).await;
    assert_eq!(second["id"], json!(id));
    let mut body = second.clone();
    take_uuid(&mut body, "id");
    normalize_events(&mut body);
    assert_json_eq(
        &body,
        &json!({
            "id": "<id>",
            "status": "OPT_OUT",
            "events": [
                {"event": "customer declined signup in store", "status": "OPT_OUT", "metadata": {"store_id": "SID1234"}, "created_at": "<ts>"},
                {"event": "visited", "created_at": "<ts>"}
            ]
        }),
    );
    // The latest status wins.
    let third = app
        .token_detail(
            &admin.token,
            &json!({"token": token("v1"), "event": {"event": "signed up", "status": "PENDING"}}),
        )
        .await;
    assert_eq!(third["status"], json!("PENDING"));
    assert_eq!(third["id"], json!(id));
    // A plain lookup returns the same detail, without recording anything.
    let lookup = app.token_detail(&admin.token, &json!({"token": token("v1")})).await;
    assert_json_eq(&lookup, &third);
    // Another type with the same value is another token.
    let other = app.token_detail(&admin.token, &json!({"token": {"type": "sha1:phone", "value": "v1"}})).await;
    assert_eq!(other["status"], json!("UNKNOWN"));
    assert_ne!(other["id"], json!(id));
}

async fn expired_events_fall_back(app: TestApp) {
    let admin = app.admin().await;
    app.token_detail(&admin.token, &json!({"token": token("v1"), "event": {"event": "a", "status": "PENDING"}})).await;
    let detail = app
        .token_detail(&admin.token, &json!({"token": token("v1"), "event": {"event": "b", "status": "OPT_OUT", "expires_at": "2000-01-01T00:00:00Z"}}))
        .await;
    assert_eq!(detail["status"], json!("PENDING"), "{detail}");
    let detail = app
        .token_detail(&admin.token, &json!({"token": token("v1"), "event": {"event": "c", "status": "OPT_IN", "expires_at": "2099-01-01T00:30:00+01:00"}}))
        .await;
    let mut body = detail.clone();
    take_uuid(&mut body, "id");
    normalize_events(&mut body);
    assert_json_eq(
        &body,
        &json!({
            "id": "<id>",
            "status": "OPT_IN",
            "events": [
                {"event": "a", "status": "PENDING", "created_at": "<ts>"},
                {"event": "b", "status": "OPT_OUT", "created_at": "<ts>", "expires_at": "2000-01-01T00:00:00Z"},
                {"event": "c", "status": "OPT_IN", "created_at": "<ts>", "expires_at": "2098-12-31T23:30:00Z"}
            ]
        }),
    );
    // Only expired statuses: UNKNOWN.
    let detail = app
        .token_detail(&admin.token, &json!({"token": token("v2"), "event": {"event": "x", "status": "OPT_OUT", "expires_at": "2001-02-03T04:05:06Z"}}))
        .await;
    assert_eq!(detail["status"], json!("UNKNOWN"), "{detail}");
}

async fn customer_and_token_are_included_and_the_customer_status_wins(app: TestApp) {
    let admin = app.admin().await;
    let plain = app.create_customer(&admin.token, &json!({"customer_id": "plain", "first_name": "Ada"})).await;
    let plain_token = app.create_token(&admin.token, "plain", &token("p")).await;
    app.token_detail(&admin.token, &json!({"token": token("p"), "event": {"event": "e", "status": "OPT_OUT"}})).await;
    let mut detail = app.token_detail(&admin.token, &json!({"token": token("p")})).await;
    take_uuid(&mut detail, "id");
    normalize_events(&mut detail);
    assert_json_eq(
        &detail,
        &json!({"id": "<id>", "customer": plain, "token": plain_token, "status": "OPT_OUT", "events": [{"event": "e", "status": "OPT_OUT", "created_at": "<ts>"}]}),
    );

    let with_status = app.create_customer(&admin.token, &json!({"customer_id": "s", "status": "ACTIVE"})).await;
    let s_token =
        app.create_token(&admin.token, "s", &json!({"type": "sha1:email", "value": "s", "metadata": {"k": 1}})).await;
    let mut detail = app
        .token_detail(&admin.token, &json!({"token": token("s"), "event": {"event": "opted out", "status": "OPT_OUT"}}))
        .await;
    let id = take_uuid(&mut detail, "id");
    normalize_events(&mut detail);
    assert_json_eq(
        &detail,
        &json!({"id": "<id>", "customer": with_status, "token": s_token, "status": "ACTIVE", "events": [{"event": "opted out", "status": "OPT_OUT", "created_at": "<ts>"}]}),
    );
    // Stable id for a token that belongs to a customer.
    let again = app.token_detail(&admin.token, &json!({"token": token("s")})).await;
    assert_eq!(again["id"], json!(id));

    // A deleted token no longer resolves to its customer.
    app.delete(
        &format!("{}/{}", tokens_path(ACCOUNT, "plain"), plain_token["token_id"].as_str().unwrap()),
        &admin.token,
    )
    .await
    .expect_json(200);
    let detail = app.token_detail(&admin.token, &json!({"token": token("p")})).await;
    assert_eq!(detail.get("customer"), None, "{detail}");
    assert_eq!(detail.get("token"), None, "{detail}");
    assert_eq!(detail["status"], json!("OPT_OUT"));
}

async fn post_validates_the_body(app: TestApp) {
    let admin = app.admin().await;
    let ok = token("v");
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (json!({}), vec![("token", "must be an object with type and value")]),
        (json!({"token": "sha1:email"}), vec![("token", "must be an object with type and value")]),
        (json!({"token": {"type": "t"}}), vec![("token.value", "is required")]),
        (json!({"token": {"value": "v"}}), vec![("token.type", "is required")]),
        (
            json!({"token": {"type": "", "value": 1}}),
            vec![("token.type", "must have at least 1 character"), ("token.value", "must be a string")],
        ),
        (json!({"token": ok, "event": "x"}), vec![("event", "must be an object")]),
        (json!({"token": ok, "event": {}}), vec![("event.event", "is required")]),
        (json!({"token": ok, "event": {"event": ""}}), vec![("event.event", "must have at least 1 character")]),
        (json!({"token": ok, "event": {"event": 5}}), vec![("event.event", "must be a string")]),
        (
            json!({"token": ok, "event": {"event": "e", "status": 1}}),
            vec![("event.status", "must be a non-empty string")],
        ),
        (json!({"token": ok, "event": {"event": "e", "metadata": []}}), vec![("event.metadata", "must be an object")]),
        (
            json!({"token": ok, "event": {"event": "e", "expires_at": "soon"}}),
            vec![("event.expires_at", "must be an RFC 3339 date-time")],
        ),
        (
            json!({"token": ok, "event": {"status": 1, "expires_at": 3}}),
            vec![
                ("event.event", "is required"),
                ("event.status", "must be a non-empty string"),
                ("event.expires_at", "must be an RFC 3339 date-time"),
            ],
        ),
    ];
    for (body, fields) in cases {
        let response = app.post_json(&events_path(ACCOUNT), &admin.token, &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        assert_validation(&response, &fields);
    }
    let response = app.post_json(&events_path(ACCOUNT), &admin.token, &json!([ok])).await;
    assert_error(&response, 400, "the request body must be a JSON object", json!([]));
    // Nothing was recorded.
    let list = app.get(&events_path(ACCOUNT), &admin.token).await.expect_json(200);
    assert_json_eq(&list, &json!([]));
}

async fn list_returns_tokens_with_events_and_pages(app: TestApp) {
    let admin = app.admin().await;
    let mut details = vec![];
    for i in 0..5 {
        let status = if i % 2 == 0 { json!("OPT_OUT") } else { json!(null) };
        let mut event = json!({"event": format!("e{i}")});
        if !status.is_null() {
            event["status"] = status;
        }
        details.push(app.token_detail(&admin.token, &json!({"token": token(&format!("v{i}")), "event": event})).await);
    }
    // A second event for the first token does not reorder the list.
    let first = app
        .token_detail(&admin.token, &json!({"token": token("v0"), "event": {"event": "again", "status": "PENDING"}}))
        .await;
    details[0] = first;
    let expected: Vec<Value> =
        details.iter().map(|d| json!({"id": d["id"], "status": d["status"], "events": d["events"]})).collect();

    let read = app.token_for(ACCOUNT, &["read:customers"]).await;
    let path = events_path(ACCOUNT);
    let response = app.get(&path, &read).await;
    assert_json_eq(&response.expect_json(200), &Value::Array(expected.clone()));
    response.assert_last_page();
    assert_eq!(expected[1]["status"], json!("UNKNOWN"));

    let pages = app.walk(&format!("{path}?limit=2&total=true"), &read).await;
    assert_eq!(pages.len(), 3);
    let mut walked = vec![];
    for page in &pages {
        assert_eq!(page.header("total-count"), Some("5"));
        let list = page.json();
        if let Some(token) = page.header("paging-token") {
            let last = list.as_array().unwrap().last().unwrap()["id"].as_str().unwrap().to_owned();
            assert_eq!(token, last);
            assert_eq!(
                page.header("link").unwrap(),
                format!("<{path}?limit=2&total=true&starting_after={last}>; rel=\"next\"")
            );
        }
        walked.extend(list.as_array().unwrap().iter().cloned());
    }
    assert_json_eq(&Value::Array(walked), &Value::Array(expected));

    for (query, field, message) in [
        ("limit=0", "limit", "must be an integer between 1 and 100"),
        ("limit=abc", "limit", "must be an integer between 1 and 100"),
        ("total=maybe", "total", "must be true or false"),
    ] {
        let response = app.get(&format!("{path}?{query}"), &read).await;
        assert_validation(&response, &[(field, message)]);
    }
    let response = app.get(&format!("{path}?starting_after=00000000-0000-4000-8000-000000000000"), &read).await;
    assert_error(
        &response,
        400,
        "starting_after: does not name an item of this list",
        json!([{"field": "starting_after", "message": "does not name an item of this list"}]),
    );
    // Another account sees none of them.
    let other = app.token_for(OTHER_ACCOUNT, &["read:customers"]).await;
    let response = app.get(&events_path(OTHER_ACCOUNT), &other).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
}

async fn list_since_datetime(app: TestApp) {
    let admin = app.admin().await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(120);
    let a = app.token_detail(&admin.token, &json!({"token": token("a"), "event": {"event": "e", "status": "S"}})).await;
    let path = events_path(ACCOUNT);
    let since = before.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let response = app.get(&format!("{path}?since_datetime={since}"), &admin.token).await;
    let list = response.expect_json(200);
    assert_json_eq(&list, &json!([{"id": a["id"], "status": "S", "events": a["events"]}]));
    let response = app.get(&format!("{path}?since_datetime=2999-01-01T00:00:00Z"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    // Offsets are understood.
    let response = app.get(&format!("{path}?since_datetime=2999-01-01T00:00:00%2B01:00"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));

    let response = app.get(&format!("{path}?since_datetime=yesterday"), &admin.token).await;
    assert_eq!(response.status.as_u16(), 400, "{}", response.text);
    let body = response.expect_json(400);
    assert_eq!(body["error"]["errors"][0]["field"], json!("since_datetime"), "{body}");
    assert_eq!(body["error"]["code"], json!("BAD REQUEST"));

    let cursor = a["id"].as_str().unwrap();
    let response = app.get(&format!("{path}?since_datetime={since}&starting_after={cursor}"), &admin.token).await;
    assert_eq!(response.status.as_u16(), 400, "{}", response.text);
    let body = response.expect_json(400);
    assert_eq!(body["error"]["code"], json!("BAD REQUEST"));
    assert!(body["error"]["message"].as_str().unwrap().contains("since_datetime"), "{body}");
}

async fn delete_clears_events_and_records_a_deleted_event(app: TestApp) {
    let admin = app.admin().await;
    let path = events_path(ACCOUNT);
    for value in ["plain", "reasoned", "kept"] {
        app.token_detail(
            &admin.token,
            &json!({"token": token(value), "event": {"event": "signup", "status": "OPT_IN"}}),
        )
        .await;
    }
    let writer = app.token_for(ACCOUNT, &["write:customers"]).await;

    let response = app.delete_json(&path, &writer, &json!({"token": token("plain")})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
    assert_eq!(response.text, "");
    let detail = app.token_detail(&admin.token, &json!({"token": token("plain")})).await;
    assert_eq!(detail["events"], json!([]), "{detail}");
    assert_eq!(detail["status"], json!("UNKNOWN"));

    let response = app
        .delete_json(
            &path,
            &writer,
            &json!({"token": token("reasoned"), "event": {"event": "customer asked", "metadata": {"ticket": 7}}}),
        )
        .await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
    assert_eq!(response.text, "");
    let mut detail = app.token_detail(&admin.token, &json!({"token": token("reasoned")})).await;
    take_uuid(&mut detail, "id");
    normalize_events(&mut detail);
    assert_json_eq(
        &detail,
        &json!({"id": "<id>", "status": "DELETED", "events": [{"event": "customer asked", "status": "DELETED", "metadata": {"ticket": 7}, "created_at": "<ts>"}]}),
    );

    // Only the named token was touched; the cleared one has left the list.
    let list = app.get(&path, &admin.token).await.expect_json(200);
    let mut statuses: Vec<&str> = list.as_array().unwrap().iter().map(|e| e["status"].as_str().unwrap()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["DELETED", "OPT_IN"], "{list}");

    // Clearing a token without events is fine too.
    let response = app.delete_json(&path, &writer, &json!({"token": token("never")})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
}

async fn delete_validates_the_body(app: TestApp) {
    let admin = app.admin().await;
    let path = events_path(ACCOUNT);
    let response = app.delete(&path, &admin.token).await;
    assert_error(&response, 400, "a JSON object body is required", json!([]));
    let response = app.delete_json(&path, &admin.token, &json!({})).await;
    assert_validation(&response, &[("token", "must be an object with type and value")]);
    let response = app.delete_json(&path, &admin.token, &json!({"token": {"type": "t"}})).await;
    assert_validation(&response, &[("token.value", "is required")]);
    let response = app.delete_json(&path, &admin.token, &json!({"token": token("v"), "event": 1})).await;
    assert_validation(&response, &[("event", "must be an object")]);
}

/// aid_customers_tokens_events_post, TokenDetail.id: "Auto-generated ID identifying the token
/// type/value. The id will be random until the token type/value has been added to a customer or
/// a token event has been registered." Afterwards the same id, through events, clears and the
/// token's own deletion; GET's item `id` ("Auto-generated ID identifying the token type/value")
/// is the same id.
async fn token_detail_id_is_stable_once_added_or_recorded(app: TestApp) {
    let admin = app.admin().await;
    let path = events_path(ACCOUNT);
    let id_of = |detail: &Value| detail["id"].as_str().unwrap().to_owned();

    // Neither added nor recorded: random on every lookup.
    let first = app.token_detail(&admin.token, &json!({"token": token("free")})).await;
    let second = app.token_detail(&admin.token, &json!({"token": token("free")})).await;
    assert_ne!(id_of(&first), id_of(&second));

    // Added to a customer first: the id is fixed from then on.
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let owned = app
        .create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "owned", "token_id": "t-1"}))
        .await;
    let stable = id_of(&app.token_detail(&admin.token, &json!({"token": token("owned")})).await);
    assert_eq!(id_of(&app.token_detail(&admin.token, &json!({"token": token("owned")})).await), stable);
    let recorded =
        app.token_detail(&admin.token, &json!({"token": token("owned"), "event": {"event": "e", "status": "S"}})).await;
    assert_eq!(id_of(&recorded), stable, "the first event changed the id");
    let list = app.get(&path, &admin.token).await.expect_json(200);
    assert_eq!(list[0]["id"], json!(stable), "{list}");
    let response = app.delete_json(&path, &admin.token, &json!({"token": token("owned")})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
    assert_eq!(id_of(&app.token_detail(&admin.token, &json!({"token": token("owned")})).await), stable, "clear");
    let response = app.delete(&format!("{}/t-1", tokens_path(ACCOUNT, "c-1")), &admin.token).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text);
    let after = app.token_detail(&admin.token, &json!({"token": token("owned"), "event": {"event": "again"}})).await;
    assert_eq!(id_of(&after), stable, "after the token's deletion");
    assert_eq!(owned["value"], json!("owned"));

    // Recorded first: the id of the first event stays, also after a clear without an event.
    let recorded =
        id_of(&app.token_detail(&admin.token, &json!({"token": token("seen"), "event": {"event": "e"}})).await);
    let response = app.delete_json(&path, &admin.token, &json!({"token": token("seen")})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
    assert_eq!(id_of(&app.token_detail(&admin.token, &json!({"token": token("seen")})).await), recorded);
    app.create_token(&admin.token, "c-1", &json!({"type": "sha1:email", "value": "seen"})).await;
    assert_eq!(id_of(&app.token_detail(&admin.token, &json!({"token": token("seen")})).await), recorded);
    let again = app.token_detail(&admin.token, &json!({"token": token("seen"), "event": {"event": "e2"}})).await;
    assert_eq!(id_of(&again), recorded);
}

/// aid_customers_tokens_events_get, query `deleted_since`: "return only token events that has
/// been deleted" (a date-time, as `since_datetime`): the type/values whose events were deleted
/// (DELETE …/tokens/events, or aid_customers_cid_tokens_post with `delete_token_events=true`) at
/// or after that time, in the order of deletion.
async fn list_deleted_since(app: TestApp) {
    let admin = app.admin().await;
    let path = events_path(ACCOUNT);
    let before = (chrono::Utc::now() - chrono::Duration::seconds(120)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut ids = std::collections::HashMap::new();
    for value in ["kept", "cleared", "reasoned", "replaced"] {
        let detail = app
            .token_detail(
                &admin.token,
                &json!({"token": token(value), "event": {"event": "signup", "status": "OPT_IN"}}),
            )
            .await;
        ids.insert(value, detail["id"].clone());
    }
    // Nothing deleted yet.
    let response = app.get(&format!("{path}?deleted_since={before}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));

    let response = app.delete_json(&path, &admin.token, &json!({"token": token("cleared")})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
    let response =
        app.delete_json(&path, &admin.token, &json!({"token": token("reasoned"), "event": {"event": "asked"}})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let response = app
        .post_json(
            &format!("{}?delete_token_events=true", tokens_path(ACCOUNT, "c-1")),
            &admin.token,
            &token("replaced"),
        )
        .await;
    response.expect_json(201);
    // Clearing what has no events deletes nothing.
    let response = app.delete_json(&path, &admin.token, &json!({"token": token("never")})).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);

    let response = app.get(&format!("{path}?deleted_since={before}"), &admin.token).await;
    let mut list = response.expect_json(200);
    response.assert_last_page();
    for item in list.as_array_mut().unwrap() {
        normalize_events(item);
    }
    assert_json_eq(
        &list,
        &json!([
            {"id": ids["cleared"], "status": "DELETED", "events": []},
            {"id": ids["reasoned"], "status": "DELETED", "events": [{"event": "asked", "status": "DELETED", "created_at": "<ts>"}]},
            {"id": ids["replaced"], "status": "DELETED", "events": []},
        ]),
    );
    // Pages like every list.
    let response = app.get(&format!("{path}?deleted_since={before}&limit=2"), &admin.token).await;
    assert_eq!(response.expect_json(200).as_array().unwrap().len(), 2);
    assert_eq!(response.header("paging-token"), ids["reasoned"].as_str());
    let next = parse_next_link(response.header("link").expect("link"));
    let response = app.get(&next, &admin.token).await;
    let page = response.expect_json(200);
    assert_eq!(page.as_array().unwrap().iter().map(|i| i["id"].clone()).collect::<Vec<_>>(), [ids["replaced"].clone()]);
    // Later than every deletion: none.
    let response = app.get(&format!("{path}?deleted_since=2999-01-01T00:00:00Z"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    // Without the filter the list is unchanged: what has events.
    let list = app.get(&path, &admin.token).await.expect_json(200);
    let listed: Vec<Value> = list.as_array().unwrap().iter().map(|i| i["id"].clone()).collect();
    assert_eq!(listed, [ids["kept"].clone(), ids["reasoned"].clone()], "{list}");

    let response = app.get(&format!("{path}?deleted_since=yesterday"), &admin.token).await;
    assert_validation(&response, &[("deleted_since", "must be an RFC 3339 date-time")]);
    let response = app.get(&format!("{path}?deleted_since={before}&since_datetime={before}"), &admin.token).await;
    assert_validation(&response, &[("deleted_since", "cannot be combined with since_datetime")]);
}

/// CustomersSettings `tokens.event_expiry` ("configure the expire behaviour of token events":
/// `status`, `time_to_live` "Time-To-Live (TTL) for the token event status in seconds") with
/// TokenDetail.status ("set to the previous event status (or UNKNOWN) if the event has
/// expired"): an event past its status's time to live is no longer shown or counted, in
/// aid_customers_tokens_events_post and aid_customers_tokens_events_get.
async fn settings_event_expiry_hides_events_past_their_time_to_live(app: TestApp) {
    let admin = app.admin().await;
    let settings_path = format!("/v1/accounts/{ACCOUNT}/customers/settings");
    let expiry = json!({"tokens": {"event_expiry": [{"status": "OPT_OUT", "time_to_live": 0}, {"status": "PENDING", "time_to_live": 3600}]}});
    app.put_json(&settings_path, &admin.token, &expiry).await.expect_json(200);

    app.token_detail(&admin.token, &json!({"token": token("v1"), "event": {"event": "a", "status": "PENDING"}})).await;
    let mut detail = app
        .token_detail(&admin.token, &json!({"token": token("v1"), "event": {"event": "b", "status": "OPT_OUT"}}))
        .await;
    let id = take_uuid(&mut detail, "id");
    normalize_events(&mut detail);
    let pending_only = json!({"id": "<id>", "status": "PENDING", "events": [{"event": "a", "status": "PENDING", "created_at": "<ts>"}]});
    assert_json_eq(&detail, &pending_only);
    let mut list = app.get(&events_path(ACCOUNT), &admin.token).await.expect_json(200);
    take_uuid(&mut list[0], "id");
    normalize_events(&mut list[0]);
    assert_json_eq(&list, &json!([pending_only]));

    // An event with only an expired status: UNKNOWN.
    let detail = app
        .token_detail(&admin.token, &json!({"token": token("v2"), "event": {"event": "x", "status": "OPT_OUT"}}))
        .await;
    assert_eq!(detail["status"], json!("UNKNOWN"), "{detail}");
    assert_eq!(detail["events"], json!([]), "{detail}");

    // The events are kept: without the setting they count again.
    app.put_json(&settings_path, &admin.token, &json!({})).await.expect_json(200);
    let detail = app.token_detail(&admin.token, &json!({"token": token("v1")})).await;
    assert_eq!(detail["id"], json!(id));
    assert_eq!(detail["status"], json!("OPT_OUT"), "{detail}");
    assert_eq!(detail["events"].as_array().unwrap().len(), 2, "{detail}");
}
