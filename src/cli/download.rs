//! Downloads a catalogue model's checkpoint from the Hugging Face Hub with hf-hub: the
//! files a conversion reads (configs, tokenizer, chat template, safetensors), into the
//! hub's own cache (`HF_HOME`, default ~/.cache/huggingface), resumable, with progress
//! bars; `HF_ENDPOINT` picks another hub or a mirror. When the hub cannot be reached the
//! error says what to download by hand and how to pass it.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

use crate::catalog::CatalogModel;

/// Whether `glimpse convert` reads this file of a checkpoint.
fn is_needed(file: &str) -> bool {
    !file.contains('/')
        && (file.ends_with(".json") || file.ends_with(".jinja") || file.ends_with(".safetensors"))
}

/// Downloads (or finds in the hub cache) `model`'s checkpoint; its local directory.
pub fn download_checkpoint(model: &CatalogModel) -> Result<PathBuf> {
    let api = ApiBuilder::from_env()
        .with_progress(true)
        .build()
        .context("cannot set up the Hugging Face Hub client (HF_HOME?)")?;
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let repo = api.repo(Repo::with_revision(
        model.repo.clone(),
        RepoType::Model,
        model.revision.clone(),
    ));
    let offline = |error: &dyn std::fmt::Display| {
        anyhow!(
            "cannot download '{}' (revision {}) from {endpoint}: {error}\n\
             glimpse needs the Hugging Face Hub once to fetch this model. Without it, download \
             the checkpoint elsewhere (`huggingface-cli download {} --local-dir DIR`, or `git \
             clone https://huggingface.co/{}`), copy it here and pass `-m DIR`, or pass a \
             converted .gguf file with `-m FILE.gguf`.",
            model.repo,
            model.revision,
            model.repo,
            model.repo
        )
    };
    let info = repo.info().map_err(|e| offline(&e))?;
    let files: Vec<String> = info
        .siblings
        .into_iter()
        .map(|s| s.rfilename)
        .filter(|f| is_needed(f))
        .collect();
    if !files.iter().any(|f| f == "config.json") {
        bail!(
            "'{}' on the hub has no config.json: not a checkpoint glimpse can convert",
            model.repo
        );
    }
    let mut directory = None;
    for file in &files {
        let path = repo
            .get(file)
            .map_err(|e| offline(&format!("{file}: {e}")))?;
        directory = path.parent().map(Path::to_path_buf);
    }
    directory.ok_or_else(|| anyhow!("'{}' lists no files to download", model.repo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_files_a_conversion_reads_are_downloaded() {
        for file in [
            "config.json",
            "model-00001-of-00002.safetensors",
            "chat_template.jinja",
        ] {
            assert!(is_needed(file), "{file}");
        }
        for file in [
            "README.md",
            ".gitattributes",
            "onnx/model.json",
            "model.bin",
        ] {
            assert!(!is_needed(file), "{file}");
        }
    }
}
