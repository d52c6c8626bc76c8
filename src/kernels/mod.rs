//! Hot CPU kernels: dense matrix products over f32/f16 weights, attention, norms,
//! activations and rotary embeddings. Model code calls these and never the `gemm`
//! crate or SIMD intrinsics directly, so a faster kernel never touches a model file.
pub mod activation;
pub mod amx;
pub mod amx_int8;
pub mod attention;
pub mod attention_amx;
pub mod attention_decode;
pub mod dense_bf16;
pub mod dense_dot;
pub mod elementwise;
pub mod f16_convert;
pub mod fast_math;
pub mod gemm;
pub mod interleaved;
pub mod matvec;
pub mod norm;
#[cfg(target_arch = "x86_64")]
pub mod packed_gemm;
pub mod quant;
pub mod rope;
pub mod scratch;
pub mod simd;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd_x86;
#[cfg(test)]
pub(crate) mod test_data;
pub mod weight;

pub use weight::WeightMatrix;
