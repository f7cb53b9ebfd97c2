//! Paging links: `next_page_target` builds the `link: <…>; rel="next"` target from the request's
//! URI and the last item's id (a client-chosen identifier, so any text). Invariants: the target
//! is a valid URI reference with the request's path, and reading its query back as the server
//! does (the `Query` extractor) gives `starting_after` = the last id, so following the link
//! always advances; every other parameter is kept.

use arbitrary::Arbitrary;
use axum::extract::FromRequestParts;
use axum::http::{Request, Uri};
use tokenvault::http::extract::Query;
use tokenvault::http::response::next_page_target;

use super::runtime;

#[derive(Arbitrary, Debug)]
pub struct Input {
    query: String,
    last_id: String,
}

fn query_of(uri: Uri) -> Query {
    let (mut parts, ()) = Request::builder().uri(uri).body(()).expect("request").into_parts();
    runtime().block_on(Query::from_request_parts(&mut parts, &())).unwrap_or_else(|never| match never {})
}

/// The target's body: one input, decoded from libFuzzer's bytes by `arbitrary`.
pub fn run(input: Input) {
    let Ok(uri) = Uri::try_from(format!("/v1/card-tokens?{}", input.query)) else { return };
    let target = next_page_target(&uri, &input.last_id);
    let next: Uri = target.parse().unwrap_or_else(|e| panic!("link target {target:?} is not a URI: {e}"));
    assert_eq!(next.path(), uri.path());
    let query = query_of(next);
    assert_eq!(
        query.get("starting_after"),
        Some(input.last_id.as_str()),
        "following {target:?} (from {uri}) would not start after {:?}",
        input.last_id
    );
    // Every other parameter survives, in order.
    let before = query_of(uri.clone());
    for name in ["limit", "status", "customer_id", "total", "type"] {
        assert_eq!(before.get(name), query.get(name), "{name} changed in {target:?}");
    }
}
