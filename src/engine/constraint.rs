//! Constrained decoding with llguidance: a grammar (a JSON schema, or any JSON object)
//! decides at every step which tokens may come next, and the sampler only sees those, so
//! the answer always parses and validates. `Grammars` is built once per model from its own
//! tokenizer (a token trie of every id's bytes; special tokens marked as llguidance wants
//! them) and compiles grammars into `TokenConstraint`s, one per answer. The end-of-turn
//! token is the grammar's end: it is allowed exactly when the answer is complete.
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, TokRxInfo, TokTrie};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};
use serde_json::{json, Value};

use crate::chat::Tokenizer;

/// What an answer must be.
#[derive(Clone, Debug, PartialEq)]
pub enum Grammar {
    /// Any JSON object (`response_format: json_object`, Ollama's `format: "json"`).
    JsonObject,
    /// A value valid against this JSON schema.
    JsonSchema(Value),
    /// One function call in the Qwen template's form,
    /// `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`, to one of these functions
    /// (name and parameter schema), its arguments valid against its schema.
    ToolCall(Vec<(String, Value)>),
}

/// The grammar compiler of one model.
pub struct Grammars {
    factory: ParserFactory,
}

impl Grammars {
    /// The token trie of `tokenizer` over `vocab_rows` ids (the model's logits, which may
    /// outnumber the tokenizer's ids), ending at `end_of_turn`.
    pub fn new(tokenizer: &Tokenizer, vocab_rows: usize, end_of_turn: u32) -> Result<Self> {
        let special = tokenizer.special_token_ids();
        let words: Vec<Vec<u8>> = (0..vocab_rows as u32)
            .map(
                |id| match special.iter().find(|(special_id, _)| *special_id == id) {
                    Some((_, content)) => {
                        let mut bytes = vec![TokTrie::SPECIAL_TOKEN_MARKER];
                        bytes.extend_from_slice(content.as_bytes());
                        bytes
                    }
                    None => tokenizer.token_bytes(id),
                },
            )
            .collect();
        let info = TokRxInfo {
            tok_end_of_turn: Some(end_of_turn),
            ..TokRxInfo::new(vocab_rows as u32, end_of_turn)
        };
        let trie = TokTrie::from(&info, &words);
        let env: llguidance::toktrie::TokEnv = Arc::new(ApproximateTokEnv::new(trie));
        let mut factory = ParserFactory::new_simple(&env)?;
        factory.quiet();
        Ok(Self { factory })
    }

    /// A fresh constraint for one answer; an invalid schema is an error naming the problem.
    /// JSON is written as people and models write it on one line (`{"a": 1, "b": [2, 3]}`),
    /// with no free whitespace, so a weak model cannot wander off into blank space.
    pub fn constraint(&self, grammar: &Grammar) -> Result<TokenConstraint> {
        let top = match grammar {
            Grammar::JsonObject => {
                TopLevelGrammar::from_json_schema(compact(json!({"type": "object"}))?)
            }
            Grammar::JsonSchema(Value::Bool(true)) => {
                TopLevelGrammar::from_json_schema(compact(json!({}))?)
            }
            Grammar::JsonSchema(schema) => {
                TopLevelGrammar::from_json_schema(compact(schema.clone())?)
            }
            Grammar::ToolCall(functions) => {
                let calls: Vec<Value> = functions
                    .iter()
                    .map(|(name, parameters)| {
                        json!({
                            "type": "object",
                            "properties": {"name": {"const": name}, "arguments": parameters},
                            "required": ["name", "arguments"],
                            "additionalProperties": false,
                        })
                    })
                    .collect();
                let call = compact(json!({"anyOf": calls}))?;
                TopLevelGrammar::from_lark(format!(
                    "start: \"<tool_call>\\n\" call \"\\n</tool_call>\"\ncall: %json {call}\n"
                ))
            }
        };
        let parser = self.factory.create_parser(top)?;
        let matcher = Matcher::new(Ok(parser));
        if let Some(error) = matcher.get_error() {
            return Err(anyhow!(error));
        }
        Ok(TokenConstraint { matcher })
    }
}

/// `schema` with JSON written as people and models write it on one line
/// (`{"a": 1, "b": [2, 3]}`) and no free whitespace.
fn compact(mut schema: Value) -> Result<Value> {
    if !schema.is_object() {
        bail!("a JSON schema must be an object");
    }
    JsonCompileOptions {
        item_separator: ", ".into(),
        key_separator: ": ".into(),
        whitespace_flexible: false,
        ..JsonCompileOptions::default()
    }
    .apply_to(&mut schema);
    Ok(schema)
}

/// The grammar state of one answer.
pub struct TokenConstraint {
    matcher: Matcher,
}

impl std::fmt::Debug for TokenConstraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenConstraint").finish_non_exhaustive()
    }
}

impl TokenConstraint {
    /// Makes every token the grammar does not allow next impossible (−∞).
    pub fn mask(&mut self, logits: &mut [f32]) -> Result<()> {
        let allowed = self.matcher.compute_mask_or_eos()?;
        for (id, logit) in logits.iter_mut().enumerate() {
            if !allowed.is_allowed(id as u32) {
                *logit = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    /// Advances the grammar past `token`.
    pub fn accept(&mut self, token: u32) -> Result<()> {
        self.matcher.consume_token(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::test_support::fixture_tokenizer;

    /// Greedy decoding through the constraint with made-up logits that prefer `favourite`
    /// bytes: whatever the logits, the text must be valid for the grammar.
    fn decode(grammars: &Grammars, grammar: &Grammar, tokenizer: &Tokenizer, end: u32) -> String {
        let mut constraint = grammars.constraint(grammar).unwrap();
        let vocab = tokenizer.vocab_size();
        let mut ids = Vec::new();
        for step in 0..200u32 {
            let mut logits: Vec<f32> = (0..vocab as u32)
                .map(|id| {
                    ((id.wrapping_mul(2_654_435_761) ^ step.wrapping_mul(40_503)) % 1000) as f32
                })
                .collect();
            constraint.mask(&mut logits).unwrap();
            let id = crate::engine::sampler::argmax(&logits);
            if id == end {
                return tokenizer.decode(&ids, true).unwrap();
            }
            constraint.accept(id).unwrap();
            ids.push(id);
        }
        panic!(
            "no end after 200 tokens: {:?}",
            tokenizer.decode(&ids, false)
        );
    }

    #[test]
    fn masked_decoding_gives_valid_json_for_the_schema() {
        let tokenizer = fixture_tokenizer();
        let end = tokenizer.token_to_id("<|im_end|>").unwrap();
        let grammars = Grammars::new(&tokenizer, tokenizer.vocab_size(), end).unwrap();
        let schema = json!({
            "type": "object",
            "properties": {
                "label": {"enum": ["cat", "dog"]},
                "count": {"type": "integer", "minimum": 1, "maximum": 9}
            },
            "required": ["label", "count"],
            "additionalProperties": false
        });
        let text = decode(&grammars, &Grammar::JsonSchema(schema), &tokenizer, end);
        let value: Value = serde_json::from_str(&text).unwrap();
        assert!(
            ["cat", "dog"].contains(&value["label"].as_str().unwrap()),
            "{text}"
        );
        assert!(
            (1..=9).contains(&value["count"].as_i64().unwrap()),
            "{text}"
        );
        assert_eq!(value.as_object().unwrap().len(), 2, "{text}");
    }

    #[test]
    fn a_required_tool_call_names_a_function_and_validates_its_arguments() {
        let tokenizer = fixture_tokenizer();
        let end = tokenizer.token_to_id("<|im_end|>").unwrap();
        let grammars = Grammars::new(&tokenizer, tokenizer.vocab_size(), end).unwrap();
        let weather = json!({
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "days"],
            "additionalProperties": false
        });
        let grammar = Grammar::ToolCall(vec![("get_weather".into(), weather)]);
        let text = decode(&grammars, &grammar, &tokenizer, end);
        let body = text
            .strip_prefix("<tool_call>\n")
            .and_then(|t| t.strip_suffix("\n</tool_call>"))
            .unwrap_or_else(|| panic!("{text:?}"));
        let call: Value = serde_json::from_str(body).unwrap();
        assert_eq!(call["name"], "get_weather");
        assert!(
            (1..=7).contains(&call["arguments"]["days"].as_i64().unwrap()),
            "{text}"
        );
    }

    #[test]
    fn invalid_schemas_are_errors() {
        let tokenizer = fixture_tokenizer();
        let end = tokenizer.token_to_id("<|im_end|>").unwrap();
        let grammars = Grammars::new(&tokenizer, tokenizer.vocab_size(), end).unwrap();
        let error = grammars
            .constraint(&Grammar::JsonSchema(json!({"type": "no-such-type"})))
            .unwrap_err();
        assert!(!error.to_string().is_empty());
    }
}
