//! The `dataset_import` target; its body and invariants are in `src/targets/dataset_import.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::dataset_import;

fuzz_target!(|data: &[u8]| dataset_import::run(data));
