//! ggml block formats the kernels compute with directly (weights stay quantized in
//! memory). Each format is data plus two functions: dequantize a row, and the dot
//! products of weight rows with one row of activations quantized to its companion
//! format (Q8_0 for Q8_0, Q8K for the K-quants). Q6_K has decode kernels only.
#[cfg(test)]
mod dot_checks;
pub mod q4_k;
pub mod q4_k_tokens;
pub mod q4_kx16;
pub mod q6_k;
pub mod q8_0;
pub mod q8_0_tokens;
pub mod q8_0x16;
pub mod q8_blocks;
pub mod q8_k;
#[cfg(target_arch = "x86_64")]
mod token_tiles;
