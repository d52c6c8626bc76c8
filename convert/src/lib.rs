//! glimpse-convert: Hugging Face Qwen3-VL checkpoint → one GGUF file (text model, vision
//! tower, tokenizer, chat template and preprocessor config) or llama.cpp's text + mmproj
//! pair, plus the GGUF building blocks
//! shared with glimpse's reader: ggml types, metadata values and tables, key names, the writer.
//! Not for: reading GGUF files (see `glimpse::gguf`).
mod checkpoint;
mod convert;
mod element_codec;
mod ggml_type;
mod glimpse_metadata;
mod hf_config;
mod json_file;
pub mod keys;
mod meta_value;
mod metadata;
mod model_metadata;
mod out_type;
mod quantize;
mod safetensors_dir;
mod tensor_map;
#[cfg(test)]
mod test_dir;
mod tokenizer_metadata;
mod writer;

pub use convert::{convert, ConvertOptions, ConvertSummary};
pub use element_codec::{decode_ggml_into, encode_into};
pub use ggml_type::GgmlType;
pub use hf_config::{
    HfConfig, RopeParameters, TextConfig, TextRope, TokenIds, VisionConfig, QWEN3VL_ARCHITECTURE,
    QWEN3VL_MODEL_TYPE,
};
pub use meta_value::{MetaArray, MetaValue, MetaValueType};
pub use metadata::Metadata;
pub use out_type::OutType;
pub use tensor_map::is_vision_tensor;
pub use writer::{GgufWriter, TensorPlan, GGUF_MAGIC, GGUF_VERSION, MAX_DIMS, MAX_TENSOR_NAME_LEN};
