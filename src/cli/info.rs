//! `glimpse info FILE.gguf`.
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::gguf::{describe, GgufFile};

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// A GGUF file.
    file: PathBuf,
}

pub fn run(args: InfoArgs) -> Result<()> {
    let file = GgufFile::open(&args.file)
        .with_context(|| format!("cannot read '{}'", args.file.display()))?;
    print!("{}", describe(&file));
    Ok(())
}
