//! `general.*`, `qwen3vl.*` and `clip.*` metadata of a converted checkpoint, with the key
//! names and value types llama.cpp's converter writes for the Qwen3-VL text model and its
//! `qwen3vl_merger` projector (u32 sizes, f32 epsilons, i32 rope sections, bool layer flags).
use anyhow::{anyhow, Context, Result};

use crate::checkpoint::Checkpoint;
use crate::out_type::OutType;
use glimpse_gguf::keys::{self, clip, general, text, text_key};
use glimpse_gguf::{MetaArray, MetaValue, Metadata};

/// A size as the u32 llama.cpp stores.
fn u32_value(what: &str, value: usize) -> Result<MetaValue> {
    u32::try_from(value)
        .map(MetaValue::U32)
        .map_err(|_| anyhow!("{what} = {value} does not fit in a u32"))
}

/// What a written file holds: the model (glimpse's single file or llama.cpp's text file)
/// or llama.cpp's vision projector (`mmproj`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    Model,
    Projector,
}

pub fn add_general_metadata(
    meta: &mut Metadata,
    checkpoint: &Checkpoint,
    out_type: OutType,
    role: FileRole,
) -> Result<()> {
    let (architecture, kind) = match role {
        FileRole::Model => (text_architecture(checkpoint), "model"),
        FileRole::Projector => (keys::ARCHITECTURE_CLIP, "mmproj"),
    };
    meta.insert(
        general::ARCHITECTURE,
        MetaValue::String(architecture.into()),
    )?;
    meta.insert(general::TYPE, MetaValue::String(kind.into()))?;
    meta.insert(general::NAME, MetaValue::String(checkpoint.name()))?;
    meta.insert(general::FILE_TYPE, MetaValue::U32(out_type.file_type()))?;
    meta.insert(
        general::QUANTIZATION_VERSION,
        MetaValue::U32(keys::QUANTIZATION_VERSION),
    )?;
    meta.insert(general::ALIGNMENT, MetaValue::U32(keys::DEFAULT_ALIGNMENT))?;
    Ok(())
}

/// The checkpoint's recommended sampling, as llama.cpp's converter records it
/// (`general.sampling.*` from generation_config.json's top_k, top_p, temperature and
/// repetition_penalty), so glimpse and llama.cpp default to what the model was tuned for.
/// `do_sample: false` is transformers' greedy decoding: temperature 0.
pub fn add_sampling_metadata(meta: &mut Metadata, checkpoint: &Checkpoint) -> Result<()> {
    let Some(generation) = &checkpoint.generation_config else {
        return Ok(());
    };
    let config = &generation.value;
    let number = |field: &str| -> Result<Option<f64>> {
        match config.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => value.as_f64().map(Some).ok_or_else(|| {
                anyhow!("generation_config.json: '{field}' is {value}, not a number")
            }),
        }
    };
    if let Some(top_k) = number("top_k")? {
        let top_k = i32::try_from(top_k as i64)
            .ok()
            .filter(|&k| k >= 0 && f64::from(k) == top_k)
            .ok_or_else(|| anyhow!("generation_config.json: top_k {top_k} is not a count"))?;
        meta.insert(general::SAMPLING_TOP_K, MetaValue::I32(top_k))?;
    }
    let greedy = config.get("do_sample") == Some(&serde_json::Value::Bool(false));
    let temperature = if greedy {
        Some(0.0)
    } else {
        number("temperature")?
    };
    let floats = [
        (general::SAMPLING_TOP_P, number("top_p")?),
        (general::SAMPLING_TEMP, temperature),
        (
            general::SAMPLING_PENALTY_REPEAT,
            number("repetition_penalty")?,
        ),
    ];
    for (key, value) in floats {
        if let Some(value) = value {
            meta.insert(key, MetaValue::F32(value as f32))?;
        }
    }
    Ok(())
}

/// `general.architecture` of the text model: `qwen3vlmoe` for the mixture of experts.
pub fn text_architecture(checkpoint: &Checkpoint) -> &'static str {
    if checkpoint.config.is_moe() {
        keys::ARCHITECTURE_QWEN3VLMOE
    } else {
        keys::ARCHITECTURE_QWEN3VL
    }
}

pub fn add_text_model_metadata(meta: &mut Metadata, checkpoint: &Checkpoint) -> Result<()> {
    let arch = text_architecture(checkpoint);
    let key = |name: &str| text_key(arch, name);
    let config = &checkpoint.config;
    let text = &config.text_config;
    let rope = config.text_rope()?;
    let head_dim = config.text_head_dim();
    let sizes = [
        (
            key(text::BLOCK_COUNT),
            "num_hidden_layers",
            text.num_hidden_layers,
        ),
        (
            key(text::CONTEXT_LENGTH),
            "max_position_embeddings",
            text.max_position_embeddings,
        ),
        (key(text::EMBEDDING_LENGTH), "hidden_size", text.hidden_size),
        (
            key(text::FEED_FORWARD_LENGTH),
            "intermediate_size",
            text.intermediate_size,
        ),
        (
            key(text::HEAD_COUNT),
            "num_attention_heads",
            text.num_attention_heads,
        ),
        (
            key(text::HEAD_COUNT_KV),
            "num_key_value_heads",
            text.num_key_value_heads,
        ),
        (key(text::KEY_LENGTH), "head_dim", head_dim),
        (key(text::VALUE_LENGTH), "head_dim", head_dim),
        (
            key(text::N_DEEPSTACK_LAYERS),
            "deepstack layers",
            config.vision_config.deepstack_visual_indexes.len(),
        ),
    ];
    let experts = config.experts()?.map(|e| {
        [
            (key(text::EXPERT_COUNT), "num_experts", e.count),
            (key(text::EXPERT_USED_COUNT), "num_experts_per_tok", e.used),
            (
                key(text::EXPERT_FEED_FORWARD_LENGTH),
                "moe_intermediate_size",
                e.feed_forward,
            ),
        ]
    });
    for (name, what, value) in sizes.into_iter().chain(experts.into_iter().flatten()) {
        meta.insert(name, u32_value(what, value)?)?;
    }
    meta.insert(key(text::ROPE_FREQ_BASE), MetaValue::F32(rope.theta as f32))?;
    meta.insert(
        key(text::LAYER_NORM_RMS_EPSILON),
        MetaValue::F32(text.rms_norm_eps as f32),
    )?;
    let mut sections = rope
        .mrope_section
        .iter()
        .map(|&s| {
            i32::try_from(s).map_err(|_| anyhow!("mrope_section entry {s} does not fit in an i32"))
        })
        .collect::<Result<Vec<i32>>>()?;
    sections.resize(4, 0);
    meta.insert(
        key(text::ROPE_DIMENSION_SECTIONS),
        MetaValue::Array(MetaArray::I32(sections)),
    )?;
    Ok(())
}

pub fn add_vision_metadata(meta: &mut Metadata, checkpoint: &Checkpoint) -> Result<()> {
    let config = &checkpoint.config;
    let vision = &config.vision_config;
    meta.insert(clip::HAS_VISION_ENCODER, MetaValue::Bool(true))?;
    meta.insert(
        clip::PROJECTOR_TYPE,
        MetaValue::String(keys::PROJECTOR_QWEN3VL_MERGER.into()),
    )?;
    meta.insert(clip::USE_GELU, MetaValue::Bool(true))?;
    let sizes = [
        (
            clip::PROJECTION_DIM,
            "text hidden_size",
            config.text_config.hidden_size,
        ),
        (clip::IMAGE_SIZE, "image size", config.vision_image_size()?),
        (clip::PATCH_SIZE, "patch_size", vision.patch_size),
        (
            clip::EMBEDDING_LENGTH,
            "vision hidden_size",
            vision.hidden_size,
        ),
        (
            clip::FEED_FORWARD_LENGTH,
            "vision intermediate_size",
            vision.intermediate_size,
        ),
        (clip::BLOCK_COUNT, "depth", vision.depth),
        (clip::HEAD_COUNT, "num_heads", vision.num_heads),
        (
            clip::SPATIAL_MERGE_SIZE,
            "spatial_merge_size",
            vision.spatial_merge_size,
        ),
    ];
    for (key, what, value) in sizes {
        meta.insert(key, u32_value(what, value)?)?;
    }
    // llama.cpp uses the text model's rms_norm_eps for the vision LayerNorms (1e-6 in Qwen3-VL).
    meta.insert(
        clip::LAYER_NORM_EPSILON,
        MetaValue::F32(config.text_config.rms_norm_eps as f32),
    )?;
    let preprocessor = &checkpoint.preprocessor_config.value;
    for (key, field) in [
        (clip::IMAGE_MEAN, "image_mean"),
        (clip::IMAGE_STD, "image_std"),
    ] {
        let values = preprocessor
            .get(field)
            .and_then(|v| v.as_array())
            .and_then(|list| {
                list.iter()
                    .map(|x| x.as_f64().map(|f| f as f32))
                    .collect::<Option<Vec<f32>>>()
            })
            .with_context(|| format!("preprocessor_config.json has no numeric '{field}' list"))?;
        meta.insert(key, MetaValue::Array(MetaArray::F32(values)))?;
    }
    let mut deepstack = vec![false; vision.depth];
    for &layer in &vision.deepstack_visual_indexes {
        if let Some(flag) = deepstack.get_mut(layer) {
            *flag = true;
        }
    }
    meta.insert(
        clip::IS_DEEPSTACK_LAYERS,
        MetaValue::Array(MetaArray::Bool(deepstack)),
    )?;
    Ok(())
}
