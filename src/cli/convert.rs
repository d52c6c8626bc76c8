//! `glimpse convert <HF_DIR> [-o OUT.gguf] [--type f32|f16|q8_0|q4_k] [--mmproj-out MMPROJ.gguf]`.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use glimpse_convert::{convert, ConvertOptions, OutType};

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// Checkpoint directory (config.json, *.safetensors, tokenizer.json, …).
    input: PathBuf,
    /// Output file (default: <input dir name>-<type>.gguf in the current directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Write llama.cpp's two-file layout: the vision tower to this projector file, the
    /// text model (with the tokenizer and template) to the output file.
    #[arg(long, value_name = "FILE")]
    mmproj_out: Option<PathBuf>,
    /// Weight type of the matrices.
    #[arg(long = "type", default_value = "f32")]
    out_type: OutType,
    /// Do not draw a progress bar.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: ConvertArgs) -> Result<()> {
    let output = args.output.unwrap_or_else(|| {
        let stem = args
            .input
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        PathBuf::from(format!(
            "{}-{}.gguf",
            stem.unwrap_or_else(|| "model".into()),
            args.out_type.name()
        ))
    });
    let summary = convert(&ConvertOptions {
        input_dir: args.input,
        output,
        mmproj_output: args.mmproj_out.clone(),
        out_type: args.out_type,
        progress: !args.quiet,
    })?;
    let written = match &args.mmproj_out {
        Some(mmproj) => format!(
            "{} + projector {}",
            summary.output.display(),
            mmproj.display()
        ),
        None => summary.output.display().to_string(),
    };
    eprintln!(
        "wrote {written} ({} tensors, {:.1} M parameters, {:.1} MiB, {})",
        summary.tensor_count,
        summary.parameter_count as f64 / 1e6,
        summary.file_bytes as f64 / (1 << 20) as f64,
        summary.out_type.name()
    );
    Ok(())
}
