//! Dintero's own Python SDK (`dintero` on PyPI) against a local tokenvault: runs
//! `examples/python/token_walkthrough.py` in a virtual environment this test creates, so a change
//! that breaks real clients is noticed. The example ends with a payment-token session completed
//! by the browser-less completion call (create the session, complete it, read the transaction,
//! list the card token).

use std::path::{Path, PathBuf};
use std::process::Command;

use tokenvault::auth::clients;
use tokenvault::domain::AccountId;
use tokenvault::settings::ServeConfig;

#[path = "support/optional.rs"]
mod optional;

/// Skips without PyPI (or without Python's venv), with a notice; fails under this set to `1`.
const REQUIRE: &str = "TOKENVAULT_REQUIRE_PYPI";
const WHAT: &str = "the Python SDK example";

/// A virtual environment with the example's requirements, kept between runs in Cargo's target
/// directory (`TOKENVAULT_TEST_PYTHON_VENV` names another). `None` (with a notice) where Python
/// cannot make one or pip cannot install the requirements (PyPI unreachable).
fn python_with_requirements(example_dir: &Path) -> Option<PathBuf> {
    let venv = std::env::var_os("TOKENVAULT_TEST_PYTHON_VENV")
        .map_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-example-venv"), PathBuf::from);
    let python = venv.join("bin").join("python");
    let marker = venv.join(".requirements-installed");
    let requirements = example_dir.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements).unwrap();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Some(python);
    }
    let created = Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv).status();
    if !created.is_ok_and(|s| s.success()) {
        optional::skip_or_require(REQUIRE, WHAT, "python3 -m venv is not available");
        return None;
    }
    // A short timeout and few retries: where PyPI is unreachable, skip soon.
    let installed = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--timeout", "15", "--retries", "2"])
        .arg("-r")
        .arg(&requirements)
        .output()
        .unwrap();
    if !installed.status.success() {
        let stderr = String::from_utf8_lossy(&installed.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        let reason = format!("pip could not install {} (is PyPI reachable?): {last}", requirements.display());
        optional::skip_or_require(REQUIRE, WHAT, &reason);
        return None;
    }
    std::fs::write(&marker, wanted).unwrap();
    Some(python)
}

#[tokio::test]
async fn dinteros_python_sdk_drives_the_token_endpoints() {
    let example_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join("python");
    let Some(python) = tokio::task::spawn_blocking(move || python_with_requirements(&example_dir)).await.unwrap()
    else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let server =
        tokenvault::app::start(ServeConfig::new(format!("sqlite://{}/tv.db", dir.path().display()).parse().unwrap()))
            .await
            .unwrap();
    let account = AccountId::parse("aid", "T00000001").unwrap();
    let scopes = vec!["admin:customers".to_owned(), "admin:checkout".to_owned()];
    let credentials = clients::create_client(server.store.as_ref(), &account, scopes).await.unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python/token_walkthrough.py");
    let url = server.url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("TOKENVAULT_URL", url)
            .env("TOKENVAULT_ACCOUNT", "T00000001")
            .env("TOKENVAULT_CLIENT_ID", &credentials.client_id)
            .env("TOKENVAULT_CLIENT_SECRET", &credentials.client_secret)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    server.shutdown().await;

    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the example failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let steps: Vec<&str> = stdout.lines().map(|line| line.split(':').next().unwrap()).collect();
    assert_eq!(
        steps,
        [
            "customer created",
            "customer token created",
            "customer tokens listed",
            "bad token refused",
            "customer token deleted",
            "card token created",
            "card tokens listed",
            "card token deleted",
            "payment-token session created",
            "session completed",
            "transaction read",
            "session card token listed"
        ]
    );
    assert!(stdout.contains("customer tokens listed: 1 (total-count 1)\n"), "{stdout}");
    assert!(stdout.contains("bad token refused: type\n"), "{stdout}");
    assert!(stdout.contains("card token deleted: DELETED\n"), "{stdout}");
    assert!(stdout.contains("payment-token session created: True\n"), "{stdout}");
    assert!(stdout.contains("session completed: https://shop.example.com/return\n"), "{stdout}");
    assert!(stdout.contains("transaction read: AUTHORIZED 411111******1111\n"), "{stdout}");
    assert!(stdout.contains("session card token listed: True\n"), "{stdout}");
}
