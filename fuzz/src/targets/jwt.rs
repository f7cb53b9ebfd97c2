//! JWT verification: `KeyRing::verify` over a store holding one fixed Ed25519 key, fed with
//! arbitrary text, arbitrary header/claims/signature segments, tokens properly signed with the
//! fixed key over fuzzer-chosen header and claims (so the claim checks are reached), and signed
//! tokens with one byte changed. Invariants: whatever is accepted carries a valid Ed25519
//! signature by the fixed key over its first two segments, declares `alg: EdDSA`, has our
//! issuer, has not expired and was not issued in the future; a second verification (the cache)
//! agrees with the first.

use super::{fixture, runtime, sign_raw, signing_key, ISSUER, KID};
use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier};
use serde_json::{json, Map, Value};
use tokenvault::domain::Timestamp;

#[derive(Arbitrary, Debug)]
pub enum Input {
    Raw(String),
    Segments { header: Vec<u8>, claims: Vec<u8>, signature: Vec<u8> },
    SignedBytes { header: Vec<u8>, claims: Vec<u8> },
    Shaped(Shaped),
    Tampered { shaped: Shaped, at: u16, byte: u8 },
}

#[derive(Arbitrary, Debug)]
pub struct Shaped {
    alg: u8,
    kid: Option<Text>,
    typ: Option<String>,
    header_extra: Option<(String, Json)>,
    iss: Option<Text>,
    sub: Option<String>,
    aud: Option<Text>,
    aid: Option<String>,
    scope: Option<String>,
    iat: Option<Offset>,
    exp: Option<Offset>,
    jti: Option<String>,
    nbf: Option<Offset>,
    claims_extra: Option<(String, Json)>,
}

#[derive(Arbitrary, Debug)]
pub enum Text {
    Good,
    Other(String),
    Number(i64),
}

#[derive(Arbitrary, Debug)]
pub enum Offset {
    Seconds(i16),
    Absolute(i64),
    Float(f64),
    Text(String),
}

#[derive(Arbitrary, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Number(i64),
    Text(String),
    List(Vec<String>),
}

fn json(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => json!(b),
        Json::Number(n) => json!(n),
        Json::Text(s) => json!(s),
        Json::List(items) => json!(items),
    }
}

fn text(value: &Text, good: &str) -> Value {
    match value {
        Text::Good => json!(good),
        Text::Other(s) => json!(s),
        Text::Number(n) => json!(n),
    }
}

fn time(offset: &Offset, now: i64) -> Value {
    match offset {
        Offset::Seconds(s) => json!(now + i64::from(*s)),
        Offset::Absolute(n) => json!(n),
        Offset::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        Offset::Text(s) => json!(s),
    }
}

fn shaped_token(shaped: &Shaped, now: i64) -> String {
    let algs = ["EdDSA", "none", "HS256", "RS256", "ES256", "eddsa", "PS512"];
    let mut header = Map::new();
    header.insert("alg".into(), json!(algs[shaped.alg as usize % algs.len()]));
    if let Some(kid) = &shaped.kid {
        header.insert("kid".into(), text(kid, KID));
    }
    if let Some(typ) = &shaped.typ {
        header.insert("typ".into(), json!(typ));
    }
    if let Some((key, value)) = &shaped.header_extra {
        header.insert(key.clone(), json(value));
    }
    let mut claims = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            claims.insert(name.to_owned(), value);
        }
    };
    put("iss", shaped.iss.as_ref().map(|v| text(v, ISSUER)));
    put("sub", shaped.sub.as_ref().map(|v| json!(v)));
    put("aud", shaped.aud.as_ref().map(|v| text(v, "https://api.dintero.com")));
    put("aid", shaped.aid.as_ref().map(|v| json!(v)));
    put("scope", shaped.scope.as_ref().map(|v| json!(v)));
    put("iat", shaped.iat.as_ref().map(|v| time(v, now)));
    put("exp", shaped.exp.as_ref().map(|v| time(v, now)));
    put("jti", shaped.jti.as_ref().map(|v| json!(v)));
    put("nbf", shaped.nbf.as_ref().map(|v| time(v, now)));
    if let Some((key, value)) = &shaped.claims_extra {
        claims.insert(key.clone(), json(value));
    }
    sign_raw(Value::Object(header).to_string().as_bytes(), Value::Object(claims).to_string().as_bytes())
}

fn check_accepted(token: &str, claims: &tokenvault::auth::Claims, checked_at: i64) {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("accepted a token that is not three segments: {token:?}");
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).expect("accepted a signature that is not base64url");
    let signature = Signature::from_slice(&signature).expect("accepted a signature of the wrong length");
    signing_key()
        .verifying_key()
        .verify(format!("{header}.{body}").as_bytes(), &signature)
        .expect("accepted a token not signed by the key");
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("header base64")).expect("header JSON");
    assert_eq!(header["alg"], "EdDSA", "accepted alg {}", header["alg"]);
    assert_eq!(claims.iss, ISSUER);
    assert!(claims.exp > checked_at, "accepted an expired token: exp {} <= {checked_at}", claims.exp);
    assert!(claims.iat <= checked_at + 6, "accepted a token issued at {} (now {checked_at})", claims.iat);
    if let Some(nbf) = claims.nbf {
        assert!(nbf <= checked_at + 6, "accepted a token not valid before {nbf} (now {checked_at})");
    }
    assert!(
        ["fuzz-client", "fuzz-other"].contains(&claims.sub.as_str()),
        "accepted a token of a client that does not exist: {:?}",
        claims.sub
    );
}

/// The target's body: one input, decoded from libFuzzer's bytes by `arbitrary`.
pub fn run(input: Input) {
    let fixture = fixture();
    let now = Timestamp::now().millis() / 1000;
    let token = match &input {
        Input::Raw(raw) => raw.clone(),
        Input::Segments { header, claims, signature } => format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        ),
        Input::SignedBytes { header, claims } => sign_raw(header, claims),
        Input::Shaped(shaped) => shaped_token(shaped, now),
        Input::Tampered { shaped, at, byte } => {
            let mut bytes = shaped_token(shaped, now).into_bytes();
            let at = *at as usize % bytes.len();
            bytes[at] = *byte;
            match String::from_utf8(bytes) {
                Ok(token) => token,
                Err(_) => return,
            }
        }
    };
    let first = runtime().block_on(fixture.keys.verify(&token));
    if let Ok(claims) = &first {
        check_accepted(&token, claims, now);
    }
    let second = runtime().block_on(fixture.keys.verify(&token));
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        // Only the clock may separate the two answers (an expiry in between).
        (Ok(claims), Err(_)) => assert!(claims.exp <= Timestamp::now().millis() / 1000 + 1),
        (Err(_), Ok(_)) => panic!("refused, then accepted: {token:?}"),
    }
}
