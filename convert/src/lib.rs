//! glimpse-convert: Hugging Face Qwen3-VL checkpoint → one GGUF file (text model, vision
//! tower, tokenizer, chat template and preprocessor config) or llama.cpp's text + mmproj
//! pair, with the converter's choices: which ggml type each tensor gets (`OutType`) and how
//! f32 values are quantized into it (`encode_into`). The format itself (ggml types, metadata,
//! key names, the writer and the reader) is `glimpse_gguf`'s; the pieces a conversion's
//! users need are re-exported here.
mod checkpoint;
mod convert;
mod glimpse_metadata;
mod hf_config;
mod json_file;
mod model_metadata;
mod out_type;
mod quantize;
mod safetensors_dir;
mod tensor_map;
#[cfg(test)]
mod test_dir;
mod tokenizer_metadata;

pub use convert::{convert, ConvertOptions, ConvertSummary};
pub use glimpse_gguf::{
    keys, GgmlType, GgufWriter, MetaArray, MetaValue, MetaValueType, Metadata, TensorPlan,
    GGUF_MAGIC, GGUF_VERSION, MAX_DIMS, MAX_TENSOR_NAME_LEN,
};
pub use hf_config::{
    HfConfig, RopeParameters, TextConfig, TextRope, TokenIds, VisionConfig, QWEN3VL_ARCHITECTURE,
    QWEN3VL_MODEL_TYPE,
};
pub use out_type::OutType;
pub use quantize::encode_into;
pub use tensor_map::is_vision_tensor;
