//! A short schemathesis run on every `cargo test`: `tests/schemathesis/run --examples 10` against
//! the server binary (schemathesis, pinned, from PyPI into the venv the script keeps in
//! `~/.cache/tokenvault/schemathesis-venv`). All four phases run — examples, coverage (which
//! ignores `--examples` and sends its own boundary and negative cases), fuzzing with 10 cases per
//! operation, stateful — about 1,900 requests in 20–25 s once the venv exists. It fails on any
//! 5xx or any response that does not match the document (status, content type, headers, schema),
//! and when an operation of the document was not exercised. The full run (up to 1,000 fuzzing
//! cases per operation) stays manual: `tests/schemathesis/run`, see SECURITY.md.
//!
//! Skips with a notice where `python3` cannot make a venv, `curl` is missing (the script needs
//! both), or schemathesis cannot be installed (PyPI unreachable: the script exits 75); under
//! `TOKENVAULT_REQUIRE_PYPI=1` (as `.ci/run` sets) each of these fails instead.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

#[path = "support/optional.rs"]
mod optional;

const REQUIRE: &str = "TOKENVAULT_REQUIRE_PYPI";
const WHAT: &str = "the schemathesis run";
/// `tests/schemathesis/run`'s exit status when pip cannot install schemathesis.
const NOT_INSTALLABLE: i32 = 75;

fn available(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|output| output.status.success())
}

#[test]
fn a_short_schemathesis_run_finds_no_server_error_and_no_schema_mismatch() {
    if !available("python3", &["-c", "import venv, ensurepip"]) || !available("curl", &["--version"]) {
        optional::skip_or_require(REQUIRE, WHAT, "python3 with venv, or curl, is not available");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let report = tempfile::tempdir().unwrap();
    // A fixed seed by default, so that CI sends the same cases every time; SCHEMATHESIS_SEED
    // from the environment wins.
    let seed = std::env::var("SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".to_owned());
    let output = Command::new(root.join("tests/schemathesis/run"))
        .args(["--examples", "10"])
        .env("TOKENVAULT_BIN", env!("CARGO_BIN_EXE_tokenvault"))
        .env("SCHEMATHESIS_REPORT_DIR", report.path())
        .env("SCHEMATHESIS_SEED", &seed)
        .output()
        .expect("tests/schemathesis/run starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(NOT_INSTALLABLE) {
        optional::skip_or_require(REQUIRE, WHAT, stderr.lines().last().unwrap_or_default());
        return;
    }
    assert!(output.status.success(), "schemathesis failed ({}):\n{stdout}\n{stderr}", output.status);

    // Cases per operation, from the NDJSON report; every operation at least 10.
    let ndjson: Vec<_> = std::fs::read_dir(report.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    assert_eq!(ndjson.len(), 1, "one NDJSON report: {ndjson:?}");
    let counted = Command::new("python3")
        .arg(root.join("tests/schemathesis/count_cases.py"))
        .arg(&ndjson[0])
        .arg("10")
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&counted.stdout);
    assert!(counted.status.success(), "an operation got fewer than 10 cases:\n{table}");
    let tested: BTreeSet<String> = table
        .lines()
        .filter(|line| line.starts_with(|c: char| c.is_ascii_uppercase()) && line.contains(" /"))
        .map(|line| line.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect();

    // Every documented operation was tested, but `GET /openapi.json`, which schemathesis 4.32
    // does not list among the operations it tests, the transaction operations answered 501
    // by design, which `run` leaves out (tests/api/sessions.rs pins them), and adding a fault rule.
    const LEFT_OUT: [&str; 7] = [
        "GET /v1/transactions",
        "PUT /v1/transactions/{id}",
        "POST /v1/transactions/{id}/capture",
        "POST /v1/transactions/{id}/refund",
        "POST /v1/transactions/{id}/void",
        "POST /v1/transactions/{id}/authorization",
        // Left out as well: a fault rule makes the server answer 5xx, or drop connections, on
        // purpose (tests/api/faults.rs covers it).
        "POST /v1/accounts/{aid}/sandbox/faults",
    ];
    let document = serde_json::to_value(tokenvault::http::openapi()).unwrap();
    let documented: BTreeSet<String> = document["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().unwrap().keys();
            let methods = methods
                .filter(|key| ["get", "put", "post", "delete", "patch", "head", "options"].contains(&key.as_str()));
            methods.map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .filter(|operation| operation != "GET /openapi.json" && !LEFT_OUT.contains(&operation.as_str()))
        .collect();
    assert_eq!(tested, documented, "operations tested vs documented; the table:\n{table}");
    eprintln!("{table}");
}
