//! `examples/sandbox.sh`, run as a user would: against a server of its own (this build's
//! `tokenvault`), it shows the request journal, a fault, the account's clock and `tokenvault
//! listen`, and checks each (exiting 1 when the sandbox does not behave as it says). Skipped with
//! a notice where curl, jq or python3 is missing.

use std::process::Command;

#[test]
fn the_sandbox_example_runs() {
    for tool in ["curl", "jq", "python3"] {
        if Command::new(tool).arg("--version").output().is_err() {
            eprintln!("{tool} is not installed: skipping examples/sandbox.sh");
            return;
        }
    }
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sandbox.sh"))
        .env("TOKENVAULT", env!("CARGO_BIN_EXE_tokenvault"))
        .env_remove("TOKENVAULT_CONFIG")
        .env_remove("TOKENVAULT_DATABASE_URL")
        .env_remove("TOKENVAULT_LISTEN")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "examples/sandbox.sh failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    let sections: Vec<&str> = lines.iter().copied().filter(|line| line.starts_with("== ")).collect();
    assert_eq!(
        sections,
        [
            "== a fresh server (serve --dev: test account T00000001, webhooks to localhost allowed)",
            "== 1. the request journal: what the application sent, and what it got back",
            "== 2. a fault: the next token creation answers 503, the retry succeeds",
            "== 3. the clock: the account lives on 1 March 2030, then a month later",
            "== 4. webhooks: tokenvault listen forwards a triggered event to a local receiver",
            "== all as described",
        ]
    );
    for expected in [
        r#"{"method":"POST","path":"/v1/accounts/T00000001/customers/users","status":200,"request":{"customer_id":"ada","email":"ada@example.com"}}"#,
        r#"{"time":"2030-03-01T09:00:00.000Z","offset_ms":"#,
        r#"{"event":"checkout_token_add","created":true}"#,
    ] {
        assert!(lines.iter().any(|line| line.starts_with(expected)), "no line {expected} in:\n{stdout}");
    }
    let forwarded: Vec<&str> = lines.iter().copied().filter(|line| line.contains(" -> ")).collect();
    assert_eq!(forwarded.len(), 2, "{stdout}");
    assert!(forwarded[0].starts_with("<time> ping <id> -> http://127.0.0.1:") && forwarded[0].ends_with("/hooks 200"));
    assert!(forwarded[1].starts_with("<time> checkout_token_add <id> -> http://127.0.0.1:"));
    assert!(forwarded[1].ends_with("/hooks 200"));
}
