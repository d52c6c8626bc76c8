//! Where one tensor lives in a GGUF file: name, type, PyTorch-order shape and its validated
//! byte range (absolute file offset and length).
use crate::ggml_type::GgmlType;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: GgmlType,
    /// Outermost dimension first (ggml's `ne` reversed), as in PyTorch.
    pub shape: Vec<usize>,
    /// Absolute offset of the tensor's first byte in the file.
    pub data_offset: usize,
    pub n_bytes: usize,
}

impl TensorInfo {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }
}
