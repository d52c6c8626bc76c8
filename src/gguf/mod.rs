//! gguf (under construction)
