//! The requested output precision of a conversion and the per-tensor decision of which ggml
//! type each tensor is stored in, following llama.cpp's converter: 1-D tensors, norms,
//! biases and the learned position embedding stay F32; the patch embedding is F16 only in an
//! F16 file; every other matrix takes the requested type (see `tensor_type`).
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use glimpse_gguf::GgmlType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4K,
}

impl OutType {
    /// The type weight matrices are stored in.
    pub fn matrix_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Q8_0 => GgmlType::Q8_0,
            OutType::Q4_0 => GgmlType::Q4_0,
            OutType::Q4K => GgmlType::Q4_K,
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`: ALL_F32 = 0, MOSTLY_F16 = 1).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q8_0 => 7,
            OutType::Q4_0 => 2,
            OutType::Q4K => 15,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
            OutType::Q8_0 => "q8_0",
            OutType::Q4_0 => "q4_0",
            OutType::Q4K => "q4_k",
        }
    }

    /// The ggml type tensor `gguf_name` of `shape` (PyTorch order) is written in:
    /// 1-D tensors, norms, biases and the position embedding stay F32; the patch
    /// embedding is F32 in an F32 file and F16 otherwise; in the 4-bit profiles the
    /// token embedding / output matrix (the largest, and the logits' last step) is Q6_K,
    /// as in llama.cpp's Q4_K_M; a matrix whose rows do not fill whole blocks falls back to
    /// Q8_0, then F16.
    pub fn tensor_type(self, gguf_name: &str, shape: &[usize]) -> GgmlType {
        if gguf_name.contains(".patch_embd.weight") {
            return if self == OutType::F32 {
                GgmlType::F32
            } else {
                GgmlType::F16
            };
        }
        let stays_f32 = shape.len() <= 1
            || gguf_name.ends_with("_norm.weight")
            || gguf_name == "v.position_embd.weight"
            // The experts' router stays exact, as llama.cpp's quantizer keeps it.
            || gguf_name.ends_with("ffn_gate_inp.weight")
            || !gguf_name.ends_with(".weight");
        if stays_f32 {
            return GgmlType::F32;
        }
        let is_vocabulary_matrix = gguf_name == "token_embd.weight" || gguf_name == "output.weight";
        let wanted = match self {
            OutType::Q4_0 | OutType::Q4K if is_vocabulary_matrix => GgmlType::Q6_K,
            _ => self.matrix_type(),
        };
        let cols = shape.last().copied().unwrap_or(0);
        [wanted, GgmlType::Q8_0, GgmlType::F16]
            .into_iter()
            .find(|t| cols % t.block_size() == 0)
            .unwrap_or(GgmlType::F16)
    }
}

impl FromStr for OutType {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<OutType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(OutType::F32),
            "f16" => Ok(OutType::F16),
            "q8_0" => Ok(OutType::Q8_0),
            "q4_0" => Ok(OutType::Q4_0),
            "q4_k" | "q4_k_m" => Ok(OutType::Q4K),
            _ => bail!("unsupported output type '{s}': expected f32, f16, q8_0, q4_0 or q4_k"),
        }
    }
}

impl fmt::Display for OutType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrices_take_the_requested_type() {
        assert_eq!(
            OutType::F16.tensor_type("blk.0.attn_q.weight", &[64, 64]),
            GgmlType::F16
        );
        assert_eq!(
            OutType::F16.tensor_type("token_embd.weight", &[100, 64]),
            GgmlType::F16
        );
        assert_eq!(
            OutType::F16.tensor_type("v.blk.0.attn_qkv.weight", &[96, 32]),
            GgmlType::F16
        );
        assert_eq!(
            OutType::F32.tensor_type("mm.0.weight", &[128, 128]),
            GgmlType::F32
        );
    }

    #[test]
    fn vectors_norms_biases_and_position_embedding_stay_f32() {
        for (name, shape) in [
            ("blk.0.attn_norm.weight", &[64][..]),
            ("blk.0.attn_q_norm.weight", &[16][..]),
            ("v.blk.0.attn_qkv.bias", &[96][..]),
            ("v.position_embd.weight", &[16, 32][..]),
            ("v.post_ln.weight", &[32][..]),
        ] {
            assert_eq!(
                OutType::F16.tensor_type(name, shape),
                GgmlType::F32,
                "{name}"
            );
        }
    }

    #[test]
    fn patch_embedding_follows_llama_cpp() {
        let shape = [32, 3, 16, 16];
        assert_eq!(
            OutType::F16.tensor_type("v.patch_embd.weight", &shape),
            GgmlType::F16
        );
        assert_eq!(
            OutType::F16.tensor_type("v.patch_embd.weight.1", &shape),
            GgmlType::F16
        );
        assert_eq!(
            OutType::F32.tensor_type("v.patch_embd.weight.1", &shape),
            GgmlType::F32
        );
        assert_eq!(
            OutType::F16.tensor_type("v.patch_embd.bias", &[32]),
            GgmlType::F32
        );
    }

    #[test]
    fn parsing_accepts_known_names_only() {
        assert_eq!("F16".parse::<OutType>().unwrap(), OutType::F16);
        let err = "q3_k".parse::<OutType>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unsupported output type 'q3_k': expected f32, f16, q8_0, q4_0 or q4_k"
        );
        assert_eq!("Q4_K_M".parse::<OutType>().unwrap(), OutType::Q4K);
    }

    #[test]
    fn quantized_profiles_keep_the_vocabulary_matrix_at_q6_k_and_fall_back_on_short_rows() {
        assert_eq!(
            OutType::Q4K.tensor_type("blk.0.ffn_up.weight", &[6144, 2048]),
            GgmlType::Q4_K
        );
        assert_eq!(
            OutType::Q4K.tensor_type("token_embd.weight", &[151936, 2048]),
            GgmlType::Q6_K
        );
        assert_eq!(
            OutType::Q4K.tensor_type("output.weight", &[151936, 2048]),
            GgmlType::Q6_K
        );
        assert_eq!(
            OutType::Q4K.tensor_type("output.weight", &[1000, 64]),
            GgmlType::Q8_0
        );
        assert_eq!(
            OutType::Q8_0.tensor_type("output.weight", &[151936, 2048]),
            GgmlType::Q8_0
        );
        assert_eq!(
            OutType::Q4K.tensor_type("blk.0.attn_q.weight", &[64, 32]),
            GgmlType::Q8_0
        );
        assert_eq!(
            OutType::Q8_0.tensor_type("blk.0.attn_q.weight", &[64, 16]),
            GgmlType::F16
        );
        assert_eq!(
            OutType::Q8_0.tensor_type("v.patch_embd.weight", &[32, 3, 16, 16]),
            GgmlType::F16
        );
        assert_eq!(
            OutType::Q8_0.tensor_type("blk.0.attn_norm.weight", &[32]),
            GgmlType::F32
        );
    }
}
