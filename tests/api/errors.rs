//! How requests fail before (or instead of) reaching a handler: malformed or non-JSON bodies,
//! unknown routes and methods, oversized bodies; and what must work on the wire (chunked bodies,
//! DELETE with a body). Never a 500.

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    malformed_json_is_400,
    a_json_body_with_another_content_type_is_415,
    unknown_routes_are_404,
    wrong_methods_are_405,
    bodies_over_one_mebibyte_are_413,
    chunked_request_bodies_work,
    delete_requests_may_carry_a_json_body,
    nothing_a_client_sends_causes_a_500,
    undecodable_path_segments_get_a_json_error,
    the_parsers_own_refusals_get_dintero_bodies,
);

const BODY_LIMIT: usize = 1_048_576;

async fn malformed_json_is_400(app: TestApp) {
    let admin = app.admin().await;
    for (path, raw) in [
        (customers_path(ACCOUNT), "{\"customer_id\": "),
        (customers_path(ACCOUNT), "{'customer_id': 'x'}"),
        (customers_path(ACCOUNT), "{\"a\": 1} trailing"),
        ("/v1/card-tokens".to_owned(), "[1, 2"),
        (events_path(ACCOUNT), "nul"),
    ] {
        // An empty body is "missing", not malformed: a 400 as well.
        let response = app
            .send(Method::POST, &path, Some(&admin.token), None, &[("content-type", "application/json".to_owned())])
            .await;
        assert_error(&response, 400, "a JSON object body is required", json!([]));
        let response = app
            .http
            .post(format!("{}{path}", app.url))
            .bearer_auth(&admin.token)
            .header("content-type", "application/json")
            .body(raw.to_owned())
            .send()
            .await
            .unwrap();
        let response = TestResponse {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        };
        let message = assert_error_status(&response, 400);
        assert!(message.starts_with("the request body is not valid JSON"), "{raw:?}: {message}");
    }
}

async fn a_json_body_with_another_content_type_is_415(app: TestApp) {
    let admin = app.admin().await;
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "text/json", "application/xml"] {
        let response = app
            .http
            .post(format!("{}{}", app.url, customers_path(ACCOUNT)))
            .bearer_auth(&admin.token)
            .header("content-type", content_type)
            .body(r#"{"customer_id": "c-1"}"#)
            .send()
            .await
            .unwrap();
        let response = TestResponse {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        };
        assert_eq!(response.status.as_u16(), 415, "{content_type}: {}", response.text);
        assert_error(&response, 415, "expected a JSON body with content-type: application/json", json!([]));
    }
    // No content type at all.
    let response = app
        .http
        .post(format!("{}{}", app.url, customers_path(ACCOUNT)))
        .bearer_auth(&admin.token)
        .body(r#"{"customer_id": "c-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    // Nothing was created; with a charset parameter it works.
    let response = app.get(&customer_path(ACCOUNT, "c-1"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));
    let response = app
        .http
        .post(format!("{}{}", app.url, customers_path(ACCOUNT)))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"customer_id": "c-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
}

async fn unknown_routes_are_404(app: TestApp) {
    let admin = app.admin().await;
    for (method, path) in [
        (Method::GET, "/".to_owned()),
        (Method::GET, "/v1".to_owned()),
        (Method::GET, "/v1/nothing".to_owned()),
        (Method::POST, "/v1/nothing".to_owned()),
        (Method::GET, format!("/v1/accounts/{ACCOUNT}")),
        (Method::GET, format!("/v1/accounts/{ACCOUNT}/customers")),
        (Method::GET, format!("{}/t-1/extra", tokens_path(ACCOUNT, "c-1"))),
        (Method::GET, "/v1/card-tokens/a/b/c".to_owned()),
        (Method::GET, "/v2/card-tokens".to_owned()),
    ] {
        for token in [None, Some(admin.token.as_str())] {
            let response = app.send(method.clone(), &path, token, None, &[]).await;
            assert_eq!(response.status.as_u16(), 404, "{method} {path}: {}", response.text);
            assert_error(&response, 404, "resource not found", json!([]));
        }
    }
}

async fn wrong_methods_are_405(app: TestApp) {
    let admin = app.admin().await;
    for (method, path) in [
        (Method::PUT, customers_path(ACCOUNT)),
        (Method::DELETE, customers_path(ACCOUNT)),
        (Method::PATCH, customer_path(ACCOUNT, "c-1")),
        (Method::PUT, tokens_path(ACCOUNT, "c-1")),
        (Method::DELETE, tokens_path(ACCOUNT, "c-1")),
        (Method::GET, format!("{}/t-1", tokens_path(ACCOUNT, "c-1"))),
        (Method::PUT, events_path(ACCOUNT)),
        (Method::PATCH, "/v1/card-tokens".to_owned()),
        (Method::DELETE, "/v1/card-tokens".to_owned()),
        (Method::POST, "/v1/card-tokens/ct-1".to_owned()),
        (Method::GET, "/v1/card-tokens/ct-1/status".to_owned()),
        (Method::POST, format!("/v1/accounts/{ACCOUNT}/payments/card-tokens")),
        (Method::GET, format!("/v1/accounts/{ACCOUNT}/auth/token")),
        (Method::POST, "/health".to_owned()),
        (Method::DELETE, "/.well-known/jwks.json".to_owned()),
    ] {
        for token in [None, Some(admin.token.as_str())] {
            let response = app.send(method.clone(), &path, token, None, &[]).await;
            assert_eq!(response.status.as_u16(), 405, "{method} {path}: {}", response.text);
            assert_error(&response, 405, "method not allowed", json!([]));
        }
    }
}

/// A customer body of exactly `size` bytes.
fn customer_body_of(size: usize, customer_id: &str) -> Vec<u8> {
    let prefix = format!(r#"{{"customer_id":"{customer_id}","metadata":{{"pad":""#);
    let suffix = r#""}}"#;
    let pad = size - prefix.len() - suffix.len();
    let body = format!("{prefix}{}{suffix}", "x".repeat(pad)).into_bytes();
    assert_eq!(body.len(), size);
    serde_json::from_slice::<Value>(&body).expect("valid JSON");
    body
}

async fn post_bytes(app: &TestApp, path: &str, token: &str, body: Vec<u8>) -> TestResponse {
    app.raw_post(path, token, "application/json", &body).await
}

async fn bodies_over_one_mebibyte_are_413(app: TestApp) {
    let admin = app.admin().await;
    let path = customers_path(ACCOUNT);
    let response = post_bytes(&app, &path, &admin.token, customer_body_of(BODY_LIMIT + 1, "too-big")).await;
    assert_error(&response, 413, &format!("request body is larger than {BODY_LIMIT} bytes"), json!([]));
    let response = post_bytes(&app, &path, &admin.token, customer_body_of(4 * BODY_LIMIT, "much-too-big")).await;
    assert_error(&response, 413, &format!("request body is larger than {BODY_LIMIT} bytes"), json!([]));
    // Chunked, without a Content-Length.
    let request =
        chunked_request("POST", &path, &admin.token, "application/json", &customer_body_of(BODY_LIMIT + 1, "chunky"));
    let response = app.raw(&request).await;
    assert_error(&response, 413, &format!("request body is larger than {BODY_LIMIT} bytes"), json!([]));
    for missing in ["too-big", "much-too-big", "chunky"] {
        let response = app.get(&customer_path(ACCOUNT, missing), &admin.token).await;
        assert_error(&response, 404, "customer not found", json!([]));
    }

    // Exactly 1 MiB is accepted.
    let response = post_bytes(&app, &path, &admin.token, customer_body_of(BODY_LIMIT, "just-fits")).await;
    let body = response.expect_json(200);
    assert_eq!(
        body["metadata"]["pad"].as_str().unwrap().len(),
        BODY_LIMIT - r#"{"customer_id":"just-fits","metadata":{"pad":""#.len() - r#""}}"#.len()
    );
    let response = app.get(&customer_path(ACCOUNT, "just-fits"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &body);
}

async fn chunked_request_bodies_work(app: TestApp) {
    let admin = app.admin().await;
    let request = chunked_request(
        "POST",
        &customers_path(ACCOUNT),
        &admin.token,
        "application/json",
        serde_json::to_string(&json!({"first_name": "Ada", "padding": "p".repeat(5000), "customer_id": "c-1"}))
            .unwrap()
            .as_bytes(),
    );
    let response = app.raw(&request).await;
    let mut body = response.expect_json(200);
    take_uuid(&mut body, "id");
    take_ts(&mut body, "created_at");
    take_ts(&mut body, "updated_at");
    assert_json_eq(
        &body,
        &json!({"id": "<id>", "customer_id": "c-1", "first_name": "Ada", "padding": "p".repeat(5000), "type": "customer", "created_at": "<ts>", "created_by": admin.client_id, "updated_at": "<ts>"}),
    );

    let token_body = serde_json::to_vec(&json!({"type": "sha1:email", "value": "v", "token_id": "t-1"})).unwrap();
    let response = app
        .raw(&chunked_request("POST", &tokens_path(ACCOUNT, "c-1"), &admin.token, "application/json", &token_body))
        .await;
    assert_eq!(response.expect_json(201)["token_id"], json!("t-1"));

    let event_body = serde_json::to_vec(
        &json!({"token": {"type": "sha1:email", "value": "x"}, "event": {"event": "e", "status": "S"}}),
    )
    .unwrap();
    let response =
        app.raw(&chunked_request("POST", &events_path(ACCOUNT), &admin.token, "application/json", &event_body)).await;
    assert_eq!(response.expect_json(200)["status"], json!("S"));
    let clear = serde_json::to_vec(&json!({"token": {"type": "sha1:email", "value": "x"}})).unwrap();
    let response =
        app.raw(&chunked_request("DELETE", &events_path(ACCOUNT), &admin.token, "application/json", &clear)).await;
    assert_eq!(response.status.as_u16(), 204, "{}", response.text);

    let card = app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    let reason = serde_json::to_vec(&json!({"reason": "Profile deleted", "requestor": "MERCHANT"})).unwrap();
    let path = format!("/v1/card-tokens/{}", card["id"].as_str().unwrap());
    let response = app.raw(&chunked_request("DELETE", &path, &admin.token, "application/json", &reason)).await;
    assert_eq!(response.expect_json(200)["status"], json!("DELETED"));

    // Chunked and malformed is still a 400, chunked and not JSON a 415.
    let response = app
        .raw(&chunked_request("POST", &customers_path(ACCOUNT), &admin.token, "application/json", b"{\"customer_id\":"))
        .await;
    let message = assert_error_status(&response, 400);
    assert!(message.starts_with("the request body is not valid JSON"), "{message}");
    let response = app.raw(&chunked_request("POST", &customers_path(ACCOUNT), &admin.token, "text/plain", b"{}")).await;
    assert_error(&response, 415, "expected a JSON body with content-type: application/json", json!([]));
}

async fn delete_requests_may_carry_a_json_body(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    app.create_token(&admin.token, "c-1", &json!({"type": "t", "value": "v", "token_id": "t-1"})).await;
    let response = app
        .delete_json(&format!("{}/t-1", tokens_path(ACCOUNT, "c-1")), &admin.token, &json!({"why": "because"}))
        .await;
    assert!(response.expect_json(200)["deleted_at"].is_string());
    let response = app.delete_json(&customer_path(ACCOUNT, "c-1"), &admin.token, &json!({})).await;
    assert!(response.expect_json(200)["deleted_at"].is_string());
    let response =
        app.delete_json(&events_path(ACCOUNT), &admin.token, &json!({"token": {"type": "t", "value": "v"}})).await;
    assert_eq!(response.status.as_u16(), 204);
}

async fn nothing_a_client_sends_causes_a_500(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let long = "x".repeat(4000);
    let requests: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, customer_path(ACCOUNT, &long), None),
        (Method::GET, tokens_path(ACCOUNT, &long), None),
        (Method::POST, tokens_path(ACCOUNT, &long), Some(json!({"type": "t", "value": "v"}))),
        (Method::DELETE, format!("{}/{long}", tokens_path(ACCOUNT, "c-1")), None),
        (Method::GET, format!("/v1/card-tokens/{long}"), None),
        (Method::GET, customer_path(ACCOUNT, "%00"), None),
        (Method::GET, customer_path(ACCOUNT, "a%2"), None),
        (Method::DELETE, format!("{}/%20", tokens_path(ACCOUNT, "c-1")), None),
        (Method::GET, format!("{}?limit=99999999999999999999", tokens_path(ACCOUNT, "c-1")), None),
        (Method::GET, format!("{}?starting_after=%FF", tokens_path(ACCOUNT, "c-1")), None),
        (Method::GET, format!("{}?starting_after=", tokens_path(ACCOUNT, "c-1")), None),
        (Method::GET, format!("{}?since_datetime=9999-99-99T99:99:99Z", events_path(ACCOUNT)), None),
        (Method::GET, format!("{}?since_datetime=%FF", events_path(ACCOUNT)), None),
        (Method::GET, "/v1/card-tokens?status=%FF".to_owned(), None),
        (Method::GET, "/v1/card-tokens?limit=1&limit=2&limit=abc".to_owned(), None),
        (Method::POST, customers_path(ACCOUNT), Some(json!({"customer_id": "c\u{0}x"}))),
        (
            Method::POST,
            customers_path(ACCOUNT),
            Some(json!({"metadata": {"deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}})),
        ),
        (Method::POST, customers_path(ACCOUNT), Some(json!({"email": "a@b", "phone_number": 4799999999u64}))),
        (Method::POST, customers_path(ACCOUNT), Some(json!({"customer_id": "ü".repeat(255)}))),
        (Method::POST, tokens_path(ACCOUNT, "c-1"), Some(json!({"type": "t".repeat(100_000), "value": "v"}))),
        (
            Method::POST,
            "/v1/card-tokens".to_owned(),
            Some(json!({"card_brand": "visa", "payment_product_type": "x", "token": "t".repeat(5000)})),
        ),
        (
            Method::POST,
            "/v1/card-tokens".to_owned(),
            Some(
                json!({"card_brand": "visa", "payment_product_type": "x", "links": vec![json!({"href": "h", "rel": "r"}); 50]}),
            ),
        ),
        (
            Method::POST,
            events_path(ACCOUNT),
            Some(
                json!({"token": {"type": "t", "value": "v"}, "event": {"event": "e", "expires_at": "+275760-09-13T00:00:00Z"}}),
            ),
        ),
        (
            Method::POST,
            events_path(ACCOUNT),
            Some(
                json!({"token": {"type": "t", "value": "v"}, "event": {"event": "e", "expires_at": "0000-01-01T00:00:00Z"}}),
            ),
        ),
        (Method::PUT, "/v1/card-tokens/x/status".to_owned(), Some(json!({"status": null}))),
        (
            Method::POST,
            format!("/v1/accounts/{ACCOUNT}/auth/token"),
            Some(json!({"grant_type": "client_credentials", "audience": long})),
        ),
    ];
    let mut failures = vec![];
    for (method, path, body) in requests {
        let response = app.send(method.clone(), &path, Some(&admin.token), body.as_ref(), &[]).await;
        let short: String = path.chars().take(100).collect();
        let problem = if response.status.as_u16() >= 500 {
            Some("a server error")
        } else if response.header("content-type") != Some(JSON_UTF8) {
            Some("not JSON")
        } else if response.status.is_success() {
            None
        } else {
            let body = response.json();
            let well_formed = body["error"]["message"].is_string()
                && body["error"]["errors"].is_array()
                && body["error"]["code"] == json!(error_code(response.status.as_u16()));
            (!well_formed).then_some("not an error body")
        };
        if let Some(problem) = problem {
            failures.push(format!("{method} {short} → {} {:?}: {problem}", response.status, response.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Garbage on the wire.
    for raw in [
        "GET /v1/card-tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \u{7f}\r\nConnection: close\r\n\r\n".to_owned(),
        format!("POST {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 4\r\nConnection: close\r\n\r\n\u{0}\u{1}\u{2}\u{3}", customers_path(ACCOUNT), admin.token),
    ] {
        let response = app.raw(raw.as_bytes()).await;
        assert!(response.status.as_u16() < 500, "{raw:?}: {} {}", response.status, response.text);
    }
}

/// Every error, also an extractor's, is Dintero's JSON error body.
async fn undecodable_path_segments_get_a_json_error(app: TestApp) {
    let admin = app.admin().await;
    for (method, path) in [
        (Method::GET, customer_path(ACCOUNT, "%FF%FE")),
        (Method::DELETE, format!("{}/%FF", tokens_path(ACCOUNT, "c-1"))),
        (Method::GET, "/v1/card-tokens/%FF".to_owned()),
        (Method::GET, format!("/v1/accounts/{ACCOUNT}/payments/card-tokens/%C3%28")),
    ] {
        let response = app.send(method.clone(), &path, Some(&admin.token), None, &[]).await;
        assert_eq!(response.status.as_u16(), 400, "{method} {path}: {}", response.text);
        assert_error_status(&response, 400);
    }
}

/// Requests the HTTP/1.1 parser refuses before any route sees them (hyper answers these itself,
/// with no body): the connection floor gives them Dintero's body too, and closes.
async fn the_parsers_own_refusals_get_dintero_bodies(app: TestApp) {
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "a".repeat(70_000));
    let long_head = format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n", "a".repeat(300_000));
    for (request, status, message) in [
        (b"GARBAGE\r\n\r\n".to_vec(), 400, "the request is not valid HTTP/1.1"),
        (
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "the request is not valid HTTP/1.1",
        ),
        (long_uri.into_bytes(), 414, "the request URI is too long"),
        (long_head.into_bytes(), 431, "the request head is too large"),
    ] {
        let response = app.raw(&request).await;
        assert_error(&response, status, message, json!([]));
        assert_eq!(response.header("connection"), Some("close"), "{status}");
    }
}
