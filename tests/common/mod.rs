//! Shared support for the integration tests: fixture paths, the fixture checkpoints
//! converted once per test binary with the real `glimpse convert`, conversations from
//! `cases.json`, and the expected tensors written by `scripts/make_fixtures.py`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use glimpse::chat::{ImageRef, Message, Part, Role};
use serde::Deserialize;

pub const CONFIGS: [&str; 2] = ["tiny-tied", "tiny-untied"];
/// The trained 256-wide fixture the quantized profiles' quality is measured on
/// (scripts/make_quality_fixture.py).
pub const QUALITY_CONFIG: &str = "small-trained";
/// Its mixture-of-experts twin (scripts/make_quality_fixture.py --moe).
pub const MOE_QUALITY_CONFIG: &str = "small-trained-moe";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The glimpse binary the tests run: this build's, or `GLIMPSE_TEST_BIN` when set (e.g. the
/// static x86_64-unknown-linux-musl binary, by scripts/cross_musl.sh).
pub fn glimpse_bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("GLIMPSE_TEST_BIN")
            .ok()
            .filter(|bin| !bin.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_glimpse").to_owned())
    })
}

/// Whether the binary under test serves the web chat (its `--version` names a lite build,
/// which does not). The lite build's server tests run this crate's tests against it.
pub fn binary_has_webui() -> bool {
    let output = glimpse_command()
        .arg("--version")
        .output()
        .expect("running glimpse --version");
    assert!(output.status.success(), "glimpse --version failed");
    !String::from_utf8_lossy(&output.stdout).contains("lite")
}

/// A command running the glimpse binary, through `GLIMPSE_TEST_RUNNER` when set (e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu` from scripts/cross_aarch64.sh: a test under
/// qemu-user cannot exec a foreign binary itself, but it can exec the host's qemu).
pub fn glimpse_command() -> Command {
    let runner = std::env::var("GLIMPSE_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(glimpse_bin());
            command
        }
        None => Command::new(glimpse_bin()),
    }
}

pub fn tokenizer_json() -> PathBuf {
    let path = fixtures().join("tokenizer/tokenizer.json");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch_tokenizer.sh",
        path.display()
    );
    path
}

/// The Python of the test venv with the official client packages (scripts/setup_test_deps.sh
/// makes it in the test cache: `$GLIMPSE_CI_CACHE/test-venv`, default
/// `~/.cache/glimpse-ci/test-venv`).
pub fn test_venv_python() -> PathBuf {
    let cache = std::env::var_os("GLIMPSE_CI_CACHE")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".cache/glimpse-ci")
        });
    let python = cache.join("test-venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/setup_test_deps.sh",
        python.display()
    );
    python
}

/// This test process's directory under the target's temporary directory (`run-<pid>`),
/// which holds every file the tests write. The first call removes the directories of
/// earlier runs whose process is gone (on Linux, where `/proc` tells), so converted
/// fixtures — about a gigabyte per run — do not pile up in the target directory.
pub fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
        if Path::new("/proc/self").exists() {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let name = entry.file_name();
                let pid = name.to_str().and_then(|n| n.strip_prefix("run-"));
                if pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists()) {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = root.join(format!("run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the test run's directory");
        dir
    })
}

/// A copy of a fixture checkpoint with the real tokenizer linked in (the committed
/// checkpoints leave tokenizer.json out), made once per test process: tests running in
/// parallel must never see it half written.
pub fn checkpoint_dir(config: &str) -> PathBuf {
    static MADE: OnceLock<std::sync::Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut made = MADE.get_or_init(Default::default).lock().unwrap();
    if let Some(dir) = made.get(config) {
        return dir.clone();
    }
    let dir = run_dir().join(format!("checkpoint-{config}"));
    std::fs::create_dir_all(&dir).unwrap();
    let source = fixtures().join(config).join("checkpoint");
    for entry in std::fs::read_dir(&source).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    std::fs::copy(tokenizer_json(), dir.join("tokenizer.json")).unwrap();
    let rows = fixtures().join(config).join("embedding_rows.safetensors");
    if rows.is_file() {
        write_embedding_shard(&rows, &dir);
    }
    made.insert(config.to_owned(), dir.clone());
    dir
}

/// Writes the embedding shard a sharded fixture checkpoint's index names but does not commit:
/// the vocabulary-sized matrix, zero except the rows `rows_file` lists (`ids` int64, `rows`).
fn write_embedding_shard(rows_file: &Path, checkpoint: &Path) {
    const EMBEDDING: &str = "model.language_model.embed_tokens.weight";
    let read_json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(checkpoint.join(name)).unwrap()).unwrap()
    };
    let shard = read_json("model.safetensors.index.json")["weight_map"][EMBEDDING]
        .as_str()
        .unwrap()
        .to_owned();
    let vocab = read_json("config.json")["text_config"]["vocab_size"]
        .as_u64()
        .unwrap() as usize;
    let bytes = std::fs::read(rows_file).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (ids, rows) = (file.tensor("ids").unwrap(), file.tensor("rows").unwrap());
    assert_eq!(ids.dtype(), safetensors::Dtype::I64);
    let row_bytes = rows.data().len() / rows.shape()[0];
    let mut matrix = vec![0u8; vocab * row_bytes];
    for (id, row) in ids
        .data()
        .chunks_exact(8)
        .zip(rows.data().chunks_exact(row_bytes))
    {
        let id = i64::from_le_bytes(id.try_into().unwrap()) as usize;
        matrix[id * row_bytes..][..row_bytes].copy_from_slice(row);
    }
    let shape = vec![vocab, rows.shape()[1]];
    let view = safetensors::tensor::TensorView::new(rows.dtype(), shape, &matrix).unwrap();
    safetensors::serialize_to_file([(EMBEDDING, view)], None, &checkpoint.join(shard)).unwrap();
}

/// An empty directory of this test run for `label`'s files.
pub fn scratch_dir(label: &str) -> PathBuf {
    let dir = run_dir().join(label);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// The fixture checkpoint converted by the `glimpse convert` binary (once per process).
pub fn converted(config: &str, out_type: &str) -> PathBuf {
    static DONE: OnceLock<std::sync::Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap();
    let key = format!("{config}-{out_type}");
    if let Some(path) = done.get(&key) {
        return path.clone();
    }
    let output = run_dir().join(format!("{key}.gguf"));
    let status = glimpse_command()
        .args(["convert", "--quiet", "--type", out_type, "-o"])
        .arg(&output)
        .arg(checkpoint_dir(config))
        .status()
        .unwrap();
    assert!(status.success(), "glimpse convert failed for {config}");
    done.insert(key, output.clone());
    output
}

#[derive(Deserialize, Debug, Clone)]
pub struct Case {
    pub name: String,
    pub messages: serde_json::Value,
    pub prompt_text: String,
    pub input_ids: Vec<u32>,
    pub image_grid_thw: Vec<[usize; 3]>,
    pub greedy_tokens: Vec<u32>,
    pub greedy_text: String,
    /// transformers' top-1 minus top-2 logit at each greedy step.
    pub greedy_margins: Vec<f32>,
}

pub fn cases(config: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join(config).join("cases.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The cases of `config` named in `GLIMPSE_PARITY_CASES` (comma-separated), or all of them
/// when it is unset. The platform checks under qemu, where every multiply-add is emulated,
/// set it to a few cases that cover text, images of two sizes, several turns and an early
/// stop; a name that is not a case fails the test rather than selecting nothing.
pub fn parity_cases(config: &str) -> Vec<Case> {
    let all = cases(config);
    let Some(names) = std::env::var("GLIMPSE_PARITY_CASES")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        return all;
    };
    let names: Vec<&str> = names.split(',').map(str::trim).collect();
    for name in &names {
        assert!(
            all.iter().any(|case| case.name == *name),
            "GLIMPSE_PARITY_CASES: {config} has no case {name:?}"
        );
    }
    eprintln!("{config}: parity cases {names:?} (GLIMPSE_PARITY_CASES)");
    all.into_iter()
        .filter(|case| names.contains(&case.name.as_str()))
        .collect()
}

/// The HF-format messages of a case as glimpse messages, plus the image files in the
/// order `ImageRef`s were assigned.
pub fn messages(case: &Case) -> (Vec<Message>, Vec<PathBuf>) {
    let mut images = Vec::new();
    let messages = hf_messages(&case.messages, |part| {
        match part["type"].as_str().unwrap() {
            "image" => {
                images.push(fixtures().join(part["image"].as_str().unwrap()));
                Part::Image(ImageRef(images.len() - 1))
            }
            other => panic!("unknown part type {other}"),
        }
    });
    (messages, images)
}

/// HF-format messages (`[{"role", "content": str | [parts]}]`) as glimpse messages; `media`
/// turns each part that is not text into a glimpse part (and keeps what it refers to).
pub fn hf_messages(
    messages: &serde_json::Value,
    mut media: impl FnMut(&serde_json::Value) -> Part,
) -> Vec<Message> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role: Role = m["role"].as_str().unwrap().parse().unwrap();
            match &m["content"] {
                serde_json::Value::String(s) => Message::new(role, s.as_str()),
                serde_json::Value::Array(parts) => {
                    let parts = parts
                        .iter()
                        .map(|p| match p["type"].as_str().unwrap() {
                            "text" => Part::Text(p["text"].as_str().unwrap().to_owned()),
                            _ => media(p),
                        })
                        .collect::<Vec<_>>();
                    Message::new(role, parts)
                }
                other => panic!("unexpected content {other}"),
            }
        })
        .collect()
}

/// The greedy answer of a prompt, its end-of-turn token included when it stopped on one
/// (what the fixtures' `greedy_tokens` hold).
pub fn greedy_answer(
    bundle: &glimpse::engine::ModelBundle,
    prompt: &glimpse::chat::Prompt,
    images: &[&glimpse::preprocess::PixelValues],
    max_tokens: usize,
) -> Vec<u32> {
    use glimpse::engine::{GenerationParams, SamplingParams, Session};
    let params = GenerationParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        ignore_eos: false,
    };
    let out = Session::new(bundle)
        .generate(prompt, images, &params, |_| {
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    let mut tokens = out.tokens;
    tokens.extend(out.stop_token);
    tokens
}

/// f32 tensors of a safetensors file (other dtypes are skipped).
pub fn read_f32_tensors(path: &Path) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    file.tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(name, t)| {
            let data = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, (t.shape().to_vec(), data))
        })
        .collect()
}

/// Decodes and preprocesses image files with the model's preprocessor settings.
pub fn load_pixels(
    paths: &[PathBuf],
    bundle: &glimpse::engine::ModelBundle,
) -> Vec<glimpse::preprocess::PixelValues> {
    use glimpse::preprocess::{load_image, preprocess};
    paths
        .iter()
        .map(|p| {
            preprocess(
                &load_image(&std::fs::read(p).unwrap()).unwrap(),
                &bundle.preprocess,
            )
            .unwrap()
        })
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
