//! Rebuilds an HF `tokenizer.json` from the vocabulary llama.cpp stores in a GGUF
//! (`tokenizer.ggml.*`), so files written by llama.cpp's converter — which carry no
//! `tokenizer.json` — tokenize exactly as the checkpoint's own tokenizer does.
//!
//! llama.cpp's `gpt2` vocabulary with pre-tokenizer `qwen2` is Qwen's byte-level BPE:
//! ordinary tokens (type 1) are the BPE vocabulary, control (3) and user-defined (4)
//! tokens are the added tokens (special and not), unused padding entries (5) are dropped,
//! and the merges are stored as `"left right"` strings. The normalizer, pre-tokenizer
//! regex and decoder are Qwen2's, as in every Qwen2/2.5/3 `tokenizer.json`.
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Map, Value};

use crate::gguf::{keys, Metadata};

/// The Qwen2 pre-tokenizer split (`tokenizer.ggml.pre = "qwen2"`).
const QWEN2_SPLIT_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: u32 = 1;
const CONTROL: u32 = 3;
const USER_DEFINED: u32 = 4;
const UNUSED: u32 = 5;

/// The `tokenizer.json` text equivalent to the file's `tokenizer.ggml.*` vocabulary.
pub fn tokenizer_json_from_gguf(metadata: &Metadata) -> Result<String> {
    let model = metadata.get_str(keys::tokenizer::MODEL)?;
    let pre = metadata.get_str_opt(keys::tokenizer::PRE)?.unwrap_or("");
    ensure!(
        model == "gpt2" && pre == "qwen2",
        "the file's tokenizer is '{model}' with pre-tokenizer '{pre}'; glimpse reads Qwen's \
         byte-level BPE ('gpt2' with 'qwen2')"
    );
    let tokens = metadata.get_str_array(keys::tokenizer::TOKENS)?;
    let types = metadata
        .get_array(keys::tokenizer::TOKEN_TYPE)?
        .to_u32_vec()
        .context("tokenizer.ggml.token_type is not an array of token types")?;
    ensure!(
        types.len() == tokens.len(),
        "{} token types for {} tokens",
        types.len(),
        tokens.len()
    );
    let merges = metadata.get_str_array(keys::tokenizer::MERGES)?;

    let mut vocab = Map::new();
    let mut added = Vec::new();
    for (id, (token, &kind)) in tokens.iter().zip(&types).enumerate() {
        match kind {
            NORMAL => {
                vocab.insert(token.clone(), json!(id));
            }
            CONTROL | USER_DEFINED => added.push(json!({
                "id": id,
                "content": token,
                "single_word": false,
                "lstrip": false,
                "rstrip": false,
                "normalized": false,
                "special": kind == CONTROL,
            })),
            UNUSED => {}
            other => bail!(
                "token {id} ('{token}') has type {other}, which Qwen's vocabulary does not use"
            ),
        }
    }
    let byte_level = json!({
        "type": "ByteLevel",
        "add_prefix_space": false,
        "trim_offsets": false,
        "use_regex": false,
    });
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": { "type": "NFC" },
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {
                    "type": "Split",
                    "pattern": { "Regex": QWEN2_SPLIT_REGEX },
                    "behavior": "Isolated",
                    "invert": false,
                },
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "dropout": null,
            "unk_token": null,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": false,
            "byte_fallback": false,
            "ignore_merges": false,
            "vocab": Value::Object(vocab),
            "merges": merges,
        },
    });
    serde_json::to_string(&tokenizer).context("serializing the rebuilt tokenizer.json")
}
