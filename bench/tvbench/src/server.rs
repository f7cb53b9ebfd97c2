//! The tokenvault process: its command line (import, clients, serve), readiness, RSS and stop.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;

/// How to reach one fresh store.
#[derive(Clone, Debug)]
pub struct Store {
    pub backend: &'static str,
    pub url: String,
    /// Passed to every command (required with PostgreSQL).
    pub encryption_key: Option<String>,
    /// PostgreSQL: the database to drop afterwards.
    pub pg_database: Option<String>,
}

pub struct Tokenvault {
    pub bin: PathBuf,
    pub work: PathBuf,
}

impl Tokenvault {
    fn command(&self, store: &Store) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("TOKENVAULT_DATABASE_URL", &store.url).env("TOKENVAULT_LOG", "warn");
        match &store.encryption_key {
            Some(key) => cmd.env("TOKENVAULT_ENCRYPTION_KEY", key),
            None => cmd.env_remove("TOKENVAULT_ENCRYPTION_KEY"),
        };
        cmd
    }

    /// `tokenvault clients create`: (client_id, client_secret).
    pub fn create_client(&self, store: &Store, account: &str) -> Result<(String, String), String> {
        let out = self
            .command(store)
            .args(["clients", "create", "--account", account, "--scopes", "admin:customers admin:checkout"])
            .output()
            .map_err(|e| format!("running clients create: {e}"))?;
        if !out.status.success() {
            return Err(format!("clients create failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("clients create printed no JSON: {e}"))?;
        let field = |k: &str| v[k].as_str().map(str::to_owned).ok_or(format!("clients create: no {k}"));
        Ok((field("client_id")?, field("client_secret")?))
    }

    /// `tokenvault import -` (the dataset import, into the still empty store), fed by `write`
    /// through a pipe so no multi-gigabyte seed file is needed; returns what it printed.
    pub fn import_dataset(
        &self,
        store: &Store,
        write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    ) -> Result<String, String> {
        let mut child = self
            .command(store)
            .args(["import", "-", "--database-url", &store.url])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running import: {e}"))?;
        let stdin = child.stdin.take().ok_or("import: no stdin")?;
        let mut pipe = std::io::BufWriter::with_capacity(1 << 20, stdin);
        let written = write(&mut pipe).and_then(|()| pipe.flush());
        drop(pipe);
        let out = child.wait_with_output().map_err(|e| format!("waiting for import: {e}"))?;
        if !out.status.success() {
            return Err(format!("import failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        written.map_err(|e| format!("writing the dataset to import: {e}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts `serve` and waits for the first 200 on /health; returns it and the time that took.
    pub fn serve(&self, store: &Store, addr: SocketAddr, log_name: &str) -> Result<(Server, Duration), String> {
        self.serve_with(store, addr, log_name, &[])
    }

    /// [`Tokenvault::serve`] with extra environment variables (settings such as `TOKENVAULT_JOURNAL`).
    pub fn serve_with(
        &self,
        store: &Store,
        addr: SocketAddr,
        log_name: &str,
        env: &[(&str, &str)],
    ) -> Result<(Server, Duration), String> {
        let log = File::create(self.work.join(log_name)).map_err(|e| format!("server log: {e}"))?;
        let started = Instant::now();
        let child = self
            .command(store)
            .envs(env.iter().copied())
            .args(["serve", "--listen", &addr.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting the server: {e}"))?;
        let mut server = Server { child };
        loop {
            if health(addr) {
                return Ok((server, started.elapsed()));
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("the server exited during start-up ({status}); see {log_name}"));
            }
            if started.elapsed() > Duration::from_secs(120) {
                server.stop();
                return Err("the server did not become healthy within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// One blocking `GET /health`; true on a 200.
pub fn health(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET /health HTTP/1.1\r\nhost: bench\r\nconnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && &head[..] == b"HTTP/1.1 200"
}

pub struct Server {
    child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// `VmHWM`/`VmRSS` of a process, in KiB.
fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Peak RSS over a window: resets the kernel's high-water mark (`clear_refs` 5) when allowed and
/// also samples `VmRSS` every 5 ms, in case it is not.
pub struct RssWatch {
    pid: u32,
    reset: bool,
    stop: Arc<AtomicBool>,
    max: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssWatch {
    pub fn start(pid: u32) -> Self {
        let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let stop = Arc::new(AtomicBool::new(false));
        let max = Arc::new(AtomicU64::new(status_kib(pid, "VmRSS:").unwrap_or(0)));
        let thread = {
            let (stop, max) = (Arc::clone(&stop), Arc::clone(&max));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = status_kib(pid, "VmRSS:") {
                        max.fetch_max(rss, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        Self { pid, reset, stop, max, thread: Some(thread) }
    }

    /// Peak RSS in KiB since `start`.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let sampled = self.max.load(Ordering::Relaxed);
        match (self.reset, status_kib(self.pid, "VmHWM:")) {
            (true, Some(hwm)) => hwm.max(sampled),
            _ => sampled,
        }
    }
}

/// Bytes a store sent towards the disk over a window, to show what a request costs the disk
/// (target 2 is a ratio to the disk's fsync rate, and creates at 1M are limited by how many pages
/// each one makes dirty). SQLite: the server's own `write_bytes` (`/proc/<pid>/io`: pages it made
/// dirty, WAL and checkpoint copies alike). PostgreSQL: WAL bytes (`pg_stat_wal`) plus buffers its
/// processes wrote (`pg_stat_bgwriter`) in the window; a checkpoint may write more later.
pub struct DiskWrites {
    pid: Option<u32>,
    start: Option<u64>,
}

impl DiskWrites {
    pub fn start(pid: u32, postgres: bool) -> Self {
        let pid = (!postgres).then_some(pid);
        Self { pid, start: disk_write_bytes(pid) }
    }

    /// Bytes written since `start`, if the counters could be read.
    pub fn finish(self) -> Option<u64> {
        Some(disk_write_bytes(self.pid)?.saturating_sub(self.start?))
    }
}

fn disk_write_bytes(pid: Option<u32>) -> Option<u64> {
    match pid {
        Some(pid) => {
            let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
            text.lines().find_map(|l| l.strip_prefix("write_bytes:"))?.trim().parse().ok()
        }
        None => psql_value(
            "SELECT (SELECT wal_bytes FROM pg_stat_wal)::bigint + (SELECT (buffers_checkpoint + buffers_clean \
             + buffers_backend) * current_setting('block_size')::bigint FROM pg_stat_bgwriter)",
        )?
        .parse()
        .ok(),
    }
}

/// One value from the local PostgreSQL, as text.
pub fn psql_value(sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-At", "-c", sql])
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `POST /v1/accounts/{aid}/auth/token` with client credentials; returns the bearer token.
pub fn access_token(addr: SocketAddr, account: &str, id: &str, secret: &str) -> Result<String, String> {
    let body =
        format!(r#"{{"grant_type":"client_credentials","audience":"https://api.dintero.com/v1/accounts/{account}"}}"#);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    let request = format!(
        "POST /v1/accounts/{account}/auth/token HTTP/1.1\r\nhost: bench\r\nauthorization: Basic {basic}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("token: {e}"))?;
    stream.write_all(request.as_bytes()).map_err(|e| format!("token: {e}"))?;
    let mut response = String::new();
    stream.read_to_string(&mut response).map_err(|e| format!("token: {e}"))?;
    let (head, body) = response.split_once("\r\n\r\n").ok_or("token: no HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("token: {head} {body}"));
    }
    let json_start = body.find('{').ok_or("token: no JSON")?;
    let json_end = body.rfind('}').ok_or("token: no JSON")?;
    let v: serde_json::Value = serde_json::from_str(&body[json_start..=json_end]).map_err(|e| format!("token: {e}"))?;
    v["access_token"].as_str().map(|t| format!("Bearer {t}")).ok_or_else(|| "token: no access_token".to_owned())
}

/// `psql` against the local PostgreSQL (trust auth, user postgres).
pub fn psql(sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("psql {sql:?}: {}", String::from_utf8_lossy(&out.stderr)))
    }
}
