//! The special token ids the prompt builder and the generation loop need: image placeholder,
//! vision markers, turn markers and the ids that end generation. Looked up in the tokenizer by
//! their strings; `Default` holds the Qwen3-VL values (SPEC §1.3).

use anyhow::{anyhow, Result};

use super::tokenizer::Tokenizer;

/// Ids of the special tokens glimpse treats specially.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// `<|image_pad|>`: one per merged image patch after expansion.
    pub image_pad: u32,
    /// `<|vision_start|>`
    pub vision_start: u32,
    /// `<|vision_end|>`
    pub vision_end: u32,
    /// `<|im_start|>`
    pub im_start: u32,
    /// `<|im_end|>`
    pub im_end: u32,
    /// Generation stops on any of these (`<|im_end|>`, `<|endoftext|>`).
    pub eos: Vec<u32>,
}

impl SpecialTokens {
    /// Looks the tokens up by their strings; a tokenizer without one of them is an error.
    pub fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self> {
        let id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| anyhow!("the tokenizer has no special token '{token}'"))
        };
        let im_end = id("<|im_end|>")?;
        Ok(Self {
            image_pad: id("<|image_pad|>")?,
            vision_start: id("<|vision_start|>")?,
            vision_end: id("<|vision_end|>")?,
            im_start: id("<|im_start|>")?,
            im_end,
            eos: vec![im_end, id("<|endoftext|>")?],
        })
    }
}

impl Default for SpecialTokens {
    /// The Qwen3-VL ids; `eos` as in its generation_config.json.
    fn default() -> Self {
        Self {
            image_pad: 151655,
            vision_start: 151652,
            vision_end: 151653,
            im_start: 151644,
            im_end: 151645,
            eos: vec![151645, 151643],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::fixture_tokenizer;
    use super::*;

    #[test]
    fn lookup_in_the_qwen_tokenizer_gives_the_default_ids() {
        assert_eq!(
            SpecialTokens::from_tokenizer(&fixture_tokenizer()).unwrap(),
            SpecialTokens::default()
        );
    }

    #[test]
    fn tokenizer_without_vision_tokens_is_rejected() {
        let json = r#"{"version":"1.0","model":{"type":"WordLevel","vocab":{"a":0,"<|im_end|>":1},"unk_token":"a"}}"#;
        let tokenizer = Tokenizer::from_json_bytes(json.as_bytes()).unwrap();
        let error = SpecialTokens::from_tokenizer(&tokenizer).unwrap_err();
        assert!(error.to_string().contains("'<|image_pad|>'"), "{error}");
    }
}
