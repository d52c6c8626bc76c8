//! Element conversion between checkpoint and GGUF storage: checkpoint rows (BF16/F16/F32,
//! little-endian) are decoded to f32, then encoded in the tensor's target ggml type.
//! Block-quantized targets go through `quantize.rs`.
use anyhow::Result;
use half::{bf16, f16};

use crate::ggml_type::GgmlType;
use crate::quantize::quantize_into;
use crate::safetensors_dir::SourceDtype;

/// Appends the f32 values of little-endian `bytes` of type `dtype` to `out`.
pub fn decode_into(dtype: SourceDtype, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        SourceDtype::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        SourceDtype::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
        SourceDtype::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        ),
    }
}

/// Appends the f32 values of `bytes`, whole elements (blocks) of the ggml type `source`:
/// the float types convert exactly, the block types are dequantized.
pub fn decode_ggml_into(source: GgmlType, bytes: &[u8], out: &mut Vec<f32>) -> Result<()> {
    let source_dtype = match source {
        GgmlType::F32 => SourceDtype::F32,
        GgmlType::F16 => SourceDtype::F16,
        GgmlType::BF16 => SourceDtype::BF16,
        quantized => return crate::quantize::dequantize_into(quantized, bytes, out),
    };
    decode_into(source_dtype, bytes, out);
    Ok(())
}

/// Appends `values` encoded as `target` (little-endian) to `out`. F16 rounds to nearest even,
/// as numpy's `astype(float16)` in llama.cpp's converter does.
pub fn encode_into(target: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    match target {
        GgmlType::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => out.extend(values.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes())),
        GgmlType::BF16 => out.extend(values.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes())),
        _ => quantize_into(target, values, out)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_and_f16_decode_exactly() {
        let mut out = Vec::new();
        decode_into(
            SourceDtype::BF16,
            &bf16::from_f32(-1.5).to_le_bytes(),
            &mut out,
        );
        decode_into(
            SourceDtype::F16,
            &f16::from_f32(0.25).to_le_bytes(),
            &mut out,
        );
        decode_into(SourceDtype::F32, &3.0f32.to_le_bytes(), &mut out);
        assert_eq!(out, [-1.5, 0.25, 3.0]);
    }

    #[test]
    fn f16_encoding_rounds_to_nearest_even() {
        // 1 + 2^-11 lies exactly between two f16 values; ties go to the even mantissa (1.0).
        let mut out = Vec::new();
        encode_into(GgmlType::F16, &[1.0 + 2f32.powi(-11), 2.0], &mut out).unwrap();
        assert_eq!(out, [0x00, 0x3c, 0x00, 0x40]);
    }
}
