//! The activation format the K-quant kernels dot with (ggml's Q8_K in spirit): blocks of
//! 256 values stored as an f32 scale, 256 signed bytes and the eight sums of each run of
//! 32 bytes (the q4_K minimums need them), 276 bytes. Never stored in a file.

pub const BLOCK: usize = 256;
/// Scale (4) + values (256) + sums of 32-value runs (8 × i16).
pub const BLOCK_BYTES: usize = 4 + BLOCK + 16;
/// Offset of the values and of the sums inside a block.
pub const VALUES: usize = 4;
pub const SUMS: usize = 4 + BLOCK;

/// Bytes of a row of `cols` values (`cols` is a multiple of `BLOCK`).
pub fn row_bytes(cols: usize) -> usize {
    cols / BLOCK * BLOCK_BYTES
}

/// Quantizes `x` (a multiple of 256 values): `d = max|x| / 127`, `q = round(x / d)`.
pub fn quantize_row(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), row_bytes(x.len()));
    for (values, block) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let amax = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d != 0.0 { 1.0 / d } else { 0.0 };
        block[..4].copy_from_slice(&d.to_le_bytes());
        let (qs, sums) = block[VALUES..].split_at_mut(BLOCK);
        for ((run, q), sum) in values
            .chunks_exact(32)
            .zip(qs.chunks_exact_mut(32))
            .zip(sums.chunks_exact_mut(2))
        {
            let mut total = 0i16;
            for (q, v) in q.iter_mut().zip(run) {
                let value = (v * inv).round() as i8;
                *q = value as u8;
                total += value as i16;
            }
            sum.copy_from_slice(&total.to_le_bytes());
        }
    }
}

/// The scale of the block starting at `block`.
#[inline(always)]
pub fn scale(block: &[u8]) -> f32 {
    f32::from_le_bytes([block[0], block[1], block[2], block[3]])
}
