//! Results: the JSON record, the Markdown table with the targets, and the PNG plots.

use std::fmt::Write as _;
use std::path::Path;

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::load::Outcome;

/// Quantiles kept per run, for the tables and the percentile plot.
const QUANTILES: [f64; 10] = [0.0, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999];

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub work_filesystem: String,
    pub rustc: String,
}

impl Machine {
    pub fn describe(work: &Path) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        // The mount holding the work directory: the longest mount point that prefixes it.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let work_s = work.display().to_string();
        let work_filesystem = mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3 && work_s.starts_with(f[1]))
                    .then(|| (f[1].len(), format!("{} on {} ({})", f[0], f[1], f[2])))
            })
            .max()
            .map(|(_, s)| s)
            .unwrap_or_default();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        Self { cpu, cores, memory_gib: memory_kib / 1024.0 / 1024.0, kernel, work_filesystem, rustc }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StoreRun {
    pub backend: String,
    pub size: u64,
    pub customers: u64,
    /// Seeding: `tokenvault import` of the dataset, the client, a first start.
    pub seed_s: f64,
    /// `tokenvault import` of customers, customer tokens and card tokens.
    pub import_s: f64,
    pub import_rows_per_s: f64,
    pub fresh_start_ms: f64,
    pub start_to_healthy_ms: f64,
    pub store_bytes: u64,
    /// One SQLite `synchronous=FULL` transaction per row, one thread, same disk, just before
    /// this store's scenarios.
    pub fsync_baseline_per_s: f64,
    pub fsync_baseline_p50_us: u64,
    pub fsync_baseline_p99_us: u64,
    /// KiB the baseline wrote per transaction.
    #[serde(default)]
    pub fsync_baseline_kib_per_tx: Option<f64>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Record {
    pub backend: String,
    pub size: u64,
    pub scenario: String,
    pub connections: usize,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// (quantile, microseconds)
    pub spectrum: Vec<(f64, u64)>,
    pub peak_rss_kib: u64,
    /// Bytes the store wrote towards the disk during the row (see `server::DiskWrites`).
    #[serde(default)]
    pub disk_write_bytes: Option<u64>,
    /// Responses over warm-up and recorded window, the span of `disk_write_bytes`.
    #[serde(default)]
    pub answered: u64,
    pub unexpected: u64,
    pub connection_errors: u64,
    pub exhausted: bool,
    pub examples: Vec<String>,
}

impl Record {
    pub fn new(backend: &str, size: u64, scenario: &str, connections: usize, o: &Outcome, rss_kib: u64) -> Self {
        let h = &o.histogram;
        Self {
            backend: backend.to_owned(),
            size,
            scenario: scenario.to_owned(),
            connections,
            requests: o.requests,
            rps: o.requests as f64 / o.elapsed.as_secs_f64(),
            p50_us: h.value_at_quantile(0.5),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            spectrum: QUANTILES.iter().map(|&q| (q, h.value_at_quantile(q))).collect(),
            peak_rss_kib: rss_kib,
            disk_write_bytes: None,
            answered: o.answered,
            unexpected: o.unexpected,
            connection_errors: o.connection_errors,
            exhausted: o.exhausted,
            examples: o.examples.clone(),
        }
    }

    /// Disk writes per response, in KiB.
    pub fn disk_kib_per_request(&self) -> Option<f64> {
        Some(self.disk_write_bytes? as f64 / 1024.0 / self.answered.max(1) as f64)
    }

    pub fn failed(&self) -> bool {
        self.unexpected > 0 || self.connection_errors > 0 || self.requests == 0
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Results {
    pub machine: Machine,
    pub unix_time: u64,
    pub note: String,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub client_threads: usize,
    pub stores: Vec<StoreRun>,
    pub records: Vec<Record>,
}

impl Results {
    fn find(&self, backend: &str, size: u64, scenario: &str, connections: usize) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.backend == backend && r.size == size && r.scenario == scenario && r.connections == connections)
    }

    fn backends(&self) -> Vec<String> {
        let mut b: Vec<String> = Vec::new();
        for s in &self.stores {
            if !b.contains(&s.backend) {
                b.push(s.backend.clone());
            }
        }
        b
    }

    fn sizes(&self, backend: &str) -> Vec<u64> {
        let mut s: Vec<u64> = self.stores.iter().filter(|s| s.backend == backend).map(|s| s.size).collect();
        s.sort_unstable();
        s.dedup();
        s
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

pub fn size_name(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

pub fn markdown(r: &Results) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let _ = writeln!(md, "# tokenvault benchmark results\n");
    if !r.note.is_empty() {
        let _ = writeln!(md, "{}\n", r.note);
    }
    let _ = writeln!(
        md,
        "Machine: {} × {}, {:.1} GiB RAM, Linux {}, store on {}; {}. Shared with other builds: \
         compare ratios within this run, not absolute numbers across runs.\n",
        m.cores, m.cpu, m.memory_gib, m.kernel, m.work_filesystem, m.rustc
    );
    let _ = writeln!(
        md,
        "Settings: {:.1} s recorded after {:.1} s warm-up per row; load generator in the same machine \
         ({} runtime threads, one request in flight per connection); server `TOKENVAULT_LOG=warn`. \
         Unix time {}.\n",
        r.duration_s, r.warmup_s, r.client_threads, r.unix_time
    );
    let _ = writeln!(
        md,
        "Target 2's baseline, measured for each store just before its scenarios: one SQLite \
         `synchronous=FULL` (WAL) transaction per created token + audit row, from one thread, on the \
         same disk (column *fsync baseline* below).\n"
    );
    // Targets.
    let _ = writeln!(md, "## Targets\n");
    let _ = writeln!(md, "| backend | target | measured | |");
    let _ = writeln!(md, "|---|---|---|---|");
    for backend in r.backends() {
        let sizes = r.sizes(&backend);
        let Some(&largest) = sizes.last() else { continue };
        let list_size = if sizes.contains(&1_000_000) { 1_000_000 } else { largest };
        let at = if list_size == 1_000_000 { String::new() } else { format!(" (at {}, not 1M)", size_name(list_size)) };
        let b = &backend;
        if let (Some(list), Some(floor)) =
            (r.find(b, list_size, "list_customer_tokens", 64), r.find(b, list_size, "health", 64))
        {
            let ratio = list.rps / floor.rps;
            let _ = writeln!(
                md,
                "| {b} | 1. list customer tokens @64 ≥ 0.2× /health floor | {ratio:.3}×{at} | {} |",
                verdict(ratio >= 0.2)
            );
        }
        if let Some(list) = r.find(b, list_size, "list_customer_tokens", 8) {
            let _ = writeln!(
                md,
                "| {b} | 1. list customer tokens p99 @8 ≤ 2 ms | {} ms{at} | {} |",
                ms(list.p99_us),
                verdict(list.p99_us <= 2000)
            );
        }
        let store = r.stores.iter().find(|s| s.backend == *b && s.size == list_size);
        if let (Some(create), Some(store)) = (r.find(b, list_size, "create", 64), store) {
            let ratio = create.rps / store.fsync_baseline_per_s;
            let disk = match (create.disk_kib_per_request(), store.fsync_baseline_kib_per_tx) {
                (Some(create), Some(base)) => {
                    format!("; disk writes {create:.1} KiB per create, {base:.1} per baseline transaction")
                }
                _ => String::new(),
            };
            let _ = writeln!(md, "| {b} | 2. durable creates @64 ≥ 8× one-fsync-per-request | {ratio:.1}× ({:.0}/s vs {:.0}/s){at}{disk} | {} |", create.rps, store.fsync_baseline_per_s, verdict(ratio >= 8.0));
        }
        let smallest = sizes[0];
        if sizes.len() > 1 {
            for scenario in ["list_customer_tokens", "list_card_tokens"] {
                if let (Some(big), Some(small)) = (r.find(b, largest, scenario, 8), r.find(b, smallest, scenario, 8)) {
                    let ratio = big.p50_us as f64 / small.p50_us as f64;
                    let at = if largest == 10_000_000 {
                        String::new()
                    } else {
                        format!(" ({} vs {}, not 10M vs 10k)", size_name(largest), size_name(smallest))
                    };
                    let _ = writeln!(
                        md,
                        "| {b} | 3. {scenario} p50 @8 at largest ≤ 1.25× at smallest | {ratio:.2}×{at} | {} |",
                        verdict(ratio <= 1.25)
                    );
                }
            }
        } else {
            let _ =
                writeln!(md, "| {b} | 3. list latency at 10M ≤ 1.25× at 10k | one store size only: not measured | — |");
        }
        if let Some(list) = r.find(b, list_size, "list_customer_tokens", 64) {
            let mib = list.peak_rss_kib as f64 / 1024.0;
            let _ = writeln!(
                md,
                "| {b} | 4. peak RSS under list load @64 ≤ 64 MiB | {mib:.1} MiB{at} | {} |",
                verdict(mib <= 64.0)
            );
        }
        if let Some(s) = r.stores.iter().filter(|s| s.backend == *b).max_by_key(|s| s.size) {
            let _ = writeln!(
                md,
                "| {b} | 4. start to healthy on an existing store ≤ 200 ms | {:.0} ms (at {}) | {} |",
                s.start_to_healthy_ms,
                size_name(s.size),
                verdict(s.start_to_healthy_ms <= 200.0)
            );
        }
        let failed: Vec<&Record> = r.records.iter().filter(|x| x.backend == *b && x.failed()).collect();
        let _ = writeln!(
            md,
            "| {b} | 5. every response's status as expected | {} of {} rows failed | {} |",
            failed.len(),
            r.records.iter().filter(|x| x.backend == *b).count(),
            verdict(failed.is_empty())
        );
    }
    md.push('\n');

    // Stores.
    let _ = writeln!(md, "## Stores\n");
    let _ = writeln!(md, "| backend | customer tokens | card tokens | customers | store size | seeding (total) | `tokenvault import` | import rate | first start | start to healthy (existing store, best of 3) | fsync baseline |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &r.stores {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} MiB | {:.1} s | {:.1} s | {:.0} rows/s | {:.0} ms | {:.0} ms | {:.0}/s (p50 {} ms, p99 {} ms{}) |",
            s.backend, size_name(s.size), size_name(s.size), s.customers, s.store_bytes as f64 / 1048576.0, s.seed_s, s.import_s, s.import_rows_per_s, s.fresh_start_ms, s.start_to_healthy_ms,
            s.fsync_baseline_per_s, ms(s.fsync_baseline_p50_us), ms(s.fsync_baseline_p99_us),
            s.fsync_baseline_kib_per_tx.map(|k| format!(", {k:.1} KiB written per transaction")).unwrap_or_default()
        );
    }
    md.push('\n');

    // One table per store.
    for s in &r.stores {
        let _ = writeln!(md, "## {}, {} tokens\n", s.backend, size_name(s.size));
        let _ = writeln!(
            md,
            "| scenario | conns | req/s | p50 ms | p99 ms | p99.9 ms | max ms | peak RSS MiB | disk KiB/req | × floor | status |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
        for rec in r.records.iter().filter(|x| x.backend == s.backend && x.size == s.size) {
            let floor = r.find(&s.backend, s.size, "health", rec.connections).map(|f| rec.rps / f.rps);
            let status = if rec.failed() {
                format!("**FAILED**: {} unexpected, {} connection errors", rec.unexpected, rec.connection_errors)
            } else if rec.exhausted {
                "ok (ran out of tokens to delete)".to_owned()
            } else {
                format!("ok ({} checked)", rec.requests)
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {:.1} | {} | {} | {} |",
                rec.scenario,
                rec.connections,
                rec.rps,
                ms(rec.p50_us),
                ms(rec.p99_us),
                ms(rec.p999_us),
                ms(rec.max_us),
                rec.peak_rss_kib as f64 / 1024.0,
                rec.disk_kib_per_request().map(|k| format!("{k:.1}")).unwrap_or_else(|| "—".into()),
                floor.map(|f| format!("{f:.3}")).unwrap_or_else(|| "—".into()),
                status
            );
        }
        md.push('\n');
        for rec in r.records.iter().filter(|x| x.backend == s.backend && x.size == s.size && x.failed()) {
            let _ = writeln!(md, "- {} @{}: {}", rec.scenario, rec.connections, rec.examples.join("; "));
        }
    }
    let _ = writeln!(md, "Plots: `latency.png` (latency by percentile, largest store per backend), `list_vs_size.png` (list latency against store size, 8 connections).");
    md
}

pub fn write(results: &Results, out: &Path) -> Result<(), String> {
    std::fs::write(out.join("results.md"), markdown(results)).map_err(|e| e.to_string())?;
    if !register_font() {
        eprintln!(
            "tvbench: no DejaVu/Liberation TTF font found; skipping the plots (apt-get install fonts-dejavu-core)"
        );
        return Ok(());
    }
    plot_percentiles(results, &out.join("latency.png")).map_err(|e| format!("latency.png: {e}"))?;
    plot_sizes(results, &out.join("list_vs_size.png")).map_err(|e| format!("list_vs_size.png: {e}"))?;
    Ok(())
}

fn register_font() -> bool {
    static DONE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DONE.get_or_init(|| {
        for path in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(80, 80, 80),
];

fn nines(x: f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    let s = format!("{:.4}", q * 100.0);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

fn log_bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.01, 10.0);
    }
    (10f64.powf(lo.max(0.001).log10().floor()), 10f64.powf(hi.max(0.01).log10().ceil()))
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn plot_percentiles(r: &Results, path: &Path) -> PlotResult {
    let backends = r.backends();
    let mut conns: Vec<usize> = r.records.iter().map(|x| x.connections).collect();
    conns.sort_unstable();
    conns.dedup();
    if backends.is_empty() || conns.is_empty() {
        return Ok(());
    }
    let root = BitMapBackend::new(path, (700 * conns.len() as u32, 480 * backends.len() as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((backends.len(), conns.len()));
    let x_of = |q: f64| if q >= 1.0 { 4.0 } else { (-(1.0 - q).log10()).min(4.0) };
    for (i, backend) in backends.iter().enumerate() {
        let size = *r.sizes(backend).last().expect("a size");
        for (j, &c) in conns.iter().enumerate() {
            let area = &panels[i * conns.len() + j];
            let recs: Vec<&Record> =
                r.records.iter().filter(|x| x.backend == *backend && x.size == size && x.connections == c).collect();
            let (lo, hi) = log_bounds(recs.iter().flat_map(|x| x.spectrum.iter().map(|&(_, us)| us as f64 / 1000.0)));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{backend}, {} tokens, {c} connections", size_name(size)), ("sans-serif", 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..4f64, (lo..hi).log_scale())?;
            chart
                .configure_mesh()
                .x_desc("percentile")
                .y_desc("latency (ms)")
                .x_labels(5)
                .x_label_formatter(&|x| nines(*x))
                .y_label_formatter(&|y| format!("{y}"))
                .draw()?;
            for (k, rec) in recs.iter().enumerate() {
                let color = COLORS[k % COLORS.len()];
                let points: Vec<(f64, f64)> =
                    rec.spectrum.iter().map(|&(q, us)| (x_of(q), (us as f64 / 1000.0).max(lo))).collect();
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                    .label(rec.scenario.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                chart.draw_series(points.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

fn plot_sizes(r: &Results, path: &Path) -> PlotResult {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let lists = ["list_customer_tokens", "list_card_tokens"];
    let recs: Vec<&Record> =
        r.records.iter().filter(|x| x.connections == 8 && lists.contains(&x.scenario.as_str())).collect();
    let sizes: Vec<u64> = recs.iter().map(|x| x.size).collect();
    let (smin, smax) = (
        sizes.iter().copied().min().unwrap_or(10_000) as f64,
        sizes.iter().copied().max().unwrap_or(10_000_000) as f64,
    );
    let x_lo = 10f64.powf(smin.log10().floor() - 0.3);
    let x_hi = 10f64.powf(smax.log10().ceil() + 0.3);
    let (lo, hi) = log_bounds(recs.iter().flat_map(|x| [x.p50_us as f64 / 1000.0, x.p99_us as f64 / 1000.0]));
    let mut chart = ChartBuilder::on(&root)
        .caption("List latency against store size (8 connections)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d((x_lo..x_hi).log_scale(), (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("stored customer tokens (and as many card tokens)")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| size_name(x.round() as u64))
        .y_label_formatter(&|y| format!("{y}"))
        .draw()?;
    let mut k = 0;
    for backend in r.backends() {
        for scenario in lists {
            for (label, pick) in [("p50", 0usize), ("p99", 1)] {
                let mut points: Vec<(f64, f64)> = recs
                    .iter()
                    .filter(|x| x.backend == backend && x.scenario == scenario)
                    .map(|x| (x.size as f64, [x.p50_us, x.p99_us][pick] as f64 / 1000.0))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let color = COLORS[k % COLORS.len()];
                k += 1;
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                    .label(format!("{backend} {scenario} {label}"))
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
                chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled())))?;
            }
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}
