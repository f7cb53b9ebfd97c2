//! Parts of the suite that need something outside the repository (podman, PyPI): they skip with a
//! notice on stderr where it is missing, unless their `TOKENVAULT_REQUIRE_…` variable is `1`
//! (as `.ci/run` sets), where they fail instead. The PostgreSQL half has its own variant in
//! `postgres.rs`.

#![allow(dead_code)] // each test crate uses its part

/// Whether `require_var` is `1`.
pub fn required(require_var: &str) -> bool {
    std::env::var(require_var).as_deref() == Ok("1")
}

/// Panics under `require_var=1`, else prints why `what` is skipped: straight to stderr, which
/// the test harness does not capture, so that the notice shows in a plain `cargo test`.
pub fn skip_or_require(require_var: &str, what: &str, reason: &str) {
    if required(require_var) {
        panic!("{what}: {reason} ({require_var}=1)");
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipping {what}: {reason} (set {require_var}=1 to require it)");
}
