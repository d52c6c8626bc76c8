//! Checks shared by the block formats' unit tests: every SIMD path of a format's row dots
//! against its scalar twin, and a K-quant's dots against its dequantized rows times the
//! activations.
use super::q8_k;
use crate::kernels::simd::{available_paths, SimdPath};
use crate::kernels::test_data::values;

/// A format's `dot_rows_with(path, weights, x, out)`.
pub type DotRowsWith = fn(SimdPath, &[u8], &[u8], &mut [f32]);

/// Panics unless every path this CPU has gives the scalar path's dots of the `rows` rows
/// in `w` with `x`, within 1e-4 (relative above 1).
pub fn assert_paths_match_scalar(dot_rows_with: DotRowsWith, w: &[u8], x: &[u8], rows: usize) {
    let mut want = vec![0.0; rows];
    dot_rows_with(SimdPath::Scalar, w, x, &mut want);
    for path in available_paths() {
        let mut got = vec![0.0; rows];
        dot_rows_with(path, w, x, &mut got);
        for (g, s) in got.iter().zip(&want) {
            assert!(
                (g - s).abs() <= 1e-4 * s.abs().max(1.0),
                "{path:?}: {g} vs {s}"
            );
        }
    }
}

/// Panics unless the dot of the K-quant row `w` (`cols` values) with Q8K activations is
/// within 1 % (of Σ|w·x|) of its dequantized values times the activations in f32.
pub fn assert_dot_matches_dequantized(
    dot_rows: fn(&[u8], &[u8], &mut [f32]),
    dequantize_row: fn(&[u8], &mut [f32]),
    w: &[u8],
    cols: usize,
) {
    let x = values(cols, 4);
    let mut deq = vec![0.0; cols];
    dequantize_row(w, &mut deq);
    let exact: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
    let mut xq = vec![0u8; q8_k::row_bytes(cols)];
    q8_k::quantize_row(&x, &mut xq);
    let mut got = [0.0];
    dot_rows(w, &xq, &mut got);
    let scale: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
    assert!(
        (got[0] - exact).abs() < 0.01 * scale,
        "{} vs {exact}",
        got[0]
    );
}
