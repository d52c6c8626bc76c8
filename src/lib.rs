//! glimpse: a CPU-first runtime for the Qwen3-VL vision-language model.
//!
//! Layering (arrows point one way only): `kernels` (ops) ← `model` (Qwen3-VL graph)
//! ← `engine` (sessions, caches, sampling) ← CLI / server. `gguf` (the `glimpse-gguf`
//! crate, re-exported), `preprocess` and `chat` are leaf modules used by the layers above
//! them.
pub mod catalog;
pub mod chat;
pub mod cli;
pub mod engine;
#[cfg(test)]
mod fuzz;
pub mod gguf;
pub mod grounding;
pub mod kernels;
pub mod model;
pub mod preprocess;
pub mod server;
