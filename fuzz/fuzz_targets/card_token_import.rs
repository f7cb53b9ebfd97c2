//! The `card_token_import` target; its body and invariants are in `src/targets/card_token_import.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::card_token_import;

fuzz_target!(|data: &[u8]| card_token_import::run(data));
