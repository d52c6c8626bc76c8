//! f16 ↔ f32 slice conversion for the f16 KV cache (rows narrowed as they are written,
//! widened for the prompt attention) and f16 weight rows: F16C / AVX-512 conversions a
//! whole vector at a time, the `half` crate elsewhere (its x86 path converts through a
//! function call per eight values, several times slower on these sizes).
use half::f16;
use half::slice::HalfFloatSliceExt;

use super::simd::{simd_path, SimdPath};

/// `dst[i] = src[i]` widened; the slices have the same length.
pub fn widen(src: &[f16], dst: &mut [f32]) {
    widen_on(simd_path(), src, dst)
}

/// `dst[i] = src[i]` rounded to the nearest f16 (ties to even, as `f16::from_f32`).
pub fn narrow(src: &[f32], dst: &mut [f16]) {
    narrow_on(simd_path(), src, dst)
}

/// `widen` on a given SIMD path (tests compare the paths).
fn widen_on(path: SimdPath, src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16 widen: lengths");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen when the CPU has its features; lengths checked.
        SimdPath::Avx512 => unsafe { x86::widen_avx512(src, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { x86::widen_avx2(src, dst) },
        _ => src.convert_to_f32_slice(dst),
    }
}

/// `narrow` on a given SIMD path.
fn narrow_on(path: SimdPath, src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f16 narrow: lengths");
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is only chosen when the CPU has its features; lengths checked.
        SimdPath::Avx512 => unsafe { x86::narrow_avx512(src, dst) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { x86::narrow_avx2(src, dst) },
        _ => dst.convert_from_f32_slice(src),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;
    use half::slice::HalfFloatSliceExt;

    use crate::kernels::simd_x86::mask16;

    /// Round to nearest, ties to even (the conversions' immediate; F16C takes 3 bits).
    const NEAREST: i32 = _MM_FROUND_TO_NEAREST_INT;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn widen_avx512(src: &[f16], dst: &mut [f32]) {
        let (s, d) = (src.as_ptr() as *const i16, dst.as_mut_ptr());
        let mut i = 0;
        while i < src.len() {
            let m = mask16(src.len(), i);
            let wide = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, s.add(i)));
            _mm512_mask_storeu_ps(d.add(i), m, wide);
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c")]
    pub unsafe fn narrow_avx512(src: &[f32], dst: &mut [f16]) {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr() as *mut i16);
        let mut i = 0;
        while i < src.len() {
            let m = mask16(src.len(), i);
            let narrow = _mm512_cvtps_ph::<NEAREST>(_mm512_maskz_loadu_ps(m, s.add(i)));
            _mm256_mask_storeu_epi16(d.add(i), m, narrow);
            i += 16;
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn widen_avx2(src: &[f16], dst: &mut [f32]) {
        let vectors = src.len() / 8 * 8;
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for i in (0..vectors).step_by(8) {
            _mm256_storeu_ps(
                d.add(i),
                _mm256_cvtph_ps(_mm_loadu_si128(s.add(i) as *const __m128i)),
            );
        }
        src[vectors..].convert_to_f32_slice(&mut dst[vectors..]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn narrow_avx2(src: &[f32], dst: &mut [f16]) {
        let vectors = src.len() / 8 * 8;
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
        for i in (0..vectors).step_by(8) {
            let narrow = _mm256_cvtps_ph::<NEAREST>(_mm256_loadu_ps(s.add(i)));
            _mm_storeu_si128(d.add(i) as *mut __m128i, narrow);
        }
        dst[vectors..].convert_from_f32_slice(&src[vectors..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::simd::available_paths;
    use crate::kernels::test_data::values;

    #[test]
    fn every_path_converts_as_half_does() {
        // Normal values, f16 subnormals, overflow to infinity, ties; a length with a tail.
        let mut wide: Vec<f32> = values(1000, 5).iter().map(|x| x * 70000.0).collect();
        wide.extend(values(77, 6).iter().map(|x| x * 1e-6));
        wide.extend([0.0, -0.0, 65520.0, -1e9, 1.0 + 1.0 / 2048.0, f32::INFINITY]);
        let want_narrow: Vec<f16> = wide.iter().map(|&x| f16::from_f32(x)).collect();
        let want_wide: Vec<f32> = want_narrow.iter().map(|x| x.to_f32()).collect();
        for path in available_paths() {
            let mut narrow = vec![f16::ZERO; wide.len()];
            narrow_on(path, &wide, &mut narrow);
            let bits = |v: &[f16]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&narrow), bits(&want_narrow), "{path:?} narrow");
            let mut back = vec![0.0f32; wide.len()];
            widen_on(path, &narrow, &mut back);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&back), bits(&want_wide), "{path:?} widen");
        }
    }
}
