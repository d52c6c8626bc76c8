//! Resolves the `-m MODEL` argument to a GGUF file: a `.gguf` path is used as is; a
//! Hugging Face checkpoint directory is converted once into the user cache and the
//! cached file is reused while the checkpoint is unchanged; a catalogue name
//! (`qwen3-vl-2b:q8_0`, `models.toml`) — or no `-m` at all, for the catalogue's default —
//! is downloaded from the hub and converted with its profile's type, after checking that
//! the profile fits in the machine's memory.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use glimpse_convert::{convert, ConvertOptions, OutType};

use super::download::download_checkpoint;
use crate::catalog::{check_memory, Catalog};

/// `-m MODEL [--mmproj FILE]`, the model arguments of every command that loads one.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Model: a .gguf file, a Hugging Face checkpoint directory, or a catalogue name from
    /// models.toml (qwen3-vl-2b, qwen3-vl-2b:q8_0, …; default: the catalogue's default).
    #[arg(short, long)]
    pub model: Option<String>,
    /// The vision projector of a llama.cpp text GGUF (llama.cpp's two-file layout:
    /// `-m Qwen3-VL-2B-Instruct-Q8_0.gguf --mmproj mmproj-Qwen3-VL-2B-Instruct-F16.gguf`).
    #[arg(long, value_name = "FILE", requires = "model")]
    pub mmproj: Option<PathBuf>,
}

impl ModelArgs {
    /// The model file to load (downloaded / converted first when needed).
    pub fn resolve(&self) -> Result<PathBuf> {
        resolve_model(self.model.as_deref())
    }

    /// The model's name as clients see it.
    pub fn name(&self) -> String {
        model_name(self.model.as_deref())
    }
}

pub fn resolve_model(model: Option<&str>) -> Result<PathBuf> {
    let catalog = Catalog::load()?;
    let spec = match model {
        Some(spec) => spec,
        None => catalog.default.as_str(),
    };
    let path = Path::new(spec);
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return converted_checkpoint(path, OutType::F32, None);
        }
        bail!("'{}' is a directory without config.json: pass a .gguf file or a Hugging Face checkpoint directory", path.display());
    }
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    if catalog.knows(spec) {
        return catalogue_model(&catalog, spec);
    }
    bail!(
        "model '{spec}' not found: pass a .gguf file, a Hugging Face checkpoint directory or one \
         of the catalogue's names ({})",
        catalog
            .models
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// The name clients see for `-m` (the file or directory name without `.gguf`, or the
/// catalogue name).
pub fn model_name(model: Option<&str>) -> String {
    let spec = model
        .map(str::to_owned)
        .or_else(|| Catalog::load().ok().map(|c| c.default))
        .unwrap_or_else(|| "glimpse".into());
    let name = Path::new(&spec)
        .file_name()
        .map_or_else(|| spec.clone(), |n| n.to_string_lossy().into_owned());
    name.strip_suffix(".gguf").unwrap_or(&name).to_owned()
}

/// Downloads and converts a catalogue model (once), refusing a profile the memory cannot hold.
fn catalogue_model(catalog: &Catalog, spec: &str) -> Result<PathBuf> {
    let choice = catalog.choose(spec)?;
    if std::env::var_os("GLIMPSE_IGNORE_MEMORY").is_none() {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        check_memory(&choice, system.available_memory())?;
    }
    let out_type: OutType = choice.profile.parse()?;
    let converted = cache_dir()
        .join("converted")
        .join(format!("{}-{}.gguf", choice.model.name, choice.profile));
    if converted.is_file() {
        return Ok(converted);
    }
    eprintln!(
        "glimpse: fetching {} ({}) for '{}:{}'",
        choice.model.repo, choice.model.revision, choice.model.name, choice.profile
    );
    let checkpoint = download_checkpoint(choice.model)?;
    converted_checkpoint(&checkpoint, out_type, Some(converted))
}

fn cache_dir() -> PathBuf {
    std::env::var_os("GLIMPSE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("glimpse")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/glimpse")))
        .unwrap_or_else(|| std::env::temp_dir().join("glimpse"))
}

/// Converts `dir` to `out_type` into the cache (at `output`, or at a name derived from
/// the checkpoint's files) unless that conversion exists.
fn converted_checkpoint(dir: &Path, out_type: OutType, output: Option<PathBuf>) -> Result<PathBuf> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot read '{}'", dir.display()))?;
    let mut hasher = DefaultHasher::new();
    dir.hash(&mut hasher);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let meta = entry.metadata()?;
        (entry.file_name(), meta.len(), meta.modified().ok()).hash(&mut hasher);
    }
    let name = dir
        .file_name()
        .map_or_else(|| "model".into(), |n| n.to_string_lossy().into_owned());
    let output = output.unwrap_or_else(|| {
        cache_dir()
            .join("converted")
            .join(format!("{name}-{:016x}-{out_type}.gguf", hasher.finish()))
    });
    if !output.is_file() {
        std::fs::create_dir_all(output.parent().unwrap_or(Path::new("."))).with_context(|| {
            format!(
                "cannot create the cache directory for '{}'",
                output.display()
            )
        })?;
        eprintln!("converting {} → {}", dir.display(), output.display());
        // Written beside the final name first (one name per process, so replicas sharing a
        // cache volume never write the same file), so an interrupted conversion is never
        // taken for a finished one; the rename is atomic.
        let partial = output.with_extension(format!("gguf.partial-{}", std::process::id()));
        convert(&ConvertOptions {
            input_dir: dir,
            output: partial.clone(),
            mmproj_output: None,
            out_type,
            progress: true,
        })?;
        std::fs::rename(&partial, &output)
            .with_context(|| format!("cannot move the conversion to '{}'", output.display()))?;
    }
    Ok(output)
}
