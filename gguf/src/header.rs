//! Parsing and validation of a GGUF v2/v3 header: magic, version, metadata key/values and
//! tensor infos, then the data section's placement. Every tensor's byte range is checked to
//! lie inside the file and not to overlap another, so views handed out later are always valid.
use std::collections::HashSet;

use crate::byte_cursor::ByteCursor;
use crate::error::{GgufError, Result};
use crate::format::{data_alignment, GGUF_MAGIC, MAX_DIMS, READABLE_VERSIONS};
use crate::ggml_type::GgmlType;
use crate::meta_value::{MetaArray, MetaValue, MetaValueType};
use crate::metadata::Metadata;
use crate::tensor_info::TensorInfo;

/// Smallest possible metadata entry: empty key (8) + type (4) + one-byte value.
const MIN_KV_BYTES: usize = 13;
/// Smallest possible tensor info: empty name (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: usize = 32;

/// A parsed and validated header: every tensor's byte range lies inside the bytes parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u32,
    pub metadata: Metadata,
    /// Every tensor, in file order.
    pub tensors: Vec<TensorInfo>,
    pub alignment: usize,
    /// Offset where the tensor data section begins.
    pub data_start: usize,
}

/// Parses the header of the GGUF file whose whole contents are `bytes`. Never panics,
/// whatever the bytes.
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut cursor = ByteCursor::new(bytes);
    let magic = cursor.take(GGUF_MAGIC.len())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic);
    }
    let version = cursor.u32()?;
    if !READABLE_VERSIONS.contains(&version) {
        return Err(GgufError::UnsupportedVersion { version });
    }
    let n_tensors = cursor.u64()?;
    let n_kv = cursor.count("metadata entry count", MIN_KV_BYTES)?;
    let n_tensors = cursor.check_count("tensor count", n_tensors, MIN_TENSOR_INFO_BYTES)?;

    let mut metadata = Metadata::new();
    for index in 0..n_kv {
        let key = cursor.string().map_err(|e| GgufError::InMetadataKey {
            index,
            source: Box::new(e),
        })?;
        match read_value(&mut cursor) {
            Ok(value) => metadata.insert(key, value)?,
            Err(e) => {
                return Err(GgufError::InMetadataValue {
                    key,
                    source: Box::new(e),
                })
            }
        }
    }
    let alignment = data_alignment(&metadata)?;

    let mut raw_infos = Vec::new();
    for index in 0..n_tensors {
        raw_infos.push(
            read_tensor_info(&mut cursor).map_err(|e| GgufError::InTensorInfo {
                index,
                source: Box::new(e),
            })?,
        );
    }
    let data_start = cursor
        .position()
        .checked_next_multiple_of(alignment)
        .ok_or(GgufError::DataStartOverflow)?;
    let tensors = place_tensors(raw_infos, alignment, data_start, bytes.len())?;
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

fn read_value(cursor: &mut ByteCursor) -> Result<MetaValue> {
    let value_type = MetaValueType::from_id(cursor.u32()?)?;
    if value_type == MetaValueType::Array {
        return read_array(cursor).map(MetaValue::Array);
    }
    read_scalar(cursor, value_type)
}

fn read_scalar(cursor: &mut ByteCursor, value_type: MetaValueType) -> Result<MetaValue> {
    Ok(match value_type {
        MetaValueType::U8 => MetaValue::U8(cursor.u8()?),
        MetaValueType::I8 => MetaValue::I8(cursor.i8()?),
        MetaValueType::U16 => MetaValue::U16(cursor.u16()?),
        MetaValueType::I16 => MetaValue::I16(cursor.i16()?),
        MetaValueType::U32 => MetaValue::U32(cursor.u32()?),
        MetaValueType::I32 => MetaValue::I32(cursor.i32()?),
        MetaValueType::U64 => MetaValue::U64(cursor.u64()?),
        MetaValueType::I64 => MetaValue::I64(cursor.i64()?),
        MetaValueType::F32 => MetaValue::F32(cursor.f32()?),
        MetaValueType::F64 => MetaValue::F64(cursor.f64()?),
        MetaValueType::Bool => MetaValue::Bool(cursor.bool()?),
        MetaValueType::String => MetaValue::String(cursor.string()?),
        MetaValueType::Array => return Err(GgufError::NestedArray),
    })
}

fn read_array(cursor: &mut ByteCursor) -> Result<MetaArray> {
    let element_type = MetaValueType::from_id(cursor.u32()?)?;
    if element_type == MetaValueType::Array {
        return Err(GgufError::NestedArray);
    }
    // A string element is at least its 8-byte length.
    let min_element_bytes = element_type.fixed_size().unwrap_or(8);
    let len = cursor.count("array length", min_element_bytes)?;
    fn collect<T>(len: usize, mut read: impl FnMut() -> Result<T>) -> Result<Vec<T>> {
        (0..len).map(|_| read()).collect()
    }
    Ok(match element_type {
        MetaValueType::U8 => MetaArray::U8(cursor.take(len)?.to_vec()),
        MetaValueType::I8 => MetaArray::I8(collect(len, || cursor.i8())?),
        MetaValueType::U16 => MetaArray::U16(collect(len, || cursor.u16())?),
        MetaValueType::I16 => MetaArray::I16(collect(len, || cursor.i16())?),
        MetaValueType::U32 => MetaArray::U32(collect(len, || cursor.u32())?),
        MetaValueType::I32 => MetaArray::I32(collect(len, || cursor.i32())?),
        MetaValueType::U64 => MetaArray::U64(collect(len, || cursor.u64())?),
        MetaValueType::I64 => MetaArray::I64(collect(len, || cursor.i64())?),
        MetaValueType::F32 => MetaArray::F32(collect(len, || cursor.f32())?),
        MetaValueType::F64 => MetaArray::F64(collect(len, || cursor.f64())?),
        MetaValueType::Bool => MetaArray::Bool(collect(len, || cursor.bool())?),
        MetaValueType::String => MetaArray::String(collect(len, || cursor.string())?),
        MetaValueType::Array => return Err(GgufError::NestedArray),
    })
}

/// A tensor info as stored: name, ggml-order dims, type id, offset into the data section.
struct RawTensorInfo {
    name: String,
    ne: Vec<u64>,
    type_id: u32,
    offset: u64,
}

fn read_tensor_info(cursor: &mut ByteCursor) -> Result<RawTensorInfo> {
    let name = cursor.string()?;
    let n_dims = cursor.u32()? as usize;
    if n_dims == 0 || n_dims > MAX_DIMS {
        return Err(GgufError::BadDimensionCount { name, n_dims });
    }
    let ne = (0..n_dims)
        .map(|_| cursor.u64())
        .collect::<Result<Vec<u64>>>()?;
    let type_id = cursor.u32()?;
    let offset = cursor.u64()?;
    Ok(RawTensorInfo {
        name,
        ne,
        type_id,
        offset,
    })
}

/// Validates each tensor's type, shape and byte range and returns the infos in file order.
fn place_tensors(
    raw: Vec<RawTensorInfo>,
    alignment: usize,
    data_start: usize,
    file_len: usize,
) -> Result<Vec<TensorInfo>> {
    let mut names = HashSet::new();
    let mut tensors = Vec::with_capacity(raw.len());
    for info in raw {
        let name = info.name;
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor(name));
        }
        let dtype = match GgmlType::from_id(info.type_id) {
            Ok(dtype) => dtype,
            Err(e) => return Err(e.in_tensor(name)),
        };
        let shape = match info
            .ne
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
        {
            Ok(shape) => shape,
            Err(source) => return Err(GgufError::DimensionTooLarge { name, source }),
        };
        let n_bytes = match dtype.tensor_byte_size(&shape) {
            Ok(n_bytes) => n_bytes,
            Err(e) => return Err(e.in_tensor(name)),
        };
        if info.offset % alignment as u64 != 0 {
            return Err(GgufError::MisalignedData {
                name,
                offset: info.offset,
                alignment,
            });
        }
        let start = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(data_start));
        let end = start.and_then(|s| s.checked_add(n_bytes));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_len => tensors.push(TensorInfo {
                name,
                dtype,
                shape,
                data_offset: start,
                n_bytes,
            }),
            _ => {
                return Err(GgufError::DataPastEnd {
                    name,
                    start: data_start as u128 + info.offset as u128,
                    end: data_start as u128 + info.offset as u128 + n_bytes as u128,
                    file_len,
                })
            }
        }
    }
    check_no_overlap(&tensors)?;
    Ok(tensors)
}

fn check_no_overlap(tensors: &[TensorInfo]) -> Result<()> {
    let mut by_start: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
    by_start.sort_by_key(|t| t.data_offset);
    for pair in by_start.windows(2) {
        let (first, second) = (pair[0], pair[1]);
        if second.data_offset < first.data_offset + first.n_bytes {
            return Err(GgufError::Overlap {
                first: first.name.clone(),
                second: second.name.clone(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writer::{GgufWriter, TensorPlan};

    /// One key and two tensors, the second's data padded to a 64-byte alignment.
    fn written() -> Vec<u8> {
        let mut metadata = Metadata::new();
        metadata
            .insert(crate::keys::general::ALIGNMENT, MetaValue::U32(64))
            .unwrap();
        let plans = vec![
            TensorPlan {
                name: "a".into(),
                shape: vec![3],
                dtype: GgmlType::F32,
            },
            TensorPlan {
                name: "b".into(),
                shape: vec![2, 32],
                dtype: GgmlType::Q8_0,
            },
        ];
        let mut writer = GgufWriter::new(Vec::new(), &metadata, plans).unwrap();
        writer.write_tensor("a", &[1; 12]).unwrap();
        writer.write_tensor("b", &[2; 68]).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn the_writers_output_parses_back() {
        let bytes = written();
        let header = parse_header(&bytes).unwrap();
        assert_eq!((header.version, header.alignment), (3, 64));
        assert_eq!(header.data_start % 64, 0);
        let b = &header.tensors[1];
        assert_eq!(
            (b.name.as_str(), b.dtype, &b.shape[..]),
            ("b", GgmlType::Q8_0, &[2, 32][..])
        );
        assert_eq!((b.data_offset, b.n_bytes), (header.data_start + 64, 68));
        assert_eq!(&bytes[b.data_offset..b.data_offset + 68], &[2; 68]);
    }

    #[test]
    fn each_kind_of_damage_has_its_own_error() {
        let bytes = written();
        let mut magic = bytes.clone();
        magic[0] = b'X';
        assert!(matches!(parse_header(&magic), Err(GgufError::BadMagic)));
        let mut version = bytes.clone();
        version[4..8].copy_from_slice(&3u32.to_be_bytes());
        assert!(matches!(
            parse_header(&version),
            Err(GgufError::UnsupportedVersion {
                version: 0x0300_0000
            })
        ));
        assert!(matches!(
            parse_header(&bytes[..6]),
            Err(GgufError::Truncated {
                needed: 4,
                offset: 4,
                file_len: 6
            })
        ));
        // The file ends padded; cut inside b's data.
        let cut = parse_header(&bytes).unwrap().tensors[1].data_offset + 67;
        match parse_header(&bytes[..cut]) {
            Err(GgufError::DataPastEnd { name, file_len, .. }) => {
                assert_eq!((name.as_str(), file_len), ("b", cut));
            }
            other => panic!("{other:?}"),
        }
    }
}
