//! The fuzz targets' bodies, one module each. The libFuzzer binaries in `fuzz_targets/` are thin
//! `fuzz_target!` wrappers around them, and the root crate's `tests/fuzz_smoke.rs` includes this
//! library (by `#[path]`, without libfuzzer-sys) to replay the seeds and a bounded number of
//! generated inputs through the very same code on every `cargo test`. Every body panics when one
//! of its invariants does not hold.

use arbitrary::{Arbitrary, Unstructured};

use super::{fixture, router, runtime, scratch_dir, sign_raw, signing_key, sqlite_url};
use super::{ACCOUNT, ISSUER, KID, OTHER_ACCOUNT, SCOPES};

pub mod card_token_import;
pub mod dataset_import;
pub mod http;
pub mod json_bodies;
pub mod jwt;
pub mod paging_link;
pub mod query;

/// A target's entry on raw bytes, as libFuzzer feeds it.
pub type Entry = fn(&[u8]);

/// Every target by its name (as in `Cargo.toml`, `seeds/` and `corpus/`), taking raw bytes:
/// the structured targets decode them as their `fuzz_target!` wrapper does.
pub const ALL: &[(&str, Entry)] = &[
    ("query", query::run),
    ("json_bodies", json_bodies::run),
    ("jwt", |data| decoded(data, jwt::run)),
    ("paging_link", |data| decoded(data, paging_link::run)),
    ("card_token_import", card_token_import::run),
    ("dataset_import", dataset_import::run),
    ("http", |data| decoded(data, http::run)),
];

/// Decodes `data` into `T` exactly as libfuzzer-sys 0.4 does for `fuzz_target!(|input: T| …)`
/// (too short for `T`'s size hint, or undecodable: skipped), then runs `body`.
pub fn decoded<T: for<'a> Arbitrary<'a>>(data: &[u8], body: fn(T)) {
    if data.len() < <T as Arbitrary>::size_hint(0).0 {
        return;
    }
    if let Ok(input) = T::arbitrary_take_rest(Unstructured::new(data)) {
        body(input);
    }
}
