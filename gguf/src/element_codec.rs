//! Tensor elements ↔ f32: decoding every ggml type the crate knows (the float types exactly,
//! the block types dequantized by `block_codec`), and encoding the float types (F32, F16 with
//! round-to-nearest-even as numpy's `astype(float16)`, BF16). All little-endian, as ggml.
//! Encoding block types is quantization (`block_codec`).
use half::{bf16, f16};

use crate::block_codec::dequantize_into;
use crate::error::{GgufError, Result};
use crate::ggml_type::GgmlType;

/// Appends the f32 values of `bytes`, whole elements (blocks) of the ggml type `source`.
pub fn decode_into(source: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    if !bytes.len().is_multiple_of(source.type_size()) {
        return Err(GgufError::PartialElements {
            len: bytes.len(),
            dtype: source,
        });
    }
    match source {
        GgmlType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        GgmlType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        GgmlType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        quantized => dequantize_into(quantized, bytes, out)?,
    }
    Ok(())
}

/// Appends `values` encoded as the float type `target` to `out`; block types are an error.
pub fn encode_float_into(target: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    match target {
        GgmlType::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => out.extend(values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes())),
        GgmlType::BF16 => out.extend(values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes())),
        quantized => return Err(GgufError::NotAFloatType(quantized)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_types_decode_exactly() {
        let mut out = Vec::new();
        decode_into(
            GgmlType::BF16,
            &bf16::from_f32(-1.5).to_le_bytes(),
            &mut out,
        )
        .unwrap();
        decode_into(GgmlType::F16, &f16::from_f32(0.25).to_le_bytes(), &mut out).unwrap();
        decode_into(GgmlType::F32, &3.0f32.to_le_bytes(), &mut out).unwrap();
        assert_eq!(out, [-1.5, 0.25, 3.0]);
    }

    #[test]
    fn float_types_round_trip() {
        let values = [1.0f32, -2.5, 0.125, 2048.0];
        for dtype in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            let (mut bytes, mut back) = (Vec::new(), Vec::new());
            encode_float_into(dtype, &values, &mut bytes).unwrap();
            assert_eq!(bytes.len(), values.len() * dtype.type_size());
            decode_into(dtype, &bytes, &mut back).unwrap();
            assert_eq!(back, values, "{dtype}");
        }
    }

    #[test]
    fn f16_encoding_rounds_to_nearest_even() {
        // 1 + 2^-11 lies exactly between two f16 values; ties go to the even mantissa (1.0).
        let mut out = Vec::new();
        encode_float_into(GgmlType::F16, &[1.0 + 2f32.powi(-11), 2.0], &mut out).unwrap();
        assert_eq!(out, [0x00, 0x3c, 0x00, 0x40]);
    }

    #[test]
    fn partial_elements_and_block_targets_are_errors() {
        let err = decode_into(GgmlType::Q8_0, &[0; 35], &mut Vec::new()).unwrap_err();
        assert_eq!(err.to_string(), "35 bytes are not whole Q8_0 blocks");
        assert!(decode_into(GgmlType::F32, &[0; 6], &mut Vec::new()).is_err());
        let err = encode_float_into(GgmlType::Q4_K, &[0.0; 256], &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Q4_K is block-quantized: encoding it needs a quantizer"
        );
    }

    #[test]
    fn q8_0_blocks_decode_as_scale_times_quant() {
        // d = f16 bits 0x0707, every quant 7, as ggml's dequantize_row_q8_0.
        let mut out = Vec::new();
        decode_into(GgmlType::Q8_0, &[7u8; 34], &mut out).unwrap();
        assert_eq!(out, vec![f16::from_bits(0x0707).to_f32() * 7.0; 32]);
    }
}
