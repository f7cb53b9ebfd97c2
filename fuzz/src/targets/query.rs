//! Query strings: the `Query` extractor (ordered pairs, repeated keys, `name[]` arrays, comma
//! lists) and every accessor the handlers use, with the paging parameters. Invariants: a limit
//! that passes is within 1..=100, the error list is empty exactly when nothing was refused, and
//! `since_datetime` round-trips through RFC 3339 (to the second: rendered times have no fraction).

use axum::extract::FromRequestParts;
use axum::http::{Request, Uri};
use tokenvault::domain::paging::MAX_LIMIT;
use tokenvault::domain::{PageRequest, Timestamp, ValidationError};
use tokenvault::http::extract::Query;

use super::runtime;

const TEXT_PARAMS: &[&str] = &[
    "customer_id",
    "email",
    "phone_number",
    "relationship_id",
    "since_datetime",
    "token_value",
    "type",
    "starting_after",
];
const BOOL_PARAMS: &[&str] = &["delete_token_events", "delete_tokens", "include_deleted", "total"];

/// The target's body: one input, as libFuzzer hands it over.
pub fn run(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(uri) = Uri::try_from(format!("/v1/card-tokens?{raw}")) else { return };
    let (mut parts, ()) = Request::builder().uri(uri).body(()).expect("request").into_parts();
    let query = runtime().block_on(Query::from_request_parts(&mut parts, &())).unwrap_or_else(|never| match never {});

    let mut errors = ValidationError::default();
    let page = query.page(&mut errors);
    let limit_raw = query.get("limit");
    match PageRequest::parse_limit(limit_raw) {
        Ok(limit) => {
            assert!((1..=MAX_LIMIT).contains(&limit), "limit {limit} accepted from {limit_raw:?}");
            assert_eq!(page.limit, limit);
        }
        Err(_) => assert!(!errors.errors.is_empty(), "a refused limit left no error"),
    }
    if let Some(cursor) = &page.starting_after {
        assert!(!cursor.is_empty());
    }
    for name in BOOL_PARAMS {
        let mut own = ValidationError::default();
        let value = query.bool(&mut own, name, false);
        match query.get(name) {
            Some("true") => assert!(value && own.errors.is_empty()),
            Some("false") | None => assert!(!value && own.errors.is_empty()),
            Some(_) => assert_eq!(own.errors.len(), 1),
        }
    }
    for name in TEXT_PARAMS {
        let mut own = ValidationError::default();
        if let Some(text) = query.text(&mut own, name) {
            assert!(!text.is_empty());
            if *name == "since_datetime" {
                // Rendered timestamps have whole seconds (Dintero's format); the filter keeps
                // milliseconds, so the round trip holds to the second.
                if let Some(at) = Timestamp::parse_rfc3339(&text) {
                    let again = Timestamp::parse_rfc3339(&at.to_rfc3339());
                    let second = Timestamp::from_millis(at.millis().div_euclid(1000) * 1000);
                    assert_eq!(again, Some(second), "{text:?} does not round-trip");
                }
            }
        }
    }
    for status in query.all("status") {
        assert!(!status.is_empty() && !status.contains(','));
        let _ = status.parse::<tokenvault::domain::card_token::CardTokenStatus>();
    }
}
