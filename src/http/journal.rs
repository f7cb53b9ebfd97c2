//! The journal layer: for every API request of a test account it keeps what was sent and
//! answered, and hands it to the [`JournalRecorder`] once the response body has gone out. Bodies
//! are copied as they stream through (the first [`BODY_CAPTURE_BYTES`] of each), never buffered
//! for the journal: the handlers' body limits and deadlines apply as without it. Nothing here
//! waits on the database.
//!
//! Which account an entry belongs to: the caller's, once a bearer token was verified (the
//! [`Caller`] extractor notes it in the request's [`JournalNote`]); for a request without a valid
//! token, the account its path names (`/v1/accounts/{aid}/…`). Production accounts (`P…`) are
//! never recorded. The journal's own operations (`…/sandbox/requests`) are not recorded either,
//! so that reading the journal (`tokenvault journal --follow` polls it) does not fill it.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::Extensions;
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::faults::account_in_path;
use super::AppState;
use crate::auth::Caller;
use crate::domain::journal::{Captured, RawExchange, BODY_CAPTURE_BYTES};
use crate::domain::{AccountId, Timestamp};
use crate::service::journal::JournalRecorder;

/// What the layers and handlers learn about a request that the journal keeps: who called, and
/// (from the fault layer, `http::faults`) why the request was made to fail on purpose. Put into
/// every journaled request's extensions.
#[derive(Clone, Default)]
pub struct JournalNote(Arc<Mutex<Note>>);

#[derive(Default)]
struct Note {
    caller: Option<(AccountId, String)>,
    fault: Option<String>,
}

impl JournalNote {
    fn lock(&self) -> std::sync::MutexGuard<'_, Note> {
        self.0.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Marks the request as made to fail on purpose (`what` says how), shown as the entry's
    /// `fault`.
    pub fn fault(&self, what: impl Into<String>) {
        self.lock().fault = Some(what.into());
    }
}

/// Notes the authenticated caller in the request's [`JournalNote`], if it has one.
pub fn note_caller(extensions: &Extensions, caller: &Caller) {
    if let Some(note) = extensions.get::<JournalNote>() {
        note.lock().caller = Some((caller.account.clone(), caller.client_id.clone()));
    }
}

/// The journal's own paths, never recorded.
fn is_journal_path(path: &str) -> bool {
    path.split('/').nth(4) == Some("sandbox") && path.split('/').nth(5) == Some("requests")
}

/// The middleware (see the module documentation).
pub async fn record(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some(recorder) = app.journal.clone() else { return next.run(request).await };
    let path = request.uri().path();
    if !path.starts_with("/v1/") || is_journal_path(path) {
        return next.run(request).await;
    }
    let path_account = account_in_path(path);
    if path_account.as_ref().is_some_and(|account| !account.is_test()) {
        return next.run(request).await;
    }
    if !recorder.admit() {
        return next.run(request).await;
    }
    let started = Instant::now();
    let received_at = Timestamp::now();
    let note = JournalNote::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(note.clone());
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (request_id, idempotency_key) = (header("request-id"), header("idempotency-key"));
    let (method, path, query) =
        (parts.method.to_string(), parts.uri.path().to_owned(), parts.uri.query().map(str::to_owned));
    let request_headers = parts
        .headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let request_body = Arc::new(Mutex::new(Captured::default()));
    let body = Body::new(RequestTee { inner: body, capture: request_body.clone() });
    let response = next.run(Request::from_parts(parts, body)).await;
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);

    // Who the request was for is known once its handler (or a layer) has answered.
    let (caller, fault) = {
        let mut note = note.lock();
        (note.caller.take(), note.fault.take())
    };
    let (account, client_id) = match (caller, path_account) {
        (Some((account, client_id)), _) => (account, Some(client_id)),
        (None, Some(account)) => (account, None),
        (None, None) => return response,
    };
    if !account.is_test() {
        return response;
    }
    // The account's clock now, while the request is still in hand (usually this instance's
    // cached copy; a clock that cannot be read counts as real time).
    let clock_offset_ms = app.vault.clock_offset(&account).await.unwrap_or_default();
    let exchange = RawExchange {
        account,
        received_at,
        clock_offset_ms,
        method,
        path,
        query,
        status: response.status().as_u16(),
        latency_ms,
        request_id,
        client_id,
        idempotency_key,
        request_headers,
        request_body: Captured::default(),
        response_body: Captured::default(),
        fault,
    };
    let pending = Pending { recorder, exchange, request_body };
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(ResponseTee { inner: body, capture: Captured::default(), pending: Some(pending) }),
    )
}

/// Appends `data` to `capture`, up to [`BODY_CAPTURE_BYTES`].
fn capture(capture: &mut Captured, data: &Bytes) {
    capture.total += data.len();
    let room = BODY_CAPTURE_BYTES.saturating_sub(capture.bytes.len());
    capture.bytes.extend_from_slice(&data[..room.min(data.len())]);
}

/// A request to record once its response body is done: everything but the bodies, and where
/// the request body's copy is.
struct Pending {
    recorder: Arc<JournalRecorder>,
    exchange: RawExchange,
    request_body: Arc<Mutex<Captured>>,
}

impl Pending {
    fn finish(self, response_body: Captured) {
        let request_body = std::mem::take(&mut *self.request_body.lock().unwrap_or_else(|p| p.into_inner()));
        self.recorder.record(RawExchange { request_body, response_body, ..self.exchange });
    }
}

/// The request body, copied into the journal's capture as the handler reads it.
struct RequestTee {
    inner: Body,
    capture: Arc<Mutex<Captured>>,
}

impl HttpBody for RequestTee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                capture(&mut self.capture.lock().unwrap_or_else(|p| p.into_inner()), data);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body, copied as it goes out; the entry is handed over when the body is done
/// (or dropped: a client that went away).
struct ResponseTee {
    inner: Body,
    capture: Captured,
    pending: Option<Pending>,
}

impl HttpBody for ResponseTee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    capture(&mut this.capture, data);
                }
            }
            Poll::Ready(None) => this.finish(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl ResponseTee {
    fn finish(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.finish(std::mem::take(&mut self.capture));
        }
    }
}

impl Drop for ResponseTee {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert!(is_journal_path("/v1/accounts/T00000001/sandbox/requests"));
        assert!(is_journal_path("/v1/accounts/T00000001/sandbox/requests/abc"));
        assert!(!is_journal_path("/v1/accounts/T00000001/sandbox/reset"));
        assert_eq!(
            account_in_path("/v1/accounts/T00000001/customers").map(|a| a.to_string()),
            Some("T00000001".into())
        );
        assert_eq!(account_in_path("/v1/card-tokens"), None);
        assert_eq!(account_in_path("/v1/accounts/nonsense/customers"), None);
    }
}
