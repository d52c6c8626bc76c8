//! The requested output precision of a conversion and the per-tensor decision of which ggml
//! type each tensor is stored in, following llama.cpp's converter: 1-D tensors, norms,
//! biases and the learned position embedding stay F32; the patch embedding is F16 only in an
//! F16 file; every other matrix takes the requested type. Quantized types plug in here.
use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Result};

use crate::ggml_type::GgmlType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
}

impl OutType {
    /// The type weight matrices are stored in.
    pub fn matrix_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`: ALL_F32 = 0, MOSTLY_F16 = 1).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "f32",
            OutType::F16 => "f16",
        }
    }

    /// The ggml type tensor `gguf_name` of `shape` (PyTorch order) is written in.
    pub fn tensor_type(self, gguf_name: &str, shape: &[usize]) -> GgmlType {
        if gguf_name.contains(".patch_embd.weight") {
            return match self {
                OutType::F16 => GgmlType::F16,
                OutType::F32 => GgmlType::F32,
            };
        }
        let stays_f32 = shape.len() <= 1
            || gguf_name.ends_with("_norm.weight")
            || gguf_name == "v.position_embd.weight"
            || !gguf_name.ends_with(".weight");
        if stays_f32 {
            GgmlType::F32
        } else {
            self.matrix_type()
        }
    }
}

impl FromStr for OutType {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<OutType> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(OutType::F32),
            "f16" => Ok(OutType::F16),
            _ => bail!("unsupported output type '{s}': expected f32 or f16"),
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
        assert_eq!(err, "unsupported output type 'q3_k': expected f32 or f16");
    }
}
