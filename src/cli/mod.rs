//! The command implementations behind `main.rs`'s argument definitions.

pub mod audit;
pub mod backup;
pub mod clients;
pub mod data;
pub mod health;
pub mod journal;
pub mod keys;
pub mod listen;
pub mod progress;
pub mod serve;
pub mod unseal;
