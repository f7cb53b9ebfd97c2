//! The `json_bodies` target; its body and invariants are in `src/targets/json_bodies.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::json_bodies;

fuzz_target!(|data: &[u8]| json_bodies::run(data));
