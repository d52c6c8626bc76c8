//! `glimpse run`: one prompt with optional images and videos, answer streamed to stdout, timings
//! on stderr with `-v` (llama.cpp-style lines). `--draw` writes the image with the boxes and
//! points of a grounding answer drawn over it, `--markdown` asks for the document as Markdown,
//! `--output` saves the answer.
use std::io::Write;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::model_path::ModelArgs;
use crate::chat::{strip_markdown_fence, ImageRef, Message, Part, Role, VideoRef, MARKDOWN_PROMPT};
use crate::engine::threads::init_thread_pool;
use crate::engine::{GenerationParams, ModelBundle, SamplingParams, Session};
use crate::grounding::{detections, draw_shape, label_colours, Detection, ImageSize, PixelShape};
use crate::preprocess::{
    decode_video_file, load_image, preprocess, preprocess_video, FrameCollector, VideoConfig,
    VideoPixels, DEFAULT_MAX_DECODED_PIXELS,
};

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// An image to ask about (repeat for several, in order).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// A video to ask about (repeat for several, after the images): an animated GIF or WebP,
    /// a file ffmpeg reads (MP4, WebM, MKV, …; needs ffmpeg on PATH), or a directory of frame
    /// images taken in file-name order.
    #[arg(long = "video")]
    videos: Vec<PathBuf>,
    /// Frames sampled per second of video (default: the model's, 2); for a directory of
    /// frames, the rate they were taken at.
    #[arg(long)]
    video_fps: Option<f64>,
    /// The question or instruction (optional with --markdown).
    #[arg(short, long, required_unless_present = "markdown")]
    prompt: Option<String>,
    /// Read the document in the image as Markdown (tables kept); -p adds to the instruction.
    #[arg(long)]
    markdown: bool,
    /// Write the answer to this file too (with --markdown: the Markdown document itself).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write the (last) image as PNG with the boxes and points of the answer drawn over it,
    /// e.g. after -p "locate every person, answer with bbox_2d JSON".
    #[arg(long, value_name = "PNG")]
    draw: Option<PathBuf>,
    /// Begin the answer with this text and let the model continue it (e.g. '```json' to get
    /// JSON); it is part of the printed and saved answer.
    #[arg(long, value_name = "TEXT")]
    answer_prefix: Option<String>,
    /// Fewest vision tokens per image (one token covers 32×32 pixels). Default: the model's.
    #[arg(long)]
    image_min_tokens: Option<usize>,
    /// Most vision tokens per image: fewer answer faster, more help small text and precise
    /// boxes. Default: the model's (16384).
    #[arg(long)]
    image_max_tokens: Option<usize>,
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
    if args.draw.is_some() && args.images.is_empty() {
        bail!("--draw needs an --image to draw on");
    }
    let threads = init_thread_pool(args.threads)?;
    let load_start = Instant::now();
    let path = args.model.resolve()?;
    let bundle = ModelBundle::load(&path, args.model.mmproj.as_deref())?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;

    let image_config = bundle
        .preprocess
        .with_token_bounds(args.image_min_tokens, args.image_max_tokens)
        .context("--image-min-tokens / --image-max-tokens")?;
    let decoded = args
        .images
        .iter()
        .map(|p| {
            let bytes =
                std::fs::read(p).with_context(|| format!("cannot read image '{}'", p.display()))?;
            load_image(&bytes).with_context(|| format!("cannot decode image '{}'", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let pixel_values = decoded
        .iter()
        .zip(&args.images)
        .map(|(image, p)| {
            preprocess(image, &image_config)
                .with_context(|| format!("cannot preprocess image '{}'", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::new(Role::System, system.as_str()));
    }
    let video_pixels = args
        .videos
        .iter()
        .map(|p| {
            video_pixels(p, &bundle.video_preprocess, args.video_fps)
                .with_context(|| format!("cannot read video '{}'", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut parts: Vec<Part> = (0..pixel_values.len())
        .map(|i| Part::Image(ImageRef(i)))
        .chain((0..video_pixels.len()).map(|i| Part::Video(VideoRef(i))))
        .collect();
    parts.push(Part::Text(instruction(&args)));
    messages.push(Message::new(Role::User, parts));

    let defaults = bundle.sampling_defaults.clone();
    let sampling = SamplingParams {
        temperature: args.temperature.unwrap_or(defaults.temperature),
        top_k: args.top_k.unwrap_or(defaults.top_k),
        top_p: args.top_p.unwrap_or(defaults.top_p),
        seed: args.seed,
        ..defaults
    };
    let answer_prefix = args.answer_prefix.as_deref().unwrap_or("");
    let (prompt, images) =
        bundle.prompt_with_answer_prefix(&messages, &pixel_values, &video_pixels, answer_prefix)?;
    let mut session = Session::new(&bundle);
    let mut decoder = bundle.tokenizer.stream_decoder(true);
    let mut stdout = std::io::stdout().lock();
    let mut answer = answer_prefix.to_owned();
    stdout.write_all(answer.as_bytes())?;
    let mut write_error = None;
    let output = session.generate(
        &prompt,
        &images,
        &GenerationParams {
            max_tokens: args.max_tokens,
            sampling,
            ignore_eos: false,
        },
        |event| {
            let piece = decoder.push(event.id).and_then(|piece| {
                if let Some(text) = piece {
                    stdout.write_all(text.as_bytes())?;
                    stdout.flush()?;
                    answer.push_str(&text);
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
    answer.push_str(&tail);
    if let Some(path) = &args.output {
        let saved = if args.markdown {
            strip_markdown_fence(&answer)
        } else {
            &answer
        };
        std::fs::write(path, format!("{saved}\n"))
            .with_context(|| format!("cannot write '{}'", path.display()))?;
    }
    if let Some(path) = &args.draw {
        let sizes: Vec<ImageSize> = pixel_values
            .iter()
            .map(|p| ImageSize::from_hw(p.original_hw))
            .collect();
        let found = detections(&answer, &sizes);
        let Some(image) = decoded.last() else {
            bail!("--draw needs an --image to draw on");
        };
        draw_detections(image.clone(), &found, path)?;
    }
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

/// The user's instruction: `-p`, or the Markdown request (with `-p` added) for `--markdown`.
fn instruction(args: &RunArgs) -> String {
    match (&args.prompt, args.markdown) {
        (Some(prompt), false) => prompt.clone(),
        (Some(prompt), true) => format!("{MARKDOWN_PROMPT}\n{prompt}"),
        (None, _) => MARKDOWN_PROMPT.to_owned(),
    }
}

/// Draws `found` over `image`, writes it to `path` (PNG) and lists the detections on stderr.
fn draw_detections(mut image: image::RgbImage, found: &[Detection], path: &Path) -> Result<()> {
    for (detection, colour) in found.iter().zip(label_colours(found)) {
        draw_shape(&mut image, detection.shape, colour);
        let label = detection.label.as_deref().unwrap_or("(no label)");
        match detection.shape {
            PixelShape::Box(b) => eprintln!("{label}: box {b:?}"),
            PixelShape::Point(p) => eprintln!("{label}: point {p:?}"),
        }
    }
    if found.is_empty() {
        eprintln!("glimpse: the answer has no boxes or points; writing the image unmarked");
    }
    image
        .save_with_format(path, image::ImageFormat::Png)
        .with_context(|| format!("cannot write '{}'", path.display()))?;
    eprintln!("glimpse: wrote {}", path.display());
    Ok(())
}

/// A video file, or a directory of frames (file-name order, taken at `fps`, default 2), run
/// through the video processor; `fps` also sets the sampling rate of a file.
fn video_pixels(path: &Path, config: &VideoConfig, fps: Option<f64>) -> Result<VideoPixels> {
    if let Some(fps) = fps {
        anyhow::ensure!(fps.is_finite() && fps > 0.0, "--video-fps must be positive");
    }
    let config = VideoConfig {
        fps: fps.unwrap_or(config.fps),
        ..config.clone()
    };
    let video = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        files.retain(|f| f.is_file());
        files.sort();
        let mut frames = FrameCollector::new(&config, files.len());
        for f in &files {
            let bytes = std::fs::read(f)?;
            let frame = load_image(&bytes)
                .with_context(|| format!("cannot decode frame '{}'", f.display()))?;
            frames.push(frame)?;
        }
        frames.finish((0..files.len()).collect(), config.fps)?
    } else {
        decode_video_file(path, &config, DEFAULT_MAX_DECODED_PIXELS)?
    };
    preprocess_video(&video, &config)
}
