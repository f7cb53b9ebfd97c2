//! Successful responses: JSON with Dintero's content type, and the paging headers of lists.

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use crate::domain::Page;

/// RFC 3986 unreserved characters stay as they are, so UUID cursors read naturally.
const CURSOR: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";
pub static PAGING_TOKEN: HeaderName = HeaderName::from_static("paging-token");
pub static TOTAL_COUNT: HeaderName = HeaderName::from_static("total-count");

/// Serialises `body` with `content-type: application/json; charset=utf-8`.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
            response
        }
        Err(error) => {
            tracing::error!(%error, "response serialisation failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A list as a bare JSON array, with `paging-token` and `link: <…>; rel="next"` when more items
/// follow and `total-count` when it was asked for.
pub fn list<T, U: Serialize>(
    page: Page<T>,
    uri: &Uri,
    id_of: impl Fn(&T) -> String,
    render: impl FnMut(T) -> U,
) -> Response {
    let next = page.has_more.then(|| page.items.last().map(&id_of)).flatten();
    let total = page.total;
    let items: Vec<U> = page.items.into_iter().map(render).collect();
    let mut response = json(StatusCode::OK, &items);
    let headers = response.headers_mut();
    if let Some(last_id) = next {
        if let Ok(value) = HeaderValue::from_str(&last_id) {
            headers.insert(PAGING_TOKEN.clone(), value);
        }
        if let Ok(value) = HeaderValue::from_str(&format!("<{}>; rel=\"next\"", next_page_target(uri, &last_id))) {
            headers.insert(header::LINK, value);
        }
    }
    if let Some(total) = total {
        headers.insert(TOTAL_COUNT.clone(), HeaderValue::from(total));
    }
    response
}

/// For a list read with `since_datetime`, which Dintero pages by moving `since_datetime` to the
/// last item's time (it cannot be combined with `starting_after`): `paging-token` goes, and the
/// `link` leads to the same query from `next_since` on, or goes too when there is none.
pub fn page_by_since(response: &mut Response, uri: &Uri, next_since: Option<String>) {
    let headers = response.headers_mut();
    headers.remove(&PAGING_TOKEN);
    let had_next = headers.remove(header::LINK).is_some();
    let Some(since) = next_since.filter(|_| had_next) else { return };
    let value = utf8_percent_encode(&since, CURSOR).to_string();
    let mut parts: Vec<&str> = query_parts(uri)
        .filter(|(key, _)| !matches!(key.as_str(), "since_datetime" | "starting_after" | "starting_after[]"))
        .map(|(_, part)| part)
        .collect();
    let since_part = format!("since_datetime={value}");
    parts.push(&since_part);
    if let Ok(value) = HeaderValue::from_str(&format!("<{}?{}>; rel=\"next\"", uri.path(), parts.join("&"))) {
        headers.insert(header::LINK, value);
    }
}

/// The request's own path and query with `starting_after` set to `last_id`: replaced where it
/// stood, appended otherwise; every other parameter is kept byte for byte. Every spelling the
/// query extractor reads as the cursor (`starting_after[]`, percent-encoded keys) is replaced,
/// so that the link always leads past `last_id`.
pub fn next_page_target(uri: &Uri, last_id: &str) -> String {
    let cursor = utf8_percent_encode(last_id, CURSOR).to_string();
    let mut replaced = false;
    let mut parts: Vec<String> = Vec::new();
    for (key, part) in query_parts(uri) {
        if key == "starting_after" || key == "starting_after[]" {
            if !replaced {
                parts.push(format!("starting_after={cursor}"));
                replaced = true;
            }
        } else {
            parts.push(part.to_owned());
        }
    }
    if !replaced {
        parts.push(format!("starting_after={cursor}"));
    }
    format!("{}?{}", uri.path(), parts.join("&"))
}

/// The query's parts as given (`k=v`, byte for byte), each with its key as the query extractor
/// reads it (percent-decoded): what the next-page links keep or replace.
fn query_parts(uri: &Uri) -> impl Iterator<Item = (String, &str)> {
    uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()).map(|part| {
        let raw_key = part.split('=').next().unwrap_or("");
        (form_urlencoded::parse(raw_key.as_bytes()).map(|(key, _)| key).collect(), part)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_keeps_the_query() {
        let uri: Uri = "/v1/x?limit=2&type=sha1%3Aemail".parse().unwrap();
        assert_eq!(next_page_target(&uri, "abc"), "/v1/x?limit=2&type=sha1%3Aemail&starting_after=abc");
        let uri: Uri = "/v1/x?starting_after=old&limit=2".parse().unwrap();
        assert_eq!(next_page_target(&uri, "new id"), "/v1/x?starting_after=new%20id&limit=2");
        let uri: Uri = "/v1/x".parse().unwrap();
        assert_eq!(next_page_target(&uri, "a-1"), "/v1/x?starting_after=a-1");
    }

    /// Found by the `paging_link` fuzz target: a later `starting_after[]` (or an encoded key)
    /// was kept and, being the last value, won over the new cursor, so the link led to the
    /// same page again.
    #[test]
    fn next_link_replaces_every_spelling_of_the_cursor() {
        let uri: Uri = "/v1/x?starting_after=a&limit=1&starting_after[]=b&starting%5Fafter=c".parse().unwrap();
        assert_eq!(next_page_target(&uri, "new"), "/v1/x?starting_after=new&limit=1");
    }
}
