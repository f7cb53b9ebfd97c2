//! The `paging_link` target; its body and invariants are in `src/targets/paging_link.rs`, shared with the
//! root crate's `tests/fuzz_smoke.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenvault_fuzz::targets::paging_link;

fuzz_target!(|input: paging_link::Input| paging_link::run(input));
