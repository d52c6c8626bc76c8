//! glimpse-gguf: the GGUF file format as glimpse reads and writes it, shared by the runtime
//! (`glimpse::gguf` re-exports it) and the converter (`glimpse_convert`).
//!
//! - Vocabulary of the format: the ggml tensor types with their block geometry
//!   (`ggml_type`), metadata values and arrays (`meta_value`), the ordered metadata table
//!   with typed getters (`metadata`), the key names glimpse and llama.cpp use (`keys`), and
//!   the container's fixed numbers (`format`).
//! - Reading: `GgufFile::open` memory-maps a file and validates its whole header
//!   (`parse_header`, over a bounds-checked `byte_cursor`; never panics on corrupt input),
//!   then hands out typed metadata, `TensorInfo`s and zero-copy `TensorView`s; `describe`
//!   renders the summary `glimpse info` prints.
//! - Writing: `GgufWriter` streams a header from a `TensorPlan` list, then each tensor's
//!   bytes in plan order.
//! - Elements: `decode_into` turns any supported ggml type into f32 (the reader's
//!   `TensorView::to_f32_vec`); `encode_float_into` writes F32/F16/BF16. The block types'
//!   codecs (`block_codec`: `quantize_into` / `dequantize_into` for Q4_0 … Q8_0 and
//!   Q2_K … Q6_K, byte-exact with candle-core's reference codecs, which glimpse used before)
//!   are our own code. Which tensor gets which type is the converter's policy.
//!
//! Not here: converting checkpoints (`glimpse_convert`), re-encoding weights for the kernels
//! at load or in `glimpse quantize` (`glimpse::model`). Every fallible function returns
//! `GgufError`. Views assume a little-endian host, like ggml.
mod block_codec;
mod byte_cursor;
mod describe;
mod element_codec;
mod error;
mod file;
mod format;
mod ggml_type;
mod header;
pub mod keys;
mod meta_value;
mod metadata;
mod tensor_info;
mod tensor_view;
mod writer;

pub use block_codec::{dequantize_into, quantize_into, Block};
pub use describe::describe;
pub use element_codec::{decode_into, encode_float_into};
pub use error::{GgufError, Result};
pub use file::GgufFile;
pub use format::{
    data_alignment, GGUF_MAGIC, GGUF_VERSION, MAX_DIMS, MAX_TENSOR_NAME_LEN, READABLE_VERSIONS,
};
pub use ggml_type::GgmlType;
pub use header::{parse_header, Header};
pub use meta_value::{MetaArray, MetaValue, MetaValueType};
pub use metadata::Metadata;
pub use tensor_info::TensorInfo;
pub use tensor_view::TensorView;
pub use writer::{GgufWriter, TensorPlan};
