//! Element-wise activations used by Qwen3-VL: SiLU (text MLP), GELU with the tanh
//! approximation (vision MLP) and exact erf GELU (vision mergers). The slice forms run
//! vectorized (`fast_math`) and split long inputs over the pool.
use rayon::prelude::*;

use super::fast_math::{exp, map_in_place, zip_map_in_place};

/// Elements per parallel task of the slice forms.
const CHUNK: usize = 1 << 14;

#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// `gelu_pytorch_tanh`: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, with
/// `1 + tanh(y) = 2 − 2 / (e²ʸ + 1)`.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    let y = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
    0.5 * x * (2.0 - 2.0 / (exp(2.0 * y) + 1.0))
}

/// `x[i] = gelu_tanh(x[i])`.
pub fn gelu_tanh_in_place(x: &mut [f32]) {
    x.par_chunks_mut(CHUNK)
        .for_each(|part| map_in_place(part, gelu_tanh));
}

/// `nn.GELU()`: `0.5·x·(1 + erf(x/√2))`.
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// SwiGLU gate: `gate[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    gate.par_chunks_mut(CHUNK)
        .zip(up.par_chunks(CHUNK))
        .for_each(|(g, u)| zip_map_in_place(g, u, |g, u| silu(g) * u));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_match_reference_values() {
        assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((gelu_erf(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu_tanh(1.0) - 0.841_192).abs() < 1e-5);
        assert_eq!(gelu_tanh(0.0), 0.0);
    }
}
