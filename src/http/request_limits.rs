//! Bounds on requests that get past the connection floor (`http::server`): how many run at once
//! (in all and per client address, so that one client cannot take every place), and how long a
//! client may take to send a body. `GET /health` is never shed, so that a load balancer does not
//! take a busy instance for a dead one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

use super::error::ApiError;
use super::metrics::{Metrics, Rejection};
use super::places::Places;
use super::server::peer_address;

/// What the request limits need: the places, the counters, and the body deadline.
#[derive(Clone)]
pub struct RequestLimits {
    /// Requests being answered at once, in all and per client address.
    pub in_flight: Arc<Places>,
    pub metrics: Arc<Metrics>,
    pub body_read_timeout: Duration,
}

/// Middleware, one for both bounds (each middleware layer costs a little on every request):
/// - sheds a request at once with 503 and `Retry-After: 1` when there is no place for it
///   (queued, it would wait behind the requests holding every place); `/health` always runs;
/// - the whole request body must arrive within `body_read_timeout` of the request head, however
///   it trickles in; beyond, reading it fails with [`BodyReadTimeout`] (408). The deadline runs
///   from the head whether or not the request gets a place.
pub async fn limit_request(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let request = if request.body().is_end_stream() {
        // No body to wait for (most GETs): nothing to bound.
        request
    } else {
        let deadline = tokio::time::Instant::now() + limits.body_read_timeout;
        request.map(|body| Body::new(DeadlineBody { body, deadline, timer: None }))
    };
    if request.uri().path() == "/health" {
        return next.run(request).await;
    }
    let Ok(_place) = limits.in_flight.enter(peer_address(&request).map(|peer| peer.ip())) else {
        limits.metrics.reject(Rejection::Overloaded);
        return ApiError::Overloaded.into_response();
    };
    next.run(request).await
}

/// The error a body read fails with once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyReadTimeout;

/// Whether a body read failed because of [`limit_request`]'s deadline (the error comes
/// wrapped in axum's rejections).
pub fn is_body_read_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<BodyReadTimeout>() {
            return true;
        }
        current = error.source();
    }
    false
}

/// A body that fails once `deadline` has passed; the timer is armed only when the body first
/// has to be waited for (a body that has already arrived whole costs no timer).
struct DeadlineBody {
    body: Body,
    deadline: tokio::time::Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyReadTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body fed through a channel, a byte at a time.
    struct Trickle(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|bytes| bytes.map(|bytes| Ok(Frame::data(bytes))))
        }
    }

    #[tokio::test]
    async fn a_trickling_body_fails_at_its_deadline() {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        let body = Body::new(DeadlineBody { body: Body::new(Trickle(receiver)), deadline, timer: None });
        // A byte every 20 ms: each arrives well within any per-read timeout, the whole never does.
        let feeder = tokio::spawn(async move {
            while sender.send(Bytes::from_static(b"x")).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let started = std::time::Instant::now();
        let error = axum::body::to_bytes(body, 1024).await.unwrap_err();
        assert!(is_body_read_timeout(&error), "{error:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(200) && waited < Duration::from_millis(1000), "{waited:?}");
        feeder.abort();
    }
}
