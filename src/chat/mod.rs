//! Everything between a conversation and token ids: the tokenizer (and streaming
//! detokenization), chat-template rendering, chat messages, the special token ids, and prompt
//! building with image and video placeholder expansion. Knows nothing of models or images' pixels.

mod gguf_vocabulary;
mod message;
mod presets;
mod prompt;
mod python_json;
mod special_tokens;
mod stream_decoder;
mod template;
#[cfg(test)]
pub(crate) mod test_support;
mod token_bytes;
mod tokenizer;

pub use gguf_vocabulary::tokenizer_json_from_gguf;
pub use message::{
    media_in_prompt_order, Content, ImageRef, Media, Message, Part, Role, ToolCall, VideoRef,
};
pub use presets::{strip_markdown_fence, LOCATE_PROMPT, MARKDOWN_PROMPT};
pub use prompt::{build_prompt, build_prompt_with_answer_prefix, MediaTokens, Prompt};
pub use special_tokens::SpecialTokens;
pub use stream_decoder::StreamDecoder;
pub use template::{
    ChatTemplate, TemplateArgs, QWEN3_VL_CHAT_TEMPLATE, QWEN3_VL_THINKING_CHAT_TEMPLATE,
    RESERVED_TEMPLATE_VARIABLES,
};
pub use tokenizer::Tokenizer;
