//! The GGUF file(s) one model is read from: glimpse's single file (text decoder, vision
//! encoder, tokenizer, template and preprocessor settings together) or llama.cpp's pair —
//! a text GGUF plus an `mmproj` GGUF holding the vision tower. Both layouts use llama.cpp's
//! tensor names, so every tensor is found by its name: `v.*` / `mm.*` in the vision file,
//! everything else in the text file.
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use glimpse_convert::is_vision_tensor;

use crate::gguf::{keys, GgufFile};

#[derive(Clone)]
pub struct ModelFiles {
    /// The text decoder, its vocabulary and (for glimpse's file) everything else.
    pub text: Arc<GgufFile>,
    /// The vision encoder: the same file as `text` for glimpse's single file.
    pub vision: Arc<GgufFile>,
}

impl ModelFiles {
    /// One file holding the whole model.
    pub fn single(file: Arc<GgufFile>) -> Self {
        Self {
            vision: file.clone(),
            text: file,
        }
    }

    /// The distinct files: `text` alone for glimpse's single file, `text` and `vision` for
    /// llama.cpp's pair.
    fn distinct(&self) -> Vec<&GgufFile> {
        if Arc::ptr_eq(&self.text, &self.vision) {
            vec![&self.text]
        } else {
            vec![&self.text, &self.vision]
        }
    }

    /// `GgufFile::release_again` on each distinct file (once for glimpse's single file).
    pub fn release_again(&self) {
        self.distinct().iter().for_each(|f| f.release_again());
    }

    /// Starts reading the weights used in place (f32 / f16 tensors, llama.cpp's layouts)
    /// into the page cache in the background (`GgufFile::kept_ranges`, `read_ahead`) when they fit
    /// in half the available memory: the file is mapped lazily, so a first turn on a file
    /// whose pages had left the cache waited for the disk page by page, where llama.cpp
    /// reads its files while it loads. Zen 4 KVM guest, 2B f32, `glimpse run` image turn
    /// with the file evicted, two alternating pairs: 25.7 / 17.1 s without, 15.0 / 15.5 s
    /// with (image-turn prompt 16.8 / 10.9 → 9.1 / 9.0 s; cached: 3.7–4.6 s either way).
    /// Left alone on a machine without the room, where it would only push out other
    /// cached data.
    pub fn read_ahead(&self) {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        let room = system.available_memory() as usize / 2;
        let kept: Vec<_> = self
            .distinct()
            .into_iter()
            .map(|f| (f, f.kept_ranges()))
            .collect();
        let bytes: usize = kept.iter().flat_map(|(_, r)| r).map(|r| r.len()).sum();
        if bytes <= room {
            kept.iter().for_each(|(f, ranges)| f.read_ahead(ranges));
        }
    }

    /// Opens `model`, and `mmproj` when the vision tower lives in a separate file
    /// (llama.cpp's layout). Refuses another architecture, a text-only file without its projector, a projector
    /// for another model family, and a projector next to a file that already has one.
    pub fn open(model: &Path, mmproj: Option<&Path>) -> Result<Self> {
        let text = Arc::new(
            GgufFile::open(model)
                .with_context(|| format!("cannot load model '{}'", model.display()))?,
        );
        let architecture = text.architecture()?;
        if ![keys::ARCHITECTURE_QWEN3VL, keys::ARCHITECTURE_QWEN3VLMOE].contains(&architecture) {
            bail!(
                "model architecture is '{architecture}', glimpse runs '{}' and '{}' (Qwen3-VL) models",
                keys::ARCHITECTURE_QWEN3VL,
                keys::ARCHITECTURE_QWEN3VLMOE
            );
        }
        let has_vision = has_vision_tower(&text);
        let Some(mmproj) = mmproj else {
            if !has_vision {
                bail!(
                    "'{}' holds no vision encoder (a text-only GGUF, as llama.cpp writes them): \
                     pass its projector file too, e.g. --mmproj mmproj-{}.gguf",
                    model.display(),
                    model
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                );
            }
            return Ok(Self::single(text));
        };
        if has_vision {
            bail!(
                "'{}' already contains the vision encoder; --mmproj is only for a text GGUF \
                 whose vision tower is in a separate file (llama.cpp's layout)",
                model.display()
            );
        }
        let vision = Arc::new(
            GgufFile::open(mmproj)
                .with_context(|| format!("cannot load projector '{}'", mmproj.display()))?,
        );
        check_projector(&vision)
            .with_context(|| format!("'{}' is not a Qwen3-VL projector", mmproj.display()))?;
        Ok(Self { text, vision })
    }

    /// Whether the vision tower is in a file of its own.
    pub fn is_pair(&self) -> bool {
        !Arc::ptr_eq(&self.text, &self.vision)
    }

    /// The file that holds tensor `name`.
    pub fn file_for(&self, name: &str) -> &Arc<GgufFile> {
        if is_vision_tensor(name) {
            &self.vision
        } else {
            &self.text
        }
    }
}

fn has_vision_tower(file: &GgufFile) -> bool {
    file.tensor_infos()
        .iter()
        .any(|t| is_vision_tensor(&t.name))
}

fn check_projector(file: &GgufFile) -> Result<()> {
    if !has_vision_tower(file) {
        bail!("it holds no vision tensors (v.*, mm.*)");
    }
    if let Some(kind) = file.metadata().get_str_opt(keys::clip::PROJECTOR_TYPE)? {
        if kind != keys::PROJECTOR_QWEN3VL_MERGER {
            bail!(
                "its projector type is '{kind}', Qwen3-VL's is '{}'",
                keys::PROJECTOR_QWEN3VL_MERGER
            );
        }
    }
    Ok(())
}
