//! `glimpse run`: one prompt with optional images, answer streamed to stdout, timings
//! on stderr with `-v` (llama.cpp-style lines).
use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::model_path::ModelArgs;
use crate::chat::{ImageRef, Message, Part, Role};
use crate::engine::threads::init_thread_pool;
use crate::engine::{GenerationParams, ModelBundle, SamplingParams, Session};
use crate::preprocess::{load_image, preprocess};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// An image to ask about (repeat for several, in order).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// The question or instruction.
    #[arg(short, long)]
    prompt: String,
    /// System prompt.
    #[arg(long)]
    system: Option<String>,
    /// Maximum number of tokens to generate.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy. Default: the model's (0.7).
    #[arg(long)]
    temperature: Option<f32>,
    /// Keep the k most likely tokens (0 = all). Default: the model's (20).
    #[arg(long)]
    top_k: Option<usize>,
    /// Nucleus sampling threshold. Default: the model's (0.8).
    #[arg(long)]
    top_p: Option<f32>,
    /// Random seed for reproducible sampling.
    #[arg(long)]
    seed: Option<u64>,
    /// Compute threads (default: physical cores).
    #[arg(long, env = "GLIMPSE_THREADS")]
    threads: Option<usize>,
    /// Print load / vision / prefill / decode timings to stderr.
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(args: RunArgs) -> Result<()> {
    let threads = init_thread_pool(args.threads)?;
    let load_start = Instant::now();
    let path = args.model.resolve()?;
    let bundle = ModelBundle::load(&path, args.model.mmproj.as_deref())?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;

    let pixel_values = args
        .images
        .iter()
        .map(|p| {
            let bytes =
                std::fs::read(p).with_context(|| format!("cannot read image '{}'", p.display()))?;
            let image = load_image(&bytes)
                .with_context(|| format!("cannot decode image '{}'", p.display()))?;
            preprocess(&image, &bundle.preprocess)
                .with_context(|| format!("cannot preprocess image '{}'", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new(Role::System, system.as_str()));
    }
    let mut parts: Vec<Part> = (0..pixel_values.len())
        .map(|i| Part::Image(ImageRef(i)))
        .collect();
    parts.push(Part::Text(args.prompt.clone()));
    messages.push(Message::new(Role::User, parts));

    let defaults = SamplingParams::model_defaults();
    let sampling = SamplingParams {
        temperature: args.temperature.unwrap_or(defaults.temperature),
        top_k: args.top_k.unwrap_or(defaults.top_k),
        top_p: args.top_p.unwrap_or(defaults.top_p),
        seed: args.seed,
        ..defaults
    };
    let (prompt, images) = bundle.prompt(&messages, &pixel_values)?;
    let mut session = Session::new(&bundle);
    let mut decoder = bundle.tokenizer.stream_decoder(true);
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let output = session.generate(
        &prompt,
        &images,
        &GenerationParams {
            max_tokens: args.max_tokens,
            sampling,
        },
        |event| {
            let piece = decoder.push(event.id).and_then(|piece| {
                if let Some(text) = piece {
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                }
                Ok(())
            });
            match piece {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    write_error = Some(e);
                    ControlFlow::Break(())
                }
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(e.context("writing the answer"));
    }
    let tail = decoder.finish()?;
    writeln!(stdout, "{tail}")?;
    if args.verbose {
        let t = &output.timings;
        let rate = |n: usize, ms: f64| if ms > 0.0 { n as f64 * 1e3 / ms } else { 0.0 };
        let new_prompt = t.prompt_tokens - t.cached_prompt_tokens;
        eprintln!("threads:     {threads}");
        eprintln!("load:        {load_ms:10.2} ms");
        eprintln!(
            "vision:      {:10.2} ms / {} images",
            t.vision_ms,
            images.len()
        );
        eprintln!(
            "prompt eval: {:10.2} ms / {new_prompt} tokens ({:.2} tok/s)",
            t.prefill_ms,
            rate(new_prompt, t.prefill_ms)
        );
        eprintln!(
            "eval:        {:10.2} ms / {} tokens ({:.2} tok/s)",
            t.decode_ms,
            t.generated_tokens,
            rate(t.generated_tokens, t.decode_ms)
        );
    }
    Ok(())
}
