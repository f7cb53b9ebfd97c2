//! The connection floor under the router: what no route can see. It bounds the connections a
//! server holds (in all, and per client address), the time a client may take to send a request
//! head or to stay silent, and gives the refusals hyper's HTTP/1.1 parser makes on its own (400,
//! 414, 431) Dintero's error body, so that every 4xx and 5xx the server sends has it.
//!
//! Only HTTP/1.1 is served: Dintero's APIs are HTTP/1.1 over TLS terminated in front of the
//! server, and every bound here is written for it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::StatusCode;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use super::error::error_body;
use super::faults::DropConnection;
use super::metrics::Metrics;
use super::places::Places;

/// The bounds on connections, with the defaults `tokenvault serve` starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a whole request head once the server waits for one: on a
    /// new connection and between the requests of a kept-alive one (so it is also how long an
    /// idle kept-alive connection stays open).
    pub header_read_timeout: Duration,
    /// How long a connection may move no byte in either direction (a client that stops reading
    /// its response, or goes silent inside a body), beyond which it is closed.
    pub idle_timeout: Duration,
    /// Connections held at once; beyond, new ones are answered 503 and closed.
    pub max_connections: usize,
    /// Connections held at once from one client address, so one address cannot take them all.
    pub max_connections_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
            max_connections_per_address: 128,
        }
    }
}

/// Request heads (request line and headers) larger than this are refused with 431: well above
/// any real client's, small enough that a thousand slow heads cost little memory.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests finish and
/// returns once every connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let admission = Places::new(limits.max_connections, limits.max_connections_per_address);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(MAX_HEAD_BYTES);
    let (stop, stopping) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors (or a connection reset before it was accepted):
                    // pause briefly instead of spinning; connections that end free descriptors.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ticket = match admission.enter(Some(peer.ip())) {
            Ok(ticket) => ticket,
            Err(full) => {
                metrics.refuse_connection(full);
                refuse(&stream);
                continue;
            }
        };
        // Answers are written whole at once: nothing gains from Nagle's delay.
        let _ = stream.set_nodelay(true);
        metrics.open_connection();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let answer = router.clone().oneshot(request);
            async move {
                let response = match answer.await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                // A fault that drops the connection (`http::faults`): a service error makes hyper
                // close the connection without writing anything.
                if response.extensions().get::<DropConnection>().is_some() {
                    return Err(io::Error::new(io::ErrorKind::ConnectionAborted, "dropped by a fault on demand"));
                }
                Ok(response)
            }
        });
        let connection = http.serve_connection(TokioIo::new(ConnectionIo::new(stream, limits.idle_timeout)), service);
        let mut stopping = stopping.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ticket = ticket;
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => log_connection_end(served),
                _ = stopping.changed() => {
                    connection.as_mut().graceful_shutdown();
                    log_connection_end(connection.await);
                }
            }
            metrics.close_connection();
        });
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(());
    // Every connection task holds a receiver: the channel closes when the last one ends.
    stop.closed().await;
    Ok(())
}

fn log_connection_end(served: Result<(), hyper::Error>) {
    if let Err(error) = served {
        // Timeouts and clients that go away are routine; they are worth a line when debugging.
        tracing::debug!(%error, "connection ended");
    }
}

/// Answers a connection beyond the limits with 503 and closes it, without waiting on the client:
/// one non-blocking write into the empty send buffer of a fresh socket.
fn refuse(stream: &TcpStream) {
    let body = error_body(StatusCode::SERVICE_UNAVAILABLE, "too many connections; retry shortly");
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// A client connection as hyper sees it: closed after `idle_timeout` without progress, and with
/// hyper's own parser refusals rewritten into Dintero's error body.
struct ConnectionIo {
    stream: TcpStream,
    idle_timeout: Duration,
    last_progress: Instant,
    idle: Pin<Box<Sleep>>,
    /// A rewritten refusal still being sent, and how much of it is.
    rewritten: Option<(Vec<u8>, usize)>,
}

impl ConnectionIo {
    fn new(stream: TcpStream, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            stream,
            idle_timeout,
            last_progress: now,
            idle: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            rewritten: None,
        }
    }

    /// Called when the socket is not ready: an error once nothing moved for `idle_timeout`,
    /// otherwise a wake-up registered for when that could be. The timer is moved only when it
    /// fires early (progress was made since it was set), not on every read: one timer operation
    /// per idle period, not per request.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            match self.idle.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let deadline = self.last_progress + self.idle_timeout;
                    if Instant::now() >= deadline {
                        return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long"));
                    }
                    self.idle.as_mut().reset(deadline);
                }
            }
        }
    }

    /// Writes with `write` once a rewritten refusal is out, noting progress and idleness.
    fn poll_forward(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_rewritten(cx))?;
        match write(Pin::new(&mut self.stream), cx) {
            Poll::Ready(result) => {
                if matches!(result, Ok(n) if n > 0) {
                    self.last_progress = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.check_idle(cx).map(Err),
        }
    }

    /// Sends what is left of a rewritten refusal (ready once nothing is left).
    fn poll_rewritten(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, sent)) = &mut self.rewritten {
            if *sent == bytes.len() {
                self.rewritten = None;
                break;
            }
            match Pin::new(&mut self.stream).poll_write(cx, &bytes[*sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    *sent += n;
                    self.last_progress = Instant::now();
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => return self.check_idle(cx).map(Err),
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for ConnectionIo {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.last_progress = Instant::now();
                }
                Poll::Ready(result)
            }
            Poll::Pending => this.check_idle(cx).map(Err),
        }
    }
}

impl AsyncWrite for ConnectionIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_rewritten(cx))?;
        if let Some(rewritten) = rewrite_parser_refusal(buf) {
            this.rewritten = Some((rewritten, 0));
            if let Poll::Ready(Err(error)) = this.poll_rewritten(cx) {
                return Poll::Ready(Err(error));
            }
            // hyper's bytes are taken; the rest of ours goes out on the next flush.
            return Poll::Ready(Ok(buf.len()));
        }
        this.poll_forward(cx, |stream, cx| stream.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // A parser refusal is a head alone: one buffer, handled by `poll_write`.
        let mut filled = bufs.iter().filter(|buf| !buf.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next()) {
            return self.poll_write(cx, only);
        }
        self.poll_forward(cx, |stream, cx| stream.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_rewritten(cx))?;
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_rewritten(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

/// hyper answers a request it cannot parse by itself, with a head and no body
/// (`HTTP/1.1 431 Request Header Fields Too Large`, `content-length: 0`), then closes the
/// connection. Such a write is recognised by that exact form, which no route's answer has (every
/// route's error carries a JSON body), and becomes the same head with Dintero's error body.
fn rewrite_parser_refusal(bytes: &[u8]) -> Option<Vec<u8>> {
    let (status, message) = [
        (StatusCode::BAD_REQUEST, "the request is not valid HTTP/1.1"),
        (StatusCode::URI_TOO_LONG, "the request URI is too long"),
        (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "the request head is too large"),
    ]
    .into_iter()
    .find(|(status, _)| bytes.starts_with(format!("HTTP/1.1 {} ", status.as_str()).as_bytes()))?;
    let head = std::str::from_utf8(bytes).ok()?.strip_suffix("\r\n\r\n")?;
    if head.contains("\r\n\r\n") || !head.split("\r\n").any(|line| line.eq_ignore_ascii_case("content-length: 0")) {
        return None;
    }
    let body = error_body(status, message);
    let mut rewritten = String::with_capacity(head.len() + body.len() + 96);
    for line in head.split("\r\n") {
        if line.eq_ignore_ascii_case("content-length: 0") {
            rewritten.push_str("content-type: application/json; charset=utf-8\r\n");
            rewritten.push_str(&format!("content-length: {}\r\n", body.len()));
        } else if !line.to_ascii_lowercase().starts_with("connection:") {
            rewritten.push_str(line);
            rewritten.push_str("\r\n");
        }
    }
    rewritten.push_str("connection: close\r\n\r\n");
    rewritten.push_str(&body);
    Some(rewritten.into_bytes())
}

/// The address a request came from, where the connection floor recorded it (requests sent to
/// the router directly, as some tests do, have none).
pub fn peer_address(request: &axum::http::Request<axum::body::Body>) -> Option<SocketAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parser_refusals_get_dintero_bodies() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 18:00:00 GMT\r\n\r\n";
        let rewritten = String::from_utf8(rewrite_parser_refusal(hyper).unwrap()).unwrap();
        let body = r#"{"error":{"code":"REQUEST HEADER FIELDS TOO LARGE","message":"the request head is too large","errors":[]}}"#;
        assert_eq!(
            rewritten,
            format!(
                "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\ndate: Wed, 02 Dec 2026 18:00:00 GMT\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
        );
        // Answers of routes are left alone: they have bodies, or are not refusals.
        assert_eq!(rewrite_parser_refusal(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n"), None);
        assert_eq!(rewrite_parser_refusal(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(rewrite_parser_refusal(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}"), None);
    }
}
