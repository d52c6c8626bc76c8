//! Encoding f32 values in a ggml type: the float types through the format crate's element
//! codec, the block types with its block quantizers (`glimpse_gguf::quantize_into`).
//! Decoding (dequantizing) is the format's: `glimpse_gguf::decode_into`.
use anyhow::Result;
use glimpse_gguf::{encode_float_into, quantize_into, GgmlType};

/// Appends `values` encoded as `target` (little-endian) to `out`. F16 rounds to nearest even,
/// as numpy's `astype(float16)` in llama.cpp's converter does; block types need whole blocks
/// (rows a multiple of the block size).
pub fn encode_into(target: GgmlType, values: &[f32], out: &mut Vec<u8>) -> Result<()> {
    if target.is_block_quantized() {
        Ok(quantize_into(target, values, out)?)
    } else {
        Ok(encode_float_into(target, values, out)?)
    }
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
            encode_into(target, &vec![0.5; 512], &mut out).unwrap();
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
            encode_into(ty, &values, &mut encoded).unwrap();
            assert_eq!(
                encoded.len(),
                512 / ty.block_size() * bytes_per_block,
                "{ty}"
            );
            assert_eq!(ty.type_size(), bytes_per_block, "{ty}");
            let mut decoded = vec![7.0];
            glimpse_gguf::decode_into(ty, &encoded, &mut decoded).unwrap();
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
    fn q8_0_block_holds_scale_and_rounded_values() {
        let values: Vec<f32> = (0..32).map(|i| i as f32 - 16.0).collect();
        let mut out = Vec::new();
        encode_into(GgmlType::Q8_0, &values, &mut out).unwrap();
        let d = half::f16::from_le_bytes([out[0], out[1]]).to_f32();
        assert!((d - 16.0 / 127.0).abs() < 1e-4);
        assert_eq!(out[2] as i8, -127);
    }
}
