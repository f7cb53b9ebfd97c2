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

#[test]
fn config_layers_flags_environment_file_and_defaults_and_names_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokenvault.toml");
    std::fs::write(
        &file,
        "pool_size = 3\nlisten = \"127.0.0.1:9999\"\nissuer = \"from-file\"\nrequest_timeout_ms = 2500\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tokenvault"))
        .args(["config", "--config"])
        .arg(&file)
        .args(["--issuer", "from-flag"])
        .env("TOKENVAULT_LISTEN", "127.0.0.1:7000")
        .env("TOKENVAULT_DATABASE_URL", "postgres://tv:hunter2@db/tv")
        .env("TOKENVAULT_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "listen = \"127.0.0.1:7000\"  # from: flag or environment\n\
         database_url = \"postgres://tv:****@db/tv\"  # from: flag or environment\n\
         encryption_key = \"****\"  # from: flag or environment\n\
         token_ttl = 86400  # from: default\n\
         issuer = \"from-flag\"  # from: flag or environment\n\
         pool_size = 3  # from: config file\n\
         acquire_timeout_ms = 5000  # from: default\n\
         dev = false  # from: default\n\
         token_rate_limit = 60  # from: default\n\
         rate_limit = 0  # from: default\n\
         max_in_flight = 1024  # from: default\n\
         request_timeout_ms = 2500  # from: config file\n\
         seal_token_values = false  # from: default\n"
    );

    std::fs::write(&file, "max_in_flight = 0\n").unwrap();
    let output =
        Command::new(env!("CARGO_BIN_EXE_tokenvault")).args(["serve", "--config"]).arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "tokenvault: max_in_flight: must be at least 1\n");
}
