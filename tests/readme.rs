//! The README's walk-through, run verbatim: the shell block between the `walkthrough:begin` and
//! `walkthrough:end` markers of README.md, extracted here (so the two cannot drift) and run with
//! bash (`set -euo pipefail`) against a fresh `tokenvault serve` on a free port and a fresh
//! SQLite database, with `tokenvault` on `PATH`. Twice: once as pasted (it makes its own client),
//! once with the `serve --dev` client the README offers instead. Its whole output is checked,
//! with generated ids and times blanked.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The shell code of the fenced blocks between the markers.
fn walkthrough() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- walkthrough:begin").expect("README.md has the walkthrough:begin marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("README.md has the walkthrough:end marker");
    let mut script = String::new();
    let mut in_block = false;
    for line in readme[start..end].lines() {
        match (in_block, line.trim_end()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, line) => {
                script.push_str(line);
                script.push('\n');
            }
            _ => {}
        }
    }
    assert!(!in_block && script.contains("curl"), "no closed ```sh block between the markers");
    script
}

/// A server process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `tokenvault serve [extra]` in `dir` (its default `./tokenvault.db`), once `/health` answers.
fn serve(dir: &Path, extra: &[&str]) -> (Server, String) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .current_dir(dir)
        .env_remove("TOKENVAULT_DATABASE_URL")
        .env_remove("TOKENVAULT_CONFIG")
        .env_remove("TOKENVAULT_DEV")
        .env("TOKENVAULT_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the server did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, format!("http://127.0.0.1:{port}"))
}

/// Runs the walk-through in `dir` against `url`, with `env` added; its stdout.
fn run(script: &str, dir: &Path, url: &str, env: &[(&str, &str)]) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tokenvault")).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin_dir.to_path_buf()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env("TOKENVAULT_URL", url)
        .env_remove("TOKENVAULT_DATABASE_URL")
        .env_remove("ID")
        .env_remove("SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "the walk-through failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Blanks what differs between runs: the client id, UUIDs, timestamps, the `date`, `request-id`
/// and `content-length` headers.
fn normalize(output: &str, client_id: &str) -> String {
    let mut out = String::new();
    for line in output.replace(client_id, "<client_id>").lines() {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("date: ") {
            out.push_str("date: <date>\n");
            continue;
        }
        if lower.starts_with("content-length: ") {
            // (the client id's length differs between the runs)
            out.push_str("content-length: <length>\n");
            continue;
        }
        if lower.starts_with("request-id: ") {
            out.push_str("request-id: <request-id>\n");
            continue;
        }
        out.push_str(&blank_uuids_and_times(line.trim_end_matches('\r')));
        out.push('\n');
    }
    out
}

fn blank_uuids_and_times(line: &str) -> String {
    let bytes = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = uuid_at(&bytes[i..]) {
            out.push_str("<uuid>");
            i += len;
        } else if let Some(len) = time_at(&bytes[i..]) {
            out.push_str("<ts>");
            i += len;
        } else {
            let c = line[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (lower-case hex).
fn uuid_at(s: &[u8]) -> Option<usize> {
    let shape = [8, 4, 4, 4, 12];
    let mut i = 0;
    for (n, group) in shape.iter().enumerate() {
        for _ in 0..*group {
            if !s.get(i)?.is_ascii_hexdigit() || s[i].is_ascii_uppercase() {
                return None;
            }
            i += 1;
        }
        if n < 4 {
            if s.get(i) != Some(&b'-') {
                return None;
            }
            i += 1;
        }
    }
    Some(i)
}

/// `YYYY-MM-DDTHH:MM:SS[.fff…]Z`.
fn time_at(s: &[u8]) -> Option<usize> {
    let digits = |range: std::ops::Range<usize>| range.into_iter().all(|i| s.get(i).is_some_and(u8::is_ascii_digit));
    if !(digits(0..4) && s.get(4) == Some(&b'-') && digits(5..7) && s.get(7) == Some(&b'-') && digits(8..10))
        || s.get(10) != Some(&b'T')
        || !(digits(11..13) && s.get(13) == Some(&b':') && digits(14..16) && s.get(16) == Some(&b':') && digits(17..19))
    {
        return None;
    }
    let mut i = 19;
    if s.get(i) == Some(&b'.') {
        i += 1;
        while s.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    (s.get(i) == Some(&b'Z')).then_some(i + 1)
}

/// The walk-through's output on a fresh database, `<client_id>` being the client it used.
const EXPECTED: &str = concat!(
    r#"{"id":"<uuid>","customer_id":"c1","email":"grace@example.com","type":"customer","created_at":"<ts>","created_by":"<client_id>","updated_at":"<ts>"}"#,
    "\n",
    r#"{"type":"sha1:email","value":"0c4d35a12f58282925d5240fa4ad85bdbc7c5e41","id":"<uuid>","created_at":"<ts>","created_by":"<client_id>","updated_at":"<ts>","token_id":"t1"}"#,
    "\n",
    r#"HTTP/1.1 200 OK"#,
    "\n",
    r#"content-type: application/json; charset=utf-8"#,
    "\n",
    r#"total-count: 1"#,
    "\n",
    r#"vary: origin, access-control-request-method, access-control-request-headers"#,
    "\n",
    r#"access-control-allow-origin: *"#,
    "\n",
    r#"access-control-expose-headers: paging-token,total-count,link,idempotent-replayed,tokenvault-fault"#,
    "\n",
    r#"request-id: <request-id>"#,
    "\n",
    r#"content-length: <length>"#,
    "\n",
    r#"date: <date>"#,
    "\n",
    r#""#,
    "\n",
    r#"[{"type":"sha1:email","value":"0c4d35a12f58282925d5240fa4ad85bdbc7c5e41","id":"<uuid>","created_at":"<ts>","created_by":"<client_id>","updated_at":"<ts>","token_id":"t1"}]"#,
    "\n",
    r#"{"type":"sha1:email","value":"0c4d35a12f58282925d5240fa4ad85bdbc7c5e41","id":"<uuid>","created_at":"<ts>","created_by":"<client_id>","updated_at":"<ts>","deleted_by":"<client_id>","deleted_at":"<ts>","token_id":"t1"}"#,
    "\n",
    r#"{"id":"<uuid>","type":"payment_token","status":"ACTIVE","card_brand":"visa","account_id":"T00000001","payment_product_type":"dintero_psp.creditcard","created_at":"<ts>","updated_at":"<ts>","token":"psp-ref-1","masked_pan":"476173******0416","pan_expiry_date":"09/2030","customer_id":"c1","created_by":"<client_id>"}"#,
    "\n",
    r#"[{"id":"<uuid>","type":"payment_token","status":"ACTIVE","card_brand":"visa","account_id":"T00000001","payment_product_type":"dintero_psp.creditcard","created_at":"<ts>","updated_at":"<ts>","token":"psp-ref-1","masked_pan":"476173******0416","pan_expiry_date":"09/2030","customer_id":"c1","created_by":"<client_id>"}]"#,
    "\n",
    r#"{"id":"<uuid>","type":"payment_token","status":"SUSPENDED","card_brand":"visa","account_id":"T00000001","payment_product_type":"dintero_psp.creditcard","created_at":"<ts>","updated_at":"<ts>","token":"psp-ref-1","masked_pan":"476173******0416","pan_expiry_date":"09/2030","customer_id":"c1","created_by":"<client_id>"}"#,
    "\n",
    r#"{"id":"<uuid>","type":"payment_token","status":"DELETED","card_brand":"visa","account_id":"T00000001","payment_product_type":"dintero_psp.creditcard","created_at":"<ts>","updated_at":"<ts>","masked_pan":"476173******0416","pan_expiry_date":"09/2030","customer_id":"c1","created_by":"<client_id>","deleted_at":"<ts>","deleted_by":"<client_id>"}"#,
    "\n",
);

#[test]
fn the_readme_walkthrough_runs_as_pasted() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed: skipping the README walk-through");
        return;
    }
    let script = walkthrough();
    let dir = tempfile::tempdir().unwrap();
    let (_server, url) = serve(dir.path(), &[]);
    let output = run(&script, dir.path(), &url, &[]);

    // The client the walk-through made is the one client of the fresh database.
    let clients = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["clients", "list"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let clients = String::from_utf8(clients.stdout).unwrap();
    assert_eq!(clients.lines().count(), 1, "{clients}");
    let client: serde_json::Value = serde_json::from_str(&clients).unwrap();
    let client_id = client["client_id"].as_str().unwrap();
    assert_eq!(normalize(&output, client_id), EXPECTED, "the raw output:\n{output}");
}

#[test]
fn the_readme_walkthrough_runs_with_the_dev_client() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("curl is not installed: skipping the README walk-through");
        return;
    }
    let script = walkthrough();
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = serve(dir.path(), &["--dev"]);
    // The client `serve --dev` printed, as a reader would copy it.
    let mut lines = BufReader::new(server.0.stdout.take().unwrap()).lines();
    let mut printed = |label: &str| loop {
        let line = lines.next().expect("serve --dev prints its client").unwrap();
        if let Some(value) = line.trim().strip_prefix(label) {
            return value.trim().to_owned();
        }
    };
    let id = printed("client_id:");
    let secret = printed("client_secret:");
    assert_eq!(id, "tokenvault-dev-T00000001");
    let output = run(&script, dir.path(), &url, &[("ID", &id), ("SECRET", &secret)]);
    assert_eq!(normalize(&output, &id), EXPECTED, "the raw output:\n{output}");
}
