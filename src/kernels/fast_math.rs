//! Vectorizable element-wise math: a branch-free `exp` (Cephes' polynomial, within
//! 2 ulp of the exact value over the range it is used in) and loops over slices that are
//! compiled once more with AVX-512 / AVX2 enabled and chosen at run time, so softmax and
//! the activations run many lanes at a time instead of one libm call per element.
use crate::kernels::simd::simd_path;
#[cfg(target_arch = "x86_64")]
use crate::kernels::simd::SimdPath;

/// `eˣ`, saturating to `e⁻⁸⁷` below and `e⁸⁸` above (softmax and the activations never
/// need more). Branch-free so that loops over it vectorize.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2²³ rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let poly = p * r * r + r + 1.0;
    // 2ⁿ from the bits of n + 127 + 1.5·2²³, whose low mantissa bits are the integer
    // n + 127 (1..=254 here): shifted into the exponent field, the rest shifts out. A
    // float → int `as` cast would saturate, which LLVM does not vectorize.
    let biased = (n + (ROUND + 127.0)).to_bits();
    poly * f32::from_bits(biased << 23)
}

/// `x[i] = f(x[i])`.
pub fn map_in_place(x: &mut [f32], f: impl Fn(f32) -> f32) {
    match simd_path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen when the CPU has these features.
        SimdPath::Avx512 => unsafe { map_avx512(x, f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { map_avx2(x, f) },
        _ => map_plain(x, f),
    }
}

/// `x[i] = f(x[i], y[i])`.
pub fn zip_map_in_place(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32) {
    assert_eq!(x.len(), y.len(), "zip_map_in_place: lengths");
    match simd_path() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen when the CPU has these features.
        SimdPath::Avx512 => unsafe { zip_map_avx512(x, y, f) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { zip_map_avx2(x, y, f) },
        _ => zip_map_plain(x, y, f),
    }
}

#[inline(always)]
fn map_plain(x: &mut [f32], f: impl Fn(f32) -> f32) {
    for v in x {
        *v = f(*v);
    }
}

#[inline(always)]
fn zip_map_plain(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a = f(*a, b);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn map_avx512(x: &mut [f32], f: impl Fn(f32) -> f32) {
    map_plain(x, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn map_avx2(x: &mut [f32], f: impl Fn(f32) -> f32) {
    map_plain(x, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn zip_map_avx512(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32) {
    zip_map_plain(x, y, f)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn zip_map_avx2(x: &mut [f32], y: &[f32], f: impl Fn(f32, f32) -> f32) {
    zip_map_plain(x, y, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut x: Vec<f32> = (0..20_001).map(|i| -87.0 + i as f32 * 0.00875).collect();
        let want: Vec<f32> = x.iter().map(|v| v.exp()).collect();
        map_in_place(&mut x, exp);
        for (g, w) in x.iter().zip(&want) {
            assert!((g - w).abs() <= 2.5e-7 * w, "{g} vs {w}");
        }
        assert!(exp(-1000.0) < 1e-37 && exp(1000.0).is_finite());
    }
}
