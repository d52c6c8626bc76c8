//! Streaming GGUF v3 writer. The header (metadata, then one info per planned tensor with its
//! data offset) is written up front from the tensor plan; tensor bytes then follow one tensor
//! at a time, in plan order, each padded to the alignment, so no more than the caller's
//! current chunk is ever held in memory.
use std::collections::HashSet;
use std::io::Write;

use crate::error::{GgufError, Result};
use crate::format::{data_alignment, GGUF_MAGIC, GGUF_VERSION, MAX_DIMS, MAX_TENSOR_NAME_LEN};
use crate::ggml_type::GgmlType;
use crate::meta_value::{MetaArray, MetaValue};
use crate::metadata::Metadata;

/// A tensor the writer will receive: name, PyTorch-order shape (outermost first) and type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: GgmlType,
}

impl TensorPlan {
    pub fn byte_size(&self) -> Result<usize> {
        self.dtype
            .tensor_byte_size(&self.shape)
            .map_err(|e| e.in_tensor(&self.name))
    }
}

struct PlannedTensor {
    plan: TensorPlan,
    byte_size: usize,
}

/// Where the writer is in the data section.
enum Progress {
    /// Between tensors; the next one expected is `plan[index]`.
    Idle { index: usize },
    /// Inside `plan[index]`, `written` of its bytes done.
    Writing { index: usize, written: usize },
}

pub struct GgufWriter<W: Write> {
    out: W,
    tensors: Vec<PlannedTensor>,
    alignment: usize,
    position: u64,
    progress: Progress,
}

impl<W: Write> GgufWriter<W> {
    /// Validates the plan and writes the whole header. The alignment is `general.alignment`
    /// when `metadata` has it, else 32.
    pub fn new(out: W, metadata: &Metadata, tensors: Vec<TensorPlan>) -> Result<GgufWriter<W>> {
        let alignment = data_alignment(metadata)?;
        let tensors = validate_plan(tensors)?;
        let mut writer = GgufWriter {
            out,
            tensors,
            alignment,
            position: 0,
            progress: Progress::Idle { index: 0 },
        };
        writer.write_header(metadata)?;
        Ok(writer)
    }

    fn write_header(&mut self, metadata: &Metadata) -> Result<()> {
        let mut header = Vec::new();
        header.extend_from_slice(&GGUF_MAGIC);
        header.extend_from_slice(&GGUF_VERSION.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
        for (key, value) in metadata.iter() {
            encode_string(&mut header, key);
            header.extend_from_slice(&value.value_type().id().to_le_bytes());
            encode_value(&mut header, value);
        }
        let mut offset = 0u64;
        for tensor in &self.tensors {
            encode_string(&mut header, &tensor.plan.name);
            header.extend_from_slice(&(tensor.plan.shape.len() as u32).to_le_bytes());
            for &dim in tensor.plan.shape.iter().rev() {
                header.extend_from_slice(&(dim as u64).to_le_bytes());
            }
            header.extend_from_slice(&tensor.plan.dtype.id().to_le_bytes());
            header.extend_from_slice(&offset.to_le_bytes());
            offset += padded(tensor.byte_size as u64, self.alignment);
        }
        self.emit(&header)?;
        self.pad()
    }

    /// Starts the data of tensor `name`, which must be the next one in the plan.
    pub fn begin_tensor(&mut self, name: &str) -> Result<()> {
        let index = match self.progress {
            Progress::Idle { index } => index,
            Progress::Writing { index, .. } => {
                return Err(GgufError::StillWriting {
                    current: self.tensors[index].plan.name.clone(),
                    next: name.to_string(),
                })
            }
        };
        match self.tensors.get(index) {
            Some(next) if next.plan.name == name => {}
            Some(next) => {
                return Err(GgufError::OutOfOrder {
                    name: name.to_string(),
                    expected: next.plan.name.clone(),
                })
            }
            None => return Err(GgufError::NotPlanned(name.to_string())),
        }
        self.progress = Progress::Writing { index, written: 0 };
        Ok(())
    }

    /// Appends bytes to the tensor begun last.
    pub fn write_data(&mut self, bytes: &[u8]) -> Result<()> {
        let Progress::Writing { index, written } = self.progress else {
            return Err(GgufError::DataOutsideTensor);
        };
        let tensor = &self.tensors[index];
        let now = written + bytes.len();
        if now > tensor.byte_size {
            return Err(GgufError::TooManyBytes {
                name: tensor.plan.name.clone(),
                written: now,
                size: tensor.byte_size,
            });
        }
        self.emit(bytes)?;
        self.progress = Progress::Writing {
            index,
            written: now,
        };
        Ok(())
    }

    /// Finishes the current tensor (all its bytes must have been written) and pads.
    pub fn end_tensor(&mut self) -> Result<()> {
        let Progress::Writing { index, written } = self.progress else {
            return Err(GgufError::EndWithoutBegin);
        };
        let tensor = &self.tensors[index];
        if written != tensor.byte_size {
            return Err(GgufError::TooFewBytes {
                name: tensor.plan.name.clone(),
                written,
                size: tensor.byte_size,
            });
        }
        self.pad()?;
        self.progress = Progress::Idle { index: index + 1 };
        Ok(())
    }

    /// Writes a whole tensor at once.
    pub fn write_tensor(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.begin_tensor(name)?;
        self.write_data(bytes)?;
        self.end_tensor()
    }

    /// Checks that every planned tensor was written, flushes and returns the sink.
    pub fn finish(mut self) -> Result<W> {
        match self.progress {
            Progress::Idle { index } if index == self.tensors.len() => {}
            Progress::Idle { index } | Progress::Writing { index, .. } => {
                return Err(GgufError::Incomplete {
                    first: self.tensors[index].plan.name.clone(),
                    more: self.tensors.len() - index - 1,
                })
            }
        }
        self.out.flush().map_err(GgufError::Flush)?;
        Ok(self.out)
    }

    /// Bytes written so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    fn emit(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(GgufError::Write)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let target = padded(self.position, self.alignment);
        let zeros = vec![0u8; (target - self.position) as usize];
        self.emit(&zeros)
    }
}

fn validate_plan(tensors: Vec<TensorPlan>) -> Result<Vec<PlannedTensor>> {
    let mut names = HashSet::new();
    tensors
        .into_iter()
        .map(|plan| {
            if plan.name.len() >= MAX_TENSOR_NAME_LEN {
                return Err(GgufError::NameTooLong { name: plan.name });
            }
            if plan.shape.is_empty() || plan.shape.len() > MAX_DIMS {
                return Err(GgufError::BadDimensionCount {
                    n_dims: plan.shape.len(),
                    name: plan.name,
                });
            }
            if !names.insert(plan.name.clone()) {
                return Err(GgufError::PlannedTwice(plan.name));
            }
            let byte_size = plan.byte_size()?;
            Ok(PlannedTensor { plan, byte_size })
        })
        .collect()
}

/// `n` rounded up to a multiple of `alignment` (a power of two).
fn padded(n: u64, alignment: usize) -> u64 {
    let alignment = alignment as u64;
    n.div_ceil(alignment) * alignment
}

fn encode_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u64).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn encode_value(buf: &mut Vec<u8>, value: &MetaValue) {
    match value {
        MetaValue::U8(v) => buf.push(*v),
        MetaValue::I8(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I16(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::U64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::I64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F32(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::F64(v) => buf.extend_from_slice(&v.to_le_bytes()),
        MetaValue::Bool(v) => buf.push(u8::from(*v)),
        MetaValue::String(v) => encode_string(buf, v),
        MetaValue::Array(array) => encode_array(buf, array),
    }
}

fn encode_array(buf: &mut Vec<u8>, array: &MetaArray) {
    fn le_items<T, const N: usize>(buf: &mut Vec<u8>, items: &[T], to_le: fn(&T) -> [u8; N]) {
        for item in items {
            buf.extend_from_slice(&to_le(item));
        }
    }
    buf.extend_from_slice(&array.element_type().id().to_le_bytes());
    buf.extend_from_slice(&(array.len() as u64).to_le_bytes());
    match array {
        MetaArray::U8(v) => buf.extend_from_slice(v),
        MetaArray::I8(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::U16(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::I16(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::U32(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::I32(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::U64(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::I64(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::F32(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::F64(v) => le_items(buf, v, |x| x.to_le_bytes()),
        MetaArray::Bool(v) => le_items(buf, v, |x| [u8::from(*x)]),
        MetaArray::String(v) => v.iter().for_each(|s| encode_string(buf, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str, shape: &[usize], dtype: GgmlType) -> TensorPlan {
        TensorPlan {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
        }
    }

    fn one_key() -> Metadata {
        let mut meta = Metadata::new();
        meta.insert("general.architecture", MetaValue::String("qwen3vl".into()))
            .unwrap();
        meta
    }

    #[test]
    fn header_layout_matches_the_gguf_v3_format() {
        let tensors = vec![plan("a", &[2, 3], GgmlType::F32)];
        let mut writer = GgufWriter::new(Vec::new(), &one_key(), tensors).unwrap();
        writer.write_tensor("a", &[1u8; 24]).unwrap();
        let bytes = writer.finish().unwrap();

        assert_eq!(&bytes[0..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(bytes[16..24].try_into().unwrap()), 1);
        let key_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
        assert_eq!(&bytes[32..32 + key_len], b"general.architecture");
        // tensor info after the key/value: name, n_dims, ne reversed (3, 2), type, offset
        let info = 32 + key_len + 4 + 8 + "qwen3vl".len();
        assert_eq!(&bytes[info + 8..info + 9], b"a");
        let dims = &bytes[info + 9..];
        assert_eq!(u32::from_le_bytes(dims[0..4].try_into().unwrap()), 2);
        assert_eq!(u64::from_le_bytes(dims[4..12].try_into().unwrap()), 3);
        assert_eq!(u64::from_le_bytes(dims[12..20].try_into().unwrap()), 2);
        assert_eq!(u32::from_le_bytes(dims[20..24].try_into().unwrap()), 0);
        assert_eq!(u64::from_le_bytes(dims[24..32].try_into().unwrap()), 0);
        // data starts aligned and the file ends padded
        assert_eq!(bytes.len() % 32, 0);
        assert_eq!(&bytes[bytes.len() - 32..bytes.len() - 8], &[1u8; 24]);
    }

    #[test]
    fn data_offsets_are_padded_to_the_alignment() {
        let tensors = vec![
            plan("a", &[3], GgmlType::F32),
            plan("b", &[1], GgmlType::F16),
        ];
        let mut writer = GgufWriter::new(Vec::new(), &Metadata::new(), tensors).unwrap();
        writer.write_tensor("a", &[7u8; 12]).unwrap();
        let second_data_start = writer.position() as usize;
        writer.write_tensor("b", &[9u8; 2]).unwrap();
        let bytes = writer.finish().unwrap();
        assert_eq!(second_data_start % 32, 0);
        assert_eq!(
            &bytes[second_data_start - 32..second_data_start - 20],
            &[7u8; 12]
        );
        assert_eq!(&bytes[second_data_start..second_data_start + 2], &[9u8; 2]);
    }

    #[test]
    fn tensors_must_arrive_in_plan_order_with_exact_sizes() {
        let tensors = vec![
            plan("a", &[2], GgmlType::F32),
            plan("b", &[2], GgmlType::F32),
        ];
        let mut writer = GgufWriter::new(Vec::new(), &Metadata::new(), tensors).unwrap();
        let err = writer.begin_tensor("b").unwrap_err().to_string();
        assert_eq!(err, "tensor 'b' written out of order: expected 'a'");
        writer.begin_tensor("a").unwrap();
        assert!(writer.write_data(&[0u8; 9]).is_err());
        writer.write_data(&[0u8; 4]).unwrap();
        let err = writer.end_tensor().unwrap_err().to_string();
        assert_eq!(err, "tensor 'a': only 4 of 8 bytes written");
    }

    #[test]
    fn finishing_early_names_the_first_missing_tensor() {
        let tensors = vec![
            plan("a", &[2], GgmlType::F32),
            plan("b", &[2], GgmlType::F32),
        ];
        let mut writer = GgufWriter::new(Vec::new(), &Metadata::new(), tensors).unwrap();
        writer.write_tensor("a", &[0u8; 8]).unwrap();
        let err = writer.finish().unwrap_err().to_string();
        assert_eq!(
            err,
            "GGUF file incomplete: tensor 'b' and 0 more were never written"
        );
    }

    #[test]
    fn invalid_plans_are_rejected() {
        let meta = Metadata::new();
        let long = "x".repeat(64);
        assert!(
            GgufWriter::new(Vec::new(), &meta, vec![plan(&long, &[1], GgmlType::F32)]).is_err()
        );
        assert!(
            GgufWriter::new(Vec::new(), &meta, vec![plan("a", &[1; 5], GgmlType::F32)]).is_err()
        );
        let twice = vec![
            plan("a", &[1], GgmlType::F32),
            plan("a", &[1], GgmlType::F32),
        ];
        assert!(GgufWriter::new(Vec::new(), &meta, twice).is_err());
        assert!(
            GgufWriter::new(Vec::new(), &meta, vec![plan("q", &[33], GgmlType::Q8_0)]).is_err()
        );
    }
}
