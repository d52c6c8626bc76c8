//! Row-wise normalizations: RMSNorm (text tower) and LayerNorm with bias (vision tower),
//! computed in f32 in the order transformers uses.

/// In place over every row of `x`: `w * (x * rsqrt(mean(x²) + eps))`.
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    let width = weight.len();
    for row in x.chunks_exact_mut(width) {
        let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / width as f32;
        let scale = 1.0 / (mean_sq + eps).sqrt();
        for (v, w) in row.iter_mut().zip(weight) {
            *v = w * (*v * scale);
        }
    }
}

/// `out = (x - mean) / sqrt(var + eps) * w + b` per row of width `weight.len()` (biased variance).
pub fn layer_norm(x: &[f32], weight: &[f32], bias: &[f32], eps: f32, out: &mut [f32]) {
    let width = weight.len();
    for (row, dst) in x.chunks_exact(width).zip(out.chunks_exact_mut(width)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / width as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / width as f64;
        let rstd = 1.0 / (var + eps as f64).sqrt();
        for ((d, &v), (&w, &b)) in dst.iter_mut().zip(row).zip(weight.iter().zip(bias)) {
            *d = ((v as f64 - mean) * rstd) as f32 * w + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_norm_scales_rows_to_unit_mean_square() {
        let mut x = vec![3.0, 4.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        rms_norm(&mut x, &[1.0, 1.0, 1.0, 1.0], 0.0);
        assert!((x[0] - 1.2).abs() < 1e-6 && (x[1] - 1.6).abs() < 1e-6);
        assert!(x[4..].iter().all(|v| (v - 1.0).abs() < 1e-6));
    }

    #[test]
    fn layer_norm_centres_and_applies_affine() {
        let x = [1.0, 2.0, 3.0];
        let mut out = [0.0; 3];
        layer_norm(&x, &[2.0, 2.0, 2.0], &[1.0, 1.0, 1.0], 0.0, &mut out);
        let s = (1.5f32).sqrt();
        assert!((out[0] - (1.0 - 2.0 * s)).abs() < 1e-5 && (out[1] - 1.0).abs() < 1e-6);
    }
}
