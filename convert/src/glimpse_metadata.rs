//! glimpse's own `glimpse.*` metadata: verbatim copies of tokenizer.json, config.json,
//! preprocessor_config.json, video_preprocessor_config.json and generation_config.json, the vision token ids, and the list
//! of ids that end generation, so a single GGUF file is everything needed to serve.
use anyhow::{bail, Result};
use serde_json::Value;

use crate::checkpoint::Checkpoint;
use crate::hf_config::TokenIds;
use glimpse_gguf::keys::glimpse as keys;
use glimpse_gguf::{MetaArray, MetaValue, Metadata};

pub fn add_glimpse_metadata(meta: &mut Metadata, checkpoint: &Checkpoint) -> Result<()> {
    let config = &checkpoint.config;
    let verbatim = [
        (
            keys::TOKENIZER_JSON,
            Some(&checkpoint.tokenizer.tokenizer_json_text),
        ),
        (
            keys::PREPROCESSOR_CONFIG,
            Some(&checkpoint.preprocessor_config.text),
        ),
        (
            keys::VIDEO_PREPROCESSOR_CONFIG,
            checkpoint
                .video_preprocessor_config
                .as_ref()
                .map(|v| &v.text),
        ),
        (keys::HF_CONFIG, Some(&checkpoint.config_json.text)),
        (
            keys::GENERATION_CONFIG,
            checkpoint.generation_config.as_ref().map(|g| &g.text),
        ),
    ];
    for (key, text) in verbatim {
        if let Some(text) = text {
            meta.insert(key, MetaValue::String(text.clone()))?;
        }
    }
    let ids = [
        (keys::IMAGE_TOKEN_ID, config.image_token_id),
        (keys::VIDEO_TOKEN_ID, config.video_token_id),
        (keys::VISION_START_TOKEN_ID, config.vision_start_token_id),
        (keys::VISION_END_TOKEN_ID, config.vision_end_token_id),
    ];
    for (key, id) in ids {
        meta.insert(key, MetaValue::U32(id))?;
    }
    meta.insert(
        keys::EOS_TOKEN_IDS,
        MetaValue::Array(MetaArray::U32(eos_token_ids(checkpoint)?)),
    )?;
    Ok(())
}

/// `eos_token_id` of generation_config.json when it has one, else of config.json.
fn eos_token_ids(checkpoint: &Checkpoint) -> Result<Vec<u32>> {
    let from_generation = match checkpoint
        .generation_config
        .as_ref()
        .and_then(|g| g.value.get("eos_token_id"))
    {
        None | Some(Value::Null) => None,
        Some(value) => match serde_json::from_value::<TokenIds>(value.clone()) {
            Ok(ids) => Some(ids.to_vec()),
            Err(_) => bail!(
                "generation_config.json: eos_token_id {value} is not a token id or a list of ids"
            ),
        },
    };
    let ids = from_generation.unwrap_or_else(|| checkpoint.config.eos_token_ids());
    if ids.is_empty() {
        bail!("no eos_token_id in generation_config.json or config.json");
    }
    Ok(ids)
}
