//! The request journal of test accounts: what an integration really sent and got back, kept so
//! that a team can see its own calls (WireMock's request journal, for Dintero's APIs). Secrets
//! never reach it: [`redact_body`] and [`redact_headers`] run before anything is stored.

use serde_json::{json, Value};

use super::validation::FieldError;
use super::{AccountId, Timestamp};

/// What stands in a journal entry where a secret was.
pub const REDACTED: &str = "[redacted]";

/// What stands for a session completion's request body (a test card's number and CVC).
pub const CARD_DATA_NOT_KEPT: &str = "[not kept: card data]";

/// Bytes of a request or response body kept per entry; a longer body is kept cut (and marked
/// so), never buffered whole for the journal.
pub const BODY_CAPTURE_BYTES: usize = 64 * 1024;

/// JSON keys whose values are secrets wherever they appear in a body: card `token`s, client
/// secrets, access tokens, webhook secrets, and the card number and CVC a session completion
/// carries (never stored anywhere).
const SECRET_KEYS: &[&str] = &[
    "token",
    "client_secret",
    "secret",
    "access_token",
    "refresh_token",
    "password",
    "signature",
    "card_number",
    "number",
    "cvc",
    "cvv",
];

/// Request headers whose values are secrets (credentials, cookies).
const SECRET_HEADERS: &[&str] = &["authorization", "proxy-authorization", "cookie", "x-api-key"];

/// Keys of customer token values (`{"type", "value"}` pairs, the `token_value` filter): personal
/// data that `seal_token_values` keeps out of the database in clear, so the journal never holds
/// them either.
fn is_token_value_key(key: &str) -> bool {
    key.eq_ignore_ascii_case("value") || key.eq_ignore_ascii_case("token_value")
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.contains(&key.as_str()) || key.ends_with("_secret") || key.ends_with("-secret")
}

/// One recorded request of a test account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// The entry's own id (a request's `request-id` header may be reused by a client).
    pub id: String,
    pub account: AccountId,
    /// When the request arrived, in the account's time (its `sandbox/clock`).
    pub recorded_at: Timestamp,
    /// When the request arrived, in real time: what the age bound is measured on.
    pub received_at: Timestamp,
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`; `None` when there was none.
    pub query: Option<String>,
    pub status: u16,
    pub latency_ms: u64,
    pub request_id: Option<String>,
    pub client_id: Option<String>,
    pub idempotency_key: Option<String>,
    /// The request headers as a JSON object (lower-case names), credentials redacted.
    pub request_headers: Option<String>,
    /// The request body as text, secrets redacted; `None` when there was none.
    pub request_body: Option<String>,
    pub response_body: Option<String>,
    /// Why the request was made to fail on purpose (a sandbox fault), when it was.
    pub fault: Option<String>,
}

impl JournalEntry {
    /// The entry as the API and `tokenvault journal` show it: bodies that are JSON as JSON,
    /// other bodies as text, `null` where there was none.
    pub fn to_json(&self) -> Value {
        let body = |text: &Option<String>| match text {
            None => Value::Null,
            Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone())),
        };
        json!({
            "id": self.id,
            "account_id": self.account.as_str(),
            "recorded_at": self.recorded_at.to_rfc3339_millis(),
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "status": self.status,
            "latency_ms": self.latency_ms,
            "request_id": self.request_id,
            "client_id": self.client_id,
            "idempotency_key": self.idempotency_key,
            "request": {"headers": body(&self.request_headers), "body": body(&self.request_body)},
            "response": {"body": body(&self.response_body)},
            "fault": self.fault,
        })
    }

    /// One line for a person reading a terminal: time, method, path and query, status,
    /// latency, client.
    pub fn to_line(&self) -> String {
        let query = self.query.as_deref().map(|q| format!("?{q}")).unwrap_or_default();
        let fault = self.fault.as_deref().map(|f| format!("  fault: {f}")).unwrap_or_default();
        format!(
            "{}  {:<6} {}{}  {}  {} ms  {}{}",
            self.recorded_at.to_rfc3339_millis(),
            self.method,
            self.path,
            query,
            self.status,
            self.latency_ms,
            self.client_id.as_deref().unwrap_or("-"),
            fault
        )
    }
}

/// A request as the HTTP layer saw it, before redaction: what it hands to the journal.
#[derive(Debug, Clone)]
pub struct RawExchange {
    pub account: AccountId,
    /// When the request arrived, in real time.
    pub received_at: Timestamp,
    /// The account's clock then: its time minus real time (see
    /// [`AccountClock`](super::clock::AccountClock)).
    pub clock_offset_ms: i64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_ms: u64,
    pub request_id: Option<String>,
    pub client_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Captured,
    pub response_body: Captured,
    pub fault: Option<String>,
}

/// The first [`BODY_CAPTURE_BYTES`] of a body and its whole length.
#[derive(Debug, Clone, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    pub total: usize,
}

impl RawExchange {
    /// The entry to store: secrets redacted, bodies as text, the time in the account's.
    pub fn into_entry(self, id: String) -> JournalEntry {
        // A session completion carries a test card's number and CVC, which are never stored.
        let request_body = if self.path.starts_with("/v1/sessions/") && self.path.ends_with("/complete") {
            (self.request_body.total > 0).then(|| CARD_DATA_NOT_KEPT.to_owned())
        } else {
            redact_body(&self.request_body)
        };
        JournalEntry {
            id,
            account: self.account,
            recorded_at: super::clock::AccountClock::at(self.clock_offset_ms, self.received_at),
            received_at: self.received_at,
            method: self.method,
            path: self.path,
            query: self.query.map(|query| redact_query(&query)),
            status: self.status,
            latency_ms: self.latency_ms,
            request_id: self.request_id,
            client_id: self.client_id,
            idempotency_key: self.idempotency_key,
            request_headers: Some(redact_headers(&self.request_headers)),
            // A session completion carries a test card's number and CVC, which are never stored.
            request_body,
            response_body: redact_body(&self.response_body),
            fault: self.fault,
        }
    }
}

/// The headers as a JSON object text, credential headers replaced by [`REDACTED`].
pub fn redact_headers(headers: &[(String, String)]) -> String {
    let mut object = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let value = if SECRET_HEADERS.contains(&name.as_str()) || is_secret_key(&name) {
            REDACTED.to_owned()
        } else {
            value.clone()
        };
        object.insert(name, Value::String(value));
    }
    Value::Object(object).to_string()
}

/// A query string with the values of secret keys (`?client_secret=…`) replaced.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if is_secret_key(&form_key(key)) || is_token_value_key(&form_key(key)) => {
                format!("{key}={REDACTED}")
            }
            _ => part.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn form_key(raw: &str) -> String {
    form_urlencoded::parse(raw.as_bytes()).map(|(key, _)| key.into_owned()).next().unwrap_or_default()
}

/// A body as stored: JSON with every secret key's value replaced; a form body likewise; any
/// other text (not JSON, or cut at [`BODY_CAPTURE_BYTES`]) with the values that follow a
/// secret key's name scrubbed, so that a malformed or cut body leaks nothing either. Bodies
/// that are not UTF-8 are described, not kept.
pub fn redact_body(body: &Captured) -> Option<String> {
    if body.total == 0 {
        return None;
    }
    let cut = body.total > body.bytes.len();
    if !cut && !may_hold_secret(&body.bytes) {
        if let Ok(text) = std::str::from_utf8(&body.bytes) {
            return Some(text.to_owned());
        }
    }
    if !cut {
        if let Ok(mut value) = serde_json::from_slice::<Value>(&body.bytes) {
            redact_value(&mut value);
            return Some(value.to_string());
        }
    }
    let Ok(text) = std::str::from_utf8(&body.bytes) else {
        return Some(format!("[{} bytes, not UTF-8 text]", body.total));
    };
    let mut scrubbed = if !cut && looks_like_form(text) { redact_query(text) } else { scrub_text(text) };
    if cut {
        scrubbed.push_str(&format!("… [cut: {} of {} bytes kept]", body.bytes.len(), body.total));
    }
    Some(scrubbed)
}

/// The endings every secret key has ([`SECRET_KEYS`], `…_secret`, token values).
const SECRET_KEY_ENDINGS: &[&[u8]] =
    &[b"token", b"secret", b"number", b"cvc", b"cvv", b"password", b"signature", b"value"];

/// Whether `bytes` may name a secret key: some `"` or `=` follows a secret key's ending (in any
/// case), or an escape could spell one. Bodies without one (most list answers) are kept as they
/// came, without being parsed and written again.
fn may_hold_secret(bytes: &[u8]) -> bool {
    if bytes.windows(2).any(|pair| pair == b"\\u") {
        return true;
    }
    bytes.iter().enumerate().any(|(at, byte)| {
        (*byte == b'"' || *byte == b'=')
            && SECRET_KEY_ENDINGS
                .iter()
                .any(|ending| at >= ending.len() && bytes[at - ending.len()..at].eq_ignore_ascii_case(ending))
    })
}

fn looks_like_form(text: &str) -> bool {
    !text.is_empty() && text.contains('=') && !text.contains(['{', '[', ' ', '\n', '"'])
}

fn redact_value(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let typed = map.contains_key("type");
            for (key, item) in map.iter_mut() {
                if (is_secret_key(key) || (typed && is_token_value_key(key))) && !item.is_null() {
                    *item = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(item);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        _ => {}
    }
}

/// Scrubs text that is not well-formed JSON: after every quoted secret key (`"token"`), up to the
/// next `,` `}` or `]` outside a string (or the end) is replaced.
fn scrub_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        let Some(len) = rest[start + 1..].find('"') else { break };
        let key = &rest[start + 1..start + 1 + len];
        let after_key = &rest[start + len + 2..];
        out.push_str(&rest[..start + len + 2]);
        let trimmed = after_key.trim_start();
        if (is_secret_key(key) || is_token_value_key(key)) && trimmed.starts_with(':') {
            out.push_str(&format!(": \"{REDACTED}\""));
            rest = skip_value(&trimmed[1..]);
        } else {
            rest = after_key;
        }
    }
    out.push_str(rest);
    out
}

/// What follows one JSON value (string or scalar, possibly unterminated).
fn skip_value(text: &str) -> &str {
    let text = text.trim_start();
    if let Some(inner) = text.strip_prefix('"') {
        let mut escaped = false;
        for (at, c) in inner.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return &inner[at + 1..],
                _ => escaped = false,
            }
        }
        return "";
    }
    match text.find([',', '}', ']']) {
        Some(at) => &text[at..],
        None => "",
    }
}

/// Which statuses a list keeps: one (`404`) or a class (`4xx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFilter {
    pub min: u16,
    pub max: u16,
}

impl StatusFilter {
    /// `404`, or `1xx` … `5xx` (case-insensitive).
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("status", "must be an HTTP status (100-599) or a class such as 5xx");
        let lower = raw.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            let class: u16 =
                class.parse().ok().filter(|c| (1..=5).contains(c) && class.len() == 1).ok_or_else(invalid)?;
            return Ok(Self { min: class * 100, max: class * 100 + 99 });
        }
        let status: u16 = raw.parse().ok().filter(|s| (100..=599).contains(s) && raw.len() == 3).ok_or_else(invalid)?;
        Ok(Self { min: status, max: status })
    }
}

/// The filters of the journal list; each left `None` keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalFilter {
    /// Upper-case HTTP method.
    pub method: Option<String>,
    pub path_prefix: Option<String>,
    pub status: Option<StatusFilter>,
    pub client_id: Option<String>,
    pub request_id: Option<String>,
    /// Entries recorded at or after this moment.
    pub since: Option<Timestamp>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured(text: &str) -> Captured {
        Captured { bytes: text.as_bytes().to_vec(), total: text.len() }
    }

    #[test]
    fn secrets_are_redacted_in_every_form() {
        let json = redact_body(&captured(r#"{"token":"psp-1","nested":[{"client_secret":"s"}],"card_brand":"visa"}"#));
        assert_eq!(
            json.as_deref(),
            Some(r#"{"token":"[redacted]","nested":[{"client_secret":"[redacted]"}],"card_brand":"visa"}"#)
        );
        let broken = redact_body(&captured(r#"{"token": "psp-2", "x": 1,"#)).unwrap();
        assert_eq!(broken, r#"{"token": "[redacted]", "x": 1,"#);
        let form = redact_body(&captured("grant_type=client_credentials&client_secret=s3")).unwrap();
        assert_eq!(form, "grant_type=client_credentials&client_secret=[redacted]");
        let mut cut = captured(r#"{"a":1,"token":"psp-3"#);
        cut.total = 1000;
        assert!(!redact_body(&cut).unwrap().contains("psp-3"));
        assert_eq!(redact_body(&Captured::default()), None);
        let plain = r#"[{"token_id":"t1","customer_id":"c1"}]"#;
        assert_eq!(redact_body(&captured(plain)).as_deref(), Some(plain));
        let values = redact_body(&captured(r#"[{"type":"sha1:email","value":"0c4d","metadata":{"value":1}}]"#));
        assert_eq!(values.as_deref(), Some(r#"[{"type":"sha1:email","value":"[redacted]","metadata":{"value":1}}]"#));
        assert_eq!(redact_query("token_type=a&token_value=b&limit=1"), "token_type=a&token_value=[redacted]&limit=1");
        let escaped = redact_body(&captured(r#"{"tok\u0065n":"psp-4"}"#)).unwrap();
        assert!(!escaped.contains("psp-4"), "{escaped}");
        let upper = redact_body(&captured(r#"{"Client_Secret":"s5"}"#)).unwrap();
        assert!(!upper.contains("s5"), "{upper}");
        let headers = redact_headers(&[("Authorization".into(), "Bearer x".into()), ("accept".into(), "*/*".into())]);
        assert_eq!(headers, r#"{"authorization":"[redacted]","accept":"*/*"}"#);
    }

    #[test]
    fn status_filters() {
        assert_eq!(StatusFilter::parse("5xx"), Ok(StatusFilter { min: 500, max: 599 }));
        assert_eq!(StatusFilter::parse("404"), Ok(StatusFilter { min: 404, max: 404 }));
        for bad in ["6xx", "0xx", "xx", "99", "600", "4044", "abc", ""] {
            assert!(StatusFilter::parse(bad).is_err(), "{bad}");
        }
    }
}
