//! The GGUF format, from the `glimpse-gguf` crate: zero-copy reading (`GgufFile::open`
//! memory-maps a file and validates its whole header), the writer, ggml types, metadata
//! values and key names. Re-exported here so the runtime's modules and its users name one
//! path; the header parser's fuzz target lives here, beside glimpse's fuzz harness.
pub use glimpse_gguf::{
    decode_into, describe, keys, parse_header, GgmlType, GgufError, GgufFile, GgufWriter, Header,
    MetaArray, MetaValue, MetaValueType, Metadata, TensorInfo, TensorPlan, TensorView,
};

#[cfg(test)]
mod tests {
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
