//! Typed access to the tensors of a mapped GGUF file by name, with shape checks.
//! Matrices and vectors stay views into the map (kept alive by an `Arc`); only
//! tensors the model reshapes at load time are copied.
use std::ops::Range;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use half::f16;

use crate::gguf::{GgmlType, GgufFile};
use crate::kernels::attention::Precision;
use crate::kernels::weight::interleaving_pays;
use crate::kernels::WeightMatrix;

/// Tensor lookup relative to a name prefix (`blk.3.` …), like candle's `VarBuilder::pp`.
#[derive(Clone)]
pub struct Weights {
    file: Arc<GgufFile>,
    prefix: String,
}

/// Element type of a mapped weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    F32,
    F16,
    Q8_0,
    Q4K,
}

/// A 2-D weight (`rows` × `cols`, one row per output feature) mapped from the file, or
/// repacked at load into the kernels' interleaved layout (then the file pages of the
/// tensor are released, so the weights are resident once).
pub struct Matrix {
    file: Arc<GgufFile>,
    bytes: Range<usize>,
    storage: Storage,
    rows: usize,
    cols: usize,
    interleaved: Option<(memmap2::MmapMut, usize)>,
}

/// A 1-D f32 parameter (norm weight, bias).
pub struct Vector {
    file: Arc<GgufFile>,
    bytes: Range<usize>,
}

impl Weights {
    pub fn new(file: Arc<GgufFile>) -> Self {
        Self {
            file,
            prefix: String::new(),
        }
    }

    /// The same file, with `part.` appended to the name prefix.
    pub fn pp(&self, part: impl std::fmt::Display) -> Self {
        Self {
            file: self.file.clone(),
            prefix: format!("{}{part}.", self.prefix),
        }
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.file.tensor(&self.full_name(name)).is_ok()
    }

    /// Locates `name`, checks its shape and returns its type and byte range in the file.
    fn locate(&self, name: &str, shape: &[usize]) -> Result<(GgmlType, Range<usize>)> {
        let full = self.full_name(name);
        let view = self.file.tensor(&full)?;
        if view.shape != shape {
            bail!(
                "tensor '{full}' has shape {:?}, the model configuration expects {shape:?}",
                view.shape
            );
        }
        let start = view.data.as_ptr() as usize - self.file.bytes().as_ptr() as usize;
        Ok((view.dtype, start..start + view.data.len()))
    }

    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        let (dtype, bytes) = self.locate(name, &[rows, cols])?;
        let storage = match dtype {
            GgmlType::F32 => Storage::F32,
            GgmlType::F16 => Storage::F16,
            GgmlType::Q8_0 => Storage::Q8_0,
            GgmlType::Q4_K => Storage::Q4K,
            other => bail!(
                "tensor '{}' is {other:?}; glimpse computes with f32, f16, q8_0 and q4_K weights",
                self.full_name(name)
            ),
        };
        let mut matrix = Matrix {
            file: self.file.clone(),
            bytes,
            storage,
            rows,
            cols,
            interleaved: None,
        };
        matrix
            .check_alignment()
            .with_context(|| format!("tensor '{}'", self.full_name(name)))?;
        if interleaving_pays() {
            matrix
                .interleave()
                .with_context(|| format!("repacking tensor '{}'", self.full_name(name)))?;
        }
        Ok(matrix)
    }

    pub fn vector(&self, name: &str, len: usize) -> Result<Vector> {
        let (dtype, bytes) = self.locate(name, &[len])?;
        if dtype != GgmlType::F32 {
            bail!(
                "tensor '{}' is {dtype:?}; 1-D parameters must be f32",
                self.full_name(name)
            );
        }
        let vector = Vector {
            file: self.file.clone(),
            bytes,
        };
        bytemuck::try_cast_slice::<u8, f32>(&vector.file.bytes()[vector.bytes.clone()]).map_err(
            |e| {
                anyhow::anyhow!(
                    "tensor '{}' is not 4-byte aligned: {e}",
                    self.full_name(name)
                )
            },
        )?;
        Ok(vector)
    }

    /// Any float tensor of the given shape, copied out as f32 (for tensors the model
    /// rearranges at load time).
    pub fn copy_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.locate(name, shape)?;
        self.file.tensor(&self.full_name(name))?.to_f32_vec()
    }
}

impl Matrix {
    fn check_alignment(&self) -> Result<()> {
        let raw = &self.file.bytes()[self.bytes.clone()];
        let aligned = match self.storage {
            Storage::F32 => bytemuck::try_cast_slice::<u8, f32>(raw).is_ok(),
            Storage::F16 => bytemuck::try_cast_slice::<u8, f16>(raw).is_ok(),
            Storage::Q8_0 | Storage::Q4K => true,
        };
        if aligned {
            Ok(())
        } else {
            bail!("tensor data is not aligned to its element size")
        }
    }

    /// Repacks a block-quantized matrix into anonymous memory (huge pages where the OS
    /// offers them) in the interleaved layout and releases the file's pages of it.
    fn interleave(&mut self) -> Result<()> {
        let Some(len) = self.view().interleaved_bytes() else {
            return Ok(());
        };
        let mut buffer = memmap2::MmapMut::map_anon(len.max(1))?;
        #[cfg(target_os = "linux")]
        let _ = buffer.advise(memmap2::Advice::HugePage);
        self.view().interleave_into(&mut buffer[..len]);
        self.interleaved = Some((buffer, len));
        self.file.release_pages(self.bytes.clone());
        Ok(())
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The attention arithmetic that matches this weight's precision: bf16 tiles beside
    /// block-quantized weights, exact f32 beside f32 / f16 ones.
    pub fn attention_precision(&self) -> Precision {
        match self.storage {
            Storage::Q8_0 | Storage::Q4K => Precision::Bf16,
            Storage::F32 | Storage::F16 => Precision::F32,
        }
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn view(&self) -> WeightMatrix<'_> {
        let (rows, cols) = (self.rows, self.cols);
        if let Some((buffer, len)) = &self.interleaved {
            let data = &buffer[..*len];
            return match self.storage {
                Storage::Q4K => WeightMatrix::Q4Kx16 { data, rows, cols },
                _ => WeightMatrix::Q8_0x16 { data, rows, cols },
            };
        }
        // Alignment and size were verified in `Weights::matrix`.
        let raw = &self.file.bytes()[self.bytes.clone()];
        match self.storage {
            Storage::F32 => WeightMatrix::F32 {
                data: bytemuck::cast_slice(raw),
                rows,
                cols,
            },
            Storage::F16 => WeightMatrix::F16 {
                data: bytemuck::cast_slice(raw),
                rows,
                cols,
            },
            Storage::Q8_0 => WeightMatrix::Q8_0 {
                data: raw,
                rows,
                cols,
            },
            Storage::Q4K => WeightMatrix::Q4K {
                data: raw,
                rows,
                cols,
            },
        }
    }

    /// `out[m, rows] = x[m, cols] · Wᵀ`.
    pub fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * self.rows];
        self.view().matmul(x, m, &mut out);
        out
    }
}

impl Vector {
    pub fn as_slice(&self) -> &[f32] {
        // Type, size and alignment were verified in `Weights::vector`.
        bytemuck::cast_slice(&self.file.bytes()[self.bytes.clone()])
    }
}

/// A linear layer `y = x·Wᵀ + b`.
pub struct Linear {
    pub weight: Matrix,
    pub bias: Option<Vector>,
}

impl Linear {
    /// Loads `<name>.weight` (out × in) and, when `with_bias`, `<name>.bias`.
    pub fn load(
        w: &Weights,
        name: &str,
        out_features: usize,
        in_features: usize,
        with_bias: bool,
    ) -> Result<Self> {
        let weight = w.matrix(&format!("{name}.weight"), out_features, in_features)?;
        let bias = if with_bias {
            Some(w.vector(&format!("{name}.bias"), out_features)?)
        } else {
            None
        };
        Ok(Self { weight, bias })
    }

    pub fn out_features(&self) -> usize {
        self.weight.rows()
    }

    pub fn forward(&self, x: &[f32], m: usize) -> Vec<f32> {
        let mut out = self.weight.forward(x, m);
        if let Some(bias) = &self.bias {
            for row in out.chunks_exact_mut(self.weight.rows()) {
                for (o, b) in row.iter_mut().zip(bias.as_slice()) {
                    *o += b;
                }
            }
        }
        out
    }
}
