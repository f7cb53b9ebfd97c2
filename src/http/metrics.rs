//! Request metrics in the Prometheus text format (`GET /metrics`): counts by route, method and
//! status, and a latency histogram by route and method. Routes are axum's matched patterns
//! (`/v1/card-tokens/{token_id}`), so ids never become label values.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::places::Full;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The registry behind `/metrics`.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    /// Requests answered 503 before any route saw them (beyond `--max-in-flight`), or cut off
    /// by the request timeout: the per-route counters cannot count these.
    overloaded: AtomicU64,
    timed_out: AtomicU64,
    /// Connections open now, and those refused at accept (beyond the connection limits).
    connections_open: AtomicU64,
    refused_total: AtomicU64,
    refused_per_address: AtomicU64,
}

/// The methods counted by name; every other method is counted as `OTHER`, so that made-up
/// methods cannot grow the registry (one label value each would be a memory leak anyone can
/// trigger without credentials).
const KNOWN_METHODS: [&str; 9] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"];

fn method_label(method: &str) -> &'static str {
    KNOWN_METHODS.iter().find(|known| **known == method).copied().unwrap_or("OTHER")
}

/// Why a request was answered by the server's own limits rather than by a route.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    Overloaded,
    TimedOut,
}

impl Metrics {
    fn record(&self, route: String, method: String, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route.clone(), method.clone(), status)).or_default() += 1;
        let mut latency = lock(&self.latency);
        let histogram = latency.entry((route, method)).or_default();
        for (bound, count) in BUCKETS.iter().zip(histogram.counts.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    /// Counts a request the limits answered (503).
    pub fn reject(&self, rejection: Rejection) {
        let counter = match rejection {
            Rejection::Overloaded => &self.overloaded,
            Rejection::TimedOut => &self.timed_out,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection the connection floor accepted.
    pub fn open_connection(&self) {
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the end of a connection counted by [`Metrics::open_connection`].
    pub fn close_connection(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a connection refused at accept.
    pub fn refuse_connection(&self, full: Full) {
        let counter = match full {
            Full::Total => &self.refused_total,
            Full::PerAddress => &self.refused_per_address,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus exposition, followed by `extra` gauges (already formatted).
    pub fn render(&self, extra: &str) -> String {
        let mut out = String::new();
        out.push_str("# HELP tokenvault_http_connections_open HTTP connections open.\n");
        out.push_str("# TYPE tokenvault_http_connections_open gauge\n");
        let _ = writeln!(out, "tokenvault_http_connections_open {}", self.connections_open.load(Ordering::Relaxed));
        out.push_str("# HELP tokenvault_http_connections_refused_total Connections answered 503 at accept: beyond --max-connections (total) or --max-connections-per-address (per_address).\n");
        out.push_str("# TYPE tokenvault_http_connections_refused_total counter\n");
        let _ = writeln!(
            out,
            "tokenvault_http_connections_refused_total{{reason=\"per_address\"}} {}",
            self.refused_per_address.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "tokenvault_http_connections_refused_total{{reason=\"total\"}} {}",
            self.refused_total.load(Ordering::Relaxed)
        );
        out.push_str("# HELP tokenvault_http_requests_rejected_total Requests answered 503 by the server's limits: shed beyond --max-in-flight (overloaded) or cut off by the request timeout (timeout).\n");
        out.push_str("# TYPE tokenvault_http_requests_rejected_total counter\n");
        let _ = writeln!(
            out,
            "tokenvault_http_requests_rejected_total{{reason=\"overloaded\"}} {}",
            self.overloaded.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "tokenvault_http_requests_rejected_total{{reason=\"timeout\"}} {}",
            self.timed_out.load(Ordering::Relaxed)
        );
        out.push_str("# HELP tokenvault_http_requests_total HTTP requests answered.\n");
        out.push_str("# TYPE tokenvault_http_requests_total counter\n");
        for ((route, method, status), count) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "tokenvault_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        out.push_str("# HELP tokenvault_http_request_duration_seconds Time to answer HTTP requests.\n");
        out.push_str("# TYPE tokenvault_http_request_duration_seconds histogram\n");
        for ((route, method), histogram) in lock(&self.latency).iter() {
            let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                let _ =
                    writeln!(out, "tokenvault_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {count}");
            }
            let _ = writeln!(
                out,
                "tokenvault_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(out, "tokenvault_http_request_duration_seconds_sum{{{labels}}} {}", histogram.sum);
            let _ = writeln!(out, "tokenvault_http_request_duration_seconds_count{{{labels}}} {}", histogram.count);
        }
        out.push_str(extra);
        out
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics_get",
    tag = "server",
    summary = "Metrics",
    description = "Request counts by route pattern, method and status, latency histograms, database pool use and the webhook outbox depth, in the Prometheus text format.",
    responses(
        (status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8"),
    ),
    extensions(("x-tokenvault-extension" = json!(true))),
)]
pub async fn render(State(app): State<super::AppState>) -> Response {
    // Store figures are best effort: the request metrics are served even when the database is not.
    let gauges = match app.vault.stats().await {
        Ok(stats) => format!(
            "# HELP tokenvault_db_pool_connections Database connections in the pool (SQLite: read connections).\n\
             # TYPE tokenvault_db_pool_connections gauge\n\
             tokenvault_db_pool_connections{{state=\"idle\"}} {}\n\
             tokenvault_db_pool_connections{{state=\"in_use\"}} {}\n\
             # HELP tokenvault_webhook_outbox_pending Webhook deliveries neither delivered nor given up.\n\
             # TYPE tokenvault_webhook_outbox_pending gauge\n\
             tokenvault_webhook_outbox_pending {}\n\
             # HELP tokenvault_audit_chain_head_position The audit hash chain's last position (see `tokenvault audit verify`).\n\
             # TYPE tokenvault_audit_chain_head_position gauge\n\
             tokenvault_audit_chain_head_position {}\n\
             # HELP tokenvault_audit_unchained Audit records not in the hash chain yet.\n\
             # TYPE tokenvault_audit_unchained gauge\n\
             tokenvault_audit_unchained {}\n",
            stats.pool_idle,
            stats.pool_size.saturating_sub(stats.pool_idle),
            stats.webhook_outbox_pending,
            stats.audit_chain_head,
            stats.audit_unchained
        ),
        Err(_) => String::new(),
    };
    let gauges = match &app.backups {
        Some(backups) => format!(
            "{gauges}# HELP tokenvault_backup_last_success_timestamp_seconds When the last scheduled backup succeeded (0: none yet).\n\
             # TYPE tokenvault_backup_last_success_timestamp_seconds gauge\n\
             tokenvault_backup_last_success_timestamp_seconds {}\n\
             # HELP tokenvault_backup_last_size_bytes The size of the last scheduled backup.\n\
             # TYPE tokenvault_backup_last_size_bytes gauge\n\
             tokenvault_backup_last_size_bytes {}\n\
             # HELP tokenvault_backup_failures_total Scheduled backups that failed.\n\
             # TYPE tokenvault_backup_failures_total counter\n\
             tokenvault_backup_failures_total {}\n",
            backups.last_success_unix(),
            backups.last_size_bytes(),
            backups.failures()
        ),
        None => gauges,
    };
    let gauges = match &app.journal {
        Some(journal) => format!(
            "{gauges}# HELP tokenvault_journal_dropped_total Requests of test accounts left out of the request journal: beyond --journal-max-per-second, or while its write queue was full.\n\
             # TYPE tokenvault_journal_dropped_total counter\n\
             tokenvault_journal_dropped_total {}\n",
            journal.dropped()
        ),
        None => gauges,
    };
    let mut response = Response::new(axum::body::Body::from(app.metrics.render(&gauges)));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Middleware recording every answered request.
pub async fn track(State(metrics): State<std::sync::Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = method_label(request.method().as_str()).to_owned();
    let response = next.run(request).await;
    metrics.record(route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let metrics = Metrics::default();
        metrics.record("/health".into(), "GET".into(), 200, 0.0007);
        metrics.record("/health".into(), "GET".into(), 200, 0.02);
        let text = metrics.render("");
        assert!(text.contains("tokenvault_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 2\n"));
        assert!(text.contains(
            "tokenvault_http_request_duration_seconds_bucket{route=\"/health\",method=\"GET\",le=\"0.0005\"} 0\n"
        ));
        assert!(text.contains(
            "tokenvault_http_request_duration_seconds_bucket{route=\"/health\",method=\"GET\",le=\"0.001\"} 1\n"
        ));
        assert!(text.contains(
            "tokenvault_http_request_duration_seconds_bucket{route=\"/health\",method=\"GET\",le=\"0.025\"} 2\n"
        ));
        assert!(text.contains("tokenvault_http_request_duration_seconds_count{route=\"/health\",method=\"GET\"} 2\n"));
    }

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label("DELETE"), "DELETE");
        assert_eq!(method_label("X-JUNK-1"), "OTHER");
        assert_eq!(method_label("get"), "OTHER");
    }
}
