//! Whole HTTP requests through the real router (every layer, every handler) over the fuzz store:
//! a method, one of the documented paths with fuzzer-chosen segments (or a raw path), a raw
//! query string, an Authorization header (a valid token, another account's, a garbled one,
//! client credentials, none), a content type and a body (raw bytes or JSON built from the API's
//! field names). This reaches the parsers that live in handlers (status and delete bodies, token
//! event bodies, the token endpoint, path identifiers). Invariants: no 5xx; every error is
//! Dintero's error body (`{"error": {"code", "message"}}`) in `application/json; charset=utf-8`.

use std::sync::OnceLock;

use super::{fixture, router, runtime, ACCOUNT, OTHER_ACCOUNT, SCOPES};
use arbitrary::Arbitrary;
use axum::body::Body;
use axum::http::{header, Method, Request};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
use serde_json::{Map, Number, Value};
use tower::ServiceExt;

/// Path segments keep `%` so that the fuzzer can write its own (possibly broken) escapes.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~').remove(b'%');
/// Query strings keep their structure (`&`, `=`, `%`, `[]`, `+`).
const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'#').add(b'"').add(b'<').add(b'>').add(b'`').add(b'{').add(b'}');

const TEMPLATES: &[&str] = &[
    "/health",
    "/.well-known/jwks.json",
    "/metrics",
    "/v1/accounts/{a}/auth/token",
    "/v1/accounts/{a}/customers/users",
    "/v1/accounts/{a}/customers/users/{1}",
    "/v1/accounts/{a}/customers/users/{1}/tokens",
    "/v1/accounts/{a}/customers/users/{1}/tokens/{2}",
    "/v1/accounts/{a}/customers/tokens/events",
    "/v1/card-tokens",
    "/v1/card-tokens/{1}",
    "/v1/card-tokens/{1}/status",
    "/v1/accounts/{a}/payments/card-tokens",
    "/v1/accounts/{a}/payments/card-tokens/{1}",
    "/v1/accounts/{a}/payments/card-tokens/{1}/status",
    "/v1/accounts/{a}/hooks/subscriptions",
    "/v1/accounts/{a}/hooks/subscriptions/{1}",
    "/openapi.json",
];

const METHODS: &[Method] =
    &[Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD, Method::OPTIONS];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    None,
    Some("application/json; charset=utf-8"),
    Some("text/plain"),
    Some("application/merge-patch+json"),
    Some("APPLICATION/JSON"),
    Some("application/x-www-form-urlencoded"),
];

/// Field names and values of the API, so that generated JSON gets past the first checks.
const WORDS: &[&str] = &[
    "customer_id",
    "email",
    "phone_number",
    "type",
    "value",
    "token_id",
    "event",
    "status",
    "metadata",
    "expires_at",
    "card_brand",
    "payment_product_type",
    "token",
    "masked_pan",
    "pan_expiry_date",
    "id",
    "account_id",
    "links",
    "relationship_id",
    "transaction_id",
    "token_expiry_date",
    "external_token_references",
    "config",
    "url",
    "content_type",
    "secret",
    "events",
    "reason",
    "requestor",
    "grant_type",
    "audience",
    "visa",
    "mastercard",
    "ACTIVE",
    "SUSPENDED",
    "DELETED",
    "INACTIVE",
    "sha1:email",
    "payment_token",
    "dintero_psp.creditcard",
    "09/2030",
    "476173******0416",
    "https://example.com/hook",
    "application/json",
    "checkout_token_add",
    "checkout_token_update",
    "checkout_token_delete",
    "MERCHANT",
    "CARDHOLDER",
    "client_credentials",
    "https://api.dintero.com/v1/accounts/T12345678",
    "c1",
    "t1",
    "card-1",
    "2030-01-01T00:00:00Z",
    "customer",
    "company",
    "ada@example.com",
    "+4799999999",
    "T12345678",
    "token_event",
    "delete_token_events",
    "a1b79ef1a62d94ffa86b3f3d846df0ee3993af92",
    "name",
];

/// Ids the fuzzer reuses, so that it finds what it created.
const IDS: &[&str] = &["c1", "c2", "t1", "card-1", "00000000-0000-0000-0000-000000000000"];

#[derive(Arbitrary, Debug)]
pub struct Input {
    method: u8,
    path: PathChoice,
    query: String,
    auth: Auth,
    content_type: u8,
    body: BodyChoice,
}

#[derive(Arbitrary, Debug)]
pub enum PathChoice {
    Template { index: u8, account: Segment, first: Segment, second: Segment },
    Raw(String),
}

#[derive(Arbitrary, Debug)]
pub enum Segment {
    Account,
    OtherAccount,
    Id(u8),
    Text(String),
}

#[derive(Arbitrary, Debug)]
pub enum Auth {
    Valid,
    OtherAccount,
    Missing,
    Raw(String),
    Bearer(String),
    Client { secret: Option<String> },
    Basic(String, String),
}

#[derive(Arbitrary, Debug)]
pub enum BodyChoice {
    Empty,
    Raw(Vec<u8>),
    Json(Json),
}

#[derive(Arbitrary, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Word(u8),
    Text(String),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

#[derive(Arbitrary, Debug)]
pub enum Key {
    Word(u8),
    Text(String),
}

fn word(index: u8) -> &'static str {
    WORDS[index as usize % WORDS.len()]
}

fn json(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Int(n) => Value::from(*n),
        Json::Float(f) => Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        Json::Word(w) => Value::from(word(*w)),
        Json::Text(s) => Value::from(s.as_str()),
        Json::Array(items) => Value::Array(items.iter().map(json).collect()),
        Json::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Key::Word(w) => word(*w).to_owned(),
                        Key::Text(s) => s.clone(),
                    };
                    (key, json(value))
                })
                .collect::<Map<_, _>>(),
        ),
    }
}

fn segment(segment: &Segment) -> String {
    match segment {
        Segment::Account => ACCOUNT.to_owned(),
        Segment::OtherAccount => OTHER_ACCOUNT.to_owned(),
        Segment::Id(i) => IDS[*i as usize % IDS.len()].to_owned(),
        Segment::Text(text) => utf8_percent_encode(text, SEGMENT).to_string(),
    }
}

/// A client with known credentials, for the token endpoint.
fn client() -> &'static (String, String) {
    static CLIENT: OnceLock<(String, String)> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let fixture = fixture();
        let scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
        let credentials = runtime()
            .block_on(tokenvault::auth::clients::create_client(fixture.store.as_ref(), &fixture.account, scopes))
            .expect("client");
        (credentials.client_id, credentials.client_secret)
    })
}

/// The target's body: one input, decoded from libFuzzer's bytes by `arbitrary`.
pub fn run(input: Input) {
    let fixture = fixture();
    let (client_id, client_secret) = client();
    let method = METHODS[input.method as usize % METHODS.len()].clone();
    let path = match &input.path {
        PathChoice::Template { index, account, first, second } => TEMPLATES[*index as usize % TEMPLATES.len()]
            .replace("{a}", &segment(account))
            .replace("{1}", &segment(first))
            .replace("{2}", &segment(second)),
        PathChoice::Raw(raw) => raw.clone(),
    };
    let query = utf8_percent_encode(&input.query, QUERY).to_string();
    let uri = if query.is_empty() { path } else { format!("{path}?{query}") };
    let mut request = Request::builder().method(method.clone()).uri(uri.as_str());
    let authorization = match &input.auth {
        Auth::Valid => Some(format!("Bearer {}", fixture.token)),
        Auth::OtherAccount => Some(format!("Bearer {}", fixture.other_token)),
        Auth::Missing => None,
        Auth::Raw(raw) => Some(raw.clone()),
        Auth::Bearer(token) => Some(format!("Bearer {token}")),
        Auth::Client { secret } => Some(format!(
            "Basic {}",
            STANDARD.encode(format!("{client_id}:{}", secret.as_deref().unwrap_or(client_secret)))
        )),
        Auth::Basic(id, secret) => Some(format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))),
    };
    if let Some(authorization) = authorization {
        request = request.header(header::AUTHORIZATION, authorization);
    }
    if let Some(content_type) = CONTENT_TYPES[input.content_type as usize % CONTENT_TYPES.len()] {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let body = match &input.body {
        BodyChoice::Empty => Vec::new(),
        BodyChoice::Raw(bytes) => bytes.clone(),
        BodyChoice::Json(value) => json(value).to_string().into_bytes(),
    };
    // Requests the HTTP layer would not let through (a bad URI or header) never reach the router.
    let Ok(request) = request.body(Body::from(body)) else { return };

    runtime().block_on(async {
        let response = router().oneshot(request).await.expect("infallible");
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        assert!(
            status.as_u16() < 500,
            "{method} {uri} ({:?}) answered {status}: {}",
            input.auth,
            String::from_utf8_lossy(&bytes)
        );
        if status.is_client_error() && method != Method::HEAD {
            assert_eq!(content_type.as_deref(), Some("application/json; charset=utf-8"), "{method} {uri} {status}");
            let body: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("{method} {uri} {status}: error body is not JSON ({e})"));
            assert!(body["error"]["code"].is_string(), "{method} {uri} {status}: {body}");
            assert!(body["error"]["message"].is_string(), "{method} {uri} {status}: {body}");
        }
    });
}
