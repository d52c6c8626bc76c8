//! The non-weight files of a Hugging Face Qwen3-VL checkpoint directory, read once: config.json
//! (parsed and kept verbatim), preprocessor_config.json, video_preprocessor_config.json and
//! generation_config.json (both optional), and the tokenizer files.
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::hf_config::HfConfig;
use crate::json_file::{parse_json, read_optional_text, read_text};
use crate::tokenizer_metadata::TokenizerFiles;

/// A JSON file kept both verbatim and parsed.
pub struct JsonFile {
    pub text: String,
    pub value: Value,
}

impl JsonFile {
    fn read(path: &Path) -> Result<JsonFile> {
        let text = read_text(path)?;
        let value = parse_json(path, &text)?;
        Ok(JsonFile { text, value })
    }

    fn read_optional(path: &Path) -> Result<Option<JsonFile>> {
        match read_optional_text(path)? {
            Some(text) => {
                let value = parse_json(path, &text)?;
                Ok(Some(JsonFile { text, value }))
            }
            None => Ok(None),
        }
    }
}

pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: HfConfig,
    pub config_json: JsonFile,
    pub preprocessor_config: JsonFile,
    pub video_preprocessor_config: Option<JsonFile>,
    pub generation_config: Option<JsonFile>,
    pub tokenizer: TokenizerFiles,
}

impl Checkpoint {
    /// Reads every metadata file of `dir`; config.json is checked to be Qwen3-VL first.
    pub fn load(dir: &Path) -> Result<Checkpoint> {
        if !dir.is_dir() {
            return Err(anyhow!("'{}' is not a directory", dir.display()));
        }
        let config_path = dir.join("config.json");
        let config_json = JsonFile::read(&config_path)?;
        let config = HfConfig::from_json_str(&config_json.text)
            .with_context(|| format!("in '{}'", config_path.display()))?;
        let preprocessor_config = JsonFile::read(&dir.join("preprocessor_config.json"))?;
        let video_preprocessor_config =
            JsonFile::read_optional(&dir.join("video_preprocessor_config.json"))?;
        let generation_config = JsonFile::read_optional(&dir.join("generation_config.json"))?;
        let tokenizer = TokenizerFiles::load(dir)?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            config,
            config_json,
            preprocessor_config,
            video_preprocessor_config,
            generation_config,
            tokenizer,
        })
    }

    /// The checkpoint's name for `general.name`: its directory name.
    pub fn name(&self) -> String {
        let dir = self.dir.canonicalize().unwrap_or_else(|_| self.dir.clone());
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "qwen3-vl".to_string())
    }
}
