//! The integration tests, one test binary (as in ripgrep's `tests/tests.rs`): every file
//! beside this one is a module of it, sharing `common` (fixtures, converted models, the
//! glimpse binary) and `server_support` (a running `glimpse serve`). One binary links the
//! library once instead of once per file, and fixture models are converted once per run.
//! Run one file's tests by its module name: `cargo test --test integration server_api::`.
mod common;
mod server_support;

mod chat_parity;
mod cli;
mod gguf_format;
mod grounding;
mod image_resolution;
mod llamacpp_pair;
mod model_download;
mod model_parity;
mod no_panics_on_input;
mod preprocess_parity;
mod quantized;
mod server_api;
mod server_batching;
mod server_client_apis;
mod server_hostile;
mod server_limits;
mod server_network;
mod server_openai_client;
mod server_shutdown;
mod server_soak;
mod video_parity;
