//! ggml block formats the kernels compute with directly (weights stay quantized in
//! memory). Each format is data plus two functions: quantize a row of activations into
//! its companion format, and the dot product of a weight row with such a row.
pub mod q8_0;
