//! The `query` target; its body and invariants are in `src/targets/query.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::query;

fuzz_target!(|data: &[u8]| query::run(data));
