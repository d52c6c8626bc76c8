//! Typed access to the tensors of the mapped GGUF file(s) by name, with shape checks.
//! Matrices and vectors stay views into the map (kept alive by an `Arc`); only
//! tensors the model reshapes at load time are copied.
use std::ops::Range;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use half::f16;
use rayon::prelude::*;

use super::anon_buffer::AnonBuffer;
use super::files::ModelFiles;
use crate::gguf::{decode_into, GgmlType, GgufFile};
use crate::kernels::attention::Precision;
use crate::kernels::weight::interleaving_pays;
use crate::kernels::WeightMatrix;

/// Tensor lookup relative to a name prefix (`blk.3.` …), like candle's `VarBuilder::pp`.
#[derive(Clone)]
pub struct Weights {
    files: ModelFiles,
    prefix: String,
}

/// Element type of a weight as the kernels read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Storage {
    F32,
    F16,
    Q8_0,
    Q4K,
    Q6K,
}

impl Storage {
    fn ggml_type(self) -> GgmlType {
        match self {
            Storage::F32 => GgmlType::F32,
            Storage::F16 => GgmlType::F16,
            Storage::Q8_0 => GgmlType::Q8_0,
            Storage::Q4K => GgmlType::Q4_K,
            Storage::Q6K => GgmlType::Q6_K,
        }
    }
}

/// A 2-D weight (`rows` × `cols`, one row per output feature) mapped from the file, or
/// converted at load from a type the kernels do not read, and/or repacked into the kernels'
/// interleaved layout (then the file pages of the tensor are released, so the weights are
/// resident once).
pub struct Matrix {
    file: Arc<GgufFile>,
    bytes: Range<usize>,
    storage: Storage,
    rows: usize,
    cols: usize,
    converted: Option<AnonBuffer>,
    interleaved: Option<AnonBuffer>,
}

/// The products a matrix takes part in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Any number of activation rows (prompts, the vision encoder, decode).
    Any,
    /// Row lookups and products with one activation row per sequence.
    RowsPerSequence,
}

/// Rows converted per step of `Matrix::convert_from` (bounds the f32 staging buffer).
const CONVERT_ROWS: usize = 64;

/// A 1-D f32 parameter (norm weights, biases), copied out of the file at load so that
/// inference never faults the file's pages around it back in (see `GgufFile::release_again`).
pub struct Vector {
    values: Vec<f32>,
}

impl Weights {
    pub fn new(files: ModelFiles) -> Self {
        Self {
            files,
            prefix: String::new(),
        }
    }

    /// The same file, with `part.` appended to the name prefix.
    pub fn pp(&self, part: impl std::fmt::Display) -> Self {
        Self {
            files: self.files.clone(),
            prefix: format!("{}{part}.", self.prefix),
        }
    }

    fn full_name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The file holding `name` (under the prefix).
    fn file(&self, name: &str) -> &Arc<GgufFile> {
        self.files.file_for(&self.full_name(name))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.file(name).has_tensor(&self.full_name(name))
    }

    /// Locates `name`, checks its shape and returns its file, type and byte range there.
    fn locate(
        &self,
        name: &str,
        shape: &[usize],
    ) -> Result<(Arc<GgufFile>, GgmlType, Range<usize>)> {
        let full = self.full_name(name);
        let file = self.file(name);
        let view = file.tensor(&full)?;
        if view.shape != shape {
            bail!(
                "tensor '{full}' has shape {:?}, the model configuration expects {shape:?}",
                view.shape
            );
        }
        let start = view.data.as_ptr() as usize - file.bytes().as_ptr() as usize;
        Ok((file.clone(), view.dtype, start..start + view.data.len()))
    }

    pub fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.matrix_for(name, rows, cols, Use::Any)
    }

    /// A vocabulary matrix (token embedding, output projection): only ever read by rows
    /// or multiplied by one row per sequence, so it keeps block formats the kernels have
    /// only decode products for (Q6_K) as stored.
    pub fn vocabulary_matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.matrix_for(name, rows, cols, Use::RowsPerSequence)
    }

    fn matrix_for(&self, name: &str, rows: usize, cols: usize, usage: Use) -> Result<Matrix> {
        let (file, dtype, bytes) = self.locate(name, &[rows, cols])?;
        Matrix::from_file(file, dtype, bytes, rows, cols, usage)
            .with_context(|| format!("tensor '{}'", self.full_name(name)))
    }

    /// The `count` matrices (`rows` × `cols` each) of a 3-D expert tensor `[count, rows,
    /// cols]` (llama.cpp's `ffn_*_exps`), each a view of its own part of the file.
    pub fn experts(
        &self,
        name: &str,
        count: usize,
        rows: usize,
        cols: usize,
    ) -> Result<Vec<Matrix>> {
        let (file, dtype, bytes) = self.locate(name, &[count, rows, cols])?;
        let size = bytes.len() / count.max(1);
        (0..count)
            .map(|e| {
                let start = bytes.start + e * size;
                Matrix::from_file(
                    file.clone(),
                    dtype,
                    start..start + size,
                    rows,
                    cols,
                    Use::Any,
                )
                .with_context(|| format!("expert {e} of tensor '{}'", self.full_name(name)))
            })
            .collect()
    }

    pub fn vector(&self, name: &str, len: usize) -> Result<Vector> {
        let (file, dtype, bytes) = self.locate(name, &[len])?;
        if dtype != GgmlType::F32 {
            bail!(
                "tensor '{}' is {dtype:?}; 1-D parameters must be f32",
                self.full_name(name)
            );
        }
        let values = bytemuck::try_cast_slice::<u8, f32>(&file.bytes()[bytes.clone()])
            .map_err(|e| {
                anyhow::anyhow!(
                    "tensor '{}' is not 4-byte aligned: {e}",
                    self.full_name(name)
                )
            })?
            .to_vec();
        file.release_pages(bytes);
        Ok(Vector { values })
    }

    /// Any float tensor of the given shape, copied out as f32 (for tensors the model
    /// rearranges at load time).
    pub fn copy_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let (file, _, bytes) = self.locate(name, shape)?;
        let values = file.tensor(&self.full_name(name))?.to_f32_vec()?;
        file.release_pages(bytes);
        Ok(values)
    }
}

impl Matrix {
    /// The matrix stored at `bytes` of `file` as `dtype`: converted when the kernels do not
    /// read that type for its `usage`, repacked when the interleaved layout pays on this CPU.
    fn from_file(
        file: Arc<GgufFile>,
        dtype: GgmlType,
        bytes: Range<usize>,
        rows: usize,
        cols: usize,
        usage: Use,
    ) -> Result<Matrix> {
        let storage = match dtype {
            GgmlType::F32 => Storage::F32,
            GgmlType::F16 => Storage::F16,
            GgmlType::Q8_0 => Storage::Q8_0,
            GgmlType::Q4_K => Storage::Q4K,
            GgmlType::Q6_K if usage == Use::RowsPerSequence => Storage::Q6K,
            // Widened exactly; the kernels have no bf16 weight path.
            GgmlType::BF16 => Storage::F32,
            // Other ggml block types (llama.cpp's Q4_K_M keeps some layers' tensors in Q6_K,
            // its fallbacks use Q5_0 / Q5_1 …) are requantized to Q8_0 at load, which has
            // prompt kernels: finer than any of them, so the error added is a fraction of
            // theirs.
            _ => Storage::Q8_0,
        };
        let mut matrix = Matrix {
            file,
            bytes,
            storage,
            rows,
            cols,
            converted: None,
            interleaved: None,
        };
        if dtype != storage.ggml_type() {
            matrix.convert_from(dtype).context("converting it")?;
        }
        matrix.check_alignment()?;
        if interleaving_pays() {
            matrix.interleave().context("repacking it")?;
        }
        Ok(matrix)
    }

    /// The weight's bytes in its storage type: the converted copy, or the file's.
    fn raw(&self) -> &[u8] {
        match &self.converted {
            Some(buffer) => buffer.bytes(),
            None => &self.file.bytes()[self.bytes.clone()],
        }
    }

    /// Re-encodes the file's `source`-typed data in the storage type, a few rows at a time,
    /// and releases the file's pages of it.
    fn convert_from(&mut self, source: GgmlType) -> Result<()> {
        let target = self.storage.ggml_type();
        let (source_row, target_row) = (
            source.row_byte_size(self.cols)?,
            target.row_byte_size(self.cols)?,
        );
        let len = target_row * self.rows;
        let mut buffer = AnonBuffer::new(len)?;
        let data = &self.file.bytes()[self.bytes.clone()];
        let (mut values, mut encoded) = (Vec::new(), Vec::new());
        for (rows_in, rows_out) in data
            .chunks(source_row * CONVERT_ROWS)
            .zip(buffer.bytes_mut().chunks_mut(target_row * CONVERT_ROWS))
        {
            values.clear();
            encoded.clear();
            decode_into(source, rows_in, &mut values)?;
            glimpse_convert::encode_into(target, &values, &mut encoded)?;
            rows_out.copy_from_slice(&encoded);
        }
        self.converted = Some(buffer);
        self.file.release_pages(self.bytes.clone());
        Ok(())
    }

    fn check_alignment(&self) -> Result<()> {
        let raw = self.raw();
        let aligned = match self.storage {
            Storage::F32 => bytemuck::try_cast_slice::<u8, f32>(raw).is_ok(),
            Storage::F16 => bytemuck::try_cast_slice::<u8, f16>(raw).is_ok(),
            Storage::Q8_0 | Storage::Q4K | Storage::Q6K => true,
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
        let mut buffer = AnonBuffer::new(len)?;
        self.view().interleave_into(buffer.bytes_mut());
        self.interleaved = Some(buffer);
        self.converted = None;
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
            Storage::Q8_0 | Storage::Q4K | Storage::Q6K => Precision::Bf16,
            Storage::F32 | Storage::F16 => Precision::F32,
        }
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub fn view(&self) -> WeightMatrix<'_> {
        let (rows, cols) = (self.rows, self.cols);
        if let Some(buffer) = &self.interleaved {
            let data = buffer.bytes();
            return match self.storage {
                Storage::Q4K => WeightMatrix::Q4Kx16 { data, rows, cols },
                _ => WeightMatrix::Q8_0x16 { data, rows, cols },
            };
        }
        // Alignment and size were verified in `Weights::matrix`.
        let raw = self.raw();
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
            Storage::Q6K => WeightMatrix::Q6K {
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

    /// `forward` over consecutive groups of rows, each group's result that of the group
    /// alone (`WeightMatrix::matmul_groups`).
    pub fn forward_groups(&self, x: &[f32], groups: &[usize]) -> Vec<f32> {
        let m: usize = groups.iter().sum();
        let mut out = vec![0.0; m * self.rows];
        self.view().matmul_groups(x, groups, &mut out);
        out
    }
}

impl Vector {
    pub fn as_slice(&self) -> &[f32] {
        &self.values
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
        self.with_bias(self.weight.forward(x, m))
    }

    /// `forward` over consecutive groups of rows (rows of different sequences, or pieces
    /// of one prompt), each group's result that of the group alone.
    pub fn forward_groups(&self, x: &[f32], groups: &[usize]) -> Vec<f32> {
        self.with_bias(self.weight.forward_groups(x, groups))
    }

    /// `forward_groups` of several layers over the same input, in one parallel region:
    /// the pool's threads are woken once for all of them instead of once per layer
    /// (decode runs ~200 products per token, each short). Every result is the one its
    /// layer gives alone.
    pub fn forward_groups_together<const N: usize>(
        layers: [&Linear; N],
        x: &[f32],
        groups: &[usize],
    ) -> [Vec<f32>; N] {
        let outs: Vec<Vec<f32>> = layers
            .par_iter()
            .map(|layer| layer.forward_groups(x, groups))
            .collect();
        outs.try_into()
            .unwrap_or_else(|_| unreachable!("one output per layer"))
    }

    fn with_bias(&self, mut out: Vec<f32>) -> Vec<f32> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use glimpse_convert::encode_into;

    use crate::gguf::{GgufWriter, Metadata, TensorPlan};

    /// A GGUF file with one `rows × cols` matrix per type, all holding the same values.
    fn file_with(types: &[GgmlType], rows: usize, cols: usize, values: &[f32]) -> Arc<GgufFile> {
        let plans = types
            .iter()
            .map(|ty| TensorPlan {
                name: format!("{ty}.weight"),
                shape: vec![rows, cols],
                dtype: *ty,
            })
            .collect();
        let mut writer = GgufWriter::new(Vec::new(), &Metadata::new(), plans).unwrap();
        for ty in types {
            let mut bytes = Vec::new();
            encode_into(*ty, values, &mut bytes).unwrap();
            writer
                .write_tensor(&format!("{ty}.weight"), &bytes)
                .unwrap();
        }
        let path = std::env::temp_dir().join(format!(
            "glimpse-weights-{}-{}.gguf",
            std::process::id(),
            types.len()
        ));
        std::fs::write(&path, writer.finish().unwrap()).unwrap();
        let file = Arc::new(GgufFile::open(&path).unwrap());
        let _ = std::fs::remove_file(&path);
        file
    }

    #[test]
    fn weights_of_other_ggml_types_are_converted_at_load_and_compute_alike() {
        let (rows, cols) = (8, 256);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 257) as f32 - 128.0) / 64.0)
            .collect();
        let x: Vec<f32> = (0..2 * cols)
            .map(|i| ((i % 13) as f32 - 6.0) / 6.0)
            .collect();
        let types = [
            GgmlType::BF16,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ];
        let weights = Weights::new(ModelFiles::single(file_with(&types, rows, cols, &values)));
        for ty in types {
            let name = format!("{ty}.weight");
            // The reference: the file's values as stored, decoded exactly, in f32 arithmetic.
            let stored = weights.copy_f32(&name, &[rows, cols]).unwrap();
            let mut expected = vec![0.0; 2 * rows];
            for (m, out) in expected.chunks_mut(rows).enumerate() {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = (0..cols)
                        .map(|c| x[m * cols + c] * stored[r * cols + c])
                        .sum();
                }
            }
            let matrix = weights.matrix(&name, rows, cols).unwrap();
            let got = matrix.forward(&x, 2);
            let scale = expected.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            let worst = expected
                .iter()
                .zip(&got)
                .fold(0.0f32, |a, (e, g)| a.max((e - g).abs()));
            // bf16 widens exactly; the block types add Q8_0's rounding (and its int8 activations).
            let tolerance = if ty == GgmlType::BF16 { 1e-4 } else { 0.02 } * scale;
            assert!(worst <= tolerance, "{ty}: off by {worst} (scale {scale})");
        }
    }

    #[test]
    fn vocabulary_matrices_keep_q6_k_and_other_matrices_convert_it() {
        let (rows, cols) = (8, 256);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7919 % 257) as f32 - 128.0) / 64.0)
            .collect();
        let weights = Weights::new(ModelFiles::single(file_with(
            &[GgmlType::Q6_K],
            rows,
            cols,
            &values,
        )));
        let name = "Q6_K.weight";
        let vocabulary = weights.vocabulary_matrix(name, rows, cols).unwrap();
        assert!(matches!(vocabulary.view(), WeightMatrix::Q6K { .. }));
        let other = weights.matrix(name, rows, cols).unwrap();
        assert!(matches!(
            other.view(),
            WeightMatrix::Q8_0 { .. } | WeightMatrix::Q8_0x16 { .. }
        ));
        let mut row = vec![0.0; cols];
        vocabulary.view().rows_into(3, &mut row);
        let stored = weights.copy_f32(name, &[rows, cols]).unwrap();
        assert_eq!(
            row,
            stored[3 * cols..4 * cols],
            "a row lookup reads the stored values exactly"
        );
    }
}
