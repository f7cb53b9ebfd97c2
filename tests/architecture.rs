//! The floors of the code (see `src/lib.rs` and the README's layout table) hold only while no
//! file reaches above its own floor or around the floor below it. This test reads every source
//! file and fails on any path (`crate::…` inside the library, `tokenvault::…` in the binary) into
//! a module its floor may not use, naming the file, the line and the rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each floor and the top-level modules its files may name (their own included).
const FLOORS: &[(&str, &[&str])] = &[
    ("domain", &["domain"]),
    ("crypto", &["crypto", "domain"]),
    ("store", &["store", "domain"]),
    ("auth", &["auth", "store", "crypto", "domain"]),
    ("service", &["service", "auth", "store", "crypto", "domain"]),
    ("http", &["http", "service", "auth", "domain"]),
    // Assembles the settings structs every floor owns; read only by `app` and the command line.
    ("settings", &["settings", "http", "service", "auth", "store", "crypto", "domain"]),
    // Start-up wires every floor together.
    ("app", &["app", "settings", "http", "service", "auth", "store", "crypto", "domain"]),
    // The command line: start-up, settings and the use cases, never the store or the cipher.
    ("cli", &["app", "settings", "service", "auth", "domain"]),
];

/// The floor a source file belongs to, from its path under `src/`.
fn floor_of(relative: &Path) -> Option<&'static str> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "main" | "cli" => Some("cli"),
        "lib" => None,
        other => FLOORS.iter().map(|(floor, _)| *floor).find(|floor| *floor == other),
    }
}

fn source_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The modules a line of code names through `crate::` or `tokenvault::` (comments left out).
fn named_modules(line: &str) -> Vec<String> {
    let code = line.split("//").next().unwrap_or("");
    let mut names = Vec::new();
    for prefix in ["crate::", "tokenvault::"] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let name: String = rest.chars().take_while(|c| c.is_ascii_lowercase() || *c == '_').collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    // `use tokenvault::{app, service};` names several at once.
    if let Some(group) = code.split("tokenvault::{").nth(1) {
        let group = group.split('}').next().unwrap_or("");
        names.extend(group.split(',').map(|name| name.split("::").next().unwrap_or("").trim().to_owned()));
    }
    names.retain(|name| !name.is_empty());
    names
}

/// Every forbidden reference, as "file:line: floor may not use module".
fn violations(src: &Path) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = FLOORS.iter().copied().collect();
    let modules: Vec<&str> = FLOORS.iter().map(|(floor, _)| *floor).filter(|floor| *floor != "cli").collect();
    let mut files = Vec::new();
    source_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src/");
        let Some(floor) = floor_of(relative) else { continue };
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for (number, line) in text.lines().enumerate() {
            for module in named_modules(line) {
                if modules.contains(&module.as_str()) && !allowed[floor].contains(&module.as_str()) {
                    found.push(format!("src/{}:{}: {floor} may not use {module}", relative.display(), number + 1));
                }
            }
        }
    }
    found
}

#[test]
fn no_floor_reaches_above_itself_or_around_the_floor_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "imports against the floors (src/lib.rs):\n{}", found.join("\n"));
}

#[test]
fn the_check_sees_forbidden_imports() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("http/routes/x.rs", "use crate::store::Store;\nuse crate::service::Vault; // crate::crypto in a comment\n");
    write("domain/y.rs", "fn f() -> crate::service::ServiceError { todo!() }\n");
    write("crypto/z.rs", "use crate::store::SealedToken;\n");
    write("cli/w.rs", "use tokenvault::{app, http};\nuse tokenvault::crypto::TokenCipher;\n");
    write("service/v.rs", "use crate::settings::ServeConfig;\n");
    write("lib.rs", "pub mod store;\n");
    assert_eq!(
        violations(dir.path()),
        [
            "src/cli/w.rs:1: cli may not use http",
            "src/cli/w.rs:2: cli may not use crypto",
            "src/crypto/z.rs:1: crypto may not use store",
            "src/domain/y.rs:1: domain may not use service",
            "src/http/routes/x.rs:1: http may not use store",
            "src/service/v.rs:1: service may not use settings",
        ]
    );
}
