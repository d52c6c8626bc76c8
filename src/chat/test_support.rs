//! Fixtures shared by the chat unit tests: the real Qwen tokenizer (fetched by
//! scripts/fetch_tokenizer.sh, not committed) and the official Qwen3-VL Instruct chat template
//! (`qwen3vl_chat_template.jinja`, a byte-exact copy of the checkpoint's template).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::template::ChatTemplate;
use super::tokenizer::Tokenizer;

pub use super::template::QWEN3_VL_CHAT_TEMPLATE as QWEN3_VL_TEMPLATE;

/// The real Qwen tokenizer from tests/fixtures/tokenizer/tokenizer.json, loaded once.
/// Panics (failing the test) when the file is missing.
pub fn fixture_tokenizer() -> Arc<Tokenizer> {
    static TOKENIZER: OnceLock<Arc<Tokenizer>> = OnceLock::new();
    TOKENIZER
        .get_or_init(|| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tokenizer/tokenizer.json");
            let json = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run scripts/fetch_tokenizer.sh to fetch the Qwen tokenizer",
                    path.display()
                )
            });
            Arc::new(Tokenizer::from_json_bytes(&json).expect("tokenizer.json should load"))
        })
        .clone()
}

/// The official Qwen3-VL Instruct chat template, compiled.
pub fn qwen3vl_template() -> ChatTemplate {
    ChatTemplate::new(QWEN3_VL_TEMPLATE).expect("the Qwen3-VL template should compile")
}
