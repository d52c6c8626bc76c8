//! Interop with llama.cpp's two-file layout. `tests/fixtures/llamacpp-pair/` holds the tiny-tied
//! checkpoint as llama.cpp's own converter wrote it (text GGUF + mmproj GGUF, f16; see its
//! README). glimpse must load that pair and answer exactly as from its own single file, and
//! `glimpse convert --mmproj-out` must write the pair llama.cpp writes: same tensors (names,
//! shapes, types, bytes) and the same metadata values for every key llama.cpp reads.
//! `tests/fixtures/llamacpp-pair-moe-tied/` does the same for the mixture of experts
//! (llama.cpp's `qwen3vlmoe`).
use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use glimpse::chat::{tokenizer_json_from_gguf, Tokenizer};
use glimpse::engine::{ModelBundle, Session, Timings};
use glimpse::gguf::GgufFile;

/// A fixture checkpoint and the pair llama.cpp's converter wrote from it.
#[derive(Clone, Copy)]
struct Pair {
    config: &'static str,
    dir: &'static str,
}

const DENSE: Pair = Pair {
    config: "tiny-tied",
    dir: "llamacpp-pair",
};
const MIXTURE: Pair = Pair {
    config: "tiny-moe-tied",
    dir: "llamacpp-pair-moe-tied",
};
const CONFIG: &str = DENSE.config;

impl Pair {
    fn text(self) -> PathBuf {
        fixtures().join(self.dir).join("text-f16.gguf")
    }

    fn mmproj(self) -> PathBuf {
        fixtures().join(self.dir).join("mmproj-f16.gguf")
    }
}

fn llama_text() -> PathBuf {
    DENSE.text()
}

fn llama_mmproj() -> PathBuf {
    DENSE.mmproj()
}

/// One fixture conversation as a model file answers it.
struct Answer {
    case: String,
    prompt_ids: Vec<u32>,
    greedy: Vec<u32>,
    prompt_logits: Vec<f32>,
}

/// Greedy tokens and final prompt logits of every fixture conversation of `config`.
fn answers(bundle: &ModelBundle, config: &str) -> Vec<Answer> {
    cases(config)
        .iter()
        .map(|case| {
            let (messages, paths) = messages(case);
            let pixels = load_pixels(&paths, bundle);
            let (prompt, images) = bundle.prompt(&messages, &pixels).unwrap();
            let logits = Session::new(bundle)
                .prefill(&prompt, &images, &mut Timings::default())
                .unwrap();
            let tokens = greedy_answer(bundle, &prompt, &images, case.greedy_tokens.len());
            Answer {
                case: case.name.clone(),
                prompt_ids: prompt.ids,
                greedy: tokens,
                prompt_logits: logits,
            }
        })
        .collect()
}

fn assert_same_answers(pair: &ModelBundle, single: &ModelBundle, config: &str, what: &str) {
    for (a, b) in answers(pair, config)
        .into_iter()
        .zip(answers(single, config))
    {
        let case = &a.case;
        assert_eq!(a.prompt_ids, b.prompt_ids, "{what}/{case}: prompt ids");
        assert_eq!(a.greedy, b.greedy, "{what}/{case}: greedy tokens");
        let diff = max_abs_diff(&a.prompt_logits, &b.prompt_logits);
        assert!(diff <= 1e-5, "{what}/{case}: logits differ by {diff}");
    }
}

#[test]
fn the_vocabulary_llama_cpp_stores_tokenizes_like_tokenizer_json() {
    let file = GgufFile::open(llama_text()).unwrap();
    let rebuilt = Tokenizer::from_json_bytes(
        tokenizer_json_from_gguf(file.metadata())
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let original = Tokenizer::from_json_bytes(&std::fs::read(tokenizer_json()).unwrap()).unwrap();
    let texts = [
        "Describe this image.",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n\
         <|vision_start|><|image_pad|><|image_pad|><|vision_end|>What is it?<|im_end|>\n\
         <|im_start|>assistant\n<think>\n\n</think>\n\n",
        "  leading spaces, trailing spaces   \n\n\ttabs\r\nand CRLF",
        "Numbers 1234567890 and 3.14159, dates 2026-12-02.",
        "Unicode: naïve café, 日本語のテキスト, emoji 🙂🚀, Ελληνικά, עברית, हिन्दी",
        "fn main() { println!(\"{}\", x.iter().map(|v| v * 2).sum::<i32>()); }",
        "[{\"bbox_2d\": [12, 34, 560, 780], \"label\": \"cat\"}]",
        "<tool_call>{\"name\": \"f\"}</tool_call> <|fim_prefix|>a<|fim_suffix|>",
        "I'm sure they'll say it's done'",
        "",
    ];
    for text in texts {
        let ids = original.encode(text).unwrap();
        assert_eq!(rebuilt.encode(text).unwrap(), ids, "encoding {text:?}");
        assert_eq!(
            rebuilt.decode(&ids, false).unwrap(),
            original.decode(&ids, false).unwrap(),
            "decoding {text:?}"
        );
    }
    assert_eq!(rebuilt.vocab_size(), original.vocab_size());
}

fn check_pair_answers_like_single_file(fixture: Pair) {
    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let pair = ModelBundle::load(&fixture.text(), Some(&fixture.mmproj())).unwrap();
    let single = ModelBundle::load(&converted(fixture.config, "f16"), None).unwrap();
    assert!(pair.files.is_pair() && !single.files.is_pair());
    assert_eq!(pair.model.config, single.model.config);
    assert_eq!(pair.preprocess, single.preprocess);
    assert_eq!(pair.special.eos, single.special.eos);
    assert_same_answers(&pair, &single, fixture.config, "llama.cpp pair");
}

#[test]
fn llama_cpps_pair_answers_exactly_like_glimpses_single_file() {
    check_pair_answers_like_single_file(DENSE);
}

#[test]
fn llama_cpps_mixture_of_experts_pair_answers_exactly_like_glimpses_single_file() {
    check_pair_answers_like_single_file(MIXTURE);
}

/// Runs `glimpse convert --mmproj-out` on a fixture checkpoint (f16, like the fixture pair).
fn glimpse_pair(dir: &Path, config: &str) -> (PathBuf, PathBuf) {
    let (text, mmproj) = (dir.join("text.gguf"), dir.join("mmproj.gguf"));
    let status = Command::new(glimpse_bin())
        .args(["convert", "--quiet", "--type", "f16", "-o"])
        .arg(&text)
        .arg("--mmproj-out")
        .arg(&mmproj)
        .arg(checkpoint_dir(config))
        .status()
        .unwrap();
    assert!(status.success(), "glimpse convert --mmproj-out failed");
    (text, mmproj)
}

/// Keys whose values legitimately differ: the display name, llama.cpp's size label and the
/// sampling defaults it copies from generation_config.json (glimpse keeps that file whole).
fn compared_key(key: &str) -> bool {
    !matches!(key, "general.name" | "general.size_label") && !key.starts_with("general.sampling.")
}

fn assert_same_layout(ours: &GgufFile, theirs: &GgufFile, what: &str) {
    for (key, value) in theirs.metadata().iter().filter(|(k, _)| compared_key(k)) {
        let mine = ours
            .metadata()
            .get(key)
            .unwrap_or_else(|| panic!("{what}: glimpse does not write '{key}'"));
        assert_eq!(
            format!("{mine:?}"),
            format!("{value:?}"),
            "{what}: value of '{key}'"
        );
    }
    let names = |f: &GgufFile| {
        let mut names: Vec<String> = f.tensor_infos().iter().map(|t| t.name.clone()).collect();
        names.sort();
        names
    };
    assert_eq!(names(ours), names(theirs), "{what}: tensor names");
    for info in theirs.tensor_infos() {
        let (mine, other) = (
            ours.tensor(&info.name).unwrap(),
            theirs.tensor(&info.name).unwrap(),
        );
        assert_eq!(mine.shape, other.shape, "{what}: shape of {}", info.name);
        assert_eq!(mine.dtype, other.dtype, "{what}: type of {}", info.name);
        assert!(mine.data == other.data, "{what}: bytes of {}", info.name);
    }
}

fn check_convert_writes_llama_cpps_pair(fixture: Pair) {
    let dir = crate::common::scratch_dir(&format!("mmproj-out-{}", fixture.config));
    let (text, mmproj) = glimpse_pair(&dir, fixture.config);
    let (ours_text, ours_mmproj) = (
        GgufFile::open(&text).unwrap(),
        GgufFile::open(&mmproj).unwrap(),
    );
    assert_same_layout(&ours_text, &GgufFile::open(fixture.text()).unwrap(), "text");
    assert_same_layout(
        &ours_mmproj,
        &GgufFile::open(fixture.mmproj()).unwrap(),
        "mmproj",
    );

    glimpse::engine::threads::init_thread_pool(None).unwrap();
    let pair = ModelBundle::load(&text, Some(&mmproj)).unwrap();
    let single = ModelBundle::load(&converted(fixture.config, "f16"), None).unwrap();
    assert_same_answers(&pair, &single, fixture.config, "glimpse pair");
}

#[test]
fn convert_mmproj_out_writes_the_pair_llama_cpp_writes() {
    check_convert_writes_llama_cpps_pair(DENSE);
}

/// The experts' tensors (router, split and transposed gate / up, down) and keys come out as
/// llama.cpp's converter writes them, byte for byte.
#[test]
fn convert_mmproj_out_writes_the_mixture_of_experts_pair_llama_cpp_writes() {
    check_convert_writes_llama_cpps_pair(MIXTURE);
}

fn load_error(model: &Path, mmproj: Option<&Path>) -> String {
    match ModelBundle::load(model, mmproj) {
        Ok(_) => panic!("{} with {mmproj:?} loaded", model.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn a_mismatched_pair_is_refused_with_a_clear_message() {
    let text_only = load_error(&llama_text(), None);
    assert!(
        text_only.contains("no vision encoder") && text_only.contains("--mmproj"),
        "{text_only}"
    );
    let single = converted(CONFIG, "f16");
    let doubled = load_error(&single, Some(&llama_mmproj()));
    assert!(
        doubled.contains("already contains the vision encoder"),
        "{doubled}"
    );
    let not_projector = load_error(&llama_text(), Some(&llama_text()));
    assert!(
        not_projector.contains("is not a Qwen3-VL projector"),
        "{not_projector}"
    );
}

#[test]
fn glimpse_run_answers_from_llama_cpps_pair() {
    let image = fixtures().join("images").join("small_64x96.png");
    let output = Command::new(glimpse_bin())
        .args([
            "run",
            "--temperature",
            "0",
            "--max-tokens",
            "4",
            "-p",
            "What is it?",
        ])
        .arg("-m")
        .arg(llama_text())
        .arg("--mmproj")
        .arg(llama_mmproj())
        .arg("--image")
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.stdout.is_empty());
}
