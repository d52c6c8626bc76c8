//! `glimpse info [FILE.gguf]`: the runtime (version, target, SIMD path, default threads), then
//! what the file holds.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::engine::threads::physical_cores;
use crate::gguf::{describe, GgufFile};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A GGUF file (without one, only the runtime is described).
    file: Option<PathBuf>,
}

pub fn run(args: InfoArgs) -> Result<()> {
    println!("glimpse {}", super::platform_summary());
    println!(
        "default threads: {} (physical cores this process may use)",
        physical_cores()
    );
    let Some(path) = &args.file else {
        return Ok(());
    };
    let file = GgufFile::open(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    print!("{}", describe(&file));
    Ok(())
}
