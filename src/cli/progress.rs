//! A one-line progress bar for the long-running commands.

use std::io::{IsTerminal, Write};

/// Redrawn in place on stderr, and only when stderr is a terminal (logs and CI stay clean).
pub struct ProgressBar {
    terminal: bool,
    drawn: bool,
}

impl ProgressBar {
    pub fn new() -> Self {
        Self { terminal: std::io::stderr().is_terminal(), drawn: false }
    }

    /// Draws `done` of `total` with a line of detail.
    pub fn draw(&mut self, done: u64, total: u64, detail: &str) {
        if !self.terminal {
            return;
        }
        let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        eprint!("\r[{:<40}] {percent:>3}%  {detail}", "#".repeat(percent as usize * 40 / 100));
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    /// Ends the bar's line, if one was drawn.
    pub fn finish(&self) {
        if self.drawn {
            eprintln!();
        }
    }
}
