//! Q4_K: super-blocks of 256 values in 144 bytes — f16 scale `d` and minimum scale
//! `dmin`, twelve bytes packing eight 6-bit scales and eight 6-bit minimums (one pair per
//! run of 32), then 128 bytes of 4-bit values (value = d·sc·q − dmin·m). Dot products run
//! against Q8K activations with integer sub-block scales (AVX2 / AVX-512 VNNI / NEON /
//! scalar), one float step per super-block.
use half::f16;

use super::q8_k;
use crate::kernels::simd::{simd_path, SimdPath};

pub const BLOCK: usize = 256;
pub const BLOCK_BYTES: usize = 144;

/// Bytes of a row of `cols` values (`cols` is a multiple of `BLOCK`).
pub fn row_bytes(cols: usize) -> usize {
    cols / BLOCK * BLOCK_BYTES
}

/// The eight 6-bit scales and eight 6-bit minimums of a super-block (ggml's
/// `get_scale_min_k4` for every run at once).
#[inline(always)]
pub fn scales_and_mins(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let word =
        |i: usize| u32::from_le_bytes([packed[i], packed[i + 1], packed[i + 2], packed[i + 3]]);
    let [s, m] = unpack_scale_words([word(0), word(4), word(8)]);
    (s.to_le_bytes(), m.to_le_bytes())
}

/// The 12 packed bytes (as three words) → (8 scale bytes, 8 minimum bytes) as u64s.
#[inline(always)]
fn unpack_scale_words([a, b, c]: [u32; 3]) -> [u64; 2] {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let scales_lo = a & LOW6;
    let scales_hi = (c & LOW4) | (((a >> 6) & LOW2) << 4);
    let mins_lo = b & LOW6;
    let mins_hi = ((c >> 4) & LOW4) | (((b >> 6) & LOW2) << 4);
    [
        scales_lo as u64 | (scales_hi as u64) << 32,
        mins_lo as u64 | (mins_hi as u64) << 32,
    ]
}

pub(super) fn block_scales(block: &[u8]) -> (f32, f32) {
    (
        f16::from_le_bytes([block[0], block[1]]).to_f32(),
        f16::from_le_bytes([block[2], block[3]]).to_f32(),
    )
}

/// Dequantizes one row (or several consecutive rows into as many values).
pub fn dequantize_row(row: &[u8], out: &mut [f32]) {
    assert_eq!(
        row.len() / BLOCK_BYTES * BLOCK,
        out.len(),
        "q4_K dequantize: sizes"
    );
    #[cfg(target_arch = "x86_64")]
    if simd_path() == SimdPath::Avx512 {
        // SAFETY: AVX-512 was detected; sizes were checked above.
        return unsafe { x86::dequantize_avx512(row, out) };
    }
    dequantize_scalar(row, out)
}

fn dequantize_scalar(row: &[u8], out: &mut [f32]) {
    for (block, values) in row
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let (d, dmin) = block_scales(block);
        let (sc, m) = scales_and_mins(&block[4..16]);
        for (j, (q, y)) in block[16..]
            .chunks_exact(32)
            .zip(values.chunks_exact_mut(64))
            .enumerate()
        {
            let (d1, m1) = (d * sc[2 * j] as f32, dmin * m[2 * j] as f32);
            let (d2, m2) = (d * sc[2 * j + 1] as f32, dmin * m[2 * j + 1] as f32);
            let (lo, hi) = y.split_at_mut(32);
            for ((&q, l), h) in q.iter().zip(lo).zip(hi) {
                *l = d1 * (q & 0x0f) as f32 - m1;
                *h = d2 * (q >> 4) as f32 - m2;
            }
        }
    }
}

/// `out[i] = Σ w_i·x` for the `out.len()` consecutive Q4_K rows in `w`; `x` is one
/// Q8K row of the same length.
pub fn dot_rows(w: &[u8], x: &[u8], out: &mut [f32]) {
    dot_rows_with(simd_path(), w, x, out)
}

/// `dot_rows` on a given SIMD path (tests compare the paths).
pub fn dot_rows_with(path: SimdPath, w: &[u8], x: &[u8], out: &mut [f32]) {
    let blocks = x.len() / q8_k::BLOCK_BYTES;
    assert!(
        x.len().is_multiple_of(q8_k::BLOCK_BYTES) && w.len() == blocks * BLOCK_BYTES * out.len(),
        "q4_K dot_rows: row sizes"
    );
    let row = blocks * BLOCK_BYTES;
    match path {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: chosen only when the CPU reports the features (`simd::hardware_path`);
        // slice lengths were checked above.
        SimdPath::Avx512 => unsafe { x86::dot_rows_avx512(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        SimdPath::Avx2 => unsafe { x86::dot_rows_avx2(w, x, out) },
        #[cfg(target_arch = "aarch64")]
        // SAFETY: NEON is only chosen when the CPU reports it; lengths checked above.
        SimdPath::Neon => unsafe { neon::dot_rows(w, x, out) },
        _ => {
            for (o, r) in out.iter_mut().zip(w.chunks_exact(row)) {
                *o = dot_scalar(r, x);
            }
        }
    }
}

fn dot_scalar(w: &[u8], x: &[u8]) -> f32 {
    let mut total = 0.0f32;
    for (wb, xb) in w
        .chunks_exact(BLOCK_BYTES)
        .zip(x.chunks_exact(q8_k::BLOCK_BYTES))
    {
        let (sc, _) = scales_and_mins(&wb[4..16]);
        let xq = &xb[q8_k::VALUES..q8_k::SUMS];
        let mut sumi = 0i32;
        for (j, q) in wb[16..].chunks_exact(32).enumerate() {
            let (mut lo, mut hi) = (0i32, 0i32);
            for (l, &q) in q.iter().enumerate() {
                lo += (q & 0x0f) as i32 * xq[64 * j + l] as i8 as i32;
                hi += (q >> 4) as i32 * xq[64 * j + 32 + l] as i8 as i32;
            }
            sumi += sc[2 * j] as i32 * lo + sc[2 * j + 1] as i32 * hi;
        }
        total += block_total(wb, xb, sumi);
    }
    total
}

/// The integer part of one super-block's dot product (`Σ_j sc_j · Σ q·x` over the eight
/// runs) and the minimums' correction, combined as the scalar path does, so both paths give
/// the same bits.
#[inline(always)]
fn block_total(wb: &[u8], xb: &[u8], sumi: i32) -> f32 {
    let (d, dmin) = block_scales(wb);
    let (_, m) = scales_and_mins(&wb[4..16]);
    let summ: i32 = xb[q8_k::SUMS..]
        .chunks_exact(2)
        .zip(m)
        .map(|(s, m)| i16::from_le_bytes([s[0], s[1]]) as i32 * m as i32)
        .sum();
    q8_k::scale(xb) * (d * sumi as f32 - dmin * summ as f32)
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{block_total, q8_k, scales_and_mins, BLOCK_BYTES};

    /// `acc + Σ a·b` over 16 lanes (products fit i16: 15 · 127), widened pairwise into i32.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn dot16(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
        let acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        vpadalq_s16(acc, vmull_high_s8(a, b))
    }

    #[target_feature(enable = "neon")]
    pub unsafe fn dot_rows(w: &[u8], x: &[u8], out: &mut [f32]) {
        let row = x.len() / q8_k::BLOCK_BYTES * BLOCK_BYTES;
        let low4 = vdupq_n_u8(0x0f);
        for (o, wr) in out.iter_mut().zip(w.chunks_exact(row)) {
            let mut total = 0.0f32;
            for (wb, xb) in wr
                .chunks_exact(BLOCK_BYTES)
                .zip(x.chunks_exact(q8_k::BLOCK_BYTES))
            {
                let (sc, _) = scales_and_mins(&wb[4..16]);
                let (wq, xq) = (
                    wb.as_ptr().add(16),
                    xb.as_ptr().add(q8_k::VALUES) as *const i8,
                );
                let mut sumi = 0i32;
                for j in 0..4 {
                    let (mut lo, mut hi) = (vdupq_n_s32(0), vdupq_n_s32(0));
                    for h in 0..2 {
                        let q = vld1q_u8(wq.add(32 * j + 16 * h));
                        let q_lo = vreinterpretq_s8_u8(vandq_u8(q, low4));
                        let q_hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(q));
                        lo = dot16(lo, q_lo, vld1q_s8(xq.add(64 * j + 16 * h)));
                        hi = dot16(hi, q_hi, vld1q_s8(xq.add(64 * j + 32 + 16 * h)));
                    }
                    sumi +=
                        sc[2 * j] as i32 * vaddvq_s32(lo) + sc[2 * j + 1] as i32 * vaddvq_s32(hi);
                }
                total += block_total(wb, xb, sumi);
            }
            *o = total;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{q8_k, unpack_scale_words, BLOCK_BYTES};
    use crate::kernels::simd_x86::{hsum_ps, stream_rows, u8_i8_dot_scaled};

    /// i16 lane indices that put one run's scale under the 16 pair sums of the low 256 bits
    /// and another's under the high ones, for the four 64-value vectors of a super-block:
    /// runs (0, 2), (1, 3), (4, 6), (5, 7) (low and high nibbles of 64 bytes).
    const fn run_scale_lanes() -> [[u16; 32]; 4] {
        let mut lanes = [[0u16; 32]; 4];
        let mut v = 0;
        while v < 4 {
            let first = (v / 2) * 4 + v % 2;
            let mut j = 0;
            while j < 32 {
                lanes[v][j] = (first + 2 * (j / 16)) as u16;
                j += 1;
            }
            v += 1;
        }
        lanes
    }
    static RUN_SCALES: [[u16; 32]; 4] = run_scale_lanes();

    /// The AVX-512 path: 64 values per vector (the low or high nibbles of 64 bytes: two runs
    /// of 32), four vectors per super-block; the activations are gathered to match once per
    /// block for the rows streamed together.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn dot_rows_avx512(w: &[u8], x: &[u8], out: &mut [f32]) {
        let lanes = RUN_SCALES.map(|l| _mm512_loadu_si512(l.as_ptr() as *const _));
        stream_rows::<ROWS, _, _>(
            w,
            (x.len() / q8_k::BLOCK_BYTES, BLOCK_BYTES),
            out,
            (_mm512_setzero_ps(), _mm_setzero_ps()),
            |b| {
                let xb = x.as_ptr().add(b * q8_k::BLOCK_BYTES);
                let xq = xb.add(q8_k::VALUES);
                let run = |at: usize| _mm256_loadu_si256(xq.add(at) as *const __m256i);
                let xv = [[0, 64], [32, 96], [128, 192], [160, 224]].map(|[low, high]| {
                    _mm512_inserti64x4(_mm512_castsi256_si512(run(low)), run(high), 1)
                });
                (xb, xv)
            },
            |wb, (xb, xv), (acc, acc_min)| block_dot_avx512(wb, *xb, xv, &lanes, acc, acc_min),
            |(acc, acc_min)| _mm512_reduce_add_ps(*acc) - hsum_128(*acc_min),
        )
    }

    /// One super-block of one row on AVX-512: `acc += d·dx·Σ sc·q·x` (16 lanes),
    /// `acc_min += dmin·dx·m·Σx`.
    #[inline(always)]
    unsafe fn block_dot_avx512(
        wb: *const u8,
        xb: *const u8,
        xv: &[__m512i; 4],
        lanes: &[__m512i; 4],
        acc: &mut __m512,
        acc_min: &mut __m128,
    ) {
        let low4 = _mm512_set1_epi8(0x0f);
        let (d, sc) = block_header(wb, xb, acc_min);
        let scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64)));
        let mut sumi = _mm512_setzero_si512();
        for half in 0..2 {
            let bits = _mm512_loadu_si512(wb.add(16 + 64 * half) as *const _);
            let nibbles = [
                _mm512_and_si512(bits, low4),
                _mm512_and_si512(_mm512_srli_epi16(bits, 4), low4),
            ];
            for (k, nibbles) in nibbles.into_iter().enumerate() {
                let v = 2 * half + k;
                let pairs = _mm512_maddubs_epi16(nibbles, xv[v]);
                let scale = _mm512_permutexvar_epi16(lanes[v], scales);
                sumi = _mm512_dpwssd_epi32(sumi, pairs, scale);
            }
        }
        *acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), *acc);
    }

    /// A super-block's scale steps: returns `d·dx` and the eight run scales (bytes of a
    /// u64), and adds the minimums' term `dmin·dx·Σ m·Σx` to `acc_min`.
    #[inline(always)]
    unsafe fn block_header(wb: *const u8, xb: *const u8, acc_min: &mut __m128) -> (f32, u64) {
        let dx = (xb as *const f32).read_unaligned();
        let scales = _mm_cvtph_ps(_mm_cvtsi32_si128((wb as *const i32).read_unaligned()));
        let d = _mm_cvtss_f32(scales) * dx;
        let dmin = _mm_cvtss_f32(_mm_movehdup_ps(scales)) * dx;
        let words = [4, 8, 12].map(|o| (wb.add(o) as *const u32).read_unaligned());
        let [sc, mins] = unpack_scale_words(words);
        let mins16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(mins as i64));
        let sums = _mm_loadu_si128(xb.add(q8_k::SUMS) as *const __m128i);
        let min_prod = _mm_cvtepi32_ps(_mm_madd_epi16(mins16, sums));
        *acc_min = _mm_fmadd_ps(_mm_set1_ps(dmin), min_prod, *acc_min);
        (d, sc)
    }

    /// Sum of the four lanes.
    #[inline(always)]
    unsafe fn hsum_128(v: __m128) -> f32 {
        let h = _mm_add_ps(v, _mm_movehl_ps(v, v));
        _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)))
    }

    #[target_feature(enable = "avx512f,avx512bw,f16c")]
    pub unsafe fn dequantize_avx512(row: &[u8], out: &mut [f32]) {
        for b in 0..row.len() / BLOCK_BYTES {
            let block = row.as_ptr().add(b * BLOCK_BYTES);
            let scales = _mm_cvtph_ps(_mm_cvtsi32_si128((block as *const i32).read_unaligned()));
            let (d, dmin) = (
                _mm_cvtss_f32(scales),
                _mm_cvtss_f32(_mm_movehdup_ps(scales)),
            );
            let words = [4, 8, 12].map(|o| (block.add(o) as *const u32).read_unaligned());
            let [sc, mins] = unpack_scale_words(words).map(u64::to_le_bytes);
            let dst = out.as_mut_ptr().add(b * 256);
            for j in 0..4 {
                let q = _mm256_loadu_si256(block.add(16 + 32 * j) as *const __m256i);
                let lo = _mm256_and_si256(q, _mm256_set1_epi8(0x0f));
                let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), _mm256_set1_epi8(0x0f));
                for (half, nibbles) in [lo, hi].into_iter().enumerate() {
                    let run = 2 * j + half;
                    let scale = _mm512_set1_ps(d * sc[run] as f32);
                    let offset = _mm512_set1_ps(-dmin * mins[run] as f32);
                    let halves = [
                        _mm256_castsi256_si128(nibbles),
                        _mm256_extracti128_si256(nibbles, 1),
                    ];
                    for (i, part) in halves.into_iter().enumerate() {
                        let v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(part));
                        _mm512_storeu_ps(
                            dst.add(32 * run + 16 * i),
                            _mm512_fmadd_ps(scale, v, offset),
                        );
                    }
                }
            }
        }
    }

    /// Byte shuffles that broadcast i16 lane `i` of a 128-bit vector to every lane.
    const fn lane_broadcast_masks() -> [[u8; 32]; 8] {
        let mut masks = [[0u8; 32]; 8];
        let mut i = 0;
        while i < 8 {
            let mut b = 0;
            while b < 32 {
                masks[i][b] = (2 * i + b % 2) as u8;
                b += 1;
            }
            i += 1;
        }
        masks
    }
    static BROADCAST: [[u8; 32]; 8] = lane_broadcast_masks();

    /// Rows streamed together (separate memory streams whose latencies overlap).
    const ROWS: usize = 4;

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_rows_avx2(w: &[u8], x: &[u8], out: &mut [f32]) {
        stream_rows::<ROWS, _, _>(
            w,
            (x.len() / q8_k::BLOCK_BYTES, BLOCK_BYTES),
            out,
            (_mm256_setzero_ps(), _mm_setzero_ps()),
            |b| x.as_ptr().add(b * q8_k::BLOCK_BYTES),
            |wb, &xb, (acc, acc_min)| block_dot_avx2(wb, xb, acc, acc_min),
            |(acc, acc_min)| hsum_ps(*acc) - hsum_128(*acc_min),
        )
    }

    /// One super-block of one row on AVX2: `acc += d·dx·Σ sc·q·x` (8 lanes),
    /// `acc_min += dmin·dx·m·Σx`.
    #[inline(always)]
    unsafe fn block_dot_avx2(wb: *const u8, xb: *const u8, acc: &mut __m256, acc_min: &mut __m128) {
        let low4 = _mm256_set1_epi8(0x0f);
        let (d, sc) = block_header(wb, xb, acc_min);
        let sc16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(sc as i64));
        let sc_both = _mm256_broadcastsi128_si256(sc16);
        let (qs, xq) = (wb.add(16), xb.add(q8_k::VALUES));
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let bits = _mm256_loadu_si256(qs.add(32 * j) as *const __m256i);
            let lo = _mm256_and_si256(bits, low4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
            let x_lo = _mm256_loadu_si256(xq.add(64 * j) as *const __m256i);
            let x_hi = _mm256_loadu_si256(xq.add(64 * j + 32) as *const __m256i);
            let s_lo = _mm256_shuffle_epi8(
                sc_both,
                _mm256_loadu_si256(BROADCAST[2 * j].as_ptr() as *const __m256i),
            );
            let s_hi = _mm256_shuffle_epi8(
                sc_both,
                _mm256_loadu_si256(BROADCAST[2 * j + 1].as_ptr() as *const __m256i),
            );
            sumi = u8_i8_dot_scaled::<false>(sumi, lo, x_lo, s_lo);
            sumi = u8_i8_dot_scaled::<false>(sumi, hi, x_hi, s_hi);
        }
        *acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), *acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::quant::dot_checks::{
        assert_dot_matches_dequantized, assert_paths_match_scalar,
    };
    use crate::kernels::test_data::values;

    /// A Q4_K row with varied scales and minimums (random bytes are valid Q4_K data
    /// once the two f16 scales are set to sane values).
    fn random_rows(rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut data: Vec<u8> = (0..rows * row_bytes(cols))
            .map(|i| ((i as u32).wrapping_mul(2_246_822_519).wrapping_add(seed) >> 13) as u8)
            .collect();
        for (b, block) in data.chunks_exact_mut(BLOCK_BYTES).enumerate() {
            block[..2].copy_from_slice(&f16::from_f32(0.01 + (b % 7) as f32 * 0.003).to_le_bytes());
            block[2..4]
                .copy_from_slice(&f16::from_f32(0.02 + (b % 5) as f32 * 0.001).to_le_bytes());
        }
        data
    }

    #[test]
    fn every_simd_path_equals_the_scalar_dot() {
        let (rows, cols) = (5, 2048);
        let mut xq = vec![0u8; q8_k::row_bytes(cols)];
        q8_k::quantize_row(&values(cols, 9), &mut xq);
        assert_paths_match_scalar(dot_rows_with, &random_rows(rows, cols, 3), &xq, rows);
    }

    #[test]
    fn dot_matches_the_dequantized_row_times_the_activations() {
        let cols = 1024;
        assert_dot_matches_dequantized(dot_rows, dequantize_row, &random_rows(1, cols, 11), cols);
    }

    #[test]
    fn simd_dequantization_matches_scalar() {
        let w = random_rows(2, 512, 5);
        let (mut simd, mut scalar) = (vec![0.0; 1024], vec![0.0; 1024]);
        dequantize_row(&w, &mut simd);
        dequantize_scalar(&w, &mut scalar);
        for (a, b) in simd.iter().zip(&scalar) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn scale_unpacking_matches_ggml_get_scale_min_k4() {
        let packed: [u8; 12] = [
            0xc1, 0x82, 0x43, 0xff, 0x05, 0x46, 0x87, 0xc8, 0x9a, 0xbc, 0xde, 0xf0,
        ];
        let (sc, m) = scales_and_mins(&packed);
        for j in 0..8 {
            let (want_sc, want_m) = if j < 4 {
                (packed[j] & 63, packed[j + 4] & 63)
            } else {
                (
                    (packed[j + 4] & 0xf) | ((packed[j - 4] >> 6) << 4),
                    (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
                )
            };
            assert_eq!((sc[j], m[j]), (want_sc, want_m), "run {j}");
        }
    }
}
