//! The fuzz targets on every `cargo test`, without cargo-fuzz, libFuzzer or a sanitizer build:
//! `fuzz/src/lib.rs` (the targets' bodies and their set-up) is compiled in here as a module, and
//! each target gets every committed seed (`fuzz/seeds/<target>/`), every file of the local corpus
//! (`fuzz/corpus/<target>/`, where `fuzz/run-ci` has grown one) and a fixed number of generated
//! inputs: seeds with stacked byte mutations and dictionary words (`fuzz/dict/api.dict`) spliced
//! in, and random bytes, which the structured targets (`jwt`, `paging_link`, `http`) decode with
//! `arbitrary` exactly as their libFuzzer wrappers do. The generator has a fixed seed, so every
//! run sends the same inputs; `FUZZ_SMOKE_INPUTS=N` changes how many are generated per target
//! and `FUZZ_SMOKE_SEED=N` which. Each target panics when one of its invariants fails; the input
//! is then written to `target/tmp/fuzz-smoke-failures/` for `cargo fuzz run TARGET FILE`.
//! Coverage-guided runs stay manual: `fuzz/run-ci` (see `fuzz/README.md`).

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod tokenvault_fuzz;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Map, Value};

use tokenvault_fuzz::targets::{self, Entry};

/// One `#[test]` per target, with the number of inputs generated for it: as many as fit in a
/// few seconds of a debug build on a busy 2-core machine (the slow targets write to SQLite or run
/// the whole router per input). `GENERATED` lists them for the completeness check.
macro_rules! smoke_tests {
    ($($name:ident: $count:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                smoke(stringify!($name), $count);
            }
        )*
        const GENERATED: &[(&str, usize)] = &[$((stringify!($name), $count)),*];
    };
}

smoke_tests!(
    query: 20_000,
    json_bodies: 20_000,
    jwt: 10_000,
    paging_link: 20_000,
    card_token_import: 8_000,
    dataset_import: 1_500,
    http: 1_000,
);

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// No target escapes: the fuzz crate's binaries, their wrapper files, the shared table of
/// bodies and this test's list name the same targets.
#[test]
fn every_fuzz_target_is_smoke_tested() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    let binaries: BTreeSet<String> = manifest
        .split("[[bin]]")
        .skip(1)
        .map(|section| {
            let line = section.lines().find(|l| l.trim_start().starts_with("name")).expect("a name");
            line.split('"').nth(1).expect("a quoted name").to_owned()
        })
        .collect();
    let files: BTreeSet<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|entry| entry.unwrap().path().file_stem().unwrap().to_str().unwrap().to_owned())
        .collect();
    let bodies: BTreeSet<String> = targets::ALL.iter().map(|(name, _)| (*name).to_owned()).collect();
    let smoked: BTreeSet<String> = GENERATED.iter().map(|(name, _)| (*name).to_owned()).collect();
    assert_eq!(binaries.len(), 7, "{binaries:?}");
    assert_eq!(files, binaries);
    assert_eq!(bodies, binaries);
    assert_eq!(smoked, binaries);
}

/// Replays the target's seeds and corpus, then the generated inputs; fails on the first input
/// that breaks an invariant (or panics).
fn smoke(name: &str, default_count: usize) {
    let entry: Entry = targets::ALL.iter().find(|(n, _)| *n == name).expect("a target").1;
    let seeds = files_in(&fuzz_dir().join("seeds").join(name));
    let corpus = files_in(&fuzz_dir().join("corpus").join(name));
    let count = std::env::var("FUZZ_SMOKE_INPUTS").ok().map(|n| n.parse().expect("FUZZ_SMOKE_INPUTS: a number"));
    let count = count.unwrap_or(default_count);
    let seed = std::env::var("FUZZ_SMOKE_SEED").map(|n| n.parse().expect("FUZZ_SMOKE_SEED: a number")).unwrap_or(1);
    let dictionary = dictionary();

    let started = Instant::now();
    for (path, data) in seeds.iter().chain(&corpus) {
        run_one(name, entry, data, &path.display().to_string());
    }
    // Seeds first (the committed ones carry the known regressions), then generated inputs:
    // mutations of seeds and of earlier generated inputs, inputs built from the dictionary's
    // words in the target's own syntax (JSON objects, query strings, import lines), and random
    // bytes (for the structured targets: `arbitrary`'s generation).
    let mut rng = SplitMix(seed ^ fnv(name.as_bytes()));
    let originals: Vec<Vec<u8>> = seeds.iter().chain(&corpus).map(|(_, data)| data.clone()).collect();
    let mut pool = originals.clone();
    let words = Words::new(&dictionary);
    for index in 0..count {
        let input = match rng.below(10) {
            0..=3 if !pool.is_empty() => {
                // Half of the time a committed input, so that mutants stay close to valid ones.
                let mut input = match rng.below(2) {
                    0 if !originals.is_empty() => originals[rng.below(originals.len())].clone(),
                    _ => pool[rng.below(pool.len())].clone(),
                };
                let mutations = if rng.below(2) == 0 { 1 } else { 2 + rng.below(3) };
                for _ in 0..mutations {
                    mutate(&mut input, &mut rng, &pool, &dictionary);
                }
                input
            }
            4..=6 => match structured(name, &mut rng, &words, &originals) {
                Some(input) => input,
                None => random_bytes(&mut rng),
            },
            _ => random_bytes(&mut rng),
        };
        run_one(name, entry, &input, &format!("generated input {index} (FUZZ_SMOKE_SEED={seed})"));
        if pool.len() < 256 {
            pool.push(input);
        } else {
            let slot = rng.below(pool.len());
            pool[slot] = input;
        }
    }
    eprintln!(
        "fuzz smoke {name}: {} seeds, {} corpus files, {count} generated inputs in {:.1} s",
        seeds.len(),
        corpus.len(),
        started.elapsed().as_secs_f64()
    );
}

fn run_one(name: &str, entry: Entry, data: &[u8], label: &str) {
    if std::panic::catch_unwind(|| entry(data)).is_ok() {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-smoke-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}-{:016x}", fnv(data)));
    std::fs::write(&file, data).unwrap();
    panic!(
        "fuzz target {name} failed on {label}; the input is in {} (replay: cd fuzz && cargo fuzz run {name} {}): {:?}",
        file.display(),
        file.display(),
        String::from_utf8_lossy(&data[..data.len().min(512)])
    );
}

/// The regular files of `dir` (none if it does not exist), sorted by name.
fn files_in(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return vec![] };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    paths.sort();
    paths.into_iter().map(|path| (path.clone(), std::fs::read(&path).unwrap())).collect()
}

/// The quoted words of libFuzzer's dictionary (`"…"` or `name="…"`, with `\\`, `\"`, `\xNN`).
fn dictionary() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(fuzz_dir().join("dict").join("api.dict")).unwrap();
    let words: Vec<Vec<u8>> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let quoted = &line[line.find('"')? + 1..line.rfind('"')?];
            let mut word = vec![];
            let mut bytes = quoted.bytes();
            while let Some(byte) = bytes.next() {
                if byte != b'\\' {
                    word.push(byte);
                } else if let Some(escaped) = bytes.next() {
                    if escaped == b'x' {
                        let hex = [bytes.next().unwrap(), bytes.next().unwrap()];
                        word.push(u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap());
                    } else {
                        word.push(escaped);
                    }
                }
            }
            Some(word)
        })
        .collect();
    assert!(words.len() > 50, "the dictionary has {} words", words.len());
    words
}

fn random_bytes(rng: &mut SplitMix) -> Vec<u8> {
    let longest = if rng.below(4) == 0 { 2048 } else { 160 };
    let len = rng.below(longest);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// The dictionary's plain words (names and values, no syntax), for building inputs.
struct Words(Vec<String>);

impl Words {
    fn new(dictionary: &[Vec<u8>]) -> Self {
        let plain = |word: &&Vec<u8>| {
            word.len() > 1 && word.iter().all(|b| b.is_ascii_alphanumeric() || b"_-.:/*+@".contains(b))
        };
        Self(dictionary.iter().filter(plain).map(|w| String::from_utf8(w.clone()).unwrap()).collect())
    }

    fn pick(&self, rng: &mut SplitMix) -> &str {
        &self.0[rng.below(self.0.len())]
    }

    /// A word most of the time, otherwise a short odd string.
    fn text(&self, rng: &mut SplitMix) -> String {
        match rng.below(6) {
            0 => String::new(),
            1 => (0..1 + rng.below(12)).map(|_| char::from_u32(rng.next() as u32 % 0x3000).unwrap_or('?')).collect(),
            2 => "x".repeat(1 + rng.below(300)),
            _ => self.pick(rng).to_owned(),
        }
    }

    fn json(&self, rng: &mut SplitMix, depth: usize) -> Value {
        match rng.below(if depth > 2 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(rng.below(2) == 0),
            2 => json!([0i64, 1, -1, 100, 101, i64::MAX, i64::MIN][rng.below(7)]),
            3 => json!([0.5, -0.0, 1e300][rng.below(3)]),
            4 | 5 => json!(self.text(rng)),
            6 => Value::Array((0..rng.below(4)).map(|_| self.json(rng, depth + 1)).collect()),
            _ => self.object(rng, depth + 1),
        }
    }

    /// An object of the dictionary's field names, with values of any JSON type.
    fn object(&self, rng: &mut SplitMix, depth: usize) -> Value {
        let mut object = Map::new();
        for _ in 0..rng.below(10) {
            let key = if rng.below(8) == 0 { self.text(rng) } else { self.pick(rng).to_owned() };
            object.insert(key, self.json(rng, depth));
        }
        Value::Object(object)
    }
}

/// An input in the target's own syntax, built from the dictionary's words (`None` for the
/// structured targets, whose random bytes `arbitrary` already shapes).
fn structured(name: &str, rng: &mut SplitMix, words: &Words, originals: &[Vec<u8>]) -> Option<Vec<u8>> {
    match name {
        "json_bodies" => {
            let body = match variant(rng, words, originals) {
                Some(body) if rng.below(4) != 0 => body,
                _ => words.object(rng, 0),
            };
            Some(body.to_string().into_bytes())
        }
        "query" => {
            let pairs: Vec<String> = (0..rng.below(8))
                .map(|_| {
                    let key = words.pick(rng).to_owned() + ["", "", "[]", "%5B%5D", "[0]"][rng.below(5)];
                    let value = match rng.below(4) {
                        0 => rng.below(200).to_string(),
                        1 => ["true", "false", "1", "", "2030-01-01T00:00:00.123Z", "ACTIVE,DELETED"][rng.below(6)]
                            .to_owned(),
                        _ => {
                            percent_encoding::utf8_percent_encode(&words.text(rng), percent_encoding::NON_ALPHANUMERIC)
                                .to_string()
                        }
                    };
                    format!("{key}={value}")
                })
                .collect();
            Some(pairs.join("&").into_bytes())
        }
        // JSON Lines: objects of card-token fields, lines of the seeds, blank and broken lines.
        "card_token_import" | "dataset_import" => {
            let seed_lines: Vec<&[u8]> = originals.iter().flat_map(|input| input.split(|&b| b == b'\n')).collect();
            let mut lines: Vec<Vec<u8>> = vec![];
            for _ in 0..1 + rng.below(12) {
                lines.push(match rng.below(8) {
                    0 | 1 if !seed_lines.is_empty() => seed_lines[rng.below(seed_lines.len())].to_vec(),
                    2 => vec![],
                    3 => words.object(rng, 0).to_string().into_bytes(),
                    _ => match variant(rng, words, originals) {
                        Some(line) => line.to_string().into_bytes(),
                        None => words.object(rng, 0).to_string().into_bytes(),
                    },
                });
            }
            // The dataset format needs its header first: keep a seed's header line mostly.
            if name == "dataset_import" && !seed_lines.is_empty() && rng.below(4) != 0 {
                lines.insert(0, seed_lines[0].to_vec());
            }
            Some(lines.join(&b'\n'))
        }
        _ => None,
    }
}

/// A JSON object of a committed input (a whole file, or one of its lines) with one to three of
/// its fields, at any depth, removed or set to generated values: nearly valid bodies and rows.
fn variant(rng: &mut SplitMix, words: &Words, originals: &[Vec<u8>]) -> Option<Value> {
    let objects: Vec<Value> = originals
        .iter()
        .flat_map(|input| std::iter::once(&input[..]).chain(input.split(|&b| b == b'\n')))
        .filter_map(|text| serde_json::from_slice::<Value>(text).ok())
        .filter(Value::is_object)
        .collect();
    if objects.is_empty() {
        return None;
    }
    let mut object = objects[rng.below(objects.len())].clone();
    for _ in 0..1 + rng.below(3) {
        let mut target = &mut object;
        // Down into a nested object now and then (`row`, `config`, `metadata`, …).
        while rng.below(3) == 0 {
            let nested: Vec<String> =
                target.as_object().unwrap().iter().filter(|(_, v)| v.is_object()).map(|(k, _)| k.clone()).collect();
            if nested.is_empty() {
                break;
            }
            let key = &nested[rng.below(nested.len())];
            target = target.get_mut(key).unwrap();
        }
        let fields = target.as_object_mut().unwrap();
        let existing: Vec<String> = fields.keys().cloned().collect();
        match rng.below(4) {
            0 if !existing.is_empty() => {
                fields.remove(&existing[rng.below(existing.len())]);
            }
            1 => {
                fields.insert(words.pick(rng).to_owned(), words.json(rng, 1));
            }
            _ if !existing.is_empty() => {
                let key = existing[rng.below(existing.len())].clone();
                fields.insert(key, words.json(rng, 1));
            }
            _ => {}
        }
    }
    Some(object)
}

/// One of libFuzzer's simple mutations.
fn mutate(input: &mut Vec<u8>, rng: &mut SplitMix, pool: &[Vec<u8>], dictionary: &[Vec<u8>]) {
    let at = |rng: &mut SplitMix, input: &Vec<u8>| rng.below(input.len() + 1);
    match rng.below(8) {
        // Flip a bit, or set a byte.
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] =
                [0, b'"', b'\\', b'%', b'&', b'=', b'[', b'{', b'\n', 0xff, b'9', rng.next() as u8][rng.below(12)];
        }
        // Delete a range.
        2 if !input.is_empty() => {
            let start = rng.below(input.len());
            let end = (start + 1 + rng.below(16)).min(input.len());
            input.drain(start..end);
        }
        // Duplicate a range.
        3 if !input.is_empty() => {
            let start = rng.below(input.len());
            let end = (start + 1 + rng.below(32)).min(input.len());
            let copy = input[start..end].to_vec();
            let i = at(rng, input);
            input.splice(i..i, copy);
        }
        // Insert a dictionary word, or overwrite with one.
        4 | 5 => {
            let word = &dictionary[rng.below(dictionary.len())];
            let i = at(rng, input);
            if rng.below(2) == 0 {
                input.splice(i..i, word.iter().copied());
            } else {
                let end = (i + word.len()).min(input.len());
                input.splice(i..end, word.iter().copied());
            }
        }
        // Splice with another input of the pool.
        6 if !pool.is_empty() => {
            let other = &pool[rng.below(pool.len())];
            let keep = at(rng, input);
            let from = rng.below(other.len() + 1);
            input.truncate(keep);
            input.extend_from_slice(&other[from..]);
        }
        // Insert random bytes.
        _ => {
            let i = at(rng, input);
            let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
            input.splice(i..i, bytes);
        }
    }
}

/// SplitMix64: a small, fixed generator (the same sequence on every machine and version).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// FNV-1a, for naming failure files and deriving per-target seeds.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}
