//! `tokenizer.*` metadata from `tokenizer.json` + `tokenizer_config.json` as llama.cpp's
//! `_set_vocab_gpt2` writes it for Qwen (model "gpt2", pre "qwen2", tokens padded to the
//! config's vocab_size with "[PADi]", token types, merges, special ids, add-bos/eos flags),
//! and `tokenizer.chat_template` from chat_template.json, chat_template.jinja or
//! tokenizer_config.json, in that order.
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use serde_json::Value;

use crate::json_file::{parse_json, read_optional_text};
use glimpse_gguf::keys::tokenizer as keys;
use glimpse_gguf::{MetaArray, MetaValue, Metadata};

/// llama.cpp token types (gguf-py `TokenType`).
const TOKEN_NORMAL: i32 = 1;
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;
const TOKEN_UNUSED: i32 = 5;

/// Special-token kinds llama.cpp records, with their metadata keys.
const SPECIAL_TOKEN_KINDS: [(&str, &str); 6] = [
    ("bos", keys::BOS_ID),
    ("eos", keys::EOS_ID),
    ("unk", keys::UNK_ID),
    ("sep", keys::SEP_ID),
    ("pad", keys::PAD_ID),
    ("mask", keys::MASK_ID),
];

/// The parsed tokenizer files of a checkpoint directory.
pub struct TokenizerFiles {
    /// `tokenizer.json` exactly as on disk.
    pub tokenizer_json_text: String,
    tokenizer: Value,
    tokenizer_config: Option<Value>,
    chat_template: Option<String>,
}

impl TokenizerFiles {
    /// Reads tokenizer.json (required), tokenizer_config.json and the chat template (optional).
    pub fn load(dir: &Path) -> Result<TokenizerFiles> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer_json_text = read_optional_text(&tokenizer_path)?
            .ok_or_else(|| anyhow!("missing '{}'", tokenizer_path.display()))?;
        let tokenizer = parse_json(&tokenizer_path, &tokenizer_json_text)?;
        let config_path = dir.join("tokenizer_config.json");
        let tokenizer_config = match read_optional_text(&config_path)? {
            Some(text) => Some(parse_json(&config_path, &text)?),
            None => None,
        };
        let chat_template = find_chat_template(dir, tokenizer_config.as_ref())?;
        Ok(TokenizerFiles {
            tokenizer_json_text,
            tokenizer,
            tokenizer_config,
            chat_template,
        })
    }

    /// Adds every `tokenizer.*` key. `config_json` is config.json (fallback special ids);
    /// `vocab_size` the model's embedding rows.
    pub fn add_metadata(
        &self,
        meta: &mut Metadata,
        config_json: &Value,
        vocab_size: usize,
    ) -> Result<()> {
        let added = added_tokens(&self.tokenizer)?;
        let (tokens, token_types) = vocabulary(&self.tokenizer, &added, vocab_size)?;
        meta.insert(keys::MODEL, MetaValue::String("gpt2".into()))?;
        meta.insert(keys::PRE, MetaValue::String("qwen2".into()))?;
        meta.insert(keys::TOKENS, MetaValue::Array(MetaArray::String(tokens)))?;
        meta.insert(
            keys::TOKEN_TYPE,
            MetaValue::Array(MetaArray::I32(token_types)),
        )?;
        meta.insert(
            keys::MERGES,
            MetaValue::Array(MetaArray::String(merges(&self.tokenizer)?)),
        )?;
        for (key, id) in self.special_token_ids(&added, config_json, vocab_size)? {
            meta.insert(key, MetaValue::U32(id))?;
        }
        for (key, flag) in self.add_special_flags() {
            meta.insert(key, MetaValue::Bool(flag))?;
        }
        if let Some(template) = &self.chat_template {
            meta.insert(keys::CHAT_TEMPLATE, MetaValue::String(template.clone()))?;
        }
        Ok(())
    }

    /// Special ids: `<kind>_token` of tokenizer_config.json looked up among the added tokens,
    /// then `<kind>_token_id` of config.json (top level, else text_config) for kinds still unset.
    fn special_token_ids(
        &self,
        added: &[AddedToken],
        config_json: &Value,
        vocab_size: usize,
    ) -> Result<Vec<(&'static str, u32)>> {
        let mut ids = Vec::new();
        for (kind, key) in SPECIAL_TOKEN_KINDS {
            let from_tokenizer_config = self
                .tokenizer_config
                .as_ref()
                .and_then(|c| c.get(format!("{kind}_token")))
                .and_then(|entry| {
                    entry
                        .as_str()
                        .or_else(|| entry.get("content").and_then(Value::as_str))
                })
                .and_then(|content| added.iter().find(|t| t.content == content))
                .map(|t| t.id);
            let id_field = format!("{kind}_token_id");
            let from_config = || {
                config_json
                    .get(&id_field)
                    .or_else(|| {
                        config_json
                            .get("text_config")
                            .and_then(|t| t.get(&id_field))
                    })
                    .and_then(Value::as_u64)
            };
            let Some(id) = from_tokenizer_config.or_else(from_config) else {
                continue;
            };
            if id >= vocab_size as u64 {
                bail!("{kind} token id {id} is outside the vocabulary ({vocab_size} tokens)");
            }
            ids.push((key, id as u32));
        }
        Ok(ids)
    }

    /// add_bos/add_eos: false when the post-processor is byte-level (Qwen's), else the
    /// tokenizer_config.json flags when present.
    fn add_special_flags(&self) -> Vec<(&'static str, bool)> {
        let byte_level = self.tokenizer.get("post_processor").is_some_and(|p| {
            let processors = p.get("processors").and_then(Value::as_array);
            let is_byte_level =
                |p: &Value| p.get("type").and_then(Value::as_str) == Some("ByteLevel");
            match processors {
                Some(list) => list.iter().any(is_byte_level),
                None => is_byte_level(p),
            }
        });
        [
            ("add_bos_token", keys::ADD_BOS),
            ("add_eos_token", keys::ADD_EOS),
        ]
        .into_iter()
        .filter_map(|(field, key)| {
            let configured = self
                .tokenizer_config
                .as_ref()
                .and_then(|c| c.get(field))
                .and_then(Value::as_bool);
            if byte_level {
                Some((key, false))
            } else {
                configured.map(|flag| (key, flag))
            }
        })
        .collect()
    }
}

struct AddedToken {
    id: u64,
    content: String,
    special: bool,
}

fn added_tokens(tokenizer: &Value) -> Result<Vec<AddedToken>> {
    let Some(list) = tokenizer.get("added_tokens").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|entry| {
            let id = entry.get("id").and_then(Value::as_u64);
            let content = entry.get("content").and_then(Value::as_str);
            match (id, content) {
                (Some(id), Some(content)) => Ok(AddedToken {
                    id,
                    content: content.to_string(),
                    special: entry
                        .get("special")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }),
                _ => bail!("tokenizer.json: added_tokens entry without id/content: {entry}"),
            }
        })
        .collect()
}

/// llama.cpp's `does_token_look_special` for the token shapes Qwen uses.
fn looks_special(token: &str) -> bool {
    (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<｜") && token.ends_with("｜>"))
        || matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<unused") && token.ends_with('>'))
}

/// Token strings and types for ids `0..vocab_size`.
fn vocabulary(
    tokenizer: &Value,
    added: &[AddedToken],
    vocab_size: usize,
) -> Result<(Vec<String>, Vec<i32>)> {
    let vocab = tokenizer
        .get("model")
        .and_then(|m| m.get("vocab"))
        .and_then(Value::as_object)
        .ok_or_else(|| {
            anyhow!("tokenizer.json has no model.vocab object (not a BPE tokenizer?)")
        })?;
    let mut slots: Vec<Option<(String, i32)>> = vec![None; vocab_size];
    let mut place = |id: u64, token: &str, token_type: i32| -> Result<()> {
        let slot = usize::try_from(id)
            .ok()
            .and_then(|i| slots.get_mut(i))
            .ok_or_else(|| anyhow!("tokenizer.json token '{token}' has id {id}, outside vocab_size {vocab_size} of config.json"))?;
        *slot = Some((token.to_string(), token_type));
        Ok(())
    };
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| anyhow!("tokenizer.json: vocab entry '{token}' has no integer id"))?;
        place(id, token, TOKEN_NORMAL)?;
    }
    for token in added {
        let token_type = if token.special || looks_special(&token.content) {
            TOKEN_CONTROL
        } else {
            TOKEN_USER_DEFINED
        };
        place(token.id, &token.content, token_type)?;
    }
    Ok(slots
        .into_iter()
        .enumerate()
        .map(|(id, slot)| slot.unwrap_or_else(|| (format!("[PAD{id}]"), TOKEN_UNUSED)))
        .unzip())
}

/// Merges as "left right" strings; the pair form of newer tokenizers has its spaces encoded
/// as U+0120 like llama.cpp does.
fn merges(tokenizer: &Value) -> Result<Vec<String>> {
    let Some(list) = tokenizer
        .get("model")
        .and_then(|m| m.get("merges"))
        .and_then(Value::as_array)
    else {
        return Ok(Vec::new());
    };
    let encode_spaces = |part: &str| part.replace(' ', "\u{120}");
    list.iter()
        .map(|merge| {
            if let Some(text) = merge.as_str() {
                return Ok(text.to_string());
            }
            match merge.as_array().map(Vec::as_slice) {
                Some([Value::String(left), Value::String(right)]) => {
                    Ok(format!("{} {}", encode_spaces(left), encode_spaces(right)))
                }
                _ => bail!("tokenizer.json: unknown merges entry {merge}"),
            }
        })
        .collect()
}

/// A chat template value: a string, or llama.cpp's list of `{name, template}` (the "default").
fn template_from_value(value: &Value) -> Option<String> {
    if let Some(text) = value.as_str() {
        return Some(text.to_string());
    }
    value.as_array()?.iter().find_map(|entry| {
        (entry.get("name").and_then(Value::as_str) == Some("default"))
            .then(|| {
                entry
                    .get("template")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .flatten()
    })
}

fn find_chat_template(dir: &Path, tokenizer_config: Option<&Value>) -> Result<Option<String>> {
    let json_path = dir.join("chat_template.json");
    if let Some(text) = read_optional_text(&json_path)? {
        let value = parse_json(&json_path, &text)?;
        let template = value.get("chat_template").and_then(template_from_value);
        return template
            .map(Some)
            .ok_or_else(|| anyhow!("'{}' has no \"chat_template\" string", json_path.display()));
    }
    if let Some(text) = read_optional_text(&dir.join("chat_template.jinja"))? {
        return Ok(Some(text));
    }
    Ok(tokenizer_config
        .and_then(|c| c.get("chat_template"))
        .and_then(template_from_value))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::test_dir::TestDir;

    fn tiny_tokenizer() -> Value {
        json!({
            "added_tokens": [
                {"id": 5, "content": "<|endoftext|>", "special": true, "normalized": false},
                {"id": 6, "content": "<|im_end|>", "special": true, "normalized": false},
                {"id": 7, "content": "<think>", "special": false, "normalized": false}
            ],
            "post_processor": {"type": "ByteLevel", "add_prefix_space": false},
            "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": [["a", "b"], ["a b", "c"]]}
        })
    }

    fn write_dir(tokenizer_config: Option<Value>, chat_template_json: Option<Value>) -> TestDir {
        let dir = TestDir::new("tokenizer");
        std::fs::write(
            dir.path().join("tokenizer.json"),
            tiny_tokenizer().to_string(),
        )
        .unwrap();
        if let Some(config) = tokenizer_config {
            std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
        }
        if let Some(template) = chat_template_json {
            std::fs::write(dir.path().join("chat_template.json"), template.to_string()).unwrap();
        }
        dir
    }

    fn metadata(dir: &TestDir, config_json: Value, vocab_size: usize) -> Metadata {
        let mut meta = Metadata::new();
        let files = TokenizerFiles::load(dir.path()).unwrap();
        files
            .add_metadata(&mut meta, &config_json, vocab_size)
            .unwrap();
        meta
    }

    #[test]
    fn tokens_are_padded_to_vocab_size_with_llama_cpp_types() {
        let dir = write_dir(None, None);
        let meta = metadata(&dir, json!({}), 10);
        let tokens = meta.get_str_array(keys::TOKENS).unwrap();
        assert_eq!(tokens[..4], ["a", "b", "ab", "Ġ"]);
        assert_eq!(tokens[4], "[PAD4]");
        assert_eq!(tokens[5..8], ["<|endoftext|>", "<|im_end|>", "<think>"]);
        assert_eq!(tokens[9], "[PAD9]");
        let types = meta.get_array(keys::TOKEN_TYPE).unwrap();
        assert_eq!(types, &MetaArray::I32(vec![1, 1, 1, 1, 5, 3, 3, 4, 5, 5]));
        assert_eq!(meta.get_str(keys::MODEL).unwrap(), "gpt2");
        assert_eq!(meta.get_str(keys::PRE).unwrap(), "qwen2");
    }

    #[test]
    fn pair_merges_are_joined_with_spaces_encoded() {
        let dir = write_dir(None, None);
        let meta = metadata(&dir, json!({}), 8);
        assert_eq!(
            meta.get_str_array(keys::MERGES).unwrap(),
            ["a b", "a\u{120}b c"]
        );
    }

    #[test]
    fn special_ids_come_from_tokenizer_config_then_config_json() {
        let tokenizer_config = json!({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": null, "add_bos_token": true});
        let dir = write_dir(Some(tokenizer_config), None);
        let config = json!({"text_config": {"bos_token_id": 5, "eos_token_id": 5}});
        let meta = metadata(&dir, config, 8);
        assert_eq!(meta.get_u32(keys::EOS_ID).unwrap(), 6);
        assert_eq!(meta.get_u32(keys::PAD_ID).unwrap(), 5);
        assert_eq!(meta.get_u32(keys::BOS_ID).unwrap(), 5);
        assert!(!meta.contains(keys::UNK_ID));
        // a byte-level post-processor wins over tokenizer_config's add_bos_token
        assert!(!meta.get_bool(keys::ADD_BOS).unwrap());
        assert!(!meta.get_bool(keys::ADD_EOS).unwrap());
    }

    #[test]
    fn token_ids_beyond_vocab_size_are_rejected() {
        let dir = write_dir(None, None);
        let files = TokenizerFiles::load(dir.path()).unwrap();
        let err = files
            .add_metadata(&mut Metadata::new(), &json!({}), 7)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'<think>' has id 7, outside vocab_size 7"),
            "{err}"
        );
    }

    #[test]
    fn chat_template_json_is_preferred_over_tokenizer_config() {
        let tokenizer_config = json!({"chat_template": "from tokenizer_config"});
        let dir = write_dir(
            Some(tokenizer_config.clone()),
            Some(json!({"chat_template": "from chat_template.json"})),
        );
        assert_eq!(
            metadata(&dir, json!({}), 8)
                .get_str(keys::CHAT_TEMPLATE)
                .unwrap(),
            "from chat_template.json"
        );

        let dir = write_dir(Some(tokenizer_config.clone()), None);
        std::fs::write(dir.path().join("chat_template.jinja"), "from jinja").unwrap();
        assert_eq!(
            metadata(&dir, json!({}), 8)
                .get_str(keys::CHAT_TEMPLATE)
                .unwrap(),
            "from jinja"
        );

        let dir = write_dir(Some(tokenizer_config), None);
        assert_eq!(
            metadata(&dir, json!({}), 8)
                .get_str(keys::CHAT_TEMPLATE)
                .unwrap(),
            "from tokenizer_config"
        );

        let dir = write_dir(None, None);
        assert!(!metadata(&dir, json!({}), 8).contains(keys::CHAT_TEMPLATE));
    }
}
