//! Command-line interface: the clap definitions of every subcommand and their
//! dispatch. Each subcommand lives in its own file and only calls library code.
mod bench;
mod convert;
mod download;
mod info;
mod model_path;
mod quantize;
mod run;
mod serve;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::kernels::simd::simd_path;

#[derive(Parser, Debug)]
#[command(
    name = "glimpse",
    version,
    about = "Run the Qwen3-VL vision-language model on the CPU"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert a Hugging Face Qwen3-VL checkpoint directory into one GGUF file.
    Convert(convert::ConvertArgs),
    /// Rewrite a GGUF file with another weight type (f16, q8_0, q4_k, q4_0).
    Quantize(quantize::QuantizeArgs),
    /// Print what a GGUF file holds: architecture, sizes, tensor types, metadata.
    Info(info::InfoArgs),
    /// Answer one prompt (with optional images), streaming the answer to stdout.
    Run(run::RunArgs),
    /// Serve the OpenAI-compatible HTTP API (and the web chat) on one model.
    Serve(serve::ServeArgs),
    /// Measure load, vision, time to first token, prefill and decode speed, and memory.
    Bench(bench::BenchArgs),
}

impl Cli {
    /// Parses the process arguments; `--version` also names the target and the SIMD path
    /// chosen at runtime (`glimpse 0.1.0 (x86_64-linux, simd avx512-vnni)`) and a lite build.
    pub fn parse_with_version() -> Result<Self, clap::Error> {
        let version: &'static str = Box::leak(platform_summary().into_boxed_str());
        let matches = Cli::command().version(version).try_get_matches()?;
        Cli::from_arg_matches(&matches)
    }
}

/// `0.1.0 (x86_64-linux, simd avx512-vnni)`: the version, the target and the SIMD path the
/// kernels use in this process (after `GLIMPSE_SIMD`); a build without the web chat (the
/// lite build) says so: `0.1.0 (x86_64-linux, simd avx2, lite: no web chat)`.
pub fn platform_summary() -> String {
    let lite = if cfg!(feature = "webui") {
        ""
    } else {
        ", lite: no web chat"
    };
    format!(
        "{} ({}-{}, simd {}{lite})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        simd_path().name()
    )
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Convert(args) => convert::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Info(args) => info::run(args),
        Command::Run(args) => run::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
