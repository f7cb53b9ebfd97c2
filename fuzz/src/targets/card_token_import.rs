//! `tokenvault card-tokens import FILE`: JSON Lines of card-token create bodies, streamed through
//! `import_card_tokens` into the fuzz store (SQLite on tmpfs), as the command does. Invariants:
//! every line is counted once, every non-blank line is imported, found already present or
//! rejected with a message, and a rejection is reported with its line number.

use super::{fixture, runtime};
use tokenvault::service::import::import_card_tokens;

/// The target's body: one input, as libFuzzer hands it over.
pub fn run(data: &[u8]) {
    let fixture = fixture();
    let mut rejected = Vec::new();
    let result = runtime().block_on(import_card_tokens(
        &fixture.state.vault,
        &fixture.account,
        data,
        |line| rejected.push(line.clone()),
        |_, _| {},
    ));
    let Ok(summary) = result else {
        // Only reading can fail here (a line that is not UTF-8); the store is local.
        assert!(std::str::from_utf8(data).is_err(), "import failed on UTF-8 input: {result:?}");
        return;
    };
    let text = std::str::from_utf8(data).expect("a successful import read UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(summary.lines, lines.len() as u64);
    let non_blank = lines.iter().filter(|line| !line.trim().is_empty()).count() as u64;
    assert_eq!(summary.imported + summary.already_present + summary.rejected, non_blank, "{summary:?}");
    assert_eq!(summary.rejected, rejected.len() as u64);
    for line in &rejected {
        assert!(line.line >= 1 && line.line <= summary.lines);
        assert!(!line.message.is_empty());
        assert!(!lines[line.line as usize - 1].trim().is_empty(), "a blank line was rejected");
    }
}
