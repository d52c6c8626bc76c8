//! The human-readable summary behind `glimpse info`: architecture, file type, tensor counts
//! and bytes per type, the main hyperparameters, vision/tokenizer/template presence, and every
//! metadata key with a short value. Never fails: absent or odd keys are shown as such.
use std::collections::BTreeMap;
use std::fmt::Write;

use crate::file::GgufFile;
use crate::ggml_type::GgmlType;
use crate::keys::{clip, general, glimpse, text, text_key, tokenizer};
use crate::meta_value::MetaValue;

/// llama.cpp's `llama_ftype` names for the file types glimpse writes or may meet.
fn file_type_name(file_type: u32) -> &'static str {
    match file_type {
        0 => "ALL_F32",
        1 => "MOSTLY_F16",
        2 => "MOSTLY_Q4_0",
        7 => "MOSTLY_Q8_0",
        14 => "MOSTLY_Q4_K_S",
        15 => "MOSTLY_Q4_K_M",
        32 => "MOSTLY_BF16",
        _ => "other",
    }
}

fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

/// A metadata value for a summary line, or "?" when absent.
fn shown(file: &GgufFile, key: &str) -> String {
    file.metadata()
        .get(key)
        .map_or_else(|| "?".to_string(), MetaValue::to_string)
}

/// The summary `glimpse info` prints for `file`.
pub fn describe(file: &GgufFile) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_description(file, &mut out);
    out
}

fn write_description(file: &GgufFile, out: &mut String) -> std::fmt::Result {
    let meta = file.metadata();
    writeln!(
        out,
        "file: {} ({})",
        file.path().display(),
        human_bytes(file.file_size())
    )?;
    writeln!(
        out,
        "GGUF version {}, alignment {}",
        file.version(),
        file.alignment()
    )?;
    writeln!(out, "architecture: {}", shown(file, general::ARCHITECTURE))?;
    let arch = meta
        .get_str_opt(general::ARCHITECTURE)
        .ok()
        .flatten()
        .unwrap_or("qwen3vl");
    match meta.get_u32_opt(general::FILE_TYPE).ok().flatten() {
        Some(ft) => writeln!(out, "file type: {ft} ({})", file_type_name(ft))?,
        None => writeln!(out, "file type: ?")?,
    }

    let mut by_type: BTreeMap<u32, (GgmlType, usize, usize)> = BTreeMap::new();
    for info in file.tensor_infos() {
        let entry = by_type.entry(info.dtype.id()).or_insert((info.dtype, 0, 0));
        entry.1 += 1;
        entry.2 += info.n_bytes;
    }
    let total_bytes: usize = file.tensor_infos().iter().map(|t| t.n_bytes).sum();
    let total_params: usize = file.tensor_infos().iter().map(|t| t.n_elements()).sum();
    writeln!(
        out,
        "tensors: {} ({} parameters, {})",
        file.tensor_infos().len(),
        total_params,
        human_bytes(total_bytes)
    )?;
    for (dtype, count, bytes) in by_type.values() {
        writeln!(
            out,
            "  {dtype:5} {count:5} tensors  {}",
            human_bytes(*bytes)
        )?;
    }

    writeln!(
        out,
        "text model: {} layers, hidden {}, ffn {}, heads {} (kv {}), head_dim {}, context {}, rope theta {}, mrope sections {}, deepstack layers {}, output {}",
        shown(file, &text_key(arch, text::BLOCK_COUNT)),
        shown(file, &text_key(arch, text::EMBEDDING_LENGTH)),
        shown(file, &text_key(arch, text::FEED_FORWARD_LENGTH)),
        shown(file, &text_key(arch, text::HEAD_COUNT)),
        shown(file, &text_key(arch, text::HEAD_COUNT_KV)),
        shown(file, &text_key(arch, text::KEY_LENGTH)),
        shown(file, &text_key(arch, text::CONTEXT_LENGTH)),
        shown(file, &text_key(arch, text::ROPE_FREQ_BASE)),
        shown(file, &text_key(arch, text::ROPE_DIMENSION_SECTIONS)),
        shown(file, &text_key(arch, text::N_DEEPSTACK_LAYERS)),
        if file.has_tensor("output.weight") { "separate" } else { "tied to token_embd" },
    )?;
    if meta.get(&text_key(arch, text::EXPERT_COUNT)).is_some() {
        writeln!(
            out,
            "experts: {} per layer, {} per token, expert ffn {}",
            shown(file, &text_key(arch, text::EXPERT_COUNT)),
            shown(file, &text_key(arch, text::EXPERT_USED_COUNT)),
            shown(file, &text_key(arch, text::EXPERT_FEED_FORWARD_LENGTH)),
        )?;
    }
    if meta.get_bool_opt(clip::HAS_VISION_ENCODER).ok().flatten() == Some(true) {
        let deepstack: Vec<usize> = meta
            .get_bool_array_opt(clip::IS_DEEPSTACK_LAYERS)
            .ok()
            .flatten()
            .map(|flags| {
                flags
                    .iter()
                    .enumerate()
                    .filter(|(_, &f)| f)
                    .map(|(i, _)| i)
                    .collect()
            })
            .unwrap_or_default();
        writeln!(
            out,
            "vision encoder: {} ({} blocks, hidden {}, ffn {}, heads {}, patch {}, merge {}, image {}, deepstack at {:?})",
            shown(file, clip::PROJECTOR_TYPE),
            shown(file, clip::BLOCK_COUNT),
            shown(file, clip::EMBEDDING_LENGTH),
            shown(file, clip::FEED_FORWARD_LENGTH),
            shown(file, clip::HEAD_COUNT),
            shown(file, clip::PATCH_SIZE),
            shown(file, clip::SPATIAL_MERGE_SIZE),
            shown(file, clip::IMAGE_SIZE),
            deepstack,
        )?;
    } else {
        writeln!(out, "vision encoder: none")?;
    }
    let token_count = meta
        .get_str_array_opt(tokenizer::TOKENS)
        .ok()
        .flatten()
        .map_or(0, <[String]>::len);
    let merge_count = meta
        .get_str_array_opt(tokenizer::MERGES)
        .ok()
        .flatten()
        .map_or(0, <[String]>::len);
    writeln!(
        out,
        "tokenizer: {} (pre {}), {token_count} tokens, {merge_count} merges, tokenizer.json {}",
        shown(file, tokenizer::MODEL),
        shown(file, tokenizer::PRE),
        if meta.contains(glimpse::TOKENIZER_JSON) {
            "embedded"
        } else {
            "absent"
        },
    )?;
    match meta.get_str_opt(tokenizer::CHAT_TEMPLATE).ok().flatten() {
        Some(template) => writeln!(out, "chat template: present ({} bytes)", template.len())?,
        None => writeln!(out, "chat template: absent")?,
    }
    writeln!(
        out,
        "preprocessor config: {}",
        if meta.contains(glimpse::PREPROCESSOR_CONFIG) {
            "embedded"
        } else {
            "absent"
        }
    )?;

    writeln!(out, "metadata ({} keys):", meta.len())?;
    for (key, value) in meta.iter() {
        writeln!(out, "  {key} = {value}")?;
    }
    Ok(())
}
