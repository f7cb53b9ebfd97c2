//! tvbench: the tokenvault benchmark harness. See bench/README.md.

mod baseline;
mod load;
mod report;
mod server;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use load::{Dataset, Target, Workload};
use rand::SeedableRng;
use report::{Machine, Record, Results, StoreRun};
use server::{Store, Tokenvault};

const ACCOUNT: &str = "T12345678";
const TOKENS_PER_CUSTOMER: u32 = 10;

#[derive(Parser)]
#[command(name = "tvbench", about = "Benchmark harness for tokenvault")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build nothing; start the given release binary on fresh stores, seed, load, write results.
    Run(RunArgs),
    /// Only the one-fsync-per-transaction baseline, in DIR.
    FsyncBaseline {
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Re-render results.md and the plots from a results.json.
    Report {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The tokenvault release binary.
    #[arg(long)]
    tokenvault: PathBuf,
    /// Where results.md, results.json and the PNGs go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Scratch directory for SQLite stores, seed files and server logs (same disk as the baseline).
    #[arg(long, default_value = "/tmp/tvbench")]
    work: PathBuf,
    /// Comma-separated: sqlite, postgres.
    #[arg(long, default_value = "sqlite,postgres", value_delimiter = ',')]
    backends: Vec<String>,
    /// Stored customer tokens (and as many card tokens), comma-separated: 10k, 1m, 10m.
    #[arg(long, default_value = "10k", value_delimiter = ',', value_parser = parse_size)]
    sizes: Vec<u64>,
    /// Store sizes for PostgreSQL when they differ from --sizes (its seeding is slower), e.g. 10k,1m.
    #[arg(long, value_delimiter = ',', value_parser = parse_size)]
    postgres_sizes: Option<Vec<u64>>,
    /// Connection counts, comma-separated.
    #[arg(long, default_value = "8,64", value_delimiter = ',')]
    connections: Vec<usize>,
    /// Scenarios, comma-separated (default: all): health, list_customer_tokens, list_card_tokens,
    /// create, delete, mixed.
    #[arg(long, value_delimiter = ',')]
    scenarios: Option<Vec<String>>,
    /// Recorded seconds per scenario and connection count.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Unrecorded warm-up seconds before each.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Seconds of the fsync baseline.
    #[arg(long, default_value_t = 3.0)]
    baseline_seconds: f64,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// A free-text note for the results (e.g. which commit, what changed).
    #[arg(long, default_value = "")]
    note: String,
    /// After the scenarios, run each list scenario (of those selected) with the request journal
    /// off and on, alternating server restarts row by row, and print the on/off throughput ratio
    /// (also written to `journal.txt` in --out).
    #[arg(long)]
    journal_compare: bool,
}

const ALL_SCENARIOS: [&str; 6] = ["health", "list_customer_tokens", "list_card_tokens", "create", "delete", "mixed"];

fn parse_size(raw: &str) -> Result<u64, String> {
    let lower = raw.trim().to_ascii_lowercase();
    let (digits, factor) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1_000),
        Some(b'm') => (&lower[..lower.len() - 1], 1_000_000),
        _ => (&lower[..], 1),
    };
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {raw}"))?;
    if n * factor < u64::from(TOKENS_PER_CUSTOMER) {
        return Err(format!("size {raw} is below {TOKENS_PER_CUSTOMER}"));
    }
    Ok(n * factor)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Run(args) => run(args),
        Cmd::FsyncBaseline { dir, seconds } => baseline::run(&dir, Duration::from_secs_f64(seconds)).map(|b| {
            println!(
                "{} transactions in {:.2?}: {:.0}/s, p50 {} µs, p99 {} µs",
                b.transactions,
                b.elapsed,
                b.rate(),
                b.p50_us,
                b.p99_us
            );
        }),
        Cmd::Report { input, out } => std::fs::read_to_string(&input)
            .map_err(|e| format!("{}: {e}", input.display()))
            .and_then(|text| serde_json::from_str::<Results>(&text).map_err(|e| e.to_string()))
            .and_then(|results| report::write(&results, &out)),
    };
    if let Err(message) = result {
        eprintln!("tvbench: {message}");
        std::process::exit(1);
    }
}

fn free_port() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener.local_addr().map_err(|e| e.to_string())
}

fn run(args: RunArgs) -> Result<(), String> {
    let scenarios: Vec<String> =
        args.scenarios.clone().unwrap_or_else(|| ALL_SCENARIOS.iter().map(|s| s.to_string()).collect());
    for s in &scenarios {
        if !ALL_SCENARIOS.contains(&s.as_str()) {
            return Err(format!("unknown scenario {s}"));
        }
    }
    for b in &args.backends {
        if b != "sqlite" && b != "postgres" {
            return Err(format!("unknown backend {b}"));
        }
    }
    std::fs::create_dir_all(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let work = std::fs::canonicalize(&args.work).map_err(|e| e.to_string())?;
    let tv = Tokenvault {
        bin: std::fs::canonicalize(&args.tokenvault).map_err(|e| format!("{}: {e}", args.tokenvault.display()))?,
        work: work.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let mut results = Results {
        machine: Machine::describe(&work),
        unix_time: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        note: args.note.clone(),
        duration_s: args.duration,
        warmup_s: args.warmup,
        client_threads: args.client_threads,
        stores: Vec::new(),
        records: Vec::new(),
    };

    for backend in &args.backends {
        let sizes = match (backend.as_str(), &args.postgres_sizes) {
            ("postgres", Some(sizes)) => sizes.clone(),
            _ => args.sizes.clone(),
        };
        for size in sizes {
            let (run, records) = bench_store(&tv, &runtime, &args, &scenarios, backend, size)?;
            results.stores.push(run);
            results.records.extend(records);
            // Written after every store, so a long run that dies keeps what it measured.
            write_results(&results, &args.out)?;
        }
    }
    write_results(&results, &args.out)?;
    eprintln!("results in {}", args.out.display());
    Ok(())
}

fn write_results(results: &Results, out: &Path) -> Result<(), String> {
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(out.join("results.json"), json).map_err(|e| e.to_string())?;
    report::write(results, out)
}

/// A version-7-shaped UUID: the row number where v7 has its millisecond timestamp, then random
/// bits, so ids increase with `n` as those of rows created one after another do.
fn uuid(n: u64, rng: &mut impl rand::Rng) -> String {
    let random: u128 = rng.gen();
    let v = (u128::from(n) << 80)
        | (0x7u128 << 76)
        | (((random >> 64) & 0xfff) << 64)
        | (0b10u128 << 62)
        | (random & ((1u128 << 62) - 1));
    let h = format!("{v:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The seed dataset in `tokenvault export`'s JSON Lines format, for `tokenvault import`: `size`
/// customer tokens (`t0…t9` of customers `c0…`, type `sha1:email`, value the hex of their
/// number) and `size` card tokens (10 per `customer_id`, no sealed token: the list scenarios never
/// open one), with the customers they belong to. The same rows the HTTP seeding used to create,
/// without their audit records.
fn write_dataset(w: &mut dyn Write, size: u64) -> std::io::Result<()> {
    let per = u64::from(TOKENS_PER_CUSTOMER);
    let customers = size / per;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(size);
    let at = 1_790_000_000_000u64;
    writeln!(
        w,
        r#"{{"format":"tokenvault-export","version":1,"schema_version":1,"source":"tvbench","exported_at":"2026-01-01T00:00:00Z","tables":{{"customers":{customers},"customer_tokens":{},"card_tokens":{}}}}}"#,
        customers * per,
        customers * per
    )?;
    for i in 0..customers {
        writeln!(
            w,
            r#"{{"table":"customers","row":{{"seq":{},"id":"{}","account_id":"{ACCOUNT}","customer_id":"c{i}","customer_type":"customer","attributes":"{{\"type\":\"customer\"}}","created_at":{},"created_by":"tvbench","updated_at":{}}}}}"#,
            i + 1,
            uuid(i, &mut rng),
            at + i,
            at + i
        )?;
    }
    for k in 0..customers * per {
        writeln!(
            w,
            r#"{{"table":"customer_tokens","row":{{"seq":{},"id":"{}","account_id":"{ACCOUNT}","customer_seq":{},"token_id":"t{}","token_type":"sha1:email","value":"{k:040x}","created_at":{},"created_by":"tvbench","updated_at":{}}}}}"#,
            k + 1,
            uuid(k, &mut rng),
            k / per + 1,
            k % per,
            at + k,
            at + k
        )?;
    }
    for k in 0..customers * per {
        writeln!(
            w,
            r#"{{"table":"card_tokens","row":{{"seq":{},"account_id":"{ACCOUNT}","id":"{}","status":"ACTIVE","card_brand":"visa","payment_product_type":"dintero_psp.creditcard","masked_pan":"476173******0416","pan_expiry_date":"09/2030","customer_id":"c{}","created_at":{},"created_by":"tvbench","updated_at":{}}}}}"#,
            k + 1,
            uuid(k, &mut rng),
            k / per,
            at + k,
            at + k
        )?;
    }
    Ok(())
}

fn fresh_store(work: &Path, backend: &str, size: u64) -> Result<Store, String> {
    match backend {
        "sqlite" => {
            let dir = work.join(format!("sqlite-{size}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            Ok(Store {
                backend: "sqlite",
                url: format!("sqlite://{}", dir.join("tokenvault.db").display()),
                encryption_key: None,
                pg_database: None,
            })
        }
        _ => {
            let name = format!("tvbench_{}_{size}", std::process::id());
            server::psql(&format!("DROP DATABASE IF EXISTS {name}"))?;
            server::psql(&format!("CREATE DATABASE {name}"))?;
            use base64::Engine;
            let key: [u8; 32] = rand::random();
            Ok(Store {
                backend: "postgres",
                // Plain TCP on loopback, as before tokenvault spoke TLS (its default, `prefer`, would
                // encrypt against a server with `ssl = on`): the rows stay comparable across result sets.
                url: format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=disable"),
                encryption_key: Some(base64::engine::general_purpose::STANDARD.encode(key)),
                pg_database: Some(name),
            })
        }
    }
}

fn store_bytes(store: &Store) -> u64 {
    if let Some(path) = store.url.strip_prefix("sqlite://") {
        return ["", "-wal", "-shm"]
            .iter()
            .filter_map(|s| std::fs::metadata(format!("{path}{s}")).ok())
            .map(|m| m.len())
            .sum();
    }
    let Some(db) = &store.pg_database else { return 0 };
    std::process::Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-At", "-c"])
        .arg(format!("SELECT pg_database_size('{db}')"))
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(0)
}

fn drop_store(store: &Store) {
    if let Some(db) = &store.pg_database {
        if let Err(e) = server::psql(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")) {
            eprintln!("  warning: {e}");
        }
    } else if let Some(path) = store.url.strip_prefix("sqlite://") {
        if let Some(dir) = Path::new(path).parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn bench_store(
    tv: &Tokenvault,
    runtime: &tokio::runtime::Runtime,
    args: &RunArgs,
    scenarios: &[String],
    backend: &str,
    size: u64,
) -> Result<(StoreRun, Vec<Record>), String> {
    eprintln!("== {backend}, {size} customer tokens + {size} card tokens");
    let store = fresh_store(&tv.work, backend, size)?;
    let outcome = bench_store_inner(tv, runtime, args, scenarios, &store, size);
    drop_store(&store);
    outcome
}

fn bench_store_inner(
    tv: &Tokenvault,
    runtime: &tokio::runtime::Runtime,
    args: &RunArgs,
    scenarios: &[String],
    store: &Store,
    size: u64,
) -> Result<(StoreRun, Vec<Record>), String> {
    let customers = u32::try_from(size / u64::from(TOKENS_PER_CUSTOMER)).map_err(|_| "size too large")?;
    // The dataset goes in first (import wants an empty database), then the client.
    let seed_started = Instant::now();
    let summary = tv.import_dataset(store, |w| write_dataset(w, size))?;
    let import_s = seed_started.elapsed().as_secs_f64();
    let imported_rows = size * 2 + u64::from(customers);
    eprintln!("  import: {summary} in {import_s:.1} s ({:.0} rows/s)", imported_rows as f64 / import_s);
    let (client_id, secret) = tv.create_client(store, ACCOUNT)?;
    let addr = free_port()?;
    let (mut server, fresh_start) = tv.serve(store, addr, &format!("server-{}-{size}-seed.log", store.backend))?;
    server.stop();
    let data = Arc::new(Dataset::new(ACCOUNT, customers, TOKENS_PER_CUSTOMER));
    let seed_s = seed_started.elapsed().as_secs_f64();
    let db_bytes = store_bytes(store);

    // Start-to-healthy on the existing database (best of three: the machine is shared).
    let mut starts = Vec::new();
    for i in 0..3 {
        let (mut s, took) = tv.serve(store, addr, &format!("server-{}-{size}-start{i}.log", store.backend))?;
        starts.push(took);
        s.stop();
    }
    let restart = *starts.iter().min().expect("three starts");
    eprintln!("  start to healthy on the existing store: {:?} (of {:?})", restart, starts);

    let (server, _) = tv.serve(store, addr, &format!("server-{}-{size}.log", store.backend))?;
    let bearer = server::access_token(addr, ACCOUNT, &client_id, &secret)?;
    let target = Arc::new(Target { addr, host: addr.to_string(), bearer: Some(bearer) });
    let health_target = Arc::new(Target { addr, host: addr.to_string(), bearer: None });

    // Target 2's yardstick, measured right here (same disk, same minute), the server idle.
    let baseline = baseline::run(&tv.work, Duration::from_secs_f64(args.baseline_seconds))?;
    eprintln!(
        "  fsync baseline (one transaction per row): {:.0}/s (p50 {} µs, p99 {} µs, {:.1} KiB written each)",
        baseline.rate(),
        baseline.p50_us,
        baseline.p99_us,
        baseline.kib_per_transaction().unwrap_or(f64::NAN)
    );

    let mut records = Vec::new();
    for scenario in scenarios {
        let workload = match scenario.as_str() {
            "health" => Workload::Health,
            "list_customer_tokens" => Workload::ListCustomerTokens,
            "list_card_tokens" => Workload::ListCardTokens,
            "create" => Workload::Create,
            "delete" => Workload::Delete,
            _ => Workload::Mixed,
        };
        for &connections in &args.connections {
            let t = if workload == Workload::Health { &health_target } else { &target };
            let watch = server::RssWatch::start(server.pid());
            let disk = server::DiskWrites::start(server.pid(), store.pg_database.is_some());
            let outcome = runtime.block_on(load::run(
                Arc::clone(t),
                Arc::clone(&data),
                workload,
                connections,
                Duration::from_secs_f64(args.warmup),
                Duration::from_secs_f64(args.duration),
            ));
            let rss = watch.finish();
            let mut record = Record::new(store.backend, size, scenario, connections, &outcome, rss);
            record.disk_write_bytes = disk.finish();
            eprintln!(
                "  {:<22} {:>3} conns: {:>8.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  p99.9 {:>7.2} ms  rss {:>6.1} MiB  disk {:>6.1} KiB/req{}",
                scenario,
                connections,
                record.rps,
                record.p50_us as f64 / 1000.0,
                record.p99_us as f64 / 1000.0,
                record.p999_us as f64 / 1000.0,
                rss as f64 / 1024.0,
                record.disk_kib_per_request().unwrap_or(f64::NAN),
                if record.failed() { format!("  FAILED {:?}", record.examples) } else { String::new() }
            );
            records.push(record);
        }
    }
    drop(server);
    if args.journal_compare {
        journal_compare(tv, runtime, args, scenarios, store, size, addr, &client_id, &secret, &data)?;
    }
    let run = StoreRun {
        backend: store.backend.to_owned(),
        size,
        customers: u64::from(customers),
        seed_s,
        import_s,
        import_rows_per_s: imported_rows as f64 / import_s,
        fresh_start_ms: fresh_start.as_secs_f64() * 1000.0,
        start_to_healthy_ms: restart.as_secs_f64() * 1000.0,
        store_bytes: db_bytes,
        fsync_baseline_per_s: baseline.rate(),
        fsync_baseline_p50_us: baseline.p50_us,
        fsync_baseline_p99_us: baseline.p99_us,
        fsync_baseline_kib_per_tx: baseline.kib_per_transaction(),
    };
    Ok((run, records))
}

/// `--journal-compare`: each list scenario and connection count with the journal off, then on
/// (a fresh server each), and the ratio of their throughputs.
#[allow(clippy::too_many_arguments)]
fn journal_compare(
    tv: &Tokenvault,
    runtime: &tokio::runtime::Runtime,
    args: &RunArgs,
    scenarios: &[String],
    store: &Store,
    size: u64,
    addr: std::net::SocketAddr,
    client_id: &str,
    secret: &str,
    data: &Arc<Dataset>,
) -> Result<(), String> {
    let mut lines = Vec::new();
    for scenario in scenarios.iter().filter(|s| s.starts_with("list_")) {
        let workload =
            if scenario == "list_card_tokens" { Workload::ListCardTokens } else { Workload::ListCustomerTokens };
        for &connections in &args.connections {
            let mut rates = Vec::new();
            for journal in ["false", "true"] {
                let log = format!("server-{}-{size}-journal-{journal}.log", store.backend);
                let (mut server, _) = tv.serve_with(store, addr, &log, &[("TOKENVAULT_JOURNAL", journal)])?;
                let bearer = server::access_token(addr, ACCOUNT, client_id, secret)?;
                let target = Arc::new(Target { addr, host: addr.to_string(), bearer: Some(bearer) });
                let outcome = runtime.block_on(load::run(
                    target,
                    Arc::clone(data),
                    workload,
                    connections,
                    Duration::from_secs_f64(args.warmup),
                    Duration::from_secs_f64(args.duration),
                ));
                server.stop();
                let record = Record::new(store.backend, size, scenario, connections, &outcome, 0);
                if record.failed() {
                    return Err(format!("{scenario} with journal={journal} failed: {:?}", record.examples));
                }
                rates.push(record.rps);
            }
            let line = format!(
                "{} {size} {scenario:<22} {connections:>3} conns: journal off {:>8.0} req/s, on {:>8.0} req/s, on/off {:.3}",
                store.backend,
                rates[0],
                rates[1],
                rates[1] / rates[0]
            );
            eprintln!("  {line}");
            lines.push(line);
        }
    }
    let path = args.out.join("journal.txt");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
}
