//! ggml block quantization of weight rows for the converter, with candle-core's
//! reference quantizers (the same algorithms as ggml's `quantize_row_*_ref`).
use anyhow::{ensure, Result};
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ4_0, BlockQ8_0, GgmlType as CandleBlock};

use crate::ggml_type::GgmlType;

/// Appends `values` (whole rows, a multiple of the block size) quantized as `target`.
pub fn quantize_into(target: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    match target {
        GgmlType::Q8_0 => encode_blocks::<BlockQ8_0>(values, out),
        GgmlType::Q4_0 => encode_blocks::<BlockQ4_0>(values, out),
        GgmlType::Q4_K => encode_blocks::<BlockQ4K>(values, out),
        other => anyhow::bail!("{other} is not a block-quantized type"),
    }
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
    fn q8_0_block_holds_scale_and_rounded_values() {
        let values: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let mut out = Vec::new();
        quantize_into(GgmlType::Q8_0, &values, &mut out).unwrap();
        let d = half::f16::from_le_bytes([out[0], out[1]]).to_f32();
        assert!((d - 16.0 / 127.0).abs() < 1e-4);
        assert_eq!(out[2] as i8, -127);
    }
}
