//! ggml's block-quantized layouts, through candle's reference block structs (`#[repr(C)]`,
//! byte-for-byte ggml's `block_q4_0` ...): `with_block_type` runs an operation generic over
//! the block struct of a ggml type, and decoding (dequantizing) whole blocks is one such
//! operation. Encoding (quantizing) is the converter's: `glimpse_convert` runs its
//! quantizer through the same `with_block_type`.
/// candle's trait of a ggml block struct (`BLCK_SIZE`, `to_float`, `from_float` ...).
pub use candle_core::quantized::k_quants::GgmlType as CandleBlock;
use candle_core::quantized::k_quants::{
    BlockQ2K, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K,
    BlockQ8_0,
};

use crate::error::{GgufError, Result};
use crate::ggml_type::GgmlType;

/// An operation written once for every block struct; see `with_block_type`.
pub trait BlockOp {
    type Output;
    fn run<B: CandleBlock>(self) -> Self::Output;
}

/// Runs `op` with the block struct of `dtype`; float types are an error.
pub fn with_block_type<Op: BlockOp>(dtype: GgmlType, op: Op) -> Result<Op::Output> {
    Ok(match dtype {
        GgmlType::Q4_0 => op.run::<BlockQ4_0>(),
        GgmlType::Q4_1 => op.run::<BlockQ4_1>(),
        GgmlType::Q5_0 => op.run::<BlockQ5_0>(),
        GgmlType::Q5_1 => op.run::<BlockQ5_1>(),
        GgmlType::Q8_0 => op.run::<BlockQ8_0>(),
        GgmlType::Q2_K => op.run::<BlockQ2K>(),
        GgmlType::Q3_K => op.run::<BlockQ3K>(),
        GgmlType::Q4_K => op.run::<BlockQ4K>(),
        GgmlType::Q5_K => op.run::<BlockQ5K>(),
        GgmlType::Q6_K => op.run::<BlockQ6K>(),
        float @ (GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) => {
            return Err(GgufError::NotBlockQuantized(float))
        }
    })
}

/// Appends the f32 values of `bytes`, whole blocks of the block-quantized type `source`.
pub(crate) fn dequantize_into(source: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    with_block_type(source, Dequantize { bytes, out })
}

/// Decodes `bytes` (a whole number of blocks, checked by the caller) onto the end of `out`.
struct Dequantize<'a> {
    bytes: &'a [u8],
    out: &'a mut Vec<f32>,
}

impl BlockOp for Dequantize<'_> {
    type Output = ();

    fn run<B: CandleBlock>(self) {
        let block_bytes = std::mem::size_of::<B>();
        let mut blocks = vec![B::zeros(); self.bytes.len() / block_bytes];
        let whole = blocks.len() * block_bytes;
        // SAFETY: the blocks' memory is ggml's byte layout (candle asserts their sizes), every
        // bit pattern is a valid block (integers and f16), `whole` bytes fit in both, and the
        // copy has no alignment requirement.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.bytes.as_ptr(),
                blocks.as_mut_ptr() as *mut u8,
                whole,
            );
        }
        let start = self.out.len();
        self.out.resize(start + blocks.len() * B::BLCK_SIZE, 0.0);
        B::to_float(&blocks, &mut self.out[start..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_types_have_no_block_struct() {
        let err = dequantize_into(GgmlType::F16, &[0, 0], &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "F16 is not a block-quantized type");
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
        let mut out = vec![7.0];
        dequantize_into(GgmlType::Q6_K, &block, &mut out).unwrap();
        assert_eq!(out.len(), 257, "appends");
        assert_eq!(out[1], 0.5 * 3.0 * (37.0 - 32.0));
        assert_eq!(out[2], 0.5 * 3.0 * (15.0 - 32.0));
        assert_eq!(out[3], 0.5 * 3.0 * -32.0);
        assert_eq!(out[17], 0.5 * -2.0 * (10.0 - 32.0));
    }
}
