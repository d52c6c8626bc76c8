//! Every GGUF metadata key glimpse writes or reads, spelled exactly as llama.cpp spells them
//! (gguf-py `constants.py`) for the `qwen3vl` / `qwen3vlmoe` text models and their `qwen3vl_merger` vision
//! projector, plus glimpse's own `glimpse.*` keys that make one file enough to serve.

/// The architecture string of the text model (`general.architecture`).
pub const ARCHITECTURE_QWEN3VL: &str = "qwen3vl";
/// The architecture string of the mixture-of-experts text model (Qwen3-VL-30B-A3B).
pub const ARCHITECTURE_QWEN3VLMOE: &str = "qwen3vlmoe";
/// The architecture string of llama.cpp's projector files (`mmproj`).
pub const ARCHITECTURE_CLIP: &str = "clip";
/// The projector type of the vision tower (`clip.projector_type`).
pub const PROJECTOR_QWEN3VL_MERGER: &str = "qwen3vl_merger";
/// Tensor-data alignment glimpse writes (llama.cpp's default).
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// `general.quantization_version` written by current llama.cpp (`GGML_QNT_VERSION`).
pub const QUANTIZATION_VERSION: u32 = 2;

pub mod general {
    pub const ARCHITECTURE: &str = "general.architecture";
    pub const TYPE: &str = "general.type";
    pub const NAME: &str = "general.name";
    pub const ALIGNMENT: &str = "general.alignment";
    pub const FILE_TYPE: &str = "general.file_type";
    pub const QUANTIZATION_VERSION: &str = "general.quantization_version";
    /// The checkpoint's recommended sampling (llama.cpp's keys, from generation_config.json):
    /// top_k an i32, the others f32.
    pub const SAMPLING_TOP_K: &str = "general.sampling.top_k";
    pub const SAMPLING_TOP_P: &str = "general.sampling.top_p";
    pub const SAMPLING_TEMP: &str = "general.sampling.temp";
    pub const SAMPLING_PENALTY_REPEAT: &str = "general.sampling.penalty_repeat";
}

/// The text model's `{arch}.*` keys, which llama.cpp names alike under both architectures;
/// `text_key(arch, NAME)` spells a full key (`qwen3vl.block_count`, `qwen3vlmoe.expert_count`).
pub mod text {
    pub const BLOCK_COUNT: &str = "block_count";
    pub const CONTEXT_LENGTH: &str = "context_length";
    pub const EMBEDDING_LENGTH: &str = "embedding_length";
    pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
    pub const HEAD_COUNT: &str = "attention.head_count";
    pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
    pub const LAYER_NORM_RMS_EPSILON: &str = "attention.layer_norm_rms_epsilon";
    pub const KEY_LENGTH: &str = "attention.key_length";
    pub const VALUE_LENGTH: &str = "attention.value_length";
    pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
    /// M-RoPE sections `[t, h, w, e]` (i32 array, padded to 4 with zeros).
    pub const ROPE_DIMENSION_SECTIONS: &str = "rope.dimension_sections";
    pub const N_DEEPSTACK_LAYERS: &str = "n_deepstack_layers";
    /// Mixture of experts (`qwen3vlmoe`): experts per layer, experts per token, and the
    /// hidden width of one expert's feed-forward.
    pub const EXPERT_COUNT: &str = "expert_count";
    pub const EXPERT_USED_COUNT: &str = "expert_used_count";
    pub const EXPERT_FEED_FORWARD_LENGTH: &str = "expert_feed_forward_length";
}

/// The full key of a text-model key `name` under architecture `arch`.
pub fn text_key(arch: &str, name: &str) -> String {
    format!("{arch}.{name}")
}

pub mod tokenizer {
    pub const MODEL: &str = "tokenizer.ggml.model";
    pub const PRE: &str = "tokenizer.ggml.pre";
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    pub const MERGES: &str = "tokenizer.ggml.merges";
    pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
    pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
    pub const UNK_ID: &str = "tokenizer.ggml.unknown_token_id";
    /// Misspelled in llama.cpp; kept for compatibility.
    pub const SEP_ID: &str = "tokenizer.ggml.seperator_token_id";
    pub const PAD_ID: &str = "tokenizer.ggml.padding_token_id";
    pub const MASK_ID: &str = "tokenizer.ggml.mask_token_id";
    pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    pub const ADD_EOS: &str = "tokenizer.ggml.add_eos_token";
    pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";
}

pub mod clip {
    pub const HAS_VISION_ENCODER: &str = "clip.has_vision_encoder";
    pub const PROJECTOR_TYPE: &str = "clip.projector_type";
    pub const USE_GELU: &str = "clip.use_gelu";
    pub const PROJECTION_DIM: &str = "clip.vision.projection_dim";
    pub const IMAGE_SIZE: &str = "clip.vision.image_size";
    pub const PATCH_SIZE: &str = "clip.vision.patch_size";
    pub const EMBEDDING_LENGTH: &str = "clip.vision.embedding_length";
    pub const FEED_FORWARD_LENGTH: &str = "clip.vision.feed_forward_length";
    pub const BLOCK_COUNT: &str = "clip.vision.block_count";
    pub const HEAD_COUNT: &str = "clip.vision.attention.head_count";
    pub const LAYER_NORM_EPSILON: &str = "clip.vision.attention.layer_norm_epsilon";
    pub const IMAGE_MEAN: &str = "clip.vision.image_mean";
    pub const IMAGE_STD: &str = "clip.vision.image_std";
    pub const SPATIAL_MERGE_SIZE: &str = "clip.vision.spatial_merge_size";
    /// The pixel budget of an image (llama.cpp reads these; its Qwen3-VL converter writes none).
    pub const IMAGE_MIN_PIXELS: &str = "clip.vision.image_min_pixels";
    pub const IMAGE_MAX_PIXELS: &str = "clip.vision.image_max_pixels";
    /// One bool per vision block, true where a deepstack merger taps the block's output.
    pub const IS_DEEPSTACK_LAYERS: &str = "clip.vision.is_deepstack_layers";
}

/// glimpse's own keys: verbatim copies of the checkpoint's JSON files and the vision token ids.
pub mod glimpse {
    /// The whole `tokenizer.json`, verbatim.
    pub const TOKENIZER_JSON: &str = "glimpse.tokenizer_json";
    /// `preprocessor_config.json`, verbatim.
    pub const PREPROCESSOR_CONFIG: &str = "glimpse.preprocessor_config";
    /// `video_preprocessor_config.json`, verbatim (absent from files converted before videos,
    /// and from checkpoints without one: Qwen3-VL's values then apply).
    pub const VIDEO_PREPROCESSOR_CONFIG: &str = "glimpse.video_preprocessor_config";
    /// `config.json`, verbatim.
    pub const HF_CONFIG: &str = "glimpse.hf_config";
    /// `generation_config.json`, verbatim (only when the checkpoint has one).
    pub const GENERATION_CONFIG: &str = "glimpse.generation_config";
    pub const IMAGE_TOKEN_ID: &str = "glimpse.image_token_id";
    pub const VIDEO_TOKEN_ID: &str = "glimpse.video_token_id";
    pub const VISION_START_TOKEN_ID: &str = "glimpse.vision_start_token_id";
    pub const VISION_END_TOKEN_ID: &str = "glimpse.vision_end_token_id";
    /// Every token id that ends generation (u32 array).
    pub const EOS_TOKEN_IDS: &str = "glimpse.eos_token_ids";
}
