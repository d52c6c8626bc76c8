//! ggml block quantization: encoders and decoders for the ten block-quantized ggml tensor types
//! glimpse reads and writes (`Q4_0`, `Q4_1`, `Q5_0`, `Q5_1`, `Q8_0` with 32 values a block, and
//! the "k-quant" super-blocks `Q2_K` … `Q6_K` of 256 values), with no dependency beyond `half`.
//!
//! Blocks are ggml's `block_q*` structs, read and written here through explicit byte offsets;
//! multi-byte fields (f16 scales, Q5's 32-bit high-bit masks) are little-endian.
//!
//! The algorithms follow ggml's reference (non-imatrix) implementations in the form candle-core
//! 0.11 ships them, and the output is candle's bit for bit: every floating-point operation is
//! done in the same order and precision as there. Decoding is ggml's `dequantize_row_*`, and the
//! 32-value encoders are ggml's `quantize_row_*_ref`. The k-quant encoders are candle's ports of
//! ggml's first k-quant code (`k_quants.c`, 2023), whose bytes differ from what today's
//! `ggml-quants.c` writes (both are valid encodings of the same format):
//! - rounding to the nearest integer goes half away from zero (`f32::round`), where ggml
//!   rounds half to even;
//! - `Q2_K`, `Q4_K` and `Q5_K` fit each group's scale and minimum with the iterative
//!   least-squares search of `fit_scale_and_min` (`make_qkx1_quants` without today's damping),
//!   not the weighted grid search of `make_qkx2_quants`;
//! - `Q6_K` fits group scales with the x²-weighted least-squares refinement of
//!   `fit_q6_group` (the original `make_qx_quants`), not today's ±0.9 grid search;
//! - there is no `GROUP_MAX_EPS` cut-off: only exact zeros make an empty group.
//!
//! One deliberate refinement: where candle takes a minimum or maximum with `f32::min`/`max`,
//! which may return either zero when given +0.0 and −0.0, this module fixes the choice (see
//! `max_or_first`), so a zero f16 scale's sign bit cannot depend on the target or optimization.

use half::f16;

use crate::error::{GgufError, Result};
use crate::ggml_type::GgmlType;

/// Values in a k-quant super-block.
const QK_K: usize = 256;

/// A block-quantized ggml tensor type, named as in ggml.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Block {
    /// 32 values: f16 scale `d`, 4-bit codes; value = d·(q − 8).
    Q4_0,
    /// 32 values: f16 scale `d` and minimum `m`, 4-bit codes; value = d·q + m.
    Q4_1,
    /// 32 values: f16 scale `d`, 5-bit codes; value = d·(q − 16).
    Q5_0,
    /// 32 values: f16 scale `d` and minimum `m`, 5-bit codes; value = d·q + m.
    Q5_1,
    /// 32 values: f16 scale `d`, 8-bit signed codes; value = d·q.
    Q8_0,
    /// 256 values: 2-bit codes in 16 groups with 4-bit scales and minimums.
    Q2_K,
    /// 256 values: 3-bit codes in 16 groups with signed 6-bit scales.
    Q3_K,
    /// 256 values: 4-bit codes in 8 groups with 6-bit scales and minimums.
    Q4_K,
    /// 256 values: 5-bit codes in 8 groups with 6-bit scales and minimums.
    Q5_K,
    /// 256 values: 6-bit codes in 16 groups with signed 8-bit scales.
    Q6_K,
}

impl Block {
    /// The block type of `dtype`; the float types have none.
    pub fn of(dtype: GgmlType) -> Result<Block> {
        Ok(match dtype {
            GgmlType::Q4_0 => Block::Q4_0,
            GgmlType::Q4_1 => Block::Q4_1,
            GgmlType::Q5_0 => Block::Q5_0,
            GgmlType::Q5_1 => Block::Q5_1,
            GgmlType::Q8_0 => Block::Q8_0,
            GgmlType::Q2_K => Block::Q2_K,
            GgmlType::Q3_K => Block::Q3_K,
            GgmlType::Q4_K => Block::Q4_K,
            GgmlType::Q5_K => Block::Q5_K,
            GgmlType::Q6_K => Block::Q6_K,
            float @ (GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) => {
                return Err(GgufError::NotBlockQuantized(float))
            }
        })
    }

    /// The ggml tensor type of these blocks.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            Block::Q4_0 => GgmlType::Q4_0,
            Block::Q4_1 => GgmlType::Q4_1,
            Block::Q5_0 => GgmlType::Q5_0,
            Block::Q5_1 => GgmlType::Q5_1,
            Block::Q8_0 => GgmlType::Q8_0,
            Block::Q2_K => GgmlType::Q2_K,
            Block::Q3_K => GgmlType::Q3_K,
            Block::Q4_K => GgmlType::Q4_K,
            Block::Q5_K => GgmlType::Q5_K,
            Block::Q6_K => GgmlType::Q6_K,
        }
    }

    /// Every block type, in ggml's type-id order.
    pub const ALL: [Block; 10] = [
        Block::Q4_0,
        Block::Q4_1,
        Block::Q5_0,
        Block::Q5_1,
        Block::Q8_0,
        Block::Q2_K,
        Block::Q3_K,
        Block::Q4_K,
        Block::Q5_K,
        Block::Q6_K,
    ];

    /// Number of values one block encodes (ggml's `blck_size`): 32, or 256 for k-quants.
    pub fn block_len(self) -> usize {
        match self {
            Block::Q4_0 | Block::Q4_1 | Block::Q5_0 | Block::Q5_1 | Block::Q8_0 => 32,
            Block::Q2_K | Block::Q3_K | Block::Q4_K | Block::Q5_K | Block::Q6_K => QK_K,
        }
    }

    /// Size in bytes of one encoded block (ggml's `type_size`).
    pub fn block_bytes(self) -> usize {
        match self {
            Block::Q4_0 => 18,
            Block::Q4_1 => 20,
            Block::Q5_0 => 22,
            Block::Q5_1 => 24,
            Block::Q8_0 => 34,
            Block::Q2_K => 84,
            Block::Q3_K => 110,
            Block::Q4_K => 144,
            Block::Q5_K => 176,
            Block::Q6_K => 210,
        }
    }
}

/// Quantizes `values` (whole blocks) as the block type `target`, appending to `out`.
pub fn quantize_into(target: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    quantize_blocks(Block::of(target)?, values, out)
}

/// Dequantizes `bytes` (whole blocks of the block type `source`), appending to `out`.
pub fn dequantize_into(source: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    dequantize_blocks(Block::of(source)?, bytes, out)
}

/// Quantizes `values` as `target` blocks and appends the encoded bytes to `out`.
///
/// `values.len()` must be a multiple of `target.block_len()`; otherwise nothing is appended.
pub fn quantize_blocks(target: Block, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    let (len, size) = (target.block_len(), target.block_bytes());
    if !values.len().is_multiple_of(len) {
        return Err(GgufError::PartialBlockValues {
            len: values.len(),
            dtype: target.ggml_type(),
        });
    }
    let encode: fn(&[f32], &mut [u8]) = match target {
        Block::Q4_0 => encode_q4_0,
        Block::Q4_1 => encode_q4_1,
        Block::Q5_0 => encode_q5_0,
        Block::Q5_1 => encode_q5_1,
        Block::Q8_0 => encode_q8_0,
        Block::Q2_K => encode_q2_k,
        Block::Q3_K => encode_q3_k,
        Block::Q4_K => encode_q4_k,
        Block::Q5_K => encode_q5_k,
        Block::Q6_K => encode_q6_k,
    };
    let start = out.len();
    out.resize(start + values.len() / len * size, 0);
    for (x, block) in values
        .chunks_exact(len)
        .zip(out[start..].chunks_exact_mut(size))
    {
        encode(x, block);
    }
    Ok(())
}

/// Decodes `bytes`, whole blocks of type `source`, and appends the values to `out`.
///
/// `bytes.len()` must be a multiple of `source.block_bytes()`; otherwise nothing is appended.
pub fn dequantize_blocks(source: Block, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    let (len, size) = (source.block_len(), source.block_bytes());
    if !bytes.len().is_multiple_of(size) {
        return Err(GgufError::PartialElements {
            len: bytes.len(),
            dtype: source.ggml_type(),
        });
    }
    let decode: fn(&[u8], &mut [f32]) = match source {
        Block::Q4_0 => decode_q4_0,
        Block::Q4_1 => decode_q4_1,
        Block::Q5_0 => decode_q5_0,
        Block::Q5_1 => decode_q5_1,
        Block::Q8_0 => decode_q8_0,
        Block::Q2_K => decode_q2_k,
        Block::Q3_K => decode_q3_k,
        Block::Q4_K => decode_q4_k,
        Block::Q5_K => decode_q5_k,
        Block::Q6_K => decode_q6_k,
    };
    let start = out.len();
    out.resize(start + bytes.len() / size * len, 0.0);
    for (block, y) in bytes
        .chunks_exact(size)
        .zip(out[start..].chunks_exact_mut(len))
    {
        decode(block, y);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// Reads the little-endian f16 at `at` as f32.
fn read_f16(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// Stores `value` rounded to f16 at `at` and returns the stored value as f32, which is what the
/// rest of an encoder works with.
fn write_f16(bytes: &mut [u8], at: usize, value: f32) -> f32 {
    let half = f16::from_f32(value);
    bytes[at..at + 2].copy_from_slice(&half.to_le_bytes());
    half.to_f32()
}

/// Nearest integer, halves away from zero; NaN gives 0 and out-of-range values saturate.
fn nearest_int(v: f32) -> i32 {
    v.round() as i32
}

/// The larger of `a` and `b`, ignoring a NaN operand, and `a` when they compare equal. Unlike
/// `f32::max`, which may return either of +0.0 and −0.0, this fixes the sign of a zero result
/// (to what candle's `a.max(b)` gives on x86-64), so the stored f16 zero is the same on every
/// target.
fn max_or_first(a: f32, b: f32) -> f32 {
    if a >= b || b.is_nan() {
        a
    } else {
        b
    }
}

/// The smaller of `a` and `b`, ignoring a NaN operand, and `a` when they compare equal (see
/// `max_or_first`).
fn min_or_first(a: f32, b: f32) -> f32 {
    if a <= b || b.is_nan() {
        a
    } else {
        b
    }
}

/// The first value of largest magnitude (0 for an all-zero slice), and that magnitude.
fn signed_absmax(x: &[f32]) -> (f32, f32) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    (max, amax)
}

/// 6-bit scale and minimum of group `j` (0..8) in the 12 packed bytes of Q4_K/Q5_K.
fn scale_min_k4(j: usize, packed: &[u8]) -> (u8, u8) {
    if j < 4 {
        (packed[j] & 63, packed[j + 4] & 63)
    } else {
        (
            (packed[j + 4] & 0xF) | ((packed[j - 4] >> 6) << 4),
            (packed[j + 4] >> 4) | ((packed[j] >> 6) << 4),
        )
    }
}

/// Packs eight 6-bit scales and minimums into Q4_K/Q5_K's 12 bytes: groups 0..4 take the low 6
/// bits of bytes 0..4 (scales) and 4..8 (minimums); groups 4..8 keep their low nibbles in bytes
/// 8..12 and their top two bits in the spare top bits of bytes 0..8.
fn pack_scales_k4(scales: &[f32; 8], mins: &[f32; 8], packed: &mut [u8]) -> (f32, f32) {
    let max_scale = scales.iter().fold(0.0, |max, &v| max_or_first(v, max));
    let max_min = mins.iter().fold(0.0, |max, &v| max_or_first(v, max));
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    for j in 0..8 {
        let ls = nearest_int(inv_scale * scales[j]).min(63) as u8;
        let lm = nearest_int(inv_min * mins[j]).min(63) as u8;
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    (max_scale / 63.0, max_min / 63.0)
}

/// Fits `x ≈ scale·l − min` with integer codes `l` in `0..=nmax` (k_quants.c's
/// `make_qkx1_quants`): starting from the range, alternately re-rounds the codes, solves the scale
/// by least squares, and moves the offset to the mean residual (kept ≤ 0), for up to `ntry`
/// rounds or until no code changes. Returns `(scale, min)`, with `min ≥ 0` meaning an offset of
/// `−min`; a constant group gives `(0, 0)`.
fn fit_scale_and_min(nmax: i32, ntry: usize, x: &[f32]) -> (f32, f32) {
    let mut codes = [0u8; 32];
    let codes = &mut codes[..x.len()];
    // invariant: x is one group of a block, never empty.
    let lowest = *x.iter().min_by(|a, b| a.total_cmp(b)).unwrap();
    // invariant: as above.
    let highest = *x.iter().max_by(|a, b| a.total_cmp(b)).unwrap();
    if highest == lowest {
        return (0.0, 0.0);
    }
    let mut min = min_or_first(lowest, 0.0);
    let mut iscale = nmax as f32 / (highest - min);
    let mut scale = 1.0 / iscale;
    for _ in 0..ntry {
        let mut sumlx = 0.0f32;
        let mut suml2 = 0i32;
        let mut changed = false;
        for (code, &v) in codes.iter_mut().zip(x) {
            let l = nearest_int(iscale * (v - min)).clamp(0, nmax);
            if l as u8 != *code {
                *code = l as u8;
                changed = true;
            }
            sumlx += (v - min) * l as f32;
            suml2 += l * l;
        }
        scale = sumlx / suml2 as f32;
        let residual: f32 = x
            .iter()
            .zip(codes.iter())
            .map(|(&v, &l)| v - scale * l as f32)
            .sum();
        min = residual / x.len() as f32;
        if min > 0.0 {
            min = 0.0;
        }
        iscale = 1.0 / scale;
        if !changed {
            break;
        }
    }
    (scale, -min)
}

/// Scale of a Q3_K group of 16 (k_quants.c's `make_q3_quants` with RMSE refinement): codes in
/// `-4..4` from the signed extreme, then up to five passes that move single codes where that
/// raises the x²-weighted least-squares fit. Returns the least-squares scale (0 for all zeros).
fn fit_q3_scale(x: &[f32]) -> f32 {
    const NMAX: i32 = 4;
    let (max, amax) = signed_absmax(x);
    if amax == 0.0 {
        return 0.0;
    }
    let iscale = -(NMAX as f32) / max;
    let mut codes = [0i32; 16];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (code, &v) in codes.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
        *code = l;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * (l * l) as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (code, &v) in codes.iter_mut().zip(x) {
            let w = v * v;
            let mut slx = sumlx - w * v * *code as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * (*code * *code) as f32;
                let new_l = nearest_int(v * sl2 / slx).clamp(-NMAX, NMAX - 1);
                if new_l != *code {
                    slx += w * v * new_l as f32;
                    sl2 += w * (new_l * new_l) as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *code = new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    sumlx / suml2
}

/// Scale and codes (`0..64`, i.e. signed code + 32) of a Q6_K group of 16 (k_quants.c's
/// `make_qx_quants` with x² weights): codes from the signed extreme, up to three rounds of
/// re-rounding at the least-squares scale while that improves the fit, then up to five passes of
/// single-code moves. Returns 0 with all codes 0 for an all-zero group.
fn fit_q6_group(x: &[f32], codes: &mut [u8]) -> f32 {
    const NMAX: i32 = 32;
    let (max, amax) = signed_absmax(x);
    if amax == 0.0 {
        codes.fill(0);
        return 0.0;
    }
    let iscale = -(NMAX as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (code, &v) in codes.iter_mut().zip(x) {
        let l = nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
        *code = (l + NMAX) as u8;
        let w = v * v;
        let l = l as f32;
        sumlx += w * v * l;
        suml2 += w * l * l;
    }
    let mut scale = sumlx / suml2;
    let mut best = scale * sumlx;
    for _ in 0..3 {
        let iscale = 1.0 / scale;
        let (mut slx, mut sl2) = (0.0f32, 0.0f32);
        let mut changed = false;
        for (&code, &v) in codes.iter().zip(x) {
            let l = nearest_int(iscale * v).clamp(-NMAX, NMAX - 1);
            if l + NMAX != code as i32 {
                changed = true;
            }
            let w = v * v;
            let l = l as f32;
            slx += w * v * l;
            sl2 += w * l * l;
        }
        if !changed || sl2 == 0.0 || slx * slx <= best * sl2 {
            break;
        }
        for (code, &v) in codes.iter_mut().zip(x) {
            *code = (nearest_int(iscale * v).clamp(-NMAX, NMAX - 1) + NMAX) as u8;
        }
        sumlx = slx;
        suml2 = sl2;
        scale = sumlx / suml2;
        best = scale * sumlx;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (code, &v) in codes.iter_mut().zip(x) {
            let w = v * v;
            let l = *code as i32 - NMAX;
            let mut slx = sumlx - w * v * l as f32;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * l as f32 * l as f32;
                let new_l = nearest_int(v * sl2 / slx).clamp(-NMAX, NMAX - 1);
                if new_l != l {
                    let nl = new_l as f32;
                    slx += w * v * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *code = (new_l + NMAX) as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        scale = sumlx / suml2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    scale
}

// ---------------------------------------------------------------------------------------------
// 32-value blocks. Codes of values j and j + 16 share byte j: low nibble, high nibble.

// Q4_0: d f16 @0, qs[16] @2.
fn encode_q4_0(x: &[f32], block: &mut [u8]) {
    let (max, _) = signed_absmax(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(block, 0, d);
    for j in 0..16 {
        let lo = ((x[j] * id + 8.5) as u8).min(15);
        let hi = ((x[j + 16] * id + 8.5) as u8).min(15);
        block[2 + j] = lo | (hi << 4);
    }
}

fn decode_q4_0(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 0);
    for j in 0..16 {
        let q = block[2 + j];
        y[j] = ((q & 0xF) as i16 - 8) as f32 * d;
        y[j + 16] = ((q >> 4) as i16 - 8) as f32 * d;
    }
}

/// The smallest and largest value of a 32-value block, for Q4_1/Q5_1.
fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for &v in x {
        min = min_or_first(v, min);
        max = max_or_first(v, max);
    }
    (min, max)
}

// Q4_1: d f16 @0, m f16 @2, qs[16] @4.
fn encode_q4_1(x: &[f32], block: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(block, 0, d);
    write_f16(block, 2, min);
    for j in 0..16 {
        let lo = (((x[j] - min) * id + 0.5) as u8).min(15);
        let hi = (((x[j + 16] - min) * id + 0.5) as u8).min(15);
        block[4 + j] = lo | (hi << 4);
    }
}

fn decode_q4_1(block: &[u8], y: &mut [f32]) {
    let (d, m) = (read_f16(block, 0), read_f16(block, 2));
    for j in 0..16 {
        let q = block[4 + j];
        y[j] = (q & 0xF) as f32 * d + m;
        y[j + 16] = (q >> 4) as f32 * d + m;
    }
}

/// Stores 5-bit codes: low nibbles as in Q4, bit 4 of code i in bit i of the u32 at `qh`.
fn pack_5bit(codes: &[u8; 32], block: &mut [u8], qh: usize, qs: usize) {
    let mut high = 0u32;
    for j in 0..16 {
        let (lo, hi) = (codes[j], codes[j + 16]);
        block[qs + j] = (lo & 0xF) | ((hi & 0xF) << 4);
        high |= ((lo as u32 & 0x10) >> 4) << j;
        high |= ((hi as u32 & 0x10) >> 4) << (j + 16);
    }
    block[qh..qh + 4].copy_from_slice(&high.to_le_bytes());
}

/// The 32 5-bit codes stored by `pack_5bit`.
fn unpack_5bit(block: &[u8], qh: usize, qs: usize) -> [u8; 32] {
    // invariant: the range is 4 bytes long.
    let high = u32::from_le_bytes(block[qh..qh + 4].try_into().unwrap());
    let mut codes = [0u8; 32];
    for j in 0..16 {
        let q = block[qs + j];
        codes[j] = (q & 0xF) | (((high >> j) << 4) & 0x10) as u8;
        codes[j + 16] = (q >> 4) | ((high >> (j + 12)) & 0x10) as u8;
    }
    codes
}

// Q5_0: d f16 @0, qh u32 @2, qs[16] @6.
fn encode_q5_0(x: &[f32], block: &mut [u8]) {
    let (max, _) = signed_absmax(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(block, 0, d);
    let codes: [u8; 32] = std::array::from_fn(|i| ((x[i] * id + 16.5) as i8).min(31) as u8);
    pack_5bit(&codes, block, 2, 6);
}

fn decode_q5_0(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 0);
    for (v, q) in y.iter_mut().zip(unpack_5bit(block, 2, 6)) {
        *v = (q as i32 - 16) as f32 * d;
    }
}

// Q5_1: d f16 @0, m f16 @2, qh u32 @4, qs[16] @8.
fn encode_q5_1(x: &[f32], block: &mut [u8]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(block, 0, d);
    write_f16(block, 2, min);
    let codes: [u8; 32] = std::array::from_fn(|i| ((x[i] - min) * id + 0.5) as u8);
    pack_5bit(&codes, block, 4, 8);
}

fn decode_q5_1(block: &[u8], y: &mut [f32]) {
    let (d, m) = (read_f16(block, 0), read_f16(block, 2));
    for (v, q) in y.iter_mut().zip(unpack_5bit(block, 4, 8)) {
        *v = q as f32 * d + m;
    }
}

// Q8_0: d f16 @0, qs[32] i8 @2.
fn encode_q8_0(x: &[f32], block: &mut [u8]) {
    // `f32::max` is deterministic here: magnitudes have no −0.
    let amax = x.iter().fold(0.0f32, |amax, v| amax.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    write_f16(block, 0, d);
    for (q, &v) in block[2..].iter_mut().zip(x) {
        *q = (v * id).round() as i8 as u8;
    }
}

fn decode_q8_0(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 0);
    for (v, &q) in y.iter_mut().zip(&block[2..]) {
        *v = q as i8 as f32 * d;
    }
}

// ---------------------------------------------------------------------------------------------
// 256-value k-quant super-blocks.

/// Packs 2-bit codes as Q2_K/Q3_K do: in each half of 128 values, byte l of its 32 holds values
/// l, l + 32, l + 64, l + 96 in bit pairs 0-1, 2-3, 4-5, 6-7.
fn pack_2bit(codes: &[u8; QK_K], qs: &mut [u8]) {
    for half in 0..2 {
        let c = &codes[128 * half..];
        for l in 0..32 {
            qs[32 * half + l] = c[l] | (c[l + 32] << 2) | (c[l + 64] << 4) | (c[l + 96] << 6);
        }
    }
}

// Q2_K: scales[16] @0 (low nibble scale, high nibble minimum), qs[64] @16, d f16 @80,
// dmin f16 @82. Group j (16 values): value = d·sc·q − dmin·m.
fn encode_q2_k(x: &[f32], block: &mut [u8]) {
    let mut scales = [0.0f32; 16];
    let mut mins = [0.0f32; 16];
    for (j, group) in x.chunks_exact(16).enumerate() {
        (scales[j], mins[j]) = fit_scale_and_min(3, 5, group);
    }
    let max_scale = scales.iter().fold(0.0, |max, &v| max_or_first(v, max));
    let max_min = mins.iter().fold(0.0, |max, &v| max_or_first(v, max));
    let d = if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..16 {
            block[j] = nearest_int(iscale * scales[j]) as u8;
        }
        write_f16(block, 80, max_scale / 15.0)
    } else {
        block[..16].fill(0);
        write_f16(block, 80, 0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..16 {
            block[j] |= (nearest_int(iscale * mins[j]) as u8) << 4;
        }
        write_f16(block, 82, max_min / 15.0)
    } else {
        write_f16(block, 82, 0.0)
    };
    let mut codes = [0u8; QK_K];
    for (j, &sc) in block[..16].iter().enumerate() {
        let dl = d * (sc & 0xF) as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * (sc >> 4) as f32;
        for i in 16 * j..16 * j + 16 {
            codes[i] = nearest_int((x[i] + ml) / dl).clamp(0, 3) as u8;
        }
    }
    pack_2bit(&codes, &mut block[16..80]);
}

fn decode_q2_k(block: &[u8], y: &mut [f32]) {
    let (d, dmin) = (read_f16(block, 80), read_f16(block, 82));
    let mut out = 0;
    for half in 0..2 {
        let qs = &block[16 + 32 * half..16 + 32 * half + 32];
        for shift in [0, 2, 4, 6] {
            for part in [&qs[..16], &qs[16..]] {
                let sc = block[out / 16];
                let (dl, ml) = (d * (sc & 0xF) as f32, dmin * (sc >> 4) as f32);
                for &q in part {
                    y[out] = dl * ((q >> shift) & 3) as f32 - ml;
                    out += 1;
                }
            }
        }
    }
}

/// The 6-bit (biased by 32) scale of Q3_K group `j` (0..16) from its 12 packed bytes: low nibble
/// in byte j (j < 8) or the high nibble of byte j − 8, top two bits in byte 8 + j % 4 at bit
/// 2·(j / 4).
fn q3_scale(packed: &[u8], j: usize) -> u8 {
    let low = if j < 8 {
        packed[j] & 0xF
    } else {
        packed[j - 8] >> 4
    };
    low | (((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)
}

// Q3_K: hmask[32] @0 (bit 2 of the codes), qs[64] @32 (low 2 bits), scales[12] @96, d f16 @108.
// Group j (16 values): value = d·(s − 32)·(q − 4), with q's bit 2 in hmask bit (i / 32) of
// byte i % 32.
fn encode_q3_k(x: &[f32], block: &mut [u8]) {
    let mut scales = [0.0f32; 16];
    for (j, group) in x.chunks_exact(16).enumerate() {
        scales[j] = fit_q3_scale(group);
    }
    let mut max_scale = 0.0f32;
    for &s in &scales {
        if s.abs() > max_scale.abs() {
            max_scale = s;
        }
    }
    let packed = &mut block[96..108];
    packed.fill(0);
    let d = if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            let l = nearest_int(iscale * s).clamp(-32, 31) + 32;
            if j < 8 {
                packed[j] = (l & 0xF) as u8;
            } else {
                packed[j - 8] |= ((l & 0xF) << 4) as u8;
            }
            packed[8 + j % 4] |= ((l >> 4) << (2 * (j / 4))) as u8;
        }
        write_f16(block, 108, 1.0 / iscale)
    } else {
        write_f16(block, 108, 0.0)
    };
    let mut codes = [0u8; QK_K];
    for j in 0..16 {
        let dl = d * (q3_scale(&block[96..108], j) as i8 - 32) as f32;
        if dl != 0.0 {
            for i in 16 * j..16 * j + 16 {
                codes[i] = (nearest_int(x[i] / dl).clamp(-4, 3) + 4) as u8;
            }
        }
    }
    block[..32].fill(0);
    for (i, code) in codes.iter_mut().enumerate() {
        if *code > 3 {
            block[i % 32] |= 1 << (i / 32);
            *code -= 4;
        }
    }
    pack_2bit(&codes, &mut block[32..96]);
}

fn decode_q3_k(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 108);
    let packed = &block[96..108];
    let mut out = 0;
    for half in 0..2 {
        let qs = &block[32 + 32 * half..32 + 32 * half + 32];
        for shift in [0, 2, 4, 6] {
            let high_bit = 1u8 << (4 * half + shift / 2);
            for part in 0..2 {
                let dl = d * (q3_scale(packed, out / 16) as i8 as f32 - 32.0);
                for l in 16 * part..16 * part + 16 {
                    let low = ((qs[l] >> shift) & 3) as i8;
                    let q = if block[l] & high_bit == 0 {
                        low - 4
                    } else {
                        low
                    };
                    y[out] = dl * q as f32;
                    out += 1;
                }
            }
        }
    }
}

/// Fits the eight 32-value groups of a Q4_K/Q5_K super-block with codes in `0..=nmax`, stores
/// d @0, dmin @2 and the packed scales @4, and returns the codes.
fn encode_k4_groups(x: &[f32], nmax: i32, block: &mut [u8]) -> [u8; QK_K] {
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    for (j, group) in x.chunks_exact(32).enumerate() {
        (scales[j], mins[j]) = fit_scale_and_min(nmax, 5, group);
    }
    let (d, dmin) = pack_scales_k4(&scales, &mins, &mut block[4..16]);
    let d = write_f16(block, 0, d);
    let dmin = write_f16(block, 2, dmin);
    let mut codes = [0u8; QK_K];
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &block[4..16]);
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        let ml = dmin * m as f32;
        for i in 32 * j..32 * j + 32 {
            codes[i] = nearest_int((x[i] + ml) / dl).clamp(0, nmax) as u8;
        }
    }
    codes
}

// Q4_K: d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16. Each 64 values share 32 bytes: the
// first 32 in the low nibbles, the next 32 in the high nibbles.
// Group j (32 values): value = d·sc·q − dmin·m.
fn encode_q4_k(x: &[f32], block: &mut [u8]) {
    let codes = encode_k4_groups(x, 15, block);
    for (i, q) in block[16..144].iter_mut().enumerate() {
        let base = 64 * (i / 32) + i % 32;
        *q = codes[base] | (codes[base + 32] << 4);
    }
}

fn decode_q4_k(block: &[u8], y: &mut [f32]) {
    let (d, dmin) = (read_f16(block, 0), read_f16(block, 2));
    for pair in 0..4 {
        let qs = &block[16 + 32 * pair..48 + 32 * pair];
        let y = &mut y[64 * pair..64 * pair + 64];
        let (sc1, m1) = scale_min_k4(2 * pair, &block[4..16]);
        let (sc2, m2) = scale_min_k4(2 * pair + 1, &block[4..16]);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        for (l, &q) in qs.iter().enumerate() {
            y[l] = d1 * (q & 0xF) as f32 - m1;
            y[l + 32] = d2 * (q >> 4) as f32 - m2;
        }
    }
}

// Q5_K: d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48. Low 4 bits as in Q4_K;
// bit 4 of value 64·p + l (l < 32) in qh[l] bit 2p, of value 64·p + 32 + l in bit 2p + 1.
fn encode_q5_k(x: &[f32], block: &mut [u8]) {
    let codes = encode_k4_groups(x, 31, block);
    block[16..48].fill(0);
    for pair in 0..4 {
        for l in 0..32 {
            let (mut lo, mut hi) = (codes[64 * pair + l], codes[64 * pair + 32 + l]);
            if lo > 15 {
                lo -= 16;
                block[16 + l] |= 1 << (2 * pair);
            }
            if hi > 15 {
                hi -= 16;
                block[16 + l] |= 2 << (2 * pair);
            }
            block[48 + 32 * pair + l] = lo | (hi << 4);
        }
    }
}

fn decode_q5_k(block: &[u8], y: &mut [f32]) {
    let (d, dmin) = (read_f16(block, 0), read_f16(block, 2));
    let qh = &block[16..48];
    for pair in 0..4 {
        let qs = &block[48 + 32 * pair..80 + 32 * pair];
        let y = &mut y[64 * pair..64 * pair + 64];
        let (sc1, m1) = scale_min_k4(2 * pair, &block[4..16]);
        let (sc2, m2) = scale_min_k4(2 * pair + 1, &block[4..16]);
        let (d1, m1) = (d * sc1 as f32, dmin * m1 as f32);
        let (d2, m2) = (d * sc2 as f32, dmin * m2 as f32);
        let (bit1, bit2) = (1u8 << (2 * pair), 2u8 << (2 * pair));
        for l in 0..32 {
            let high1 = if qh[l] & bit1 != 0 { 16.0 } else { 0.0 };
            let high2 = if qh[l] & bit2 != 0 { 16.0 } else { 0.0 };
            y[l] = d1 * ((qs[l] & 0xF) as f32 + high1) - m1;
            y[l + 32] = d2 * ((qs[l] >> 4) as f32 + high2) - m2;
        }
    }
}

// Q6_K: ql[128] @0 (low 4 bits), qh[64] @128 (high 2 bits), scales[16] i8 @192, d f16 @208.
// Group j (16 values): value = d·scales[j]·(q − 32). In each half of 128 values (ql 64 bytes,
// qh 32 bytes), for l < 32: ql[l] holds values l (low nibble) and l + 64 (high), ql[l + 32]
// values l + 32 and l + 96; qh[l] holds the top bits of l, l + 32, l + 64, l + 96 in bit pairs
// 0-1, 2-3, 4-5, 6-7.
fn encode_q6_k(x: &[f32], block: &mut [u8]) {
    let mut codes = [0u8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for (j, group) in x.chunks_exact(16).enumerate() {
        let scale = fit_q6_group(group, &mut codes[16 * j..16 * j + 16]);
        scales[j] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    let iscale = -128.0 / max_scale;
    let d = write_f16(block, 208, 1.0 / iscale);
    for j in 0..16 {
        let sc = nearest_int(iscale * scales[j]).min(127) as i8;
        block[192 + j] = sc as u8;
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            codes[i] = (nearest_int(x[i] / dl).clamp(-32, 31) + 32) as u8;
        }
    }
    for half in 0..2 {
        let c = &codes[128 * half..128 * half + 128];
        let (ql, qh) = (64 * half, 128 + 32 * half);
        for l in 0..32 {
            block[ql + l] = (c[l] & 0xF) | ((c[l + 64] & 0xF) << 4);
            block[ql + l + 32] = (c[l + 32] & 0xF) | ((c[l + 96] & 0xF) << 4);
            block[qh + l] = (c[l] >> 4)
                | ((c[l + 32] >> 4) << 2)
                | ((c[l + 64] >> 4) << 4)
                | ((c[l + 96] >> 4) << 6);
        }
    }
}

fn decode_q6_k(block: &[u8], y: &mut [f32]) {
    let d = read_f16(block, 208);
    for half in 0..2 {
        let ql = &block[64 * half..64 * half + 64];
        let qh = &block[128 + 32 * half..160 + 32 * half];
        let sc = &block[192 + 8 * half..200 + 8 * half];
        let y = &mut y[128 * half..128 * half + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            y[l] = d * sc[is] as i8 as f32 * q1 as f32;
            y[l + 32] = d * sc[is + 2] as i8 as f32 * q2 as f32;
            y[l + 64] = d * sc[is + 4] as i8 as f32 * q3 as f32;
            y[l + 96] = d * sc[is + 6] as i8 as f32 * q4 as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic test values from integer arithmetic only (the same on every target):
    /// uniform-ish in ±`scale`, with the magnitude varying per group of 16.
    fn test_values(n: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let unit = (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                unit * (1 + (i / 16) % 5) as f32
            })
            .collect()
    }

    /// 64-bit FNV-1a.
    fn fnv1a(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn quantize(target: Block, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        quantize_blocks(target, values, &mut out).unwrap();
        out
    }

    fn dequantize(source: Block, bytes: &[u8]) -> Vec<f32> {
        let mut out = Vec::new();
        dequantize_blocks(source, bytes, &mut out).unwrap();
        out
    }

    #[test]
    fn float_types_have_no_blocks() {
        let err = dequantize_into(GgmlType::F16, &[0, 0], &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "F16 is not a block-quantized type");
        let err = quantize_into(GgmlType::F32, &[0.0], &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "F32 is not a block-quantized type");
    }

    #[test]
    fn block_geometry_is_ggml_s() {
        let expected = [
            (Block::Q4_0, 32, 18),
            (Block::Q4_1, 32, 20),
            (Block::Q5_0, 32, 22),
            (Block::Q5_1, 32, 24),
            (Block::Q8_0, 32, 34),
            (Block::Q2_K, 256, 84),
            (Block::Q3_K, 256, 110),
            (Block::Q4_K, 256, 144),
            (Block::Q5_K, 256, 176),
            (Block::Q6_K, 256, 210),
        ];
        assert_eq!(Block::ALL.len(), expected.len());
        for (block, (ty, len, bytes)) in Block::ALL.into_iter().zip(expected) {
            assert_eq!(block, ty);
            assert_eq!(
                (block.block_len(), block.block_bytes()),
                (len, bytes),
                "{block:?}"
            );
        }
    }

    #[test]
    fn whole_blocks_are_appended_after_existing_content() {
        for block in Block::ALL {
            let values = test_values(3 * block.block_len(), 1);
            let mut encoded = vec![0xAB];
            quantize_blocks(block, &values, &mut encoded).unwrap();
            assert_eq!(encoded.len(), 1 + 3 * block.block_bytes(), "{block:?}");
            assert_eq!(encoded[0], 0xAB, "{block:?}");
            let mut decoded = vec![7.0];
            dequantize_blocks(block, &encoded[1..], &mut decoded).unwrap();
            assert_eq!(decoded.len(), 1 + 3 * block.block_len(), "{block:?}");
            assert_eq!(decoded[0], 7.0, "{block:?}");
            // Block by block gives the same bytes as all at once.
            let mut one_by_one = Vec::new();
            for chunk in values.chunks(block.block_len()) {
                quantize_blocks(block, chunk, &mut one_by_one).unwrap();
            }
            assert_eq!(one_by_one, encoded[1..], "{block:?}");
            // Empty input is zero whole blocks.
            quantize_blocks(block, &[], &mut one_by_one).unwrap();
            dequantize_blocks(block, &[], &mut decoded).unwrap();
            assert_eq!(one_by_one.len(), 3 * block.block_bytes());
            assert_eq!(decoded.len(), 1 + 3 * block.block_len());
        }
    }

    #[test]
    fn partial_blocks_are_errors_and_append_nothing() {
        for block in Block::ALL {
            let mut bytes = vec![1u8];
            for len in [1, block.block_len() - 1, block.block_len() + 1] {
                let err = quantize_blocks(block, &vec![0.5; len], &mut bytes).unwrap_err();
                assert!(err.to_string().contains("not whole"), "{block:?}: {err}");
                assert_eq!(bytes, [1], "{block:?}");
            }
            let mut values = vec![1.0f32];
            for len in [1, block.block_bytes() - 1, 2 * block.block_bytes() + 1] {
                let err = dequantize_blocks(block, &vec![0; len], &mut values).unwrap_err();
                assert!(err.to_string().contains("not whole"), "{block:?}: {err}");
                assert_eq!(values, [1.0], "{block:?}");
            }
        }
    }

    #[test]
    fn every_type_round_trips_within_its_precision() {
        // Values in [-2, 2]: a b-bit code's step is about 4 / 2^b.
        let values: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        for (block, tolerance) in [
            (Block::Q4_0, 0.26),
            (Block::Q4_1, 0.26),
            (Block::Q5_0, 0.13),
            (Block::Q5_1, 0.13),
            (Block::Q8_0, 0.02),
            (Block::Q2_K, 1.0),
            (Block::Q3_K, 0.5),
            (Block::Q4_K, 0.26),
            (Block::Q5_K, 0.13),
            (Block::Q6_K, 0.07),
        ] {
            let decoded = dequantize(block, &quantize(block, &values));
            let worst = values
                .iter()
                .zip(&decoded)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= tolerance, "{block:?}: error {worst}");
        }
    }

    #[test]
    fn relative_error_shrinks_with_bits_across_scales() {
        let values = test_values(1024, 5);
        let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
        for (block, bound) in [
            // About 1.3 times what the codecs achieve on these values.
            (Block::Q2_K, 0.3),
            (Block::Q3_K, 0.16),
            (Block::Q4_0, 0.09),
            (Block::Q4_1, 0.09),
            (Block::Q4_K, 0.08),
            (Block::Q5_0, 0.045),
            (Block::Q5_1, 0.045),
            (Block::Q5_K, 0.04),
            (Block::Q6_K, 0.018),
            (Block::Q8_0, 0.0055),
        ] {
            for scale in [0.01f32, 1.0, 100.0] {
                let x: Vec<f32> = values.iter().map(|v| v * scale).collect();
                let y = dequantize(block, &quantize(block, &x));
                let err: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
                let relative = rms(&err) / rms(&x);
                assert!(relative < bound, "{block:?} at scale {scale}: {relative}");
            }
        }
    }

    #[test]
    fn zeros_encode_to_all_zero_blocks_and_decode_to_zeros() {
        for block in Block::ALL {
            let bytes = quantize(block, &vec![0.0; 2 * block.block_len()]);
            // Not all bytes are 0: Q4_0 and Q5_0 store d = −0 and the zero point as code 8 / 16.
            let decoded = dequantize(block, &bytes);
            assert!(decoded.iter().all(|&v| v == 0.0), "{block:?}");
        }
        assert!(quantize(Block::Q8_0, &[0.0; 32]).iter().all(|&b| b == 0));
        assert!(quantize(Block::Q4_K, &[0.0; 256]).iter().all(|&b| b == 0));
    }

    #[test]
    fn legacy_blocks_with_exact_scales() {
        const ONE: [u8; 2] = [0x00, 0x3C]; // f16 1.0

        // Q8_0: amax 127 → d = 1, codes = values.
        let mut x = [0.0f32; 32];
        x[0] = 127.0;
        for (i, v) in x.iter_mut().enumerate().skip(1) {
            *v = i as f32 - 16.0;
        }
        let mut expected = ONE.to_vec();
        expected.extend(x.iter().map(|&v| v as i8 as u8));
        assert_eq!(quantize(Block::Q8_0, &x), expected);
        assert_eq!(dequantize(Block::Q8_0, &expected), x);

        // Q4_0: extreme −8 → d = 1, code = value + 8; value j in the low nibble of byte j,
        // value j + 16 in its high nibble.
        let x: Vec<f32> = (0..32)
            .map(|i| {
                if i < 16 {
                    i as f32 - 8.0
                } else {
                    23.0 - i as f32
                }
            })
            .collect();
        let mut expected = ONE.to_vec();
        expected.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        assert_eq!(quantize(Block::Q4_0, &x), expected);
        assert_eq!(dequantize(Block::Q4_0, &expected), x);

        // Q4_1: range 0..15 → d = 1, m = 0, code = value.
        let x: Vec<f32> = x.iter().map(|v| v + 8.0).collect();
        let mut expected = [ONE, [0, 0]].concat();
        expected.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        assert_eq!(quantize(Block::Q4_1, &x), expected);
        assert_eq!(dequantize(Block::Q4_1, &expected), x);

        // Q5_0: extreme −16 → d = 1, code = value + 16; the upper half's codes ≥ 16 set
        // qh bits 16..32.
        let x: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let mut expected = ONE.to_vec();
        expected.extend([0, 0, 0xFF, 0xFF]);
        expected.extend((0..16u8).map(|j| j | (j << 4)));
        assert_eq!(quantize(Block::Q5_0, &x), expected);
        assert_eq!(dequantize(Block::Q5_0, &expected), x);

        // Q5_1: range 0..31 → d = 1, m = 0, code = value.
        let x: Vec<f32> = (0..32).map(|i| i as f32).collect();
        let mut expected = [ONE, [0, 0]].concat();
        expected.extend([0, 0, 0xFF, 0xFF]);
        expected.extend((0..16u8).map(|j| j | (j << 4)));
        assert_eq!(quantize(Block::Q5_1, &x), expected);
        assert_eq!(dequantize(Block::Q5_1, &expected), x);
    }

    #[test]
    fn q4_k_block_with_exact_codes() {
        // Every group of 32 holds 0..16 twice: each fits scale 1, offset 0 exactly, so all
        // 6-bit scales are 63 with d = 1/63 and codes equal the values; the minimums are all −0,
        // so dmin is −0.
        let x: Vec<f32> = (0..256).map(|i| (i % 16) as f32).collect();
        let bytes = quantize(Block::Q4_K, &x);
        assert_eq!(bytes[0..2], f16::from_f32(1.0 / 63.0).to_le_bytes());
        assert_eq!(bytes[2..4], [0x00, 0x80]);
        assert_eq!(
            bytes[4..16],
            [255, 255, 255, 255, 0, 0, 0, 0, 15, 15, 15, 15]
        );
        for (i, &q) in bytes[16..].iter().enumerate() {
            assert_eq!(q, (i % 16) as u8 * 0x11, "byte {i}");
        }
        let step = f16::from_f32(1.0 / 63.0).to_f32() * 63.0;
        let decoded = dequantize(Block::Q4_K, &bytes);
        for (i, (&v, &y)) in x.iter().zip(&decoded).enumerate() {
            assert_eq!(y, step * v, "value {i}");
        }
    }

    #[test]
    fn hand_built_k_blocks_decode_by_ggml_formulas() {
        let half = |v: f32| f16::from_f32(v).to_le_bytes();

        // Q2_K: scales[j] = scale | min << 4; value = d·scale·q − dmin·min; q in bit pairs.
        let mut b = vec![0u8; 84];
        b[0] = 3 | (2 << 4); // group 0 (values 0..16)
        b[1] = 5; // group 1 (values 16..32)
        b[16] = 0b11_10_01_10; // values 0, 32, 64, 96 have codes 2, 1, 2, 3
        b[16 + 16] = 0b01; // value 16 has code 1
        b[80..82].copy_from_slice(&half(0.5));
        b[82..84].copy_from_slice(&half(0.25));
        let y = dequantize(Block::Q2_K, &b);
        assert_eq!(y[0], 0.5 * 3.0 * 2.0 - 0.25 * 2.0);
        assert_eq!(y[1], -0.5);
        assert_eq!(y[16], 0.5 * 5.0);
        assert_eq!(y[32], 0.0); // group 2 has scale 0 and min 0
        assert_eq!(y.len(), 256);

        // Q3_K: value = d·(s − 32)·(q − 4·(hmask bit clear)); 6-bit s split in nibbles and
        // 2-bit tops.
        let mut b = vec![0u8; 110];
        b[96] = 0x1 << 4; // group 0 low nibble 0, group 8 low nibble 1
        b[96 + 8] = 0b10 | (0b01 << 4); // group 0 top bits 2 (s = 32), group 8 top 1 (s = 17)
        b[0] = 0b1; // value 0: high bit set
        b[32] = 0b11; // value 0: low bits 3 → q = 3
        b[108..110].copy_from_slice(&half(2.0));
        let y = dequantize(Block::Q3_K, &b);
        assert_eq!(y[0], 0.0); // s − 32 = 0
        assert_eq!(y[128], 2.0 * (17.0 - 32.0) * -4.0); // group 8, q = 0, high bit clear
        assert_eq!(y.len(), 256);

        // Q5_K: value = d·sc·(q_low + 16·high) − dmin·m, groups 0..4 scales in bytes 4..12.
        let mut b = vec![0u8; 176];
        b[0..2].copy_from_slice(&half(1.0));
        b[2..4].copy_from_slice(&half(0.5));
        b[4] = 2; // group 0 scale
        b[8] = 3; // group 0 min
        b[4 + 1] = 1; // group 1 scale
        b[48] = 0x7 | (0x1 << 4); // value 0 low 7, value 32 low 1
        b[16] = 0b11; // value 0 and value 32 high bits
        let y = dequantize(Block::Q5_K, &b);
        assert_eq!(y[0], 2.0 * 23.0 - 1.5);
        assert_eq!(y[32], 17.0);

        // Q6_K: value = d·scales[j]·(q − 32), q = 4 low bits | 2 high bits << 4.
        let mut b = vec![0u8; 210];
        b[0] = 0x05; // value 0 low bits 5
        b[128] = 0b10; // value 0 high bits 2 → q = 37
        b[1] = 0x0f; // value 1: q = 15
        b[16] = 0x0a; // value 16: q = 10
        b[192] = 3; // group 0
        b[193] = (-2i8) as u8; // group 1
        b[208..210].copy_from_slice(&half(0.5));
        let y = dequantize(Block::Q6_K, &b);
        assert_eq!(y[0], 0.5 * 3.0 * 5.0);
        assert_eq!(y[1], 0.5 * 3.0 * -17.0);
        assert_eq!(y[16], 0.5 * -2.0 * -22.0);
    }

    #[test]
    fn known_answers_recorded_from_candle() {
        // FNV-1a of the bytes candle-core 0.11.1 produces for `test_values(1024, 3)`, and of the
        // bits of the values it decodes them to.
        let values = test_values(1024, 3);
        let recorded: [(Block, u64, u64); 10] = [
            (Block::Q4_0, 0xfbd91845b3ab4a2a, 0xcc1a4a24eb91dd83),
            (Block::Q4_1, 0x4d23357a9fa6e072, 0xc51fcc3e57e7ffff),
            (Block::Q5_0, 0xcd38a24bb1a21cfb, 0x1c6d6efc7682f505),
            (Block::Q5_1, 0x28a1eeffeea3f876, 0x660b65a260d36216),
            (Block::Q8_0, 0xe7c1719841215700, 0xeaf5db2971d9b117),
            (Block::Q2_K, 0xa594826ccf02a333, 0xcf2eedc0ed39ee8d),
            (Block::Q3_K, 0xd27d6335a2ccd6a6, 0x1cb92f804ea9f470),
            (Block::Q4_K, 0x4cb01021ae09559b, 0x91759be40453130b),
            (Block::Q5_K, 0x66397392c9c28193, 0x8b0e69e982c641d0),
            (Block::Q6_K, 0x701390269215e243, 0x8ca4423d7514309a),
        ];
        let mut actual = Vec::new();
        for (block, _, _) in recorded {
            let bytes = quantize(block, &values);
            let decoded: Vec<u8> = dequantize(block, &bytes)
                .iter()
                .flat_map(|v| v.to_bits().to_le_bytes())
                .collect();
            actual.push((block, fnv1a(&bytes), fnv1a(&decoded)));
        }
        assert_eq!(actual, recorded, "\n{actual:#x?}");
    }
}
