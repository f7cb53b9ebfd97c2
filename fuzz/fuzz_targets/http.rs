//! The `http` target; its body and invariants are in `src/targets/http.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::http;

fuzz_target!(|input: http::Input| http::run(input));
