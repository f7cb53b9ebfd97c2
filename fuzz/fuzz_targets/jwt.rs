//! The `jwt` target; its body and invariants are in `src/targets/jwt.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::jwt;

fuzz_target!(|input: jwt::Input| jwt::run(input));
