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
