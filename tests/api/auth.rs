//! `POST /v1/accounts/{oid}/auth/token`, the JWKS, and how every API call is authenticated and
//! authorised (401 → 400 aid → 403 account → 403 scope → request checks).

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(
    token_endpoint_issues_an_eddsa_jwt,
    jwt_carries_exactly_the_documented_claims,
    jwks_is_public_and_verifies_issued_tokens,
    any_audience_base_is_accepted,
    token_endpoint_rejects_bad_credentials_with_401,
    token_endpoint_rejects_bad_bodies_with_400,
    token_endpoint_refuses_other_accounts_with_403,
    health_needs_no_auth,
    api_calls_without_a_valid_token_are_401,
    tampered_and_unsigned_tokens_are_401,
    tokens_of_another_instance_are_401,
    customer_scopes_are_enforced,
    card_token_scopes_are_enforced,
    tokens_of_another_account_are_403,
    checks_run_in_the_documented_order,
    a_bad_aid_is_reported_like_any_validation_error,
    production_accounts_work,
);

mod configured {
    backend_tests!(
        backend: expired_tokens_are_401,
        clients_create_cli_prints_one_json_object,
        token_requests_are_rate_limited_per_client,
        api_calls_are_rate_limited_per_client,
    );
    use super::*;
}

pub const MISSING_TOKEN: &str = "missing bearer token";
pub const INVALID_TOKEN: &str = "invalid or expired access token";
pub const INVALID_CLIENT: &str = "invalid client credentials";

fn client_credentials_body(account: &str) -> Value {
    json!({"grant_type": "client_credentials", "audience": audience(account)})
}

/// The 403 for a token lacking every one of `scopes`.
pub fn missing_scope(scopes: &str) -> String {
    format!("the access token lacks the required scope: one of {scopes}")
}

pub fn wrong_account(account: &str) -> String {
    format!("the access token is not valid for account {account}")
}

async fn token_endpoint_issues_an_eddsa_jwt(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers", "read:checkout"]).await;
    let before = chrono::Utc::now().timestamp();
    let response = app
        .request_token(
            ACCOUNT,
            Some(&basic(&client.client_id, &client.client_secret)),
            &client_credentials_body(ACCOUNT),
        )
        .await;
    let mut body = response.expect_json(200);
    let jwt = body["access_token"].as_str().expect("access_token").to_owned();
    body["access_token"] = json!("<jwt>");
    assert_json_eq(&body, &json!({"access_token": "<jwt>", "token_type": "Bearer", "expires_in": 86400}));

    let (header, mut claims, _) = decode_jwt(&jwt);
    assert_eq!(header["alg"], "EdDSA", "{header}");
    assert!(header["kid"].as_str().is_some_and(|k| !k.is_empty()), "kid in {header}");

    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!((before - 5..=chrono::Utc::now().timestamp() + 5).contains(&iat), "iat {iat}");
    assert_eq!(exp - iat, 86400);
    let jti = claims["jti"].as_str().expect("jti").to_owned();
    assert!(!jti.is_empty());
    // `nbf` is checked by `jwt_carries_exactly_the_documented_claims`.
    if let Some(nbf) = claims.get("nbf") {
        assert!(nbf.as_i64().is_some_and(|nbf| nbf <= iat), "nbf {nbf} after iat {iat}");
    }
    for key in ["iat", "exp", "jti", "nbf"] {
        claims.as_object_mut().unwrap().shift_remove(key);
    }
    assert_eq!(
        claims,
        json!({
            "iss": "tokenvault",
            "sub": client.client_id,
            "aud": audience(ACCOUNT),
            "aid": ACCOUNT,
            "scope": "admin:customers read:checkout",
            "gen": 1,
        })
    );

    // A second token has its own jti.
    let again = app
        .request_token(
            ACCOUNT,
            Some(&basic(&client.client_id, &client.client_secret)),
            &client_credentials_body(ACCOUNT),
        )
        .await
        .expect_json(200);
    let (_, claims2, _) = decode_jwt(again["access_token"].as_str().unwrap());
    assert_ne!(claims2["jti"].as_str().unwrap(), jti);

    // And the token works.
    let response = app.get(&customers_path(ACCOUNT), &jwt).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
}

/// The claims: `iss`, `sub` (client_id), `aud`, `aid` (account), `scope` (space-separated),
/// `iat`, `exp`, `jti`, and `gen`.
async fn jwt_carries_exactly_the_documented_claims(app: TestApp) {
    let (_, claims, _) = decode_jwt(&app.admin().await.token);
    let keys: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    // Plus `gen`, the client's secret generation (SECURITY.md, "API clients"): Dintero's clients
    // ignore claims they do not know.
    assert_eq!(sorted, ["aid", "aud", "exp", "gen", "iat", "iss", "jti", "scope", "sub"], "claims: {claims}");
}

async fn jwks_is_public_and_verifies_issued_tokens(app: TestApp) {
    let response = app.send(Method::GET, "/.well-known/jwks.json", None, None, &[]).await;
    let jwks = response.expect_json(200);
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    assert_eq!(jwks.as_object().unwrap().len(), 1, "only `keys`: {jwks}");

    let jwt = app.admin().await.token;
    let (header, _, signature) = decode_jwt(&jwt);
    let kid = header["kid"].as_str().unwrap();
    let key = keys.iter().find(|k| k["kid"] == kid).unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    let x = key["x"].as_str().expect("x").to_owned();
    assert_eq!(key, &json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x, "alg": "EdDSA", "use": "sig"}));

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let public: [u8; 32] = URL_SAFE_NO_PAD.decode(&x).expect("x is base64url").try_into().expect("32-byte key");
    let verifying = VerifyingKey::from_bytes(&public).expect("Ed25519 public key");
    let signature = Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).expect("64-byte signature");
    let signed = &jwt[..jwt.rfind('.').unwrap()];
    verifying.verify(signed.as_bytes(), &signature).expect("the published key verifies the token");
}

async fn any_audience_base_is_accepted(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    for aud in [
        format!("https://checkout.dintero.com/v1/accounts/{ACCOUNT}"),
        format!("http://localhost:8080/v1/accounts/{ACCOUNT}"),
        format!("{}/v1/accounts/{ACCOUNT}", app.url),
    ] {
        let response = app
            .request_token(
                ACCOUNT,
                Some(&basic(&client.client_id, &client.client_secret)),
                &json!({"grant_type": "client_credentials", "audience": aud}),
            )
            .await;
        let body = response.expect_json(200);
        let (_, claims, _) = decode_jwt(body["access_token"].as_str().unwrap());
        assert_eq!(claims["aud"], json!(aud));
        assert_eq!(claims["aid"], json!(ACCOUNT));
        let call = app.get(&customers_path(ACCOUNT), body["access_token"].as_str().unwrap()).await;
        call.expect_json(200);
    }
}

async fn token_endpoint_rejects_bad_credentials_with_401(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let body = client_credentials_body(ACCOUNT);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("wrong secret", Some(basic(&client.client_id, "not-the-secret"))),
        ("empty secret", Some(basic(&client.client_id, ""))),
        ("unknown client", Some(basic("00000000-0000-4000-8000-000000000000", &client.client_secret))),
        ("no authorization", None),
        ("bearer instead of basic", Some(format!("Bearer {}", client.client_secret))),
        ("not base64", Some("Basic %%%not-base64%%%".to_owned())),
        ("no colon", Some(format!("Basic {}", base64_std(&client.client_id)))),
    ];
    for (case, authorization) in cases {
        let response = app.request_token(ACCOUNT, authorization.as_deref(), &body).await;
        assert_eq!(response.status.as_u16(), 401, "{case}: {}", response.text);
        assert_error(&response, 401, INVALID_CLIENT, json!([]));
    }
}

fn base64_std(text: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    STANDARD.encode(text)
}

async fn token_endpoint_rejects_bad_bodies_with_400(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let authorization = basic(&client.client_id, &client.client_secret);
    let aud = audience(ACCOUNT);

    let cases: Vec<(Value, &[(&str, &str)])> = vec![
        (json!({"audience": aud}), &[("grant_type", "is required")]),
        (json!({"grant_type": 7, "audience": aud}), &[("grant_type", "must be a string")]),
        (json!({"grant_type": "client_credentials"}), &[("audience", "is required")]),
        (json!({"grant_type": "client_credentials", "audience": 5}), &[("audience", "must be a string")]),
        (
            json!({"grant_type": "client_credentials", "audience": "https://api.dintero.com/v1/accounts/X123"}),
            &[("audience", "must be a URL ending in /v1/accounts/{aid}")],
        ),
        (
            json!({"grant_type": "client_credentials", "audience": ACCOUNT}),
            &[("audience", "must be a URL ending in /v1/accounts/{aid}")],
        ),
        (json!({}), &[("grant_type", "is required"), ("audience", "is required")]),
    ];
    for (body, fields) in cases {
        let response = app.request_token(ACCOUNT, Some(&authorization), &body).await;
        assert_eq!(response.status.as_u16(), 400, "{body}: {}", response.text);
        assert_validation(&response, fields);
    }

    for grant in ["password", "authorization_code", "refresh_token"] {
        let response =
            app.request_token(ACCOUNT, Some(&authorization), &json!({"grant_type": grant, "audience": aud})).await;
        assert_error(&response, 400, "unsupported grant_type: only client_credentials is supported", json!([]));
    }

    // Not JSON at all, and no body.
    let path = format!("/v1/accounts/{ACCOUNT}/auth/token");
    let headers = [("authorization", authorization.clone()), ("content-type", "application/json".to_owned())];
    let response = app
        .http
        .post(format!("{}{path}", app.url))
        .header("authorization", &authorization)
        .header("content-type", "application/json")
        .body("{\"grant_type\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(response.headers()["content-type"], JSON_UTF8);
    let response = app.send(Method::POST, &path, None, None, &headers).await;
    assert_error(&response, 400, "a JSON object body is required", json!([]));
    let response = app.send(Method::POST, &path, None, Some(&json!(["client_credentials"])), &headers[..1]).await;
    assert_error(&response, 400, "the request body must be a JSON object", json!([]));
}

async fn token_endpoint_refuses_other_accounts_with_403(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let authorization = basic(&client.client_id, &client.client_secret);
    let cases = [
        (OTHER_ACCOUNT, audience(OTHER_ACCOUNT), OTHER_ACCOUNT),
        (ACCOUNT, audience(OTHER_ACCOUNT), OTHER_ACCOUNT),
        (OTHER_ACCOUNT, audience(ACCOUNT), ACCOUNT),
    ];
    for (oid, aud, named) in cases {
        let response = app
            .request_token(oid, Some(&authorization), &json!({"grant_type": "client_credentials", "audience": aud}))
            .await;
        assert_eq!(response.status.as_u16(), 403, "oid {oid}, audience {aud}: {}", response.text);
        assert_error(&response, 403, &format!("the client may not act for account {named}"), json!([]));
    }
}

async fn health_needs_no_auth(app: TestApp) {
    let response = app.send(Method::GET, "/health", None, None, &[]).await;
    assert_eq!(response.status.as_u16(), 200, "{}", response.text);
}

/// One request per protected operation family, to check authentication applies to all.
fn protected_requests() -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, customers_path(ACCOUNT), None),
        (Method::POST, customers_path(ACCOUNT), Some(json!({}))),
        (Method::GET, customer_path(ACCOUNT, "c-1"), None),
        (Method::DELETE, customer_path(ACCOUNT, "c-1"), None),
        (Method::GET, tokens_path(ACCOUNT, "c-1"), None),
        (Method::POST, tokens_path(ACCOUNT, "c-1"), Some(json!({"type": "t", "value": "v"}))),
        (Method::DELETE, format!("{}/t-1", tokens_path(ACCOUNT, "c-1")), None),
        (Method::GET, events_path(ACCOUNT), None),
        (Method::POST, events_path(ACCOUNT), Some(json!({"token": {"type": "t", "value": "v"}}))),
        (Method::DELETE, events_path(ACCOUNT), Some(json!({"token": {"type": "t", "value": "v"}}))),
        (Method::GET, "/v1/card-tokens".to_owned(), None),
        (Method::POST, "/v1/card-tokens".to_owned(), Some(json!({"card_brand": "visa", "payment_product_type": "x"}))),
        (Method::GET, "/v1/card-tokens/ct-1".to_owned(), None),
        (Method::DELETE, "/v1/card-tokens/ct-1".to_owned(), None),
        (Method::PUT, "/v1/card-tokens/ct-1/status".to_owned(), Some(json!({"status": "SUSPENDED"}))),
        (Method::GET, format!("/v1/accounts/{ACCOUNT}/payments/card-tokens"), None),
        (Method::GET, format!("/v1/accounts/{ACCOUNT}/payments/card-tokens/ct-1"), None),
        (Method::DELETE, format!("/v1/accounts/{ACCOUNT}/payments/card-tokens/ct-1"), None),
    ]
}

async fn api_calls_without_a_valid_token_are_401(app: TestApp) {
    for (method, path, body) in protected_requests() {
        let response = app.send(method.clone(), &path, None, body.as_ref(), &[]).await;
        assert_eq!(response.status.as_u16(), 401, "{method} {path} without a token: {}", response.text);
        assert_error(&response, 401, MISSING_TOKEN, json!([]));

        for (authorization, message) in [
            ("Bearer not-a-jwt", INVALID_TOKEN),
            ("Bearer a.b.c", INVALID_TOKEN),
            ("bearer a.b.c", INVALID_TOKEN),
            ("Bearer ", MISSING_TOKEN),
            ("Token abc", MISSING_TOKEN),
        ] {
            let response = app
                .send(method.clone(), &path, None, body.as_ref(), &[("authorization", authorization.to_owned())])
                .await;
            assert_eq!(response.status.as_u16(), 401, "{method} {path} with {authorization:?}: {}", response.text);
            assert_error(&response, 401, message, json!([]));
        }
    }
    // Basic credentials are for the token endpoint only.
    let admin = app.admin().await;
    let response = app
        .send(
            Method::GET,
            &customers_path(ACCOUNT),
            None,
            None,
            &[("authorization", basic(&admin.client_id, &admin.client_secret))],
        )
        .await;
    assert_error(&response, 401, MISSING_TOKEN, json!([]));
}

async fn tampered_and_unsigned_tokens_are_401(app: TestApp) {
    let jwt = app.token_for(ACCOUNT, &["read:customers"]).await;
    let (header, claims, signature) = decode_jwt(&jwt);
    // Sanity: the genuine token works.
    app.get(&customers_path(ACCOUNT), &jwt).await.expect_json(200);

    let mut more_scope = claims.clone();
    more_scope["scope"] = json!("admin:customers admin:checkout");
    let mut other_account = claims.clone();
    other_account["aid"] = json!(OTHER_ACCOUNT);
    other_account["aud"] = json!(audience(OTHER_ACCOUNT));
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().unwrap() + 3600);
    let mut flipped = signature.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();

    let none_header = json!({"alg": "none", "typ": "JWT"});
    let hs_header = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
    let forged = [
        ("tampered scope", encode_jwt(&header, &more_scope, &signature), &customers_path(ACCOUNT)),
        ("tampered account", encode_jwt(&header, &other_account, &signature), &customers_path(OTHER_ACCOUNT)),
        ("tampered expiry", encode_jwt(&header, &longer, &signature), &customers_path(ACCOUNT)),
        ("flipped signature", encode_jwt(&header, &claims, &flipped), &customers_path(ACCOUNT)),
        ("no signature", encode_jwt(&header, &claims, ""), &customers_path(ACCOUNT)),
        ("alg none", encode_jwt(&none_header, &claims, ""), &customers_path(ACCOUNT)),
        ("alg none with scope", encode_jwt(&none_header, &more_scope, ""), &customers_path(ACCOUNT)),
        ("alg HS256", encode_jwt(&hs_header, &claims, &signature), &customers_path(ACCOUNT)),
        (
            "unknown kid",
            encode_jwt(&json!({"alg": "EdDSA", "typ": "JWT", "kid": "nope"}), &claims, &signature),
            &customers_path(ACCOUNT),
        ),
    ];
    for (case, token, path) in forged {
        let response = app.get(path, &token).await;
        assert_eq!(response.status.as_u16(), 401, "{case}: {}", response.text);
        assert_error(&response, 401, INVALID_TOKEN, json!([]));
    }
    // A POST with more scope than granted is still refused at authentication.
    let token = encode_jwt(&header, &more_scope, &signature);
    let response = app.post_json(&customers_path(ACCOUNT), &token, &json!({"customer_id": "forged"})).await;
    assert_error(&response, 401, INVALID_TOKEN, json!([]));
}

async fn tokens_of_another_instance_are_401(app: TestApp) {
    let other = spawn_app(app.backend).await;
    let foreign = other.admin().await.token;
    let response = app.get(&customers_path(ACCOUNT), &foreign).await;
    assert_error(&response, 401, INVALID_TOKEN, json!([]));
    let response = app.get("/v1/card-tokens", &foreign).await;
    assert_error(&response, 401, INVALID_TOKEN, json!([]));
}

async fn expired_tokens_are_401(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.token_ttl_seconds = 1).await;
    let auth = app.admin().await;
    let (_, claims, _) = decode_jwt(&auth.token);
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 1);
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let body = app
        .request_token(
            ACCOUNT,
            Some(&basic(&client.client_id, &client.client_secret)),
            &client_credentials_body(ACCOUNT),
        )
        .await
        .expect_json(200);
    assert_eq!(body["expires_in"], json!(1));
    let token = body["access_token"].as_str().unwrap().to_owned();
    let exp = decode_jwt(&token).1["exp"].as_i64().unwrap();

    // Bounded polling: the token must stop working within a few seconds of `exp`.
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        let response = app.get(&customers_path(ACCOUNT), &token).await;
        if response.status.as_u16() == 401 {
            assert_error(&response, 401, INVALID_TOKEN, json!([]));
            assert!(chrono::Utc::now().timestamp() >= exp, "refused before it expired");
            break;
        }
        assert_eq!(response.status.as_u16(), 200, "{}", response.text);
        assert!(Instant::now() < deadline, "an expired token (exp {exp}) is still accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The 429 of docs/wire-decisions.md: `TOO MANY REQUESTS` with a `Retry-After` in whole seconds.
#[track_caller]
fn assert_too_many_requests(response: &TestResponse) -> u64 {
    let retry_after: u64 = response
        .header("retry-after")
        .unwrap_or_else(|| panic!("429 without Retry-After: {}", response.text))
        .parse()
        .expect("Retry-After in whole seconds");
    assert!(retry_after >= 1);
    assert_error(response, 429, &format!("too many requests; retry in {retry_after} seconds"), json!([]));
    retry_after
}

async fn token_requests_are_rate_limited_per_client(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.token_requests_per_minute = 3).await;
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let authorization = basic(&client.client_id, &client.client_secret);
    for _ in 0..3 {
        app.request_token(ACCOUNT, Some(&authorization), &client_credentials_body(ACCOUNT)).await.expect_json(200);
    }
    let response = app.request_token(ACCOUNT, Some(&authorization), &client_credentials_body(ACCOUNT)).await;
    let retry_after = assert_too_many_requests(&response);
    assert!(retry_after <= 20, "Retry-After {retry_after} for 3 per minute");
    // Wrong secrets count too (brute force is slowed), and other clients are not affected.
    let response =
        app.request_token(ACCOUNT, Some(&basic(&client.client_id, "guess")), &client_credentials_body(ACCOUNT)).await;
    assert_too_many_requests(&response);
    let other = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let response = app
        .request_token(ACCOUNT, Some(&basic(&other.client_id, &other.client_secret)), &client_credentials_body(ACCOUNT))
        .await;
    response.expect_json(200);
}

async fn api_calls_are_rate_limited_per_client(backend: Backend) {
    let app = spawn_app_with(backend, |config| config.api_calls_per_second = 1).await;
    let token = app.token_for(ACCOUNT, &["admin:customers"]).await;
    let other = app.token_for(ACCOUNT, &["read:customers"]).await;
    let first = app.get(&customers_path(ACCOUNT), &token).await;
    first.expect_json(200);
    let mut limited = None;
    for _ in 0..5 {
        let response = app.get(&customers_path(ACCOUNT), &token).await;
        if response.status.as_u16() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("6 calls in a row at 1 per second were all let through");
    assert_eq!(assert_too_many_requests(&limited), 1);
    app.get(&customers_path(ACCOUNT), &other).await.expect_json(200);
}

async fn clients_create_cli_prints_one_json_object(backend: Backend) {
    let app = spawn_app(backend).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args([
            "clients",
            "create",
            "--account",
            ACCOUNT,
            "--scopes",
            "admin:customers admin:checkout",
            "--database-url",
            &app.database_url,
        ])
        .env("TOKENVAULT_ENCRYPTION_KEY", pg_encryption_key())
        .output()
        .expect("tokenvault runs");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    assert!(output.status.success(), "exit {:?}; stderr: {}", output.status, String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.trim_end().lines().count(), 1, "one line on stdout: {stdout:?}");
    let mut printed: Value = serde_json::from_str(stdout.trim_end()).expect("one JSON object on stdout");
    let client_id = printed["client_id"].as_str().expect("client_id").to_owned();
    let secret = printed["client_secret"].as_str().expect("client_secret").to_owned();
    assert!(!client_id.is_empty() && secret.len() >= 16, "{printed}");
    printed["client_id"] = json!("<id>");
    printed["client_secret"] = json!("<secret>");
    assert_json_eq(
        &printed,
        &json!({"client_id": "<id>", "client_secret": "<secret>", "account_id": ACCOUNT, "scopes": ["admin:customers", "admin:checkout"]}),
    );

    // The printed client works against a server on the same database.
    let response =
        app.request_token(ACCOUNT, Some(&basic(&client_id, &secret)), &client_credentials_body(ACCOUNT)).await;
    let body = response.expect_json(200);
    let (_, claims, _) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], json!(client_id));
    assert_eq!(claims["scope"], json!("admin:customers admin:checkout"));
}

async fn customer_scopes_are_enforced(app: TestApp) {
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let reads: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, customers_path(ACCOUNT), None),
        (Method::GET, customer_path(ACCOUNT, "c-1"), None),
        (Method::GET, tokens_path(ACCOUNT, "c-1"), None),
        (Method::GET, events_path(ACCOUNT), None),
    ];
    // POST …/users also takes `create:customers:/users` (Dintero's list for that operation).
    let create_user = missing_scope("admin:customers, write:customers, create:customers:/users");
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, customers_path(ACCOUNT), Some(json!({"customer_id": "c-new"}))),
        (Method::POST, tokens_path(ACCOUNT, "c-1"), Some(json!({"type": "t", "value": "v"}))),
        (Method::DELETE, format!("{}/t-1", tokens_path(ACCOUNT, "c-1")), None),
        (Method::POST, events_path(ACCOUNT), Some(json!({"token": {"type": "t", "value": "v"}}))),
        (Method::DELETE, events_path(ACCOUNT), Some(json!({"token": {"type": "t", "value": "v"}}))),
        (Method::DELETE, customer_path(ACCOUNT, "c-1"), None),
    ];
    let read = app.token_for(ACCOUNT, &["read:customers"]).await;
    let write = app.token_for(ACCOUNT, &["write:customers"]).await;
    let checkout = app.token_for(ACCOUNT, &["admin:checkout", "read:checkout", "write:checkout"]).await;

    for (method, path, body) in &reads {
        for token in [&read, &admin.token] {
            let response = app.send(method.clone(), path, Some(token), body.as_ref(), &[]).await;
            assert_eq!(response.status.as_u16(), 200, "{method} {path}: {}", response.text);
        }
        for token in [&write, &checkout] {
            let response = app.send(method.clone(), path, Some(token), body.as_ref(), &[]).await;
            assert_eq!(response.status.as_u16(), 403, "{method} {path}: {}", response.text);
            assert_error(&response, 403, &missing_scope("admin:customers, read:customers"), json!([]));
        }
    }
    for (method, path, body) in &writes {
        let message = if method == Method::POST && path == &customers_path(ACCOUNT) {
            create_user.clone()
        } else {
            missing_scope("admin:customers, write:customers")
        };
        for token in [&read, &checkout] {
            let response = app.send(method.clone(), path, Some(token), body.as_ref(), &[]).await;
            assert_eq!(response.status.as_u16(), 403, "{method} {path}: {}", response.text);
            assert_error(&response, 403, &message, json!([]));
        }
    }
    // write:customers may write (each write then fails or succeeds on its own merits, never 403).
    let response = app.post_json(&customers_path(ACCOUNT), &write, &json!({"customer_id": "c-2"})).await;
    response.expect_json(200);
    let response = app.post_json(&tokens_path(ACCOUNT, "c-2"), &write, &json!({"type": "t", "value": "v"})).await;
    response.expect_json(201);
    let response = app.post_json(&events_path(ACCOUNT), &write, &json!({"token": {"type": "t", "value": "v"}})).await;
    response.expect_json(200);
    let response = app.delete(&customer_path(ACCOUNT, "c-2"), &write).await;
    response.expect_json(200);
}

async fn card_token_scopes_are_enforced(app: TestApp) {
    let admin = app.admin().await;
    let card = app
        .create_card_token(
            &admin.token,
            &json!({"card_brand": "visa", "payment_product_type": "dintero_psp.creditcard"}),
        )
        .await;
    let id = card["id"].as_str().unwrap().to_owned();
    let read = app.token_for(ACCOUNT, &["read:checkout"]).await;
    let write = app.token_for(ACCOUNT, &["write:checkout"]).await;
    let customers = app.token_for(ACCOUNT, &["admin:customers"]).await;

    let reads = [
        "/v1/card-tokens".to_owned(),
        format!("/v1/card-tokens/{id}"),
        format!("/v1/accounts/{ACCOUNT}/payments/card-tokens"),
        format!("/v1/accounts/{ACCOUNT}/payments/card-tokens/{id}"),
    ];
    // card_tokens_get, card_tokens_token_id_get (and the payments-v2 aliases): "scopes: -
    // admin:checkout" only; read:checkout does not list or get card tokens at Dintero.
    for path in &reads {
        let response = app.get(path, &admin.token).await;
        assert_eq!(response.status.as_u16(), 200, "admin:checkout GET {path}: {}", response.text);
        for token in [&read, &write, &customers] {
            let response = app.get(path, token).await;
            assert_error(&response, 403, &missing_scope("admin:checkout"), json!([]));
        }
    }
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, "/v1/card-tokens".to_owned(), Some(json!({"card_brand": "visa", "payment_product_type": "x"}))),
        (Method::DELETE, format!("/v1/card-tokens/{id}"), None),
        (Method::PUT, format!("/v1/card-tokens/{id}/status"), Some(json!({"status": "SUSPENDED"}))),
        (Method::DELETE, format!("/v1/accounts/{ACCOUNT}/payments/card-tokens/{id}"), None),
    ];
    for (method, path, body) in &writes {
        for token in [&read, &write, &customers] {
            let response = app.send(method.clone(), path, Some(token), body.as_ref(), &[]).await;
            assert_eq!(response.status.as_u16(), 403, "{method} {path}: {}", response.text);
            assert_error(&response, 403, &missing_scope("admin:checkout"), json!([]));
        }
    }
    // Nothing was changed by the refused calls.
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &card);
}

async fn tokens_of_another_account_are_403(app: TestApp) {
    let other = app.auth(OTHER_ACCOUNT, ALL_SCOPES).await;
    let admin = app.admin().await;
    app.create_customer(&admin.token, &json!({"customer_id": "c-1"})).await;
    let card = app.create_card_token(&admin.token, &json!({"card_brand": "visa", "payment_product_type": "x"})).await;
    let id = card["id"].as_str().unwrap();

    for (method, path, body) in protected_requests() {
        if !path.starts_with("/v1/accounts/") {
            continue;
        }
        let response = app.send(method.clone(), &path, Some(&other.token), body.as_ref(), &[]).await;
        assert_eq!(response.status.as_u16(), 403, "{method} {path}: {}", response.text);
        assert_error(&response, 403, &wrong_account(ACCOUNT), json!([]));
    }
    // The account-less card-token paths use the caller's account: another account's token is
    // simply not found there.
    for method in [Method::GET, Method::DELETE] {
        let response = app.send(method, &format!("/v1/card-tokens/{id}"), Some(&other.token), None, &[]).await;
        assert_error(&response, 404, "card token not found", json!([]));
    }
    let response = app.get("/v1/card-tokens", &other.token).await;
    assert_json_eq(&response.expect_json(200), &json!([]));
    let response = app.get(&format!("/v1/card-tokens/{id}"), &admin.token).await;
    assert_json_eq(&response.expect_json(200), &card);
}

async fn checks_run_in_the_documented_order(app: TestApp) {
    let read = app.token_for(ACCOUNT, &["read:customers"]).await;
    let admin = app.admin().await.token;

    // 401 before the aid pattern.
    let response = app.send(Method::GET, &customers_path("X123"), None, None, &[]).await;
    assert_error(&response, 401, MISSING_TOKEN, json!([]));
    // 400 aid before 403 account and 403 scope.
    for bad in ["X12345678", "T1234567", "T123456789", "t12345678", "T1234567a"] {
        for (method, path, body) in [
            (Method::GET, customers_path(bad), None),
            (Method::POST, customers_path(bad), Some(json!({}))),
            (Method::GET, tokens_path(bad, "c-1"), None),
            (Method::POST, events_path(bad), Some(json!({"token": {"type": "t", "value": "v"}}))),
            (Method::GET, format!("/v1/accounts/{bad}/payments/card-tokens"), None),
        ] {
            for token in [&read, &admin] {
                let response = app.send(method.clone(), &path, Some(token), body.as_ref(), &[]).await;
                assert_eq!(response.status.as_u16(), 400, "{method} {path}: {}", response.text);
                assert_validation(&response, &[("aid", "must match ^[PT]{1}\\d{8}$")]);
            }
        }
    }
    // 403 account before 403 scope, and before 404 / 400 of the request itself.
    let response = app.post_json(&customers_path(OTHER_ACCOUNT), &read, &json!({"customer_id": " bad"})).await;
    assert_error(&response, 403, &wrong_account(OTHER_ACCOUNT), json!([]));
    let response = app.get(&customer_path(OTHER_ACCOUNT, "missing"), &admin).await;
    assert_error(&response, 403, &wrong_account(OTHER_ACCOUNT), json!([]));
    // 403 scope before validation, 404 and 409.
    let response = app.post_json(&customers_path(ACCOUNT), &read, &json!({"customer_id": " bad"})).await;
    assert_error(
        &response,
        403,
        &missing_scope("admin:customers, write:customers, create:customers:/users"),
        json!([]),
    );
    let response = app.post_json(&tokens_path(ACCOUNT, "missing"), &read, &json!({"type": ""})).await;
    assert_error(&response, 403, &missing_scope("admin:customers, write:customers"), json!([]));
    let response = app
        .get(
            &format!("{}?limit=0", tokens_path(ACCOUNT, "missing")),
            &app.token_for(ACCOUNT, &["write:customers"]).await,
        )
        .await;
    assert_error(&response, 403, &missing_scope("admin:customers, read:customers"), json!([]));
    // With the right scope the request checks come last: 400 before 404.
    let response = app.get(&format!("{}?limit=0", tokens_path(ACCOUNT, "missing")), &read).await;
    assert_validation(&response, &[("limit", "must be an integer between 1 and 100")]);
    let response = app.get(&tokens_path(ACCOUNT, "missing"), &read).await;
    assert_error(&response, 404, "customer not found", json!([]));
}

/// A malformed `aid` is a validation error like any other: `"{field}: {message}"`.
async fn a_bad_aid_is_reported_like_any_validation_error(app: TestApp) {
    let admin = app.admin().await.token;
    let response = app.get(&customers_path("X12345678"), &admin).await;
    assert_validation(&response, &[("aid", "must match ^[PT]{1}\\d{8}$")]);
    let response = app.get("/v1/accounts/T1/payments/card-tokens", &admin).await;
    assert_validation(&response, &[("aid", "must match ^[PT]{1}\\d{8}$")]);
}

async fn production_accounts_work(app: TestApp) {
    let account = "P12345678";
    let auth = app.auth(account, &["admin:customers"]).await;
    let response = app.post_json(&customers_path(account), &auth.token, &json!({"customer_id": "p-1"})).await;
    response.expect_json(200);
    let response = app.get(&customer_path(account, "p-1"), &auth.token).await;
    assert_eq!(response.expect_json(200)["customer_id"], json!("p-1"));
    // The same customer id in the test account is another customer.
    let admin = app.admin().await;
    let response = app.get(&customer_path(ACCOUNT, "p-1"), &admin.token).await;
    assert_error(&response, 404, "customer not found", json!([]));
}
