//! A small mutation fuzzer for the parsers that take bytes from the outside (GGUF header,
//! chat request, image decoding), run as unit tests beside each target. Each run first
//! replays every input kept under `tests/fuzz_regressions/<target>/`, then mutates the
//! target's seeds (byte flips, interesting integers, truncation, splicing, chunk copies;
//! JSON-aware replacement of values for JSON seeds) for `GLIMPSE_FUZZ_SECONDS` (default
//! 3; the README's test command runs 20). The mutations follow a random stream seeded anew
//! on every run, so that repeated runs explore new inputs rather than the same ones again;
//! the seed is printed, and `GLIMPSE_FUZZ_SEED` replays a run. A target fails only by
//! panicking; the input that made it panic is written to the regressions folder (commit it
//! with the fix) and named in the failure. cargo-fuzz would need a nightly toolchain, which
//! these machines lack.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

/// Mutations applied to one input, at most.
const MAX_MUTATIONS: usize = 6;

fn regressions_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target)
}

/// The mutation stream's seed: `GLIMPSE_FUZZ_SEED` when set, else a new one per run.
fn stream_seed() -> u64 {
    std::env::var("GLIMPSE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            fnv1a(&now.as_nanos().to_le_bytes()) ^ u64::from(std::process::id())
        })
}

fn budget() -> Duration {
    let seconds = std::env::var("GLIMPSE_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds.max(0.0))
}

/// Runs `target` on the kept regressions, then on mutations of `seeds` until the time
/// budget is spent; returns how many inputs ran. Panics (failing the test) when the target
/// panics, after saving the input.
pub fn fuzz(target: &str, seeds: &[Vec<u8>], run: impl Fn(&[u8])) -> usize {
    fuzz_with_regressions(target, &regressions_dir(target), seeds, run)
}

fn fuzz_with_regressions(
    target: &str,
    regressions: &std::path::Path,
    seeds: &[Vec<u8>],
    run: impl Fn(&[u8]),
) -> usize {
    let mut inputs = 0;
    let stream = stream_seed();
    let check = |input: &[u8], origin: &str| {
        if catch_unwind(AssertUnwindSafe(|| run(input))).is_err() {
            let dir = regressions;
            let _ = std::fs::create_dir_all(dir);
            let path = dir.join(format!("crash-{:016x}.bin", fnv1a(input)));
            let _ = std::fs::write(&path, input);
            panic!(
                "fuzz target '{target}' panicked on {origin} (GLIMPSE_FUZZ_SEED={stream}); \
                 input saved to {}",
                path.display()
            );
        }
    };
    if let Ok(entries) = std::fs::read_dir(regressions) {
        for entry in entries.flatten() {
            if let Ok(bytes) = std::fs::read(entry.path()) {
                check(&bytes, &format!("regression {}", entry.path().display()));
                inputs += 1;
            }
        }
    }
    for seed in seeds {
        check(seed, "a seed");
        inputs += 1;
    }
    let json_seeds: Vec<Option<Value>> = seeds
        .iter()
        .map(|s| serde_json::from_slice(s).ok())
        .collect();
    let deadline = Instant::now() + budget();
    let mut rng = ChaCha8Rng::seed_from_u64(stream);
    while Instant::now() < deadline {
        let index = rng.random_range(0..seeds.len());
        let input = match &json_seeds[index] {
            Some(value) if rng.random_bool(0.7) => {
                let mut value = value.clone();
                for _ in 0..rng.random_range(1..=3) {
                    mutate_json(&mut value, &mut rng);
                }
                value.to_string().into_bytes()
            }
            _ => mutate_bytes(&seeds[index], seeds, &mut rng),
        };
        check(&input, "a mutated input");
        inputs += 1;
    }
    eprintln!(
        "fuzz target '{target}': {inputs} inputs (GLIMPSE_FUZZ_SEED={stream}), none panicked"
    );
    inputs
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Integers that tend to sit on boundaries: counts, lengths, sizes, offsets.
const INTERESTING: [u64; 12] = [
    0,
    1,
    2,
    0x7F,
    0x80,
    0xFF,
    0xFFFF,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    0x1_0000_0000,
    i64::MAX as u64,
    u64::MAX,
];

fn mutate_bytes(seed: &[u8], seeds: &[Vec<u8>], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=MAX_MUTATIONS) {
        let len = bytes.len();
        let at = if len == 0 {
            0
        } else {
            rng.random_range(0..len)
        };
        match rng.random_range(0..8) {
            0 if len > 0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 if len > 0 => bytes[at] = rng.random(),
            2 if len >= at + 8 => {
                let value = INTERESTING[rng.random_range(0..INTERESTING.len())];
                let width = [1usize, 2, 4, 8][rng.random_range(0..4)];
                bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            3 => bytes.truncate(at),
            4 if len > 0 => {
                let end = rng.random_range(at..=len.min(at + 64));
                bytes.drain(at..end);
            }
            5 if len > 0 => {
                let end = rng.random_range(at..=len.min(at + 64));
                let chunk = bytes[at..end].to_vec();
                let to = rng.random_range(0..=bytes.len());
                bytes.splice(to..to, chunk);
            }
            6 => {
                let other = &seeds[rng.random_range(0..seeds.len())];
                if !other.is_empty() {
                    let from = rng.random_range(0..other.len());
                    bytes.truncate(at);
                    bytes.extend_from_slice(&other[from..]);
                }
            }
            _ => {
                let count = rng.random_range(1..16);
                let to = rng.random_range(0..=bytes.len());
                let noise: Vec<u8> = (0..count).map(|_| rng.random()).collect();
                bytes.splice(to..to, noise);
            }
        }
    }
    bytes
}

/// Replaces one node of `value` (picked uniformly) with a value of another shape.
fn mutate_json(value: &mut Value, rng: &mut ChaCha8Rng) {
    let nodes = count_nodes(value);
    let target = rng.random_range(0..nodes);
    let mut seen = 0;
    if let Some(node) = nth_node(value, target, &mut seen) {
        *node = replacement(node, rng);
    }
}

fn count_nodes(value: &Value) -> usize {
    1 + match value {
        Value::Array(items) => items.iter().map(count_nodes).sum(),
        Value::Object(map) => map.values().map(count_nodes).sum(),
        _ => 0,
    }
}

fn nth_node<'a>(value: &'a mut Value, target: usize, seen: &mut usize) -> Option<&'a mut Value> {
    if *seen == target {
        return Some(value);
    }
    *seen += 1;
    match value {
        Value::Array(items) => items.iter_mut().find_map(|v| nth_node(v, target, seen)),
        Value::Object(map) => map.values_mut().find_map(|v| nth_node(v, target, seen)),
        _ => None,
    }
}

fn replacement(old: &Value, rng: &mut ChaCha8Rng) -> Value {
    use serde_json::json;
    match rng.random_range(0..14) {
        0 => Value::Null,
        1 => json!(rng.random_bool(0.5)),
        2 => json!(-1),
        3 => json!(0),
        4 => json!(INTERESTING[rng.random_range(0..INTERESTING.len())]),
        5 => json!(1e300),
        6 => json!(-0.5),
        7 => json!(""),
        8 => json!("\u{0}\u{202e}ünïcödé\u{1F600}"),
        9 => json!("x".repeat(rng.random_range(0..5000))),
        10 => json!([]),
        11 => json!({}),
        12 => json!([old.clone(), old.clone()]),
        _ => json!({"type": old.clone(), "text": old.clone(), "image_url": {"url": old.clone()}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_deterministic_and_varied() {
        let seeds = vec![b"hello world, a seed".to_vec()];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let outputs: std::collections::HashSet<Vec<u8>> = (0..200)
            .map(|_| mutate_bytes(&seeds[0], &seeds, &mut rng))
            .collect();
        assert!(
            outputs.len() > 150,
            "only {} distinct mutations",
            outputs.len()
        );
        let mut value = serde_json::json!({"a": [1, {"b": "c"}], "d": null});
        for _ in 0..100 {
            mutate_json(&mut value, &mut rng);
        }
    }

    #[test]
    #[should_panic(expected = "panicked on a seed")]
    fn a_panicking_target_fails_and_names_the_input() {
        let dir = std::env::temp_dir().join(format!("glimpse-fuzz-{}", std::process::id()));
        fuzz_with_regressions("self-test", &dir, &[b"boom".to_vec()], |input| {
            if input == b"boom" {
                panic!("found it");
            }
        });
    }
}
