//! A borrowed view of one tensor's bytes inside the memory-mapped GGUF file, with zero-copy
//! typed access for F32/F16 (little-endian hosts, like every ggml file) and an f32 copy for
//! the plain float types.
use anyhow::{bail, Result};
use glimpse_convert::GgmlType;
use half::{bf16, f16};

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
            bail!(
                "tensor '{}' is {}, expected {expected}",
                self.name,
                self.dtype
            );
        }
        Ok(())
    }

    fn cast<T: bytemuck::Pod>(&self) -> Result<&'a [T]> {
        match bytemuck::try_cast_slice(self.data) {
            Ok(values) => Ok(values),
            Err(e) => bail!(
                "tensor '{}': data cannot be viewed as {}: {e}",
                self.name,
                self.dtype
            ),
        }
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

    /// The elements of an F32, F16 or BF16 tensor, converted to f32.
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        Ok(match self.dtype {
            GgmlType::F32 => self
                .data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            GgmlType::F16 => self
                .data
                .chunks_exact(2)
                .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            GgmlType::BF16 => self
                .data
                .chunks_exact(2)
                .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => bail!(
                "tensor '{}' is {other}; only F32, F16 and BF16 convert to f32 here",
                self.name
            ),
        })
    }
}
