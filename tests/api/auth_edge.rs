//! Tokens signed with the server's real key but carrying wrong claims: the signature alone must
//! not be enough. The key comes from the store, opened with the master key, as an attacker with a
//! stolen database and master key would have it; a correctly forged token works, which proves the
//! others fail for their claims.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::helpers::*;

backend_tests!(signed_tokens_with_wrong_claims_are_401, hs256_signed_with_the_public_key_is_401);

const INVALID_TOKEN: &str = "invalid or expired access token";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn good_claims(client_id: &str) -> Value {
    json!({
        "iss": "tokenvault", "sub": client_id, "aud": audience(ACCOUNT), "aid": ACCOUNT,
        "scope": "admin:customers", "iat": now() - 10, "exp": now() + 600, "jti": "j"
    })
}

async fn sign(app: &TestApp, kid: Option<String>, claims: &Value) -> String {
    let (newest, der) = app.signing_key().await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.unwrap_or(newest));
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(&der)).unwrap()
}

async fn signed_tokens_with_wrong_claims_are_401(app: TestApp) {
    let path = customers_path(ACCOUNT);
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let good_claims = || good_claims(&client.client_id);
    let genuine = sign(&app, None, &good_claims()).await;
    app.get(&path, &genuine).await.expect_json(200);
    // Not-before in the past (or within the clock skew allowed between instances) is valid.
    let mut valid_already = good_claims();
    valid_already["nbf"] = json!(now() - 1);
    app.get(&path, &sign(&app, None, &valid_already).await).await.expect_json(200);

    let with = |key: &str, value: Value| {
        let mut claims = good_claims();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let cases = [
        ("wrong issuer", with("iss", json!("someone-else"))),
        ("expired", with("exp", json!(now() - 1))),
        ("expiring this second", with("exp", json!(now()))),
        ("not valid yet", with("nbf", json!(now() + 60))),
        ("not valid for a long time", with("nbf", json!(now() + 3600))),
        ("issued in the future", with("iat", json!(now() + 3600))),
        ("audience of another account", with("aud", json!(audience(OTHER_ACCOUNT)))),
        ("audience without an account", with("aud", json!("https://api.dintero.com"))),
        ("account claim not a Dintero account", with("aid", json!("X1"))),
        ("no expiry", without("exp")),
        ("no issuer", without("iss")),
        ("no audience", without("aud")),
        ("oversized", with("padding", json!("x".repeat(5000)))),
    ];
    for (case, claims) in cases {
        let token = sign(&app, None, &claims).await;
        let response = app.get(&path, &token).await;
        assert_eq!(response.status.as_u16(), 401, "{case}: {}", response.text);
        assert_error(&response, 401, INVALID_TOKEN, json!([]));
    }

    let unknown_kid = sign(&app, Some("not-a-key-id".to_owned()), &good_claims()).await;
    assert_error(&app.get(&path, &unknown_kid).await, 401, INVALID_TOKEN, json!([]));
}

async fn hs256_signed_with_the_public_key_is_401(app: TestApp) {
    let client = app.new_client(ACCOUNT, &["admin:customers"]).await;
    let keys = app.store().signing_keys().await.unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys[0].kid.clone());
    let token =
        jsonwebtoken::encode(&header, &good_claims(&client.client_id), &EncodingKey::from_secret(&keys[0].public_key))
            .unwrap();
    assert_error(&app.get(&customers_path(ACCOUNT), &token).await, 401, INVALID_TOKEN, json!([]));
}
