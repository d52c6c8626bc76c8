//! A borrowed view of one tensor's bytes inside the memory-mapped GGUF file, with zero-copy
//! typed access for F32/F16 (little-endian hosts, like every ggml file) and an f32 copy for
//! every type.
use anyhow::{bail, Context, Result};
use glimpse_convert::GgmlType;
use half::f16;

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

    /// The elements of the tensor converted to f32 (block-quantized types dequantized).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let mut values = Vec::with_capacity(self.n_elements());
        glimpse_convert::decode_ggml_into(self.dtype, self.data, &mut values)
            .with_context(|| format!("tensor '{}'", self.name))?;
        Ok(values)
    }
}
