//! Parsing and validation of a GGUF v2/v3 header: magic, version, metadata key/values and
//! tensor infos, then the data section's placement. Every tensor's byte range is checked to
//! lie inside the file and not to overlap another, so views handed out later are always valid.
use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use glimpse_convert::{
    keys, GgmlType, MetaArray, MetaValue, MetaValueType, Metadata, GGUF_MAGIC, MAX_DIMS,
};

use super::byte_cursor::ByteCursor;
use super::tensor_info::TensorInfo;

/// Smallest possible metadata entry: empty key (8) + type (4) + one-byte value.
const MIN_KV_BYTES: usize = 13;
/// Smallest possible tensor info: empty name (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
const MIN_TENSOR_INFO_BYTES: usize = 32;

pub(super) struct Header {
    pub(super) version: u32,
    pub(super) metadata: Metadata,
    pub(super) tensors: Vec<TensorInfo>,
    pub(super) alignment: usize,
    pub(super) data_start: usize,
}

pub(super) fn parse_header(bytes: &[u8]) -> Result<Header> {
    let mut cursor = ByteCursor::new(bytes);
    let magic = cursor.take(GGUF_MAGIC.len())?;
    if magic != GGUF_MAGIC {
        bail!("not a GGUF file (bad magic)");
    }
    let version = cursor.u32()?;
    if version != 2 && version != 3 {
        let hint = if matches!(version.swap_bytes(), 2 | 3) {
            " (a big-endian file?)"
        } else {
            ""
        };
        bail!("unsupported GGUF version {version}{hint}: glimpse reads versions 2 and 3");
    }
    let n_tensors = cursor.u64()?;
    let n_kv = cursor.count("metadata entry count", MIN_KV_BYTES)?;
    let n_tensors = cursor.check_count("tensor count", n_tensors, MIN_TENSOR_INFO_BYTES)?;

    let mut metadata = Metadata::new();
    for index in 0..n_kv {
        let key = cursor
            .string()
            .with_context(|| format!("reading the key of metadata entry {index}"))?;
        let value = read_value(&mut cursor).with_context(|| format!("reading metadata '{key}'"))?;
        metadata.insert(key, value)?;
    }
    let alignment = alignment(&metadata)?;

    let mut raw_infos = Vec::new();
    for index in 0..n_tensors {
        raw_infos.push(
            read_tensor_info(&mut cursor)
                .with_context(|| format!("reading tensor info {index}"))?,
        );
    }
    let data_start = cursor
        .position()
        .checked_next_multiple_of(alignment)
        .context("data section offset overflows")?;
    let tensors = place_tensors(raw_infos, alignment, data_start, bytes.len())?;
    Ok(Header {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

fn alignment(metadata: &Metadata) -> Result<usize> {
    match metadata.get_u32_opt(keys::general::ALIGNMENT)? {
        None => Ok(keys::DEFAULT_ALIGNMENT as usize),
        Some(a) if a.is_power_of_two() => Ok(a as usize),
        Some(a) => bail!("general.alignment {a} is not a power of two"),
    }
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
        MetaValueType::Array => bail!("nested arrays are not supported"),
    })
}

fn read_array(cursor: &mut ByteCursor) -> Result<MetaArray> {
    let element_type = MetaValueType::from_id(cursor.u32()?)?;
    if element_type == MetaValueType::Array {
        bail!("nested arrays are not supported");
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
        MetaValueType::Array => bail!("nested arrays are not supported"),
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
        bail!("tensor '{name}' has {n_dims} dimensions; GGUF allows 1 to {MAX_DIMS}");
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
            bail!("duplicate tensor name '{name}'");
        }
        let dtype = GgmlType::from_id(info.type_id).with_context(|| format!("tensor '{name}'"))?;
        let shape = info
            .ne
            .iter()
            .rev()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<usize>, _>>()
            .with_context(|| format!("tensor '{name}': dimension does not fit in memory"))?;
        let n_bytes = dtype
            .tensor_byte_size(&shape)
            .with_context(|| format!("tensor '{name}'"))?;
        if info.offset % alignment as u64 != 0 {
            bail!(
                "tensor '{name}': data offset {} is not a multiple of the alignment {alignment}",
                info.offset
            );
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
            _ => bail!(
                "tensor '{name}': data ({}..{}) runs past end of file ({file_len})",
                data_start as u128 + info.offset as u128,
                data_start as u128 + info.offset as u128 + n_bytes as u128
            ),
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
            bail!(
                "tensors '{}' and '{}' overlap in the data section",
                first.name,
                second.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use glimpse_convert::{GgufWriter, MetaArray, TensorPlan};

    use super::*;

    /// A small valid GGUF: metadata of several types (arrays and strings included) and
    /// tensors of several element types.
    fn seed_file(alignment: Option<u32>) -> Vec<u8> {
        let mut metadata = Metadata::new();
        let entries = [
            ("general.architecture", MetaValue::String("qwen3vl".into())),
            ("qwen3vl.block_count", MetaValue::U32(2)),
            ("t.f32", MetaValue::F32(0.5)),
            ("t.bool", MetaValue::Bool(true)),
            (
                "a.tokens",
                MetaValue::Array(MetaArray::String(vec!["Ġa".into(), "<|im_end|>".into()])),
            ),
            ("a.i32", MetaValue::Array(MetaArray::I32(vec![24, 20, 20]))),
        ];
        for (key, value) in entries {
            metadata.insert(key, value).unwrap();
        }
        if let Some(alignment) = alignment {
            metadata
                .insert(keys::general::ALIGNMENT, MetaValue::U32(alignment))
                .unwrap();
        }
        let tensors = [
            ("a.weight", vec![2, 3], GgmlType::F32, vec![1u8; 24]),
            ("b.weight", vec![4], GgmlType::F16, vec![2u8; 8]),
            ("q.weight", vec![1, 32], GgmlType::Q8_0, vec![3u8; 34]),
        ];
        let plans = tensors
            .iter()
            .map(|(name, shape, dtype, _)| TensorPlan {
                name: (*name).into(),
                shape: shape.clone(),
                dtype: *dtype,
            })
            .collect();
        let mut writer = GgufWriter::new(Vec::new(), &metadata, plans).unwrap();
        for (name, _, _, bytes) in &tensors {
            writer.write_tensor(name, bytes).unwrap();
        }
        writer.finish().unwrap()
    }

    #[test]
    fn the_seeds_parse() {
        for alignment in [None, Some(64)] {
            let header = parse_header(&seed_file(alignment)).unwrap();
            assert_eq!(header.tensors.len(), 3);
        }
    }

    #[test]
    fn fuzz_gguf_header() {
        let seeds = vec![seed_file(None), seed_file(Some(64))];
        let inputs = crate::fuzz::fuzz("gguf_header", &seeds, |bytes| {
            let _ = parse_header(bytes);
        });
        assert!(inputs > seeds.len());
    }
}
