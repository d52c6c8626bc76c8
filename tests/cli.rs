//! The `glimpse` binary end to end: `run` streams transformers' greedy answer, `info`
//! describes a converted file, `bench` reports its measurements as text or one JSON
//! object, and every bad input (checkpoint, GGUF, image, argument) ends with a clear
//! message and a non-zero exit, never a panic.
use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use glimpse_convert::{GgufWriter, MetaValue, Metadata};

fn glimpse(args: &[&str]) -> Output {
    Command::new(glimpse_bin()).args(args).output().unwrap()
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Asserts a failed run whose stderr contains `needle` and no panic.
fn assert_clear_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got success; stderr: {stderr}"
    );
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
}

fn scratch(name: &str) -> PathBuf {
    crate::common::scratch_dir(&format!("cli-{name}"))
}

/// A scratch copy of the tiny-tied checkpoint (with tokenizer) to break in a test.
fn checkpoint_copy(name: &str) -> PathBuf {
    let broken = scratch(name);
    for entry in std::fs::read_dir(checkpoint_dir("tiny-tied")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
    }
    broken
}

/// Runs `glimpse convert` on `dir`, writing `dir/out.gguf`.
fn convert_in_place(dir: &Path) -> Output {
    glimpse(&[
        "convert",
        "--quiet",
        path_str(dir),
        "-o",
        path_str(&dir.join("out.gguf")),
    ])
}

#[test]
fn run_streams_the_transformers_greedy_answer() {
    let model = converted("tiny-untied", "f32");
    let case = cases("tiny-untied")
        .into_iter()
        .find(|c| c.name == "one_image_noresize")
        .unwrap();
    let (messages, images) = messages(&case);
    let question = match &messages[0].content {
        glimpse::chat::Content::Parts(parts) => parts
            .iter()
            .find_map(|p| match p {
                glimpse::chat::Part::Text(t) => Some(t.clone()),
                _ => None,
            })
            .unwrap(),
        other => panic!("unexpected content {other:?}"),
    };
    let out = glimpse(&[
        "run",
        "-m",
        path_str(&model),
        "--image",
        path_str(&images[0]),
        "-p",
        &question,
        "--temperature",
        "0",
        "--max-tokens",
        "32",
        "--threads",
        "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokenizer =
        glimpse::chat::Tokenizer::from_json_bytes(&std::fs::read(tokenizer_json()).unwrap())
            .unwrap();
    let expected = tokenizer.decode(&case.greedy_tokens, true).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{expected}\n")
    );
}

#[test]
fn info_describes_a_converted_model() {
    let out = glimpse(&["info", path_str(&converted("tiny-tied", "f32"))]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("qwen3vl"), "{text}");
    assert!(
        text.contains("token_embd") || text.contains("tensors"),
        "{text}"
    );
}

#[test]
fn convert_rejects_a_checkpoint_without_safetensors() {
    let dir = checkpoint_dir("tiny-tied");
    let broken = scratch("no-safetensors");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        if !entry
            .file_name()
            .to_string_lossy()
            .ends_with(".safetensors")
        {
            std::fs::copy(entry.path(), broken.join(entry.file_name())).unwrap();
        }
    }
    let out = convert_in_place(&broken);
    assert_clear_failure(&out, "safetensors");
    assert!(
        !broken.join("out.gguf").exists(),
        "no output file on failure"
    );
}

#[test]
fn convert_rejects_a_corrupt_safetensors_file() {
    let broken = checkpoint_copy("corrupt-safetensors");
    let bytes = std::fs::read(broken.join("model.safetensors")).unwrap();
    std::fs::write(broken.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let out = convert_in_place(&broken);
    assert_clear_failure(&out, "model.safetensors");
}

#[test]
fn convert_rejects_an_unknown_architecture() {
    let broken = checkpoint_copy("llama-config");
    let config = std::fs::read_to_string(broken.join("config.json")).unwrap();
    let config = config
        .replace("\"qwen3_vl\"", "\"llama\"")
        .replace("Qwen3VLForConditionalGeneration", "LlamaForCausalLM");
    std::fs::write(broken.join("config.json"), config).unwrap();
    let out = convert_in_place(&broken);
    assert_clear_failure(&out, "unsupported architecture");
}

#[test]
fn run_rejects_a_truncated_gguf() {
    let bytes = std::fs::read(converted("tiny-tied", "f32")).unwrap();
    let dir = scratch("truncated");
    for (i, cut) in [10, 1000, bytes.len() / 2, bytes.len() - 1]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("cut{i}.gguf"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let out = glimpse(&[
            "run",
            "-m",
            path_str(&path),
            "-p",
            "hi",
            "--max-tokens",
            "1",
        ]);
        assert_clear_failure(&out, "cannot load model");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("truncated") || stderr.contains("past end"),
            "cut at {cut}: {stderr}"
        );
    }
}

/// The model-file corpus for every command that loads a model: each broken file ends with
/// a clear message and a non-zero exit from `info`, `run` and `serve`, never a panic.
#[test]
fn broken_model_files_fail_clearly_in_info_run_and_serve() {
    let bytes = std::fs::read(converted("tiny-tied", "f32")).unwrap();
    let dir = scratch("broken-models");
    let patched = |at: usize, value: &[u8]| {
        let mut copy = bytes[..bytes.len().min(1 << 20)].to_vec();
        copy[at..at + value.len()].copy_from_slice(value);
        copy
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad-magic", patched(0, b"GGUX"), "bad magic"),
        (
            "version-1",
            patched(4, &1u32.to_le_bytes()),
            "unsupported GGUF version 1",
        ),
        (
            "version-big-endian",
            patched(4, &3u32.to_be_bytes()),
            "big-endian",
        ),
        (
            "absurd-tensor-count",
            patched(8, &u64::MAX.to_le_bytes()),
            "tensor count",
        ),
        (
            "data-past-the-end",
            bytes[..bytes.len() - 4096].to_vec(),
            "past end",
        ),
        ("empty", Vec::new(), "GGUF"),
    ];
    for (name, contents, needle) in cases {
        let path = dir.join(format!("{name}.gguf"));
        std::fs::write(&path, contents).unwrap();
        let model = path_str(&path);
        assert_clear_failure(&glimpse(&["info", model]), needle);
        assert_clear_failure(&glimpse(&["run", "-m", model, "-p", "hi"]), needle);
        let serve = glimpse(&["serve", "-m", model, "--port", "0"]);
        assert_clear_failure(&serve, needle);
    }
}

#[test]
fn run_rejects_a_gguf_of_another_architecture() {
    let path = scratch("llama-gguf").join("llama.gguf");
    let mut metadata = Metadata::new();
    metadata
        .insert("general.architecture", MetaValue::String("llama".into()))
        .unwrap();
    let writer =
        GgufWriter::new(std::fs::File::create(&path).unwrap(), &metadata, Vec::new()).unwrap();
    writer.finish().unwrap();
    let out = glimpse(&["run", "-m", path_str(&path), "-p", "hi"]);
    assert_clear_failure(&out, "architecture is 'llama'");
}

#[test]
fn run_rejects_an_unreadable_image() {
    let model = converted("tiny-tied", "f32");
    let image = scratch("bad-image").join("not-an-image.png");
    std::fs::write(&image, b"this is not a PNG").unwrap();
    let out = glimpse(&[
        "run",
        "-m",
        path_str(&model),
        "--image",
        path_str(&image),
        "-p",
        "what is this?",
    ]);
    assert_clear_failure(&out, "cannot decode image");
    let missing = glimpse(&[
        "run",
        "-m",
        path_str(&model),
        "--image",
        "/nonexistent/x.png",
        "-p",
        "what is this?",
    ]);
    assert_clear_failure(&missing, "cannot read image");
}

#[test]
fn quantize_rewrites_a_model_that_still_answers() {
    let source = converted("tiny-tied", "f32");
    let output = scratch("quantize").join("q8.gguf");
    let out = glimpse(&[
        "quantize",
        path_str(&source),
        path_str(&output),
        "--type",
        "q8_0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = String::from_utf8(glimpse(&["info", path_str(&output)]).stdout).unwrap();
    assert!(info.contains("Q8_0"), "{info}");
    let run = glimpse(&[
        "run",
        "-m",
        path_str(&output),
        "-p",
        "hi",
        "--temperature",
        "0",
        "--max-tokens",
        "4",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.stdout.is_empty());
    let bad = glimpse(&[
        "quantize",
        path_str(&source),
        path_str(&output),
        "--type",
        "q3_k",
    ]);
    assert_clear_failure(&bad, "unsupported output type");
}

#[test]
fn bench_json_is_one_object_with_every_measurement() {
    let model = converted("tiny-tied", "f32");
    let out = glimpse(&[
        "bench",
        "-m",
        path_str(&model),
        "--prompt-tokens",
        "24",
        "--gen-tokens",
        "5",
        "--threads",
        "2",
        "--repetitions",
        "2",
        "--no-warmup",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warmup"), "--no-warmup ran one: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let int = |name: &str| {
        report[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} is not an integer: {report}"))
    };
    let float = |name: &str| {
        report[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} is not a number: {report}"))
    };
    assert_eq!(report["model"], path_str(&model));
    assert!(!report["simd"].as_str().unwrap().is_empty());
    assert!(!report["quantized_weights"].as_str().unwrap().is_empty());
    assert_eq!(int("threads"), 2);
    assert_eq!(int("file_bytes"), std::fs::metadata(&model).unwrap().len());
    assert_eq!(int("prefill_tokens"), 24);
    assert_eq!(int("decode_tokens"), 5);
    assert!(int("image_tokens") > 0);
    assert!(int("cached_prompt_tokens") > int("image_tokens"));
    for name in ["load_ms", "vision_ms", "ttft_image_ms", "ttft_followup_ms"] {
        assert!(float(name) >= 0.0, "{name}: {report}");
    }
    for name in ["prefill_tok_s", "decode_tok_s", "decode_empty_tok_s"] {
        assert!(float(name) > 0.0, "{name}: {report}");
    }
    assert!(int("idle_rss_bytes") > 0);
    assert!(int("peak_rss_bytes") >= int("idle_rss_bytes"));
    assert_eq!(report.as_object().unwrap().len(), 18, "{report}");
}

#[test]
fn bench_prints_timing_lines_for_a_given_image() {
    let model = converted("tiny-tied", "f32");
    let image = fixtures().join("images/noresize_256x320.png");
    let out = glimpse(&[
        "bench",
        "-m",
        path_str(&model),
        "--image",
        path_str(&image),
        "--prompt-tokens",
        "8",
        "--gen-tokens",
        "3",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warmup: prefill 8 tokens, decode 1 token"),
        "no warmup before the repetitions: {stderr}"
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for label in [
        "load:",
        "vision:",
        "ttft image:",
        "ttft follow-up:",
        "prompt eval:",
        "eval:",
        "eval (empty):",
        "rss peak:",
        "simd:",
        "q8_0/q4_K:",
    ] {
        assert!(text.contains(label), "no {label:?} line: {text}");
    }
    assert!(
        text.contains("/ 8 tokens") && text.contains("/ 3 tokens"),
        "{text}"
    );
}

#[test]
fn bench_rejects_bad_arguments() {
    let model = converted("tiny-tied", "f32");
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "-m", path_str(&model)];
        args.extend_from_slice(extra);
        glimpse(&args)
    };
    assert_clear_failure(
        &bench(&["--prompt-tokens", "0"]),
        "--prompt-tokens must be at least 1",
    );
    assert_clear_failure(
        &bench(&["--gen-tokens", "0"]),
        "--gen-tokens must be at least 1",
    );
    assert_clear_failure(
        &bench(&["--prompt-tokens", "300000"]),
        "exceed the model's context",
    );
    assert_clear_failure(
        &bench(&["--image", "/nonexistent/x.png"]),
        "cannot read image",
    );
    assert_clear_failure(
        &glimpse(&["bench", "-m", "/nonexistent/model.gguf"]),
        "not found",
    );
}

#[test]
fn version_and_info_name_the_simd_path_in_use() {
    let version = String::from_utf8(glimpse(&["--version"]).stdout).unwrap();
    assert!(version.starts_with("glimpse 0."), "{version}");
    assert!(version.contains(std::env::consts::ARCH), "{version}");
    let simd = ["simd scalar", "simd avx2", "simd avx512-vnni", "simd neon"];
    assert!(simd.iter().any(|s| version.contains(s)), "{version}");
    let scalar = glimpse_command()
        .arg("--version")
        .env("GLIMPSE_SIMD", "scalar")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&scalar.stdout).contains("simd scalar"));
    let info = String::from_utf8(glimpse(&["info"]).stdout).unwrap();
    assert!(info.starts_with(version.trim_end()), "{info}");
    assert!(info.contains("default threads: "), "{info}");
}
