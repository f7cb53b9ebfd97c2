//! The load generator: N fixed HTTP/1.1 keep-alive connections, each a loop of one request at a
//! time, for a fixed duration after a warm-up; every response's status is checked and every
//! latency recorded in an HDR histogram (microseconds).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::net::TcpStream;

/// One request to send, the status it must answer with, and what a success means for the
/// workload's bookkeeping.
pub struct Planned {
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
    pub expect: StatusCode,
    pub after: After,
}

pub enum After {
    Nothing,
    /// A customer token was created: (customer index, serial) can be deleted later.
    Created(u32, u64),
}

impl Planned {
    fn get(path: String) -> Self {
        Self { method: Method::GET, path, body: None, expect: StatusCode::OK, after: After::Nothing }
    }
}

pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub bearer: Option<String>,
}

/// The dataset the server holds and the workloads draw from.
pub struct Dataset {
    pub account: String,
    pub customers: u32,
    pub tokens_per_customer: u32,
    /// Tokens created during the run and still live: deletes take these first.
    live: Mutex<Vec<(u32, u64)>>,
    serial: AtomicU64,
    seeded_taken: AtomicU64,
}

impl Dataset {
    pub fn new(account: &str, customers: u32, tokens_per_customer: u32) -> Self {
        Self {
            account: account.to_owned(),
            customers,
            tokens_per_customer,
            live: Mutex::new(Vec::new()),
            serial: AtomicU64::new(0),
            seeded_taken: AtomicU64::new(0),
        }
    }

    fn tokens_path(&self, customer: u32) -> String {
        format!("/v1/accounts/{}/customers/users/c{customer}/tokens", self.account)
    }

    /// A customer token that is live now and that no other worker will delete, or None.
    fn take_deletable(&self) -> Option<(u32, String)> {
        if let Some((customer, serial)) = self.live.lock().unwrap().pop() {
            return Some((customer, format!("b{serial}")));
        }
        // Seeded tokens, from the last customer backwards (list scenarios have already run).
        let k = self.seeded_taken.fetch_add(1, Ordering::Relaxed);
        let per = u64::from(self.tokens_per_customer);
        if k >= u64::from(self.customers) * per {
            return None;
        }
        let customer = self.customers - 1 - (k / per) as u32;
        Some((customer, format!("t{}", k % per)))
    }

    fn create(&self, rng: &mut SmallRng) -> Planned {
        let serial = self.serial.fetch_add(1, Ordering::Relaxed);
        let customer = rng.gen_range(0..self.customers);
        // Seeded values are the hex of small numbers; created ones have bit 100 set.
        let value = format!("{:040x}", (1u128 << 100) | u128::from(serial));
        let body = format!(r#"{{"type":"sha1:email","value":"{value}","token_id":"b{serial}"}}"#);
        Planned {
            method: Method::POST,
            path: self.tokens_path(customer),
            body: Some(Bytes::from(body)),
            expect: StatusCode::CREATED,
            after: After::Created(customer, serial),
        }
    }

    fn delete(&self) -> Option<Planned> {
        let (customer, token_id) = self.take_deletable()?;
        Some(Planned {
            method: Method::DELETE,
            path: format!("{}/{token_id}", self.tokens_path(customer)),
            body: None,
            expect: StatusCode::OK,
            after: After::Nothing,
        })
    }

    fn list_customer_tokens(&self, rng: &mut SmallRng) -> Planned {
        let customer = rng.gen_range(0..self.customers);
        Planned::get(format!("{}?limit=10", self.tokens_path(customer)))
    }

    fn list_card_tokens(&self, rng: &mut SmallRng) -> Planned {
        let customer = rng.gen_range(0..self.customers);
        Planned::get(format!("/v1/card-tokens?customer_id=c{customer}&status=ACTIVE&limit=10"))
    }
}

/// What the connections do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    Health,
    ListCustomerTokens,
    ListCardTokens,
    Create,
    Delete,
    /// 80 % list customer tokens, 15 % create, 5 % delete (a create when nothing is left to delete).
    Mixed,
}

impl Workload {
    fn next(self, data: &Dataset, rng: &mut SmallRng) -> Option<Planned> {
        match self {
            Workload::Health => Some(Planned::get("/health".to_owned())),
            Workload::ListCustomerTokens => Some(data.list_customer_tokens(rng)),
            Workload::ListCardTokens => Some(data.list_card_tokens(rng)),
            Workload::Create => Some(data.create(rng)),
            Workload::Delete => data.delete(),
            Workload::Mixed => match rng.gen_range(0..100) {
                0..80 => Some(data.list_customer_tokens(rng)),
                80..95 => Some(data.create(rng)),
                // Nothing left to delete (a small store): a create instead, so no connection stops.
                _ => data.delete().or_else(|| Some(data.create(rng))),
            },
        }
    }

    fn completed(self, data: &Dataset, planned: &Planned) {
        if let After::Created(customer, serial) = planned.after {
            data.live.lock().unwrap().push((customer, serial));
        }
    }
}

/// The outcome of one load run.
#[derive(Debug)]
pub struct Outcome {
    pub histogram: Histogram<u64>,
    pub requests: u64,
    /// Responses over warm-up and the measured window alike (what the disk counters span).
    pub answered: u64,
    pub unexpected: u64,
    pub connection_errors: u64,
    pub examples: Vec<String>,
    /// The measured window: end of warm-up to the last completion.
    pub elapsed: Duration,
    /// A worker ran out of work (deletes: nothing left to delete).
    pub exhausted: bool,
}

struct WorkerOut {
    histogram: Histogram<u64>,
    requests: u64,
    answered: u64,
    unexpected: u64,
    connection_errors: u64,
    examples: Vec<String>,
    last: Option<Instant>,
    exhausted: bool,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds")
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn build(target: &Target, planned: &Planned) -> hyper::Request<Full<Bytes>> {
    let mut builder =
        hyper::Request::builder().method(planned.method.clone()).uri(&planned.path).header(HOST, &target.host);
    if let Some(bearer) = &target.bearer {
        builder = builder.header(AUTHORIZATION, bearer);
    }
    let body = match &planned.body {
        Some(body) => {
            builder = builder.header(CONTENT_TYPE, "application/json");
            body.clone()
        }
        None => Bytes::new(),
    };
    builder.body(Full::new(body)).expect("a valid request")
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    target: Arc<Target>,
    data: Arc<Dataset>,
    workload: Workload,
    warm_until: Instant,
    end: Instant,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> WorkerOut {
    let mut out = WorkerOut {
        histogram: histogram(),
        requests: 0,
        answered: 0,
        unexpected: 0,
        connection_errors: 0,
        examples: Vec::new(),
        last: None,
        exhausted: false,
    };
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    while Instant::now() < end && !stop.load(Ordering::Relaxed) {
        let Some(planned) = workload.next(&data, &mut rng) else {
            out.exhausted = true;
            break;
        };
        if sender.is_none() {
            match connect(target.addr).await {
                Ok(s) => sender = Some(s),
                Err(e) => {
                    out.connection_errors += 1;
                    if out.examples.len() < 3 {
                        out.examples.push(e);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let s = sender.as_mut().expect("connected");
        let request = build(&target, &planned);
        let t0 = Instant::now();
        let result = async {
            s.ready().await?;
            let response = s.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        let t1 = Instant::now();
        let measured = t0 >= warm_until;
        match result {
            Ok((status, body)) => {
                out.answered += 1;
                if status == planned.expect {
                    workload.completed(&data, &planned);
                }
                if measured {
                    out.requests += 1;
                    out.last = Some(t1);
                    let _ = out.histogram.record((t1 - t0).as_micros().max(1) as u64);
                    if status != planned.expect {
                        out.unexpected += 1;
                        if out.examples.len() < 3 {
                            let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                            out.examples.push(format!(
                                "{} {} -> {} (expected {}): {text}",
                                planned.method,
                                planned.path,
                                status.as_u16(),
                                planned.expect.as_u16()
                            ));
                        }
                    }
                }
            }
            Err(e) => {
                sender = None;
                if measured {
                    out.connection_errors += 1;
                    if out.examples.len() < 3 {
                        out.examples.push(format!("{} {}: {e}", planned.method, planned.path));
                    }
                }
            }
        }
    }
    out
}

/// Runs `workload` on `connections` connections: `warmup` unrecorded, then `duration` recorded.
pub async fn run(
    target: Arc<Target>,
    data: Arc<Dataset>,
    workload: Workload,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> Outcome {
    let start = Instant::now();
    let warm_until = start + warmup;
    let end = warm_until + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let seed = 0x5eed_0000 + i as u64 * 7919 + u64::from(workload as u8);
        tasks.push(tokio::spawn(worker(
            Arc::clone(&target),
            Arc::clone(&data),
            workload,
            warm_until,
            end,
            seed,
            Arc::clone(&stop),
        )));
    }
    let mut outcome = Outcome {
        histogram: histogram(),
        requests: 0,
        answered: 0,
        unexpected: 0,
        connection_errors: 0,
        examples: Vec::new(),
        elapsed: Duration::ZERO,
        exhausted: false,
    };
    let mut last = warm_until;
    for task in tasks {
        let out = task.await.expect("a load worker panicked");
        outcome.histogram.add(&out.histogram).expect("histograms of one shape");
        outcome.requests += out.requests;
        outcome.answered += out.answered;
        outcome.unexpected += out.unexpected;
        outcome.connection_errors += out.connection_errors;
        outcome.exhausted |= out.exhausted;
        for e in out.examples {
            if outcome.examples.len() < 5 {
                outcome.examples.push(e);
            }
        }
        if let Some(t) = out.last {
            last = last.max(t);
        }
    }
    outcome.elapsed = last.saturating_duration_since(warm_until).max(Duration::from_millis(1));
    outcome
}
