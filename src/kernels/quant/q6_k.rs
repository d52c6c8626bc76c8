//! Q6_K: super-blocks of 256 values in 210 bytes — 128 bytes of low 4 bits, 64 bytes of
//! high 2 bits, sixteen signed 8-bit scales (one per run of 16 values) and an f16 scale
//! `d`; value = d·sc·(q − 32) with q in 0..64. llama.cpp's Q4_K_M stores the output
//! projection this way (0.82 bytes a weight against Q8_0's 1.06), and so does glimpse's
//! q4_k profile. Only decode-sized products meet it (last-token logits, one row per
//! sequence), so it has dot products against Q8K activations (AVX2 / AVX-512 VNNI / NEON /
//! scalar) with integer sums per super-block and one float step, and a scalar dequantizer
//! for embedding lookups; no prompt-sized kernels.
//!
//! Order of the values inside a super-block (ggml's): in each half of 128 values (64 bytes
//! of `ql`, 32 of `qh`), for l < 32, `ql[l]` holds the low bits of values l (low nibble)
//! and l + 64 (high nibble), `ql[l + 32]` those of l + 32 and l + 96, and `qh[l]` the top
//! two bits of l, l + 32, l + 64 and l + 96 in bit pairs 0-1, 2-3, 4-5 and 6-7.
use half::f16;

use super::q8_k;
use crate::kernels::simd::{simd_path, SimdPath};

pub const BLOCK: usize = 256;
pub const BLOCK_BYTES: usize = 210;
/// Offsets inside a super-block.
const HIGH_BITS: usize = 128;
const SCALES: usize = 192;
const D: usize = 208;

/// Bytes of a row of `cols` values (`cols` is a multiple of `BLOCK`).
pub fn row_bytes(cols: usize) -> usize {
    cols / BLOCK * BLOCK_BYTES
}

fn block_scale(block: &[u8]) -> f32 {
    f16::from_le_bytes([block[D], block[D + 1]]).to_f32()
}

/// The 6-bit code (0..64) of value `i` of a super-block.
#[inline(always)]
fn code(block: &[u8], i: usize) -> u8 {
    let (half, r) = (i / 128, i % 128);
    let (quarter, l) = (r / 32, r % 32);
    let low = block[64 * half + l + 32 * (quarter % 2)];
    let low = if quarter < 2 { low & 0x0f } else { low >> 4 };
    let high = (block[HIGH_BITS + 32 * half + l] >> (2 * quarter)) & 3;
    low | high << 4
}

/// Dequantizes one row (or several consecutive rows into as many values).
pub fn dequantize_row(row: &[u8], out: &mut [f32]) {
    assert_eq!(
        row.len() / BLOCK_BYTES * BLOCK,
        out.len(),
        "q6_K dequantize: sizes"
    );
    for (block, values) in row
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let d = block_scale(block);
        for (i, y) in values.iter_mut().enumerate() {
            let sc = block[SCALES + i / 16] as i8;
            *y = d * sc as f32 * (code(block, i) as i32 - 32) as f32;
        }
    }
}

/// `out[i] = Σ w_i·x` for the `out.len()` consecutive Q6_K rows in `w`; `x` is one
/// Q8K row of the same length.
pub fn dot_rows(w: &[u8], x: &[u8], out: &mut [f32]) {
    dot_rows_with(simd_path(), w, x, out)
}

/// `dot_rows` on a given SIMD path (tests compare the paths).
pub fn dot_rows_with(path: SimdPath, w: &[u8], x: &[u8], out: &mut [f32]) {
    let blocks = x.len() / q8_k::BLOCK_BYTES;
    assert!(
        x.len().is_multiple_of(q8_k::BLOCK_BYTES) && w.len() == blocks * BLOCK_BYTES * out.len(),
        "q6_K dot_rows: row sizes"
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
        let xq = &xb[q8_k::VALUES..q8_k::SUMS];
        let mut sumi = 0i32;
        for g in 0..16 {
            let run: i32 = (16 * g..16 * g + 16)
                .map(|i| (code(wb, i) as i32 - 32) * xq[i] as i8 as i32)
                .sum();
            sumi += wb[SCALES + g] as i8 as i32 * run;
        }
        total += q8_k::scale(xb) * block_scale(wb) * sumi as f32;
    }
    total
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{block_scale, q8_k, BLOCK_BYTES, HIGH_BITS, SCALES};

    /// Σ a·b over 16 lanes (products fit i16: 32 · 127), widened pairwise into i32.
    #[inline]
    #[target_feature(enable = "neon")]
    unsafe fn dot16(a: int8x16_t, b: int8x16_t) -> i32 {
        let acc = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
        vaddvq_s32(vpadalq_s16(acc, vmull_high_s8(a, b)))
    }

    #[target_feature(enable = "neon")]
    pub unsafe fn dot_rows(w: &[u8], x: &[u8], out: &mut [f32]) {
        let row = x.len() / q8_k::BLOCK_BYTES * BLOCK_BYTES;
        let (low4, low2, offset) = (vdupq_n_u8(0x0f), vdupq_n_u8(0x03), vdupq_n_s8(32));
        for (o, wr) in out.iter_mut().zip(w.chunks_exact(row)) {
            let mut total = 0.0f32;
            for (wb, xb) in wr
                .chunks_exact(BLOCK_BYTES)
                .zip(x.chunks_exact(q8_k::BLOCK_BYTES))
            {
                let (p, xq) = (wb.as_ptr(), xb.as_ptr().add(q8_k::VALUES) as *const i8);
                let mut sumi = 0i32;
                for half in 0..2 {
                    for h in 0..2 {
                        let ql0 = vld1q_u8(p.add(64 * half + 16 * h));
                        let ql1 = vld1q_u8(p.add(64 * half + 32 + 16 * h));
                        let qh = vld1q_u8(p.add(HIGH_BITS + 32 * half + 16 * h));
                        let quarters = [
                            vorrq_u8(vandq_u8(ql0, low4), vshlq_n_u8::<4>(vandq_u8(qh, low2))),
                            vorrq_u8(
                                vandq_u8(ql1, low4),
                                vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<2>(qh), low2)),
                            ),
                            vorrq_u8(
                                vshrq_n_u8::<4>(ql0),
                                vshlq_n_u8::<4>(vandq_u8(vshrq_n_u8::<4>(qh), low2)),
                            ),
                            vorrq_u8(vshrq_n_u8::<4>(ql1), vshlq_n_u8::<4>(vshrq_n_u8::<6>(qh))),
                        ];
                        for (quarter, codes) in quarters.into_iter().enumerate() {
                            let q = vsubq_s8(vreinterpretq_s8_u8(codes), offset);
                            let start = 128 * half + 32 * quarter + 16 * h;
                            let run = dot16(q, vld1q_s8(xq.add(start)));
                            sumi += *wb.get_unchecked(SCALES + start / 16) as i8 as i32 * run;
                        }
                    }
                }
                total += q8_k::scale(xb) * block_scale(wb) * sumi as f32;
            }
            *o = total;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{q8_k, BLOCK_BYTES, D, HIGH_BITS, SCALES};
    use crate::kernels::simd_x86::{hsum_ps, scaled_pairs_acc, stream_rows};

    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_rows_avx2(w: &[u8], x: &[u8], out: &mut [f32]) {
        stream_rows::<ROWS, _, _>(
            w,
            (x.len() / q8_k::BLOCK_BYTES, BLOCK_BYTES),
            out,
            _mm256_setzero_ps(),
            |b| x.as_ptr().add(b * q8_k::BLOCK_BYTES),
            |wb, &xb, acc| block_dot_avx2(wb, xb, acc),
            |acc| hsum_ps(*acc),
        )
    }

    /// i16 lane indices that spread the sixteen scales of a super-block (i16 lanes 0..16)
    /// over the 32 pair sums of its run of 64 values `quarter`: eight lanes per group.
    const fn quarter_scale_lanes() -> [[u16; 32]; 4] {
        let mut lanes = [[0u16; 32]; 4];
        let mut q = 0;
        while q < 4 {
            let mut j = 0;
            while j < 32 {
                lanes[q][j] = (4 * q + j / 8) as u16;
                j += 1;
            }
            q += 1;
        }
        lanes
    }
    static QUARTER_SCALES: [[u16; 32]; 4] = quarter_scale_lanes();

    /// The AVX-512 path: 64 values per vector, four runs of 64 per super-block. Codes are
    /// unpacked from the two bit planes with per-half shift counts, and the activation
    /// side (`32·x` pair sums for the −32 offset) is computed once per block for the rows
    /// streamed together.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn dot_rows_avx512(w: &[u8], x: &[u8], out: &mut [f32]) {
        let offset = _mm512_set1_epi8(32);
        let lanes = QUARTER_SCALES.map(|l| _mm512_loadu_si512(l.as_ptr() as *const _));
        stream_rows::<ROWS, _, _>(
            w,
            (x.len() / q8_k::BLOCK_BYTES, BLOCK_BYTES),
            out,
            _mm512_setzero_ps(),
            |b| {
                let xb = x.as_ptr().add(b * q8_k::BLOCK_BYTES);
                let dx = (xb as *const f32).read_unaligned();
                let xq = xb.add(q8_k::VALUES);
                let xv: [__m512i; 4] =
                    std::array::from_fn(|q| _mm512_loadu_si512(xq.add(64 * q) as *const _));
                (dx, xv, xv.map(|v| _mm512_maddubs_epi16(offset, v)))
            },
            |wb, (dx, xv, x_offset), acc| block_dot_avx512(wb, *dx, xv, x_offset, &lanes, acc),
            |acc| _mm512_reduce_add_ps(*acc),
        )
    }

    /// One super-block of one row: `acc += d·dx·Σ_g sc_g·Σ (q − 32)·x` (16 lanes).
    #[inline(always)]
    unsafe fn block_dot_avx512(
        wb: *const u8,
        dx: f32,
        xv: &[__m512i; 4],
        x_offset: &[__m512i; 4],
        lanes: &[__m512i; 4],
        acc: &mut __m512,
    ) {
        let (low4, top2) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
        // Low 256 bits: values 0..32 / 64..96 of a half; high 256 bits: 32..64 / 96..128.
        let shift_low = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
        let shift_high = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
            (wb.add(D) as *const u16).read_unaligned() as i32,
        ))) * dx;
        let scales = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(_mm_loadu_si128(
            wb.add(SCALES) as *const __m128i
        )));
        let mut sumi = _mm512_setzero_si512();
        for half in 0..2 {
            let ql = _mm512_loadu_si512(wb.add(64 * half) as *const _);
            let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                wb.add(HIGH_BITS + 32 * half) as *const __m256i
            ));
            let codes = [
                _mm512_or_si512(
                    _mm512_and_si512(ql, low4),
                    _mm512_and_si512(_mm512_sllv_epi16(qh, shift_low), top2),
                ),
                _mm512_or_si512(
                    _mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                    _mm512_and_si512(_mm512_srlv_epi16(qh, shift_high), top2),
                ),
            ];
            for (k, codes) in codes.into_iter().enumerate() {
                let q = 2 * half + k;
                let pairs = _mm512_sub_epi16(_mm512_maddubs_epi16(codes, xv[q]), x_offset[q]);
                let scale = _mm512_permutexvar_epi16(lanes[q], scales);
                sumi = _mm512_dpwssd_epi32(sumi, pairs, scale);
            }
        }
        *acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi), *acc);
    }

    /// Byte shuffles giving, for the run of 32 values `k` (mod 4) of a half super-block,
    /// i16 scale lane `2k` in the low 128 bits and lane `2k + 1` in the high 128 bits
    /// (each 16-value group's scale beside its eight i16 pair sums).
    const fn group_scale_masks() -> [[u8; 32]; 4] {
        let mut masks = [[0u8; 32]; 4];
        let mut k = 0;
        while k < 4 {
            let mut b = 0;
            while b < 32 {
                let lane = 2 * k + b / 16;
                masks[k][b] = (2 * lane + b % 2) as u8;
                b += 1;
            }
            k += 1;
        }
        masks
    }
    static GROUP_SCALES: [[u8; 32]; 4] = group_scale_masks();

    /// Rows streamed together (separate memory streams whose latencies overlap).
    const ROWS: usize = 4;

    /// One super-block of one row on AVX2: `acc += d·dx·Σ_g sc_g·Σ (q − 32)·x` (8 lanes).
    #[inline(always)]
    unsafe fn block_dot_avx2(wb: *const u8, xb: *const u8, acc: &mut __m256) {
        let (low4, top2) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
        let offset = _mm256_set1_epi8(32);
        let dx = (xb as *const f32).read_unaligned();
        let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(
            (wb.add(D) as *const u16).read_unaligned() as i32,
        ))) * dx;
        let xq = xb.add(q8_k::VALUES);
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let scales8 = _mm_loadl_epi64(wb.add(SCALES + 8 * half) as *const __m128i);
            let scales = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(scales8));
            let ql0 = _mm256_loadu_si256(wb.add(64 * half) as *const __m256i);
            let ql1 = _mm256_loadu_si256(wb.add(64 * half + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(wb.add(HIGH_BITS + 32 * half) as *const __m256i);
            // Values 0..32, 32..64, 64..96, 96..128 of the half (codes 0..64).
            let quarters = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, low4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 4), top2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, low4),
                    _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                    _mm256_and_si256(qh, top2),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2),
                ),
            ];
            for (k, codes) in quarters.into_iter().enumerate() {
                let xk = _mm256_loadu_si256(xq.add(128 * half + 32 * k) as *const __m256i);
                // Σ (q − 32)·x in pairs: each difference fits i16 (|·| ≤ 2 · 32 · 127).
                let pairs = _mm256_sub_epi16(
                    _mm256_maddubs_epi16(codes, xk),
                    _mm256_maddubs_epi16(offset, xk),
                );
                let scale = _mm256_shuffle_epi8(
                    scales,
                    _mm256_loadu_si256(GROUP_SCALES[k].as_ptr() as *const __m256i),
                );
                sumi = scaled_pairs_acc::<false>(sumi, pairs, scale);
            }
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

    /// Q6_K rows with varied codes and signed scales (any bytes are valid Q6_K data once
    /// the f16 scale is set to a sane value).
    fn random_rows(rows: usize, cols: usize, seed: u32) -> Vec<u8> {
        let mut data: Vec<u8> = (0..rows * row_bytes(cols))
            .map(|i| ((i as u32).wrapping_mul(2_246_822_519).wrapping_add(seed) >> 13) as u8)
            .collect();
        for (b, block) in data.chunks_exact_mut(BLOCK_BYTES).enumerate() {
            block[D..].copy_from_slice(&f16::from_f32(0.001 + (b % 7) as f32 * 3e-4).to_le_bytes());
        }
        data
    }

    #[test]
    fn every_simd_path_equals_the_scalar_dot() {
        let (rows, cols) = (7, 2048);
        let mut xq = vec![0u8; q8_k::row_bytes(cols)];
        q8_k::quantize_row(&values(cols, 9), &mut xq);
        assert_paths_match_scalar(dot_rows_with, &random_rows(rows, cols, 3), &xq, rows);
    }

    #[test]
    fn dot_matches_the_dequantized_row_times_the_activations() {
        let cols = 1024;
        assert_dot_matches_dequantized(dot_rows, dequantize_row, &random_rows(1, cols, 11), cols);
    }

    /// The dequantizer reads the bytes as ggml's does (the GGUF codec, written from
    /// ggml's `dequantize_row_q6_K`, is the reference).
    #[test]
    fn dequantization_matches_the_gguf_codec() {
        let w = random_rows(2, 512, 5);
        let mut got = vec![0.0; 1024];
        dequantize_row(&w, &mut got);
        let mut want = Vec::new();
        crate::gguf::decode_into(crate::gguf::GgmlType::Q6_K, &w, &mut want).expect("decodes");
        crate::kernels::test_data::assert_same_bits(&got, &want, "q6_K rows");
    }
}
