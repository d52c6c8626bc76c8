//! A borrowed view of one tensor's bytes inside the memory-mapped GGUF file, with zero-copy
//! typed access for F32/F16 (little-endian hosts, like every ggml file) and an f32 copy for
//! every type.
use half::f16;

use crate::element_codec::decode_into;
use crate::error::{GgufError, Result};
use crate::ggml_type::GgmlType;

#[derive(Clone, Debug)]
pub struct TensorView<'a> {
    pub name: &'a str,
    pub dtype: GgmlType,
    /// Outermost dimension first (ggml's `ne` reversed), as in PyTorch.
    pub shape: Vec<usize>,
    pub data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    fn expect_type(&self, expected: GgmlType) -> Result<()> {
        if self.dtype != expected {
            return Err(GgufError::WrongTensorType {
                name: self.name.to_string(),
                found: self.dtype,
                expected,
            });
        }
        Ok(())
    }

    fn cast<T: bytemuck::Pod>(&self) -> Result<&'a [T]> {
        bytemuck::try_cast_slice(self.data).map_err(|reason| GgufError::Unviewable {
            name: self.name.to_string(),
            dtype: self.dtype,
            reason,
        })
    }

    /// The elements of an F32 tensor, without copying.
    pub fn as_f32(&self) -> Result<&'a [f32]> {
        self.expect_type(GgmlType::F32)?;
        self.cast()
    }

    /// The elements of an F16 tensor, without copying.
    pub fn as_f16(&self) -> Result<&'a [f16]> {
        self.expect_type(GgmlType::F16)?;
        self.cast()
    }

    /// The elements of the tensor converted to f32 (block-quantized types dequantized).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut values = Vec::with_capacity(self.n_elements());
        decode_into(self.dtype, self.data, &mut values).map_err(|e| e.in_tensor(self.name))?;
        Ok(values)
    }
}
