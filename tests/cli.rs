//! The command line's own outputs: shell completions and the man page, generated from the clap
//! definitions so they never fall behind the flags.

use std::process::Command;

fn run(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault")).args(args).output().unwrap();
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn completions_cover_the_subcommands_and_flags() {
    let bash = run(&["completions", "bash"]);
    assert!(bash.starts_with("_tokenvault() {\n"), "{}", &bash[..80.min(bash.len())]);
    for word in ["serve", "clients", "card-tokens", "audit", "--database-url", "--listen", "--dev"] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    assert!(run(&["completions", "zsh"]).starts_with("#compdef tokenvault\n"));
}

#[test]
fn the_man_page_documents_the_command() {
    let man = run(&["man"]);
    assert!(man.contains(".TH tokenvault 1"), "{man}");
    assert!(man.contains("Run the HTTP server"), "{man}");
}

#[test]
fn seed_loads_fixtures_once_and_refuses_production_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}/tv.db", dir.path().display());
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/demo.json");
    let seed = |account: &str| {
        Command::new(env!("CARGO_BIN_EXE_tokenvault"))
            .args(["seed", fixtures, "--account", account, "--database-url", &database_url])
            .output()
            .unwrap()
    };

    let first = seed("T12345678");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(String::from_utf8(first.stdout).unwrap(), "{\"added\":9,\"already_present\":0}\n");
    let again = seed("T12345678");
    assert_eq!(String::from_utf8(again.stdout).unwrap(), "{\"added\":0,\"already_present\":9}\n");

    let production = seed("P12345678");
    assert_eq!(production.status.code(), Some(1));
    assert!(production.stdout.is_empty());
    assert_eq!(
        String::from_utf8(production.stderr).unwrap(),
        "tokenvault: fixtures are only for test accounts (T…), not P12345678\n"
    );
}
