//! The command implementations behind `main.rs`'s argument definitions.

pub mod data;
pub mod progress;
pub mod serve;
