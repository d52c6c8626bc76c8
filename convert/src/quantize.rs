//! ggml block quantization of weight rows, and its inverse, with candle-core's reference
//! block codecs (the same algorithms as ggml's `quantize_row_*_ref` / `dequantize_row_*`).
use anyhow::{ensure, Result};
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0, GgmlType as CandleBlock,
};

use crate::ggml_type::GgmlType;

/// Calls `$f::<Block>($args)` with candle's block type for a block-quantized ggml type.
macro_rules! with_block_type {
    ($ty:expr, $f:ident, $($args:expr),*) => {
        match $ty {
            GgmlType::Q4_0 => $f::<BlockQ4_0>($($args),*),
            GgmlType::Q4_1 => $f::<BlockQ4_1>($($args),*),
            GgmlType::Q5_0 => $f::<BlockQ5_0>($($args),*),
            GgmlType::Q5_1 => $f::<BlockQ5_1>($($args),*),
            GgmlType::Q8_0 => $f::<BlockQ8_0>($($args),*),
            GgmlType::Q2_K => $f::<BlockQ2K>($($args),*),
            GgmlType::Q3_K => $f::<BlockQ3K>($($args),*),
            GgmlType::Q4_K => $f::<BlockQ4K>($($args),*),
            GgmlType::Q5_K => $f::<BlockQ5K>($($args),*),
            GgmlType::Q6_K => $f::<BlockQ6K>($($args),*),
            other @ (GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) => {
                anyhow::bail!("{other} is not a block-quantized type")
            }
        }
    };
}

/// Appends `values` (whole rows, a multiple of the block size) quantized as `target`.
pub fn quantize_into(target: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    with_block_type!(target, encode_blocks, values, out)
}

/// Appends the f32 values of `bytes`, whole blocks of the block-quantized type `source`.
pub fn dequantize_into(source: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    with_block_type!(source, decode_blocks, bytes, out)
}

fn decode_blocks<B: CandleBlock>(bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    let block_bytes = std::mem::size_of::<B>();
    ensure!(
        bytes.len().is_multiple_of(block_bytes),
        "{} bytes are not whole {:?} blocks",
        bytes.len(),
        B::DTYPE
    );
    let mut blocks = vec![B::zeros(); bytes.len() / block_bytes];
    // SAFETY: as in `encode_blocks`, the blocks' memory is ggml's byte layout, and every bit
    // pattern is a valid block (integers and f16); the copy has no alignment requirement.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), blocks.as_mut_ptr() as *mut u8, bytes.len());
    }
    let start = out.len();
    out.resize(start + blocks.len() * B::BLCK_SIZE, 0.0);
    B::to_float(&blocks, &mut out[start..]);
    Ok(())
}

fn encode_blocks<B: CandleBlock>(values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    ensure!(
        values.len().is_multiple_of(B::BLCK_SIZE),
        "{} values do not fill whole {:?} blocks",
        values.len(),
        B::DTYPE
    );
    let mut blocks = vec![B::zeros(); values.len() / B::BLCK_SIZE];
    B::from_float(values, &mut blocks);
    // SAFETY: candle's block types are `#[repr(C)]` structs of integers and f16 whose sizes
    // equal ggml's block sizes (asserted in candle), so their memory is ggml's byte layout.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            blocks.as_ptr() as *const u8,
            std::mem::size_of_val(blocks.as_slice()),
        )
    };
    out.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes_match_ggml() {
        for (target, block_bytes, block_len) in [
            (GgmlType::Q8_0, 34, 32),
            (GgmlType::Q4_0, 18, 32),
            (GgmlType::Q4_K, 144, 256),
        ] {
            let mut out = Vec::new();
            quantize_into(target, &vec![0.5; 512], &mut out).unwrap();
            assert_eq!(out.len(), 512 / block_len * block_bytes, "{target}");
        }
    }

    #[test]
    fn every_block_type_round_trips_within_its_precision() {
        let values: Vec<f32> = (0..512)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        for (ty, bytes_per_block, tolerance) in [
            // values span [-2, 2]: a b-bit code's step is about 4 / 2^b
            (GgmlType::Q4_0, 18, 0.26),
            (GgmlType::Q4_1, 20, 0.26),
            (GgmlType::Q5_0, 22, 0.13),
            (GgmlType::Q5_1, 24, 0.13),
            (GgmlType::Q8_0, 34, 0.02),
            (GgmlType::Q2_K, 84, 1.0),
            (GgmlType::Q3_K, 110, 0.5),
            (GgmlType::Q4_K, 144, 0.26),
            (GgmlType::Q5_K, 176, 0.13),
            (GgmlType::Q6_K, 210, 0.07),
        ] {
            let mut encoded = Vec::new();
            quantize_into(ty, &values, &mut encoded).unwrap();
            assert_eq!(
                encoded.len(),
                512 / ty.block_size() * bytes_per_block,
                "{ty}"
            );
            assert_eq!(ty.type_size(), bytes_per_block, "{ty}");
            let mut decoded = vec![7.0];
            dequantize_into(ty, &encoded, &mut decoded).unwrap();
            assert_eq!(decoded.len(), 513, "{ty}: appends");
            let worst = values
                .iter()
                .zip(&decoded[1..])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= tolerance, "{ty}: error {worst}");
        }
    }

    #[test]
    fn a_hand_built_q6_k_block_decodes_by_ggml_formula() {
        // ggml's block_q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (i8), d (f16).
        // y[l] = d · scales[l / 16] · (q[l] − 32) for the first 32 values of the first half.
        let mut block = vec![0u8; 210];
        block[0] = 0x05; // q[0] low bits 5
        block[128] = 0b0000_0010; // q[0] high bits 2 → q = 2·16 + 5 = 37
        block[1] = 0x0f; // q[1] = 15, high bits 0
        block[192] = 3; // scales[0] (values 0..15)
        block[193] = (-2i8) as u8; // scales[1] (values 16..31)
        block[192 + 16..].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        block[16] = 0x0a; // q[16] = 10
        let mut out = Vec::new();
        dequantize_into(GgmlType::Q6_K, &block, &mut out).unwrap();
        assert_eq!(out[0], 0.5 * 3.0 * (37.0 - 32.0));
        assert_eq!(out[1], 0.5 * 3.0 * (15.0 - 32.0));
        assert_eq!(out[2], 0.5 * 3.0 * -32.0);
        assert_eq!(out[16], 0.5 * -2.0 * (10.0 - 32.0));
    }

    #[test]
    fn q8_0_block_holds_scale_and_rounded_values() {
        let values: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let mut out = Vec::new();
        quantize_into(GgmlType::Q8_0, &values, &mut out).unwrap();
        let d = half::f16::from_le_bytes([out[0], out[1]]).to_f32();
        assert!((d - 16.0 / 127.0).abs() < 1e-4);
        assert_eq!(out[2] as i8, -127);
    }
}
