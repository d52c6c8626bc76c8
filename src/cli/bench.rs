//! `glimpse bench`: end-to-end speed of one model file, llama.cpp-style. Times the load, an
//! image turn (vision encode, time to first token), a follow-up turn that reuses the KV
//! cache, prefill and decode throughput on a text prompt of a given length, decode from an
//! empty context (llama-bench's `tg`), and the process memory. Text lines on stdout by default, exactly one JSON object with `--json`; progress
//! goes to stderr. Not a kernel micro-benchmark (that is `benches/kernels.rs`).
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::Args;
use image::RgbImage;
use serde_json::json;
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

use super::model_path::ModelArgs;
use crate::chat::{ImageRef, Message, Part, Prompt, Role};
use crate::engine::sampler::argmax;
use crate::engine::threads::init_thread_pool;
use crate::engine::{ModelBundle, Session, Timings};
use crate::gguf::keys::{text, text_key};
use crate::kernels::simd::simd_path;
use crate::kernels::weight::quantized_weights_path;
use crate::preprocess::{load_image, preprocess};

/// Tokens the assistant answers in the image turn before the follow-up question.
const ANSWER_TOKENS: usize = 8;
const IMAGE_QUESTION: &str = "Describe this image in one sentence.";
const FOLLOWUP_QUESTION: &str = "Which colours stand out in it?";
/// Repeated, tokenized and cut to `--prompt-tokens` ids for the prefill measurement.
const PROMPT_PARAGRAPH: &str = "The harbour was quiet in the early morning. Fishing boats \
    rocked gently at their moorings while gulls circled above the market, where traders \
    were setting out crates of fish, bread and fruit for the day ahead. ";
/// Side of the synthetic image used when `--image` is not given.
const SYNTHETIC_SIDE: u32 = 448;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image for the image turns (default: a synthetic 448×448 picture).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Length of the text prompt whose prefill is timed.
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    /// Tokens decoded after that prompt, and again from an empty context (end-of-turn tokens
    /// do not stop it).
    #[arg(long, default_value_t = 128)]
    gen_tokens: usize,
    /// Compute threads (default: physical cores).
    #[arg(long, env = "GLIMPSE_THREADS")]
    threads: Option<usize>,
    /// Print one JSON object instead of text lines.
    #[arg(long)]
    json: bool,
    /// Runs of the measurements after the load; the median of each is reported.
    #[arg(short, long, default_value_t = 1)]
    repetitions: usize,
    /// Skip the untimed warmup (one prefill of the text prompt and one decoded token before
    /// the repetitions, as llama-bench does unless `--no-warmup`).
    #[arg(long)]
    no_warmup: bool,
}

/// What one repetition measured.
struct Repetition {
    vision_ms: f64,
    image_tokens: usize,
    ttft_image_ms: f64,
    ttft_followup_ms: f64,
    cached_prompt_tokens: usize,
    prefill_tok_s: f64,
    decode_tok_s: f64,
    decode_empty_tok_s: f64,
    /// Largest resident set size seen at the end of a phase.
    rss_bytes: u64,
}

/// The numbers printed, medians over the repetitions.
struct Report {
    model: String,
    threads: usize,
    simd: &'static str,
    /// `kernels::weight::quantized_weights_path`.
    quantized_weights: &'static str,
    file_bytes: u64,
    repetitions: usize,
    load_ms: f64,
    vision_ms: f64,
    image_tokens: usize,
    ttft_image_ms: f64,
    ttft_followup_ms: f64,
    cached_prompt_tokens: usize,
    prefill_tokens: usize,
    prefill_tok_s: f64,
    decode_tokens: usize,
    /// After the prompt.
    decode_tok_s: f64,
    /// From a one-token context.
    decode_empty_tok_s: f64,
    idle_rss_bytes: u64,
    peak_rss_bytes: u64,
}

pub fn run(args: BenchArgs) -> Result<()> {
    ensure!(args.prompt_tokens > 0, "--prompt-tokens must be at least 1");
    ensure!(args.gen_tokens > 0, "--gen-tokens must be at least 1");
    ensure!(args.repetitions > 0, "--repetitions must be at least 1");
    // Read now so a missing file fails before the load; decoded after the idle RSS.
    let image_file = args
        .image
        .as_ref()
        .map(|p| {
            let bytes =
                std::fs::read(p).with_context(|| format!("cannot read image '{}'", p.display()))?;
            anyhow::Ok((p, bytes))
        })
        .transpose()?;
    let threads = init_thread_pool(args.threads)?;
    let path = args.model.resolve()?;
    let mut file_bytes = 0;
    for file in std::iter::once(&path).chain(&args.model.mmproj) {
        file_bytes += std::fs::metadata(file)
            .with_context(|| format!("cannot read model '{}'", file.display()))?
            .len();
    }

    eprintln!("bench: loading {}", path.display());
    let load_start = Instant::now();
    let bundle = ModelBundle::load(&path, args.model.mmproj.as_deref())?;
    let load_ms = ms_since(load_start);
    let idle_rss_bytes = resident_bytes();

    let needed = args.prompt_tokens + args.gen_tokens;
    let text_file = &bundle.files.text;
    let context_key = text_key(text_file.architecture()?, text::CONTEXT_LENGTH);
    if let Some(context) = text_file.metadata().get_u32_opt(&context_key)? {
        ensure!(
            needed <= context as usize,
            "--prompt-tokens {} + --gen-tokens {} = {needed} tokens exceed the model's context \
             of {context} tokens",
            args.prompt_tokens,
            args.gen_tokens
        );
    }
    let image = match image_file {
        Some((p, bytes)) => {
            load_image(&bytes).with_context(|| format!("cannot decode image '{}'", p.display()))?
        }
        None => synthetic_image(),
    };
    let prompt_ids = text_prompt(&bundle, args.prompt_tokens)?;

    if !args.no_warmup {
        // llama-bench's warmup: the buffers a prompt of this length needs are in place (and
        // the first-touch page faults behind) before the first timed prefill, as they are
        // in its timed runs, which reuse one context.
        eprintln!(
            "bench: warmup: prefill {} tokens, decode 1 token",
            args.prompt_tokens
        );
        throughput(&bundle, &prompt_ids, 1)?;
    }
    let mut runs = Vec::with_capacity(args.repetitions);
    for i in 1..=args.repetitions {
        eprintln!(
            "bench: repetition {i}/{}: image turn, follow-up, prefill {} tokens, decode {} tokens \
             after it and from an empty context",
            args.repetitions, args.prompt_tokens, args.gen_tokens
        );
        runs.push(repetition(&bundle, &image, &prompt_ids, args.gen_tokens)?);
    }

    let peak_seen = runs.iter().map(|r| r.rss_bytes).max().unwrap_or(0);
    let report = Report {
        model: args
            .model
            .model
            .clone()
            .unwrap_or_else(|| args.model.name()),
        threads,
        simd: simd_path().name(),
        quantized_weights: quantized_weights_path(),
        file_bytes,
        repetitions: args.repetitions,
        load_ms,
        vision_ms: median(runs.iter().map(|r| r.vision_ms)),
        image_tokens: median_count(runs.iter().map(|r| r.image_tokens)),
        ttft_image_ms: median(runs.iter().map(|r| r.ttft_image_ms)),
        ttft_followup_ms: median(runs.iter().map(|r| r.ttft_followup_ms)),
        cached_prompt_tokens: median_count(runs.iter().map(|r| r.cached_prompt_tokens)),
        prefill_tokens: args.prompt_tokens,
        prefill_tok_s: median(runs.iter().map(|r| r.prefill_tok_s)),
        decode_tokens: args.gen_tokens,
        decode_tok_s: median(runs.iter().map(|r| r.decode_tok_s)),
        decode_empty_tok_s: median(runs.iter().map(|r| r.decode_empty_tok_s)),
        idle_rss_bytes,
        peak_rss_bytes: peak_resident_bytes().max(peak_seen).max(idle_rss_bytes),
    };
    if report.idle_rss_bytes == 0 {
        eprintln!("bench: the process memory could not be read on this system (reported as 0)");
    }
    if args.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

/// Steps 3–7 of the bench: the image turn and its follow-up in one session, then prefill
/// and decode of the text prompt in a fresh one, then decode from an empty context in
/// another.
fn repetition(
    bundle: &ModelBundle,
    image: &RgbImage,
    prompt_ids: &[u32],
    gen_tokens: usize,
) -> Result<Repetition> {
    // Every repetition runs the vision encoder, none finds the image cached.
    bundle.vision_cache.clear();
    let mut session = Session::new(bundle);

    let start = Instant::now();
    let pixels = [preprocess(image, &bundle.preprocess).context("preprocessing the image")?];
    let mut messages = vec![Message::new(
        Role::User,
        vec![Part::Image(ImageRef(0)), Part::Text(IMAGE_QUESTION.into())],
    )];
    let (prompt, images) = bundle.prompt(&messages, &pixels)?;
    let mut image_turn = Timings::default();
    let mut token = argmax(&session.prefill(&prompt, &images, &mut image_turn)?);
    let ttft_image_ms = ms_since(start);

    // The answer the follow-up builds on, greedy, as a chat would stop it.
    let mut answer = Vec::with_capacity(ANSWER_TOKENS);
    while !bundle.special.eos.contains(&token) {
        answer.push(token);
        if answer.len() == ANSWER_TOKENS {
            break;
        }
        token = argmax(&session.decode_step(token)?);
    }
    let answer = bundle.tokenizer.decode(&answer, true)?;
    messages.push(Message::new(Role::Assistant, answer));
    messages.push(Message::new(Role::User, FOLLOWUP_QUESTION));

    let start = Instant::now();
    let (prompt, images) = bundle.prompt(&messages, &pixels)?;
    let mut followup = Timings::default();
    std::hint::black_box(argmax(&session.prefill(&prompt, &images, &mut followup)?));
    let ttft_followup_ms = ms_since(start);
    let turns_rss = resident_bytes();
    drop(session);

    let (prefill_ms, decode_ms, throughput_rss) = throughput(bundle, prompt_ids, gen_tokens)?;
    let (_, decode_empty_ms, _) = throughput(bundle, &prompt_ids[..1], gen_tokens)?;
    Ok(Repetition {
        vision_ms: image_turn.vision_ms,
        image_tokens: pixels[0].n_merged_tokens(),
        ttft_image_ms,
        ttft_followup_ms,
        cached_prompt_tokens: followup.cached_prompt_tokens,
        prefill_tok_s: rate(prompt_ids.len(), prefill_ms),
        decode_tok_s: rate(gen_tokens, decode_ms),
        decode_empty_tok_s: rate(gen_tokens, decode_empty_ms),
        rss_bytes: turns_rss.max(throughput_rss),
    })
}

/// Prefills `prompt_ids` in a fresh session, then decodes `gen_tokens` greedy tokens
/// whatever they are. Returns the prefill and decode milliseconds and the RSS at the end.
fn throughput(
    bundle: &ModelBundle,
    prompt_ids: &[u32],
    gen_tokens: usize,
) -> Result<(f64, f64, u64)> {
    let mut session = Session::new(bundle);
    let prompt = Prompt {
        ids: prompt_ids.to_vec(),
        vision_spans: Vec::new(),
    };
    let mut timings = Timings::default();
    let mut token = argmax(&session.prefill(&prompt, &[], &mut timings)?);
    let start = Instant::now();
    for _ in 0..gen_tokens {
        token = argmax(&session.decode_step(token)?);
    }
    let decode_ms = ms_since(start);
    std::hint::black_box(token);
    Ok((timings.prefill_ms, decode_ms, resident_bytes()))
}

/// Exactly `n` real token ids: an English paragraph repeated until it is long enough.
fn text_prompt(bundle: &ModelBundle, n: usize) -> Result<Vec<u32>> {
    let per_paragraph = bundle.tokenizer.encode(PROMPT_PARAGRAPH)?.len();
    ensure!(
        per_paragraph > 0,
        "the tokenizer turned the bench paragraph into no tokens"
    );
    let text = PROMPT_PARAGRAPH.repeat(n / per_paragraph + 2);
    let mut ids = bundle.tokenizer.encode(&text)?;
    ensure!(
        ids.len() >= n,
        "the bench paragraph gave {} tokens, fewer than the {n} asked for",
        ids.len()
    );
    ids.truncate(n);
    Ok(ids)
}

/// A deterministic 448×448 picture: colour gradients with a checker pattern.
fn synthetic_image() -> RgbImage {
    let side = SYNTHETIC_SIDE;
    RgbImage::from_fn(side, side, |x, y| {
        let checker = if (x / 32 + y / 32) % 2 == 0 { 64 } else { 192 };
        image::Rgb([(x * 255 / side) as u8, (y * 255 / side) as u8, checker])
    })
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// Tokens per second of `n` tokens in `ms` milliseconds.
fn rate(n: usize, ms: f64) -> f64 {
    n as f64 * 1e3 / ms.max(1e-6)
}

/// Median of the values (mean of the middle two for an even count; 0 for none).
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Median of counts (the lower middle value for an even number of them).
fn median_count(values: impl Iterator<Item = usize>) -> usize {
    let mut values: Vec<usize> = values.collect();
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0)
}

/// Resident set size of this process now, in bytes (0 when the system does not tell).
fn resident_bytes() -> u64 {
    proc_status_bytes("VmRSS").unwrap_or_else(sysinfo_resident_bytes)
}

/// Largest resident set size of this process so far: VmHWM on Linux; elsewhere only the
/// current size is known (the caller also keeps the largest size it sampled).
fn peak_resident_bytes() -> u64 {
    proc_status_bytes("VmHWM").unwrap_or_else(resident_bytes)
}

/// A `kB` field of /proc/self/status (Linux), in bytes.
fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    let kb: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kb * 1024)
}

fn sysinfo_resident_bytes() -> u64 {
    let Ok(pid) = sysinfo::get_current_pid() else {
        return 0;
    };
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        false,
        ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map_or(0, |p| p.memory())
}

/// Rounded to three decimals (microseconds for milliseconds) to keep the JSON readable.
fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

impl Report {
    /// The one JSON object of `--json` (field names are read by scripts: keep them).
    fn json(&self) -> serde_json::Value {
        json!({
            "model": self.model,
            "threads": self.threads,
            "simd": self.simd,
            "quantized_weights": self.quantized_weights,
            "file_bytes": self.file_bytes,
            "load_ms": round3(self.load_ms),
            "vision_ms": round3(self.vision_ms),
            "image_tokens": self.image_tokens,
            "ttft_image_ms": round3(self.ttft_image_ms),
            "ttft_followup_ms": round3(self.ttft_followup_ms),
            "cached_prompt_tokens": self.cached_prompt_tokens,
            "prefill_tokens": self.prefill_tokens,
            "prefill_tok_s": round3(self.prefill_tok_s),
            "decode_tokens": self.decode_tokens,
            "decode_tok_s": round3(self.decode_tok_s),
            "decode_empty_tok_s": round3(self.decode_empty_tok_s),
            "idle_rss_bytes": self.idle_rss_bytes,
            "peak_rss_bytes": self.peak_rss_bytes,
        })
    }

    /// llama.cpp-style lines (the labels of `glimpse run -v`).
    fn text(&self) -> String {
        let ms_of = |n: usize, tok_s: f64| n as f64 * 1e3 / tok_s.max(1e-9);
        let mut lines = vec![
            format!(
                "model:          {} ({:.2} MiB)",
                self.model,
                mib(self.file_bytes)
            ),
            format!("threads:        {}", self.threads),
            format!("simd:           {}", self.simd),
            format!("q8_0/q4_K:      {}", self.quantized_weights),
        ];
        if self.repetitions > 1 {
            lines.push(format!(
                "repetitions:    {} (medians below)",
                self.repetitions
            ));
        }
        lines.extend([
            format!("load:           {:10.2} ms", self.load_ms),
            format!(
                "vision:         {:10.2} ms / {} image tokens",
                self.vision_ms, self.image_tokens
            ),
            format!("ttft image:     {:10.2} ms", self.ttft_image_ms),
            format!(
                "ttft follow-up: {:10.2} ms / {} cached prompt tokens",
                self.ttft_followup_ms, self.cached_prompt_tokens
            ),
            format!(
                "prompt eval:    {:10.2} ms / {} tokens ({:.2} tok/s)",
                ms_of(self.prefill_tokens, self.prefill_tok_s),
                self.prefill_tokens,
                self.prefill_tok_s
            ),
            format!(
                "eval:           {:10.2} ms / {} tokens ({:.2} tok/s)",
                ms_of(self.decode_tokens, self.decode_tok_s),
                self.decode_tokens,
                self.decode_tok_s
            ),
            format!(
                "eval (empty):   {:10.2} ms / {} tokens ({:.2} tok/s, from a one-token context)",
                ms_of(self.decode_tokens, self.decode_empty_tok_s),
                self.decode_tokens,
                self.decode_empty_tok_s
            ),
            format!("rss idle:       {:10.2} MiB", mib(self.idle_rss_bytes)),
            format!("rss peak:       {:10.2} MiB", mib(self.peak_rss_bytes)),
        ]);
        lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_takes_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median_count([5, 1, 3, 2].into_iter()), 2);
    }

    #[test]
    fn synthetic_image_is_deterministic() {
        let (a, b) = (synthetic_image(), synthetic_image());
        assert_eq!(a.dimensions(), (SYNTHETIC_SIDE, SYNTHETIC_SIDE));
        assert_eq!(a, b);
    }

    #[test]
    fn resident_size_is_known_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_bytes() > 0);
            assert!(peak_resident_bytes() > 0);
        }
    }
}
