//! Resolves the `-m MODEL` argument to a GGUF file: a `.gguf` path is used as is; a
//! Hugging Face checkpoint directory is converted once into the user cache and the
//! cached file is reused while the checkpoint is unchanged.
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use glimpse_convert::{convert, ConvertOptions, OutType};

pub fn resolve_model(model: &Path) -> Result<PathBuf> {
    if model.is_dir() {
        if model.join("config.json").is_file() {
            return converted_checkpoint(model);
        }
        bail!("'{}' is a directory without config.json: pass a .gguf file or a Hugging Face checkpoint directory", model.display());
    }
    if !model.exists() {
        bail!(
            "model '{}' not found: pass a .gguf file or a Hugging Face checkpoint directory",
            model.display()
        );
    }
    Ok(model.to_path_buf())
}

fn cache_dir() -> PathBuf {
    std::env::var_os("GLIMPSE_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("glimpse")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/glimpse")))
        .unwrap_or_else(|| std::env::temp_dir().join("glimpse"))
}

/// Converts `dir` (f32) into the cache unless a conversion of the same files exists.
fn converted_checkpoint(dir: &Path) -> Result<PathBuf> {
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
    let output = cache_dir()
        .join("converted")
        .join(format!("{name}-{:016x}-f32.gguf", hasher.finish()));
    if !output.is_file() {
        std::fs::create_dir_all(output.parent().unwrap_or(Path::new("."))).with_context(|| {
            format!(
                "cannot create the cache directory for '{}'",
                output.display()
            )
        })?;
        eprintln!("converting {} → {}", dir.display(), output.display());
        convert(&ConvertOptions {
            input_dir: dir,
            output: output.clone(),
            out_type: OutType::F32,
            progress: true,
        })?;
    }
    Ok(output)
}
