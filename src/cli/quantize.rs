//! `glimpse quantize IN.gguf OUT.gguf --type f16|q8_0|q4_k|q4_0`.
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use glimpse_convert::OutType;

use crate::model::requantize;

#[derive(Args, Debug)]
pub struct QuantizeArgs {
    /// The GGUF file to read (f32, f16, bf16 or q8_0 weights).
    input: PathBuf,
    /// The GGUF file to write.
    output: PathBuf,
    /// Weight type of the matrices in the output.
    #[arg(long = "type")]
    out_type: OutType,
}

pub fn run(args: QuantizeArgs) -> Result<()> {
    requantize(&args.input, &args.output, args.out_type)?;
    let size = std::fs::metadata(&args.output)
        .map(|m| m.len())
        .unwrap_or(0);
    eprintln!(
        "wrote {} ({}, {:.1} MiB)",
        args.output.display(),
        args.out_type,
        size as f64 / (1 << 20) as f64
    );
    Ok(())
}
