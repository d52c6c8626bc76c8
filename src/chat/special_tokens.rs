//! The special token ids the prompt builder and the generation loop need: the image and video
//! placeholders `<|image_pad|>` / `<|video_pad|>` and the ids that end generation. The pads are
//! looked up in the tokenizer by their strings; the end ids come from the model file when it names them (see
//! `from_gguf`), else Qwen3-VL's `generation_config.json` choice. `Default` holds the
//! Qwen3-VL values (SPEC §1.3).

use anyhow::{anyhow, bail, Result};

use super::tokenizer::Tokenizer;
use crate::gguf::{keys, Metadata};

/// `<|im_end|>` and `<|endoftext|>`: Qwen3-VL's `generation_config.json` stops on both.
const QWEN_END_TOKENS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

/// Ids of the special tokens glimpse treats specially.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<|image_pad|>`: one per merged image patch after expansion; also how the rotary
    /// positions find the image tokens.
    pub image_pad: u32,
    /// `<|video_pad|>`: the same for each temporal patch of a video (None: the vocabulary has
    /// none, and videos are refused).
    pub video_pad: Option<u32>,
    /// Generation stops on any of these.
    pub eos: Vec<u32>,
}

impl SpecialTokens {
    /// Looks the tokens up by their strings: `eos` is those of `<|im_end|>` and
    /// `<|endoftext|>` the tokenizer has. A tokenizer without `<|image_pad|>` or without
    /// both end tokens is an error.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        Self::from_gguf(&Metadata::new(), tokenizer)
    }

    /// The tokens of a model file whose tokenizer is `tokenizer`: glimpse's files list the
    /// end ids (`glimpse.eos_token_ids`); llama.cpp's have their own EOS id, to which
    /// Qwen3-VL's end tokens are added when the vocabulary has them.
    pub fn from_gguf(metadata: &Metadata, tokenizer: &Tokenizer) -> Result<Self> {
        let image_pad = tokenizer
            .token_to_id("<|image_pad|>")
            .ok_or_else(|| anyhow!("the tokenizer has no special token '<|image_pad|>'"))?;
        let video_pad = tokenizer.token_to_id("<|video_pad|>");
        if let Some(eos) = metadata.get_u32_array_opt(keys::glimpse::EOS_TOKEN_IDS)? {
            return Ok(Self {
                image_pad,
                video_pad,
                eos,
            });
        }
        let mut eos = Vec::new();
        let file_eos = metadata.get_u32_opt(keys::tokenizer::EOS_ID)?;
        let qwen_eos = QWEN_END_TOKENS.map(|token| tokenizer.token_to_id(token));
        for id in std::iter::once(file_eos).chain(qwen_eos).flatten() {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
        if eos.is_empty() {
            bail!(
                "no token ends generation: the model file names none and the tokenizer has none of {QWEN_END_TOKENS:?}"
            );
        }
        Ok(Self {
            image_pad,
            video_pad,
            eos,
        })
    }
}

impl Default for SpecialTokens {
    /// The Qwen3-VL ids; `eos` as in its generation_config.json.
    fn default() -> Self {
        Self {
            image_pad: 151655,
            video_pad: Some(151656),
            eos: vec![151645, 151643],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fixture_tokenizer;
    use super::*;
    use crate::gguf::{MetaArray, MetaValue};

    #[test]
    fn lookup_in_the_qwen_tokenizer_gives_the_default_ids() {
        assert_eq!(
            SpecialTokens::from_tokenizer(&fixture_tokenizer()).unwrap(),
            SpecialTokens::default()
        );
    }

    #[test]
    fn tokenizer_without_the_pad_or_end_tokens_is_rejected() {
        let json = r#"{"version":"1.0","model":{"type":"WordLevel","vocab":{"a":0,"<|im_end|>":1},"unk_token":"a"}}"#;
        let tokenizer = Tokenizer::from_json_bytes(json.as_bytes()).unwrap();
        let error = SpecialTokens::from_tokenizer(&tokenizer).unwrap_err();
        assert!(error.to_string().contains("'<|image_pad|>'"), "{error}");
        let json = r#"{"version":"1.0","model":{"type":"WordLevel","vocab":{"a":0,"<|image_pad|>":1},"unk_token":"a"}}"#;
        let tokenizer = Tokenizer::from_json_bytes(json.as_bytes()).unwrap();
        let error = SpecialTokens::from_tokenizer(&tokenizer).unwrap_err();
        assert!(
            error.to_string().starts_with("no token ends generation"),
            "{error}"
        );
    }

    #[test]
    fn end_ids_come_from_the_file_when_it_names_them() {
        let tokenizer = fixture_tokenizer();
        let mut glimpse_file = Metadata::new();
        glimpse_file
            .insert(
                keys::glimpse::EOS_TOKEN_IDS,
                MetaValue::Array(MetaArray::U32(vec![5])),
            )
            .unwrap();
        let special = SpecialTokens::from_gguf(&glimpse_file, &tokenizer).unwrap();
        assert_eq!((special.image_pad, special.eos), (151655, vec![5]));

        // llama.cpp's file: its EOS id first, then Qwen's end tokens not already there.
        let mut llama_file = Metadata::new();
        llama_file
            .insert(keys::tokenizer::EOS_ID, MetaValue::U32(151643))
            .unwrap();
        let special = SpecialTokens::from_gguf(&llama_file, &tokenizer).unwrap();
        assert_eq!(special.eos, [151643, 151645]);
        let special = SpecialTokens::from_gguf(&Metadata::new(), &tokenizer).unwrap();
        assert_eq!(special, SpecialTokens::default());
    }
}
