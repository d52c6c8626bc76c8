//! The Hugging Face `config.json` of a Qwen3-VL checkpoint (serde), accepting both RoPE
//! spellings (legacy `rope_scaling` + `rope_theta`, transformers v5 `rope_parameters` with
//! `rope_theta` inside), and rejecting any other architecture before field-level parsing.
//! Qwen3-VL-MoE checkpoints (Qwen3-VL-30B-A3B) add the experts' sizes to `text_config`.
use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// `model_type` of a Qwen3-VL checkpoint.
pub const QWEN3VL_MODEL_TYPE: &str = "qwen3_vl";
/// `architectures[0]` of a Qwen3-VL checkpoint.
pub const QWEN3VL_ARCHITECTURE: &str = "Qwen3VLForConditionalGeneration";
/// `model_type` of a Qwen3-VL mixture-of-experts checkpoint.
pub const QWEN3VL_MOE_MODEL_TYPE: &str = "qwen3_vl_moe";
/// `architectures[0]` of a Qwen3-VL mixture-of-experts checkpoint.
pub const QWEN3VL_MOE_ARCHITECTURE: &str = "Qwen3VLMoeForConditionalGeneration";

/// The experts of a mixture-of-experts text model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Experts {
    /// Experts per layer (`num_experts`).
    pub count: usize,
    /// Experts each token goes through (`num_experts_per_tok`).
    pub used: usize,
    /// Hidden width of one expert's feed-forward (`moe_intermediate_size`).
    pub feed_forward: usize,
}

#[derive(Clone, Debug, Deserialize)]
pub struct HfConfig {
    #[serde(default)]
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    pub text_config: TextConfig,
    pub vision_config: VisionConfig,
    pub image_token_id: u32,
    pub video_token_id: u32,
    pub vision_start_token_id: u32,
    pub vision_end_token_id: u32,
    pub tie_word_embeddings: Option<bool>,
    pub eos_token_id: Option<TokenIds>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct TextConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: Option<usize>,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeParameters>,
    pub rope_parameters: Option<RopeParameters>,
    pub tie_word_embeddings: Option<bool>,
    pub bos_token_id: Option<u32>,
    pub eos_token_id: Option<TokenIds>,
    pub num_experts: Option<usize>,
    pub num_experts_per_tok: Option<usize>,
    pub moe_intermediate_size: Option<usize>,
    pub decoder_sparse_step: Option<usize>,
    #[serde(default)]
    pub mlp_only_layers: Vec<usize>,
}

/// The RoPE dictionary under either of its names.
#[derive(Clone, Debug, Deserialize)]
pub struct RopeParameters {
    pub mrope_section: Option<Vec<usize>>,
    pub mrope_interleaved: Option<bool>,
    pub rope_type: Option<String>,
    pub rope_theta: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct VisionConfig {
    pub depth: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_heads: usize,
    pub patch_size: usize,
    pub temporal_patch_size: usize,
    pub spatial_merge_size: usize,
    #[serde(default = "default_in_channels")]
    pub in_channels: usize,
    pub out_hidden_size: usize,
    pub num_position_embeddings: usize,
    #[serde(default)]
    pub deepstack_visual_indexes: Vec<usize>,
}

fn default_in_channels() -> usize {
    3
}

/// A token id field that is either one id or a list of ids.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

impl TokenIds {
    pub fn to_vec(&self) -> Vec<u32> {
        match self {
            TokenIds::One(id) => vec![*id],
            TokenIds::Many(ids) => ids.clone(),
        }
    }
}

/// The text model's resolved rotary settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TextRope {
    pub theta: f64,
    /// `[t, h, w]` pair counts, as in the config (not padded).
    pub mrope_section: Vec<usize>,
}

impl HfConfig {
    /// Parses config.json text; a non-Qwen3-VL config fails with "unsupported architecture".
    pub fn from_json_str(text: &str) -> Result<HfConfig> {
        let value: serde_json::Value = serde_json::from_str(text).context("invalid JSON")?;
        check_architecture(&value)?;
        let config: HfConfig = serde_json::from_value(value).context("invalid Qwen3-VL config")?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let text = &self.text_config;
        let vision = &self.vision_config;
        if text.num_attention_heads == 0 || text.num_key_value_heads == 0 {
            bail!("text_config: attention head counts must be positive");
        }
        if vision.num_heads == 0 || !vision.hidden_size.is_multiple_of(vision.num_heads) {
            bail!(
                "vision_config: hidden_size {} is not divisible by num_heads {}",
                vision.hidden_size,
                vision.num_heads
            );
        }
        if let Some(&bad) = vision
            .deepstack_visual_indexes
            .iter()
            .find(|&&i| i >= vision.depth)
        {
            bail!(
                "vision_config: deepstack_visual_indexes entry {bad} is not below depth {}",
                vision.depth
            );
        }
        self.experts()?;
        let rope = self.text_rope()?;
        if rope.mrope_section.len() > 4 {
            bail!(
                "text_config: mrope_section {:?} has more than 4 entries",
                rope.mrope_section
            );
        }
        Ok(())
    }

    /// Whether this is the mixture-of-experts model (`qwen3_vl_moe`).
    pub fn is_moe(&self) -> bool {
        self.model_type.as_deref() == Some(QWEN3VL_MOE_MODEL_TYPE)
            || self
                .architectures
                .iter()
                .any(|a| a == QWEN3VL_MOE_ARCHITECTURE)
    }

    /// The experts of a mixture-of-experts model (`None` for the dense one). Every layer
    /// must be a mixture (`decoder_sparse_step` 1, no `mlp_only_layers`), as in the released
    /// checkpoints and in llama.cpp's `qwen3vlmoe` layout.
    pub fn experts(&self) -> Result<Option<Experts>> {
        if !self.is_moe() {
            return Ok(None);
        }
        let text = &self.text_config;
        let (Some(count), Some(used), Some(feed_forward)) = (
            text.num_experts,
            text.num_experts_per_tok,
            text.moe_intermediate_size,
        ) else {
            bail!("text_config of a Qwen3-VL-MoE model needs num_experts, num_experts_per_tok and moe_intermediate_size");
        };
        if count == 0 || used == 0 || used > count || feed_forward == 0 {
            bail!("text_config: num_experts_per_tok {used} of num_experts {count} (moe_intermediate_size {feed_forward}) is not a mixture");
        }
        if text.decoder_sparse_step.unwrap_or(1) != 1 || !text.mlp_only_layers.is_empty() {
            bail!(
                "text_config: decoder_sparse_step {:?} / mlp_only_layers {:?}: dense layers among the experts are not supported (every layer must be a mixture)",
                text.decoder_sparse_step,
                text.mlp_only_layers
            );
        }
        Ok(Some(Experts {
            count,
            used,
            feed_forward,
        }))
    }

    /// Whether `lm_head` is tied to the token embedding: `text_config.tie_word_embeddings`,
    /// else the top-level flag (transformers reads the text config's), else false.
    pub fn tie_word_embeddings(&self) -> bool {
        self.text_config
            .tie_word_embeddings
            .or(self.tie_word_embeddings)
            .unwrap_or(false)
    }

    /// RoPE theta and M-RoPE sections from `rope_parameters` or `rope_scaling`, with
    /// `rope_theta` taken from inside the dictionary or from `text_config`.
    pub fn text_rope(&self) -> Result<TextRope> {
        let text = &self.text_config;
        let dict = text.rope_parameters.as_ref().or(text.rope_scaling.as_ref());
        let theta = dict.and_then(|d| d.rope_theta).or(text.rope_theta);
        let Some(theta) = theta else {
            bail!("text_config has no rope_theta (neither top-level nor in rope_parameters/rope_scaling)");
        };
        let Some(mrope_section) = dict.and_then(|d| d.mrope_section.clone()) else {
            bail!("text_config has no mrope_section in rope_parameters/rope_scaling");
        };
        Ok(TextRope {
            theta,
            mrope_section,
        })
    }

    /// Per-head width of the text attention (`head_dim`, else hidden / heads).
    pub fn text_head_dim(&self) -> usize {
        let text = &self.text_config;
        text.head_dim
            .unwrap_or(text.hidden_size / text.num_attention_heads)
    }

    /// Side of the square training image implied by the learned position grid:
    /// sqrt(num_position_embeddings) * patch_size (2304 → 48 * 16 = 768).
    pub fn vision_image_size(&self) -> Result<usize> {
        let vision = &self.vision_config;
        let side = integer_sqrt(vision.num_position_embeddings);
        if side * side != vision.num_position_embeddings {
            bail!(
                "vision_config: num_position_embeddings {} is not a square grid",
                vision.num_position_embeddings
            );
        }
        Ok(side * vision.patch_size)
    }

    /// EOS ids from the config (top level, else text_config).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        self.eos_token_id
            .as_ref()
            .or(self.text_config.eos_token_id.as_ref())
            .map(TokenIds::to_vec)
            .unwrap_or_default()
    }
}

fn integer_sqrt(n: usize) -> usize {
    let mut root = (n as f64).sqrt() as usize;
    while root * root > n {
        root -= 1;
    }
    while (root + 1) * (root + 1) <= n {
        root += 1;
    }
    root
}

fn check_architecture(config: &serde_json::Value) -> Result<()> {
    let model_type = config.get("model_type").and_then(|v| v.as_str());
    let architectures: Vec<&str> = config
        .get("architectures")
        .and_then(|v| v.as_array())
        .map(|list| list.iter().filter_map(|a| a.as_str()).collect())
        .unwrap_or_default();
    let offending = match model_type {
        Some(QWEN3VL_MODEL_TYPE)
            if architectures.is_empty() || architectures.contains(&QWEN3VL_ARCHITECTURE) =>
        {
            return Ok(())
        }
        Some(QWEN3VL_MOE_MODEL_TYPE)
            if architectures.is_empty() || architectures.contains(&QWEN3VL_MOE_ARCHITECTURE) =>
        {
            return Ok(())
        }
        Some(QWEN3VL_MODEL_TYPE | QWEN3VL_MOE_MODEL_TYPE) => architectures.join(", "),
        Some(other) => other.to_string(),
        None if architectures.contains(&QWEN3VL_ARCHITECTURE)
            || architectures.contains(&QWEN3VL_MOE_ARCHITECTURE) =>
        {
            return Ok(())
        }
        None if architectures.is_empty() => "unknown (config.json has no model_type)".to_string(),
        None => architectures.join(", "),
    };
    bail!(
        "unsupported architecture '{offending}': glimpse converts Qwen3-VL checkpoints (model_type {QWEN3VL_MODEL_TYPE} or {QWEN3VL_MOE_MODEL_TYPE})"
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small but complete Qwen3-VL config in the official (legacy rope_scaling) format.
    pub(crate) fn tiny_config_json() -> serde_json::Value {
        serde_json::json!({
            "architectures": ["Qwen3VLForConditionalGeneration"],
            "model_type": "qwen3_vl",
            "image_token_id": 151655,
            "video_token_id": 151656,
            "vision_start_token_id": 151652,
            "vision_end_token_id": 151653,
            "tie_word_embeddings": true,
            "text_config": {
                "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                "rms_norm_eps": 1e-6, "max_position_embeddings": 4096, "vocab_size": 151936,
                "rope_scaling": {"mrope_interleaved": true, "mrope_section": [4, 2, 2], "rope_type": "default"},
                "rope_theta": 5000000, "tie_word_embeddings": true,
                "bos_token_id": 151643, "eos_token_id": 151645
            },
            "vision_config": {
                "depth": 3, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                "patch_size": 16, "temporal_patch_size": 2, "spatial_merge_size": 2,
                "in_channels": 3, "out_hidden_size": 64, "num_position_embeddings": 16,
                "deepstack_visual_indexes": [0, 2], "model_type": "qwen3_vl"
            }
        })
    }

    fn parse(value: &serde_json::Value) -> Result<HfConfig> {
        HfConfig::from_json_str(&value.to_string())
    }

    #[test]
    fn legacy_rope_scaling_with_outer_theta_is_accepted() {
        let config = parse(&tiny_config_json()).unwrap();
        let rope = config.text_rope().unwrap();
        assert_eq!(
            rope,
            TextRope {
                theta: 5_000_000.0,
                mrope_section: vec![4, 2, 2]
            }
        );
        assert!(config.tie_word_embeddings());
        assert_eq!(config.vision_image_size().unwrap(), 64);
        assert_eq!(config.eos_token_ids(), vec![151645]);
    }

    #[test]
    fn rope_parameters_with_inner_theta_is_accepted() {
        let mut value = tiny_config_json();
        let text = value["text_config"].as_object_mut().unwrap();
        text.remove("rope_scaling");
        text.remove("rope_theta");
        text.insert(
            "rope_parameters".into(),
            serde_json::json!({"rope_type": "default", "mrope_section": [4, 2, 2], "rope_theta": 1000000.0}),
        );
        let rope = parse(&value).unwrap().text_rope().unwrap();
        assert_eq!(rope.theta, 1_000_000.0);
        assert_eq!(rope.mrope_section, vec![4, 2, 2]);
    }

    #[test]
    fn missing_rope_theta_is_an_error() {
        let mut value = tiny_config_json();
        value["text_config"]
            .as_object_mut()
            .unwrap()
            .remove("rope_theta");
        let err = format!("{:#}", parse(&value).unwrap_err());
        assert!(err.contains("no rope_theta"), "{err}");
    }

    #[test]
    fn other_architectures_are_rejected_by_name() {
        let mut value = tiny_config_json();
        value["model_type"] = "llama".into();
        let err = parse(&value).unwrap_err().to_string();
        assert_eq!(
            err,
            "unsupported architecture 'llama': glimpse converts Qwen3-VL checkpoints (model_type qwen3_vl or qwen3_vl_moe)"
        );
        let llama_only =
            serde_json::json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 8});
        let err = parse(&llama_only).unwrap_err().to_string();
        assert!(
            err.starts_with("unsupported architecture 'LlamaForCausalLM'"),
            "{err}"
        );
    }

    #[test]
    fn untied_text_config_overrides_the_top_level_flag() {
        let mut value = tiny_config_json();
        value["text_config"]["tie_word_embeddings"] = false.into();
        assert!(!parse(&value).unwrap().tie_word_embeddings());
    }

    #[test]
    fn deepstack_index_beyond_depth_is_rejected() {
        let mut value = tiny_config_json();
        value["vision_config"]["deepstack_visual_indexes"] = serde_json::json!([0, 3]);
        let err = parse(&value).unwrap_err().to_string();
        assert!(err.contains("deepstack_visual_indexes entry 3"), "{err}");
    }
}
