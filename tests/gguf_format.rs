//! The GGUF format layer end to end: glimpse-convert's writer → glimpse's reader round trips,
//! the reader's specific error for each kind of corrupt file, and converting tiny Hugging Face
//! Qwen3-VL checkpoints built here with the `safetensors` crate (names, shapes, values,
//! metadata, tied/untied output, f16 output, and the conversion errors).
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use glimpse::gguf::{describe, keys, GgmlType, GgufFile, MetaArray, MetaValue, Metadata};
use glimpse_convert::{convert, ConvertOptions, GgufWriter, OutType, TensorPlan};
use half::{bf16, f16};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// scratch space

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

struct TestDir(PathBuf);

impl TestDir {
    fn new(label: &str) -> TestDir {
        let id = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("glimpse-gguf-{label}-{}-{id}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The full error chain, as `glimpse` prints it.
fn chain(err: anyhow::Error) -> String {
    format!("{err:#}")
}

// ---------------------------------------------------------------------------------------------
// writing GGUF files directly

struct RawTensor {
    name: &'static str,
    shape: Vec<usize>,
    dtype: GgmlType,
    bytes: Vec<u8>,
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn write_gguf(path: &Path, metadata: &Metadata, tensors: &[RawTensor]) {
    let plans = tensors
        .iter()
        .map(|t| TensorPlan {
            name: t.name.into(),
            shape: t.shape.clone(),
            dtype: t.dtype,
        })
        .collect();
    let file = std::fs::File::create(path).unwrap();
    let mut writer = GgufWriter::new(std::io::BufWriter::new(file), metadata, plans).unwrap();
    for tensor in tensors {
        writer.write_tensor(tensor.name, &tensor.bytes).unwrap();
    }
    writer.finish().unwrap();
}

fn every_metadata_type() -> Metadata {
    let mut meta = Metadata::new();
    let entries = [
        ("general.architecture", MetaValue::String("qwen3vl".into())),
        ("t.u8", MetaValue::U8(200)),
        ("t.i8", MetaValue::I8(-100)),
        ("t.u16", MetaValue::U16(60_000)),
        ("t.i16", MetaValue::I16(-30_000)),
        ("t.u32", MetaValue::U32(4_000_000_000)),
        ("t.i32", MetaValue::I32(-2_000_000_000)),
        ("t.u64", MetaValue::U64(u64::MAX - 1)),
        ("t.i64", MetaValue::I64(i64::MIN + 1)),
        ("t.f32", MetaValue::F32(1e-6)),
        ("t.f64", MetaValue::F64(std::f64::consts::PI)),
        ("t.bool", MetaValue::Bool(true)),
        ("t.string", MetaValue::String("héllo\n{{ jinja }}".into())),
        ("t.empty_string", MetaValue::String(String::new())),
        ("a.u8", MetaValue::Array(MetaArray::U8(vec![0, 255]))),
        ("a.i8", MetaValue::Array(MetaArray::I8(vec![-1, 1]))),
        ("a.u16", MetaValue::Array(MetaArray::U16(vec![1, 65535]))),
        ("a.i16", MetaValue::Array(MetaArray::I16(vec![-2, 2]))),
        (
            "a.u32",
            MetaValue::Array(MetaArray::U32(vec![151645, 151643])),
        ),
        (
            "a.i32",
            MetaValue::Array(MetaArray::I32(vec![24, 20, 20, 0])),
        ),
        ("a.u64", MetaValue::Array(MetaArray::U64(vec![u64::MAX]))),
        ("a.i64", MetaValue::Array(MetaArray::I64(vec![i64::MIN]))),
        ("a.f32", MetaValue::Array(MetaArray::F32(vec![0.5, -0.25]))),
        ("a.f64", MetaValue::Array(MetaArray::F64(vec![1e300]))),
        (
            "a.bool",
            MetaValue::Array(MetaArray::Bool(vec![false, true, false])),
        ),
        (
            "a.string",
            MetaValue::Array(MetaArray::String(vec![
                "Ġa".into(),
                String::new(),
                "<|im_end|>".into(),
            ])),
        ),
        ("a.empty", MetaValue::Array(MetaArray::F32(Vec::new()))),
    ];
    for (key, value) in entries {
        meta.insert(key, value).unwrap();
    }
    meta
}

fn sample_tensors() -> Vec<RawTensor> {
    let f16_values: Vec<u8> = [1.0f32, -2.5, 0.125, 65504.0]
        .iter()
        .flat_map(|&v| f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16_values: Vec<u8> = [3.0f32, -0.5]
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect();
    vec![
        RawTensor {
            name: "a.weight",
            shape: vec![2, 3],
            dtype: GgmlType::F32,
            bytes: f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        },
        RawTensor {
            name: "b.weight",
            shape: vec![4],
            dtype: GgmlType::F16,
            bytes: f16_values,
        },
        RawTensor {
            name: "c.weight",
            shape: vec![1, 2],
            dtype: GgmlType::BF16,
            bytes: bf16_values,
        },
        RawTensor {
            name: "q.weight",
            shape: vec![1, 32],
            dtype: GgmlType::Q8_0,
            bytes: vec![7; 34],
        },
    ]
}

/// A valid file with every metadata type and the sample tensors; returns its bytes too.
fn sample_file(dir: &TestDir) -> (PathBuf, Vec<u8>) {
    let path = dir.path().join("sample.gguf");
    write_gguf(&path, &every_metadata_type(), &sample_tensors());
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

// ---------------------------------------------------------------------------------------------
// round trip

#[test]
fn every_metadata_type_survives_a_round_trip() {
    let dir = TestDir::new("round-trip-meta");
    let (path, _) = sample_file(&dir);
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.version(), 3);
    assert_eq!(file.alignment(), 32);
    assert_eq!(file.metadata(), &every_metadata_type());
    assert_eq!(file.architecture().unwrap(), "qwen3vl");
}

#[test]
fn tensors_survive_a_round_trip_with_zero_copy_views() {
    let dir = TestDir::new("round-trip-tensors");
    let (path, _) = sample_file(&dir);
    let file = GgufFile::open(&path).unwrap();

    let names: Vec<&str> = file
        .tensor_infos()
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(names, ["a.weight", "b.weight", "c.weight", "q.weight"]);
    for info in file.tensor_infos() {
        assert_eq!(info.data_offset % 32, 0, "{} is not aligned", info.name);
    }

    let a = file.tensor("a.weight").unwrap();
    assert_eq!(
        (a.dtype, a.shape.as_slice(), a.n_elements()),
        (GgmlType::F32, &[2usize, 3][..], 6)
    );
    let values = a.as_f32().unwrap();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let map_range = file.bytes().as_ptr_range();
    assert!(
        map_range.contains(&(values.as_ptr() as *const u8)),
        "as_f32 must borrow the map"
    );

    let b = file.tensor("b.weight").unwrap();
    let halves: Vec<f32> = b.as_f16().unwrap().iter().map(|h| h.to_f32()).collect();
    assert_eq!(halves, [1.0, -2.5, 0.125, 65504.0]);
    assert_eq!(b.to_f32_vec().unwrap(), halves);
    assert_eq!(
        file.tensor("c.weight").unwrap().to_f32_vec().unwrap(),
        [3.0, -0.5]
    );

    let q = file.tensor("q.weight").unwrap();
    assert_eq!((q.dtype, q.data), (GgmlType::Q8_0, &[7u8; 34][..]));
    // Block types dequantize: d = f16 bits 0x0707, every quant 7.
    let d = half::f16::from_bits(0x0707).to_f32();
    assert_eq!(q.to_f32_vec().unwrap(), vec![d * 7.0; 32]);
}

#[test]
fn typed_views_refuse_the_wrong_element_type() {
    let dir = TestDir::new("wrong-view");
    let (path, _) = sample_file(&dir);
    let file = GgufFile::open(&path).unwrap();
    let err = file.tensor("b.weight").unwrap().as_f32().unwrap_err();
    assert_eq!(err.to_string(), "tensor 'b.weight' is F16, expected F32");
    assert!(file.tensor("a.weight").unwrap().as_f16().is_err());
}

#[test]
fn missing_tensors_and_keys_are_named() {
    let dir = TestDir::new("missing");
    let (path, _) = sample_file(&dir);
    let file = GgufFile::open(&path).unwrap();
    let err = file.tensor("blk.3.attn_q.weight").unwrap_err();
    assert_eq!(err.to_string(), "missing tensor 'blk.3.attn_q.weight'");
    assert!(!file.has_tensor("blk.3.attn_q.weight"));
    // metadata getters work on the file itself
    assert_eq!(file.get_u32("t.u32").unwrap(), 4_000_000_000);
    assert_eq!(file.get_u32_array("a.i32").unwrap(), [24, 20, 20, 0]);
    assert_eq!(file.get_bool_array("a.bool").unwrap(), [false, true, false]);
    assert_eq!(file.get_str_array("a.string").unwrap()[0], "Ġa");
    assert_eq!(file.get_f32_array("a.f32").unwrap(), [0.5, -0.25]);
    assert_eq!(
        file.get_u32("qwen3vl.block_count").unwrap_err().to_string(),
        "missing metadata key 'qwen3vl.block_count'"
    );
    assert!(file
        .get_str("t.u8")
        .unwrap_err()
        .to_string()
        .contains("'t.u8' is u8"));
    assert_eq!(file.get_f32_opt("absent").unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// corrupt files

fn open_bytes(dir: &TestDir, name: &str, bytes: &[u8]) -> anyhow::Result<GgufFile> {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    Ok(GgufFile::open(&path)?)
}

fn open_err(dir: &TestDir, name: &str, bytes: &[u8]) -> String {
    match open_bytes(dir, name, bytes) {
        Ok(_) => panic!("{name}: corrupt file opened without error"),
        Err(err) => chain(err),
    }
}

/// Byte offset just after the first occurrence of `needle`.
fn after(bytes: &[u8], needle: &[u8]) -> usize {
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
        + needle.len()
}

/// Offset of a tensor info's fields after its name: (n_dims, first ne, type, offset).
fn tensor_info_fields(bytes: &[u8], name: &str, n_dims: usize) -> (usize, usize, usize) {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    let n_dims_at = after(bytes, &needle);
    let type_at = n_dims_at + 4 + 8 * n_dims;
    (n_dims_at, type_at, type_at + 4)
}

fn patch(bytes: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut patched = bytes.to_vec();
    patched[at..at + value.len()].copy_from_slice(value);
    patched
}

#[test]
fn bad_magic_is_reported() {
    let dir = TestDir::new("magic");
    let (_, bytes) = sample_file(&dir);
    let err = open_err(&dir, "magic.gguf", &patch(&bytes, 0, b"GGML"));
    assert!(err.ends_with("not a GGUF file (bad magic)"), "{err}");
    assert!(
        err.contains("magic.gguf"),
        "the error names the file: {err}"
    );
}

#[test]
fn unsupported_versions_are_reported() {
    let dir = TestDir::new("version");
    let (_, bytes) = sample_file(&dir);
    let err = open_err(&dir, "v1.gguf", &patch(&bytes, 4, &1u32.to_le_bytes()));
    assert!(err.contains("unsupported GGUF version 1"), "{err}");
    let err = open_err(&dir, "v4.gguf", &patch(&bytes, 4, &4u32.to_le_bytes()));
    assert!(err.contains("unsupported GGUF version 4"), "{err}");
    let err = open_err(&dir, "be.gguf", &patch(&bytes, 4, &3u32.to_be_bytes()));
    assert!(err.contains("big-endian"), "{err}");
    let v2 = patch(&bytes, 4, &2u32.to_le_bytes());
    assert!(
        open_bytes(&dir, "v2.gguf", &v2).is_ok(),
        "version 2 has the same layout and is accepted"
    );
}

#[test]
fn truncation_anywhere_in_the_header_is_reported() {
    let dir = TestDir::new("truncated-header");
    let (_, bytes) = sample_file(&dir);
    let data_start = GgufFile::open(dir.path().join("sample.gguf"))
        .unwrap()
        .data_start();
    let tensor_infos_start = after(&bytes, b"a.weight") - 8 - "a.weight".len();
    let cuts = [
        0,
        3,
        4,
        6,
        10,
        20,
        30,
        100,
        tensor_infos_start - 1,
        tensor_infos_start + 5,
        data_start - 40,
    ];
    for cut in cuts {
        let err = open_err(&dir, &format!("cut{cut}.gguf"), &bytes[..cut]);
        assert!(err.contains("truncated GGUF header"), "cut at {cut}: {err}");
    }
}

#[test]
fn truncation_in_the_data_section_names_the_tensor() {
    let dir = TestDir::new("truncated-data");
    let (_, bytes) = sample_file(&dir);
    let file = GgufFile::open(dir.path().join("sample.gguf")).unwrap();
    let last = file.tensor_infos().last().unwrap().clone();
    let cut = last.data_offset + 10;
    let err = open_err(&dir, "cut-data.gguf", &bytes[..cut]);
    let expected = format!(
        "tensor 'q.weight': data ({}..{}) runs past end of file ({cut})",
        last.data_offset,
        last.data_offset + 34
    );
    assert!(err.ends_with(&expected), "{err}");
}

#[test]
fn a_tensor_offset_beyond_the_file_is_reported() {
    let dir = TestDir::new("offset-past-end");
    let (_, bytes) = sample_file(&dir);
    let (_, _, offset_at) = tensor_info_fields(&bytes, "a.weight", 2);
    let err = open_err(
        &dir,
        "far.gguf",
        &patch(&bytes, offset_at, &(1u64 << 40).to_le_bytes()),
    );
    assert!(
        err.contains("tensor 'a.weight': data (") && err.contains("runs past end of file"),
        "{err}"
    );
    let err = open_err(
        &dir,
        "max.gguf",
        &patch(&bytes, offset_at, &(u64::MAX - 31).to_le_bytes()),
    );
    assert!(err.contains("runs past end of file"), "{err}");
}

#[test]
fn overlapping_tensors_are_reported() {
    let dir = TestDir::new("overlap");
    let (_, bytes) = sample_file(&dir);
    let (_, _, offset_at) = tensor_info_fields(&bytes, "b.weight", 1);
    let err = open_err(
        &dir,
        "overlap.gguf",
        &patch(&bytes, offset_at, &0u64.to_le_bytes()),
    );
    assert!(
        err.ends_with("tensors 'a.weight' and 'b.weight' overlap in the data section"),
        "{err}"
    );
}

#[test]
fn misaligned_offsets_are_reported() {
    let dir = TestDir::new("misaligned");
    let (_, bytes) = sample_file(&dir);
    let (_, _, offset_at) = tensor_info_fields(&bytes, "b.weight", 1);
    let err = open_err(
        &dir,
        "misaligned.gguf",
        &patch(&bytes, offset_at, &33u64.to_le_bytes()),
    );
    assert!(
        err.ends_with("tensor 'b.weight': data offset 33 is not a multiple of the alignment 32"),
        "{err}"
    );
}

#[test]
fn absurd_counts_are_rejected_before_allocation() {
    let dir = TestDir::new("absurd");
    let (_, bytes) = sample_file(&dir);
    let err = open_err(
        &dir,
        "tensors.gguf",
        &patch(&bytes, 8, &u64::MAX.to_le_bytes()),
    );
    assert!(err.contains("absurd tensor count"), "{err}");
    let err = open_err(
        &dir,
        "kv.gguf",
        &patch(&bytes, 16, &(1u64 << 60).to_le_bytes()),
    );
    assert!(err.contains("absurd metadata entry count"), "{err}");

    // the length of the "a.string" array, just after its key, value type (9) and element type (8)
    let array_len_at = after(&bytes, b"a.string") + 8;
    let err = open_err(
        &dir,
        "array.gguf",
        &patch(&bytes, array_len_at, &(1u64 << 62).to_le_bytes()),
    );
    assert!(
        err.contains("reading metadata 'a.string'") && err.contains("absurd array length"),
        "{err}"
    );

    // the length prefix of the first key
    let err = open_err(
        &dir,
        "string.gguf",
        &patch(&bytes, 24, &(u64::MAX / 2).to_le_bytes()),
    );
    assert!(err.contains("absurd string length"), "{err}");
}

#[test]
fn bad_tensor_infos_are_reported() {
    let dir = TestDir::new("bad-infos");
    let (_, bytes) = sample_file(&dir);
    let (n_dims_at, type_at, _) = tensor_info_fields(&bytes, "a.weight", 2);
    let err = open_err(
        &dir,
        "type.gguf",
        &patch(&bytes, type_at, &16u32.to_le_bytes()),
    );
    assert!(
        err.ends_with("tensor 'a.weight': unsupported tensor type IQ2_XXS (16)"),
        "{err}"
    );
    let err = open_err(
        &dir,
        "dims.gguf",
        &patch(&bytes, n_dims_at, &7u32.to_le_bytes()),
    );
    assert!(
        err.contains("tensor 'a.weight' has 7 dimensions; GGUF allows 1 to 4"),
        "{err}"
    );
    let (_, q_type_at, _) = tensor_info_fields(&bytes, "q.weight", 2);
    // ne0 of q.weight (32) becomes 31: not a whole Q8_0 block
    let err = open_err(
        &dir,
        "block.gguf",
        &patch(&bytes, q_type_at - 16, &31u64.to_le_bytes()),
    );
    assert!(
        err.contains("tensor 'q.weight'") && err.contains("block size 32"),
        "{err}"
    );
}

#[test]
fn duplicate_names_and_bad_values_are_reported() {
    let dir = TestDir::new("duplicates");
    let (_, bytes) = sample_file(&dir);
    let err = open_err(
        &dir,
        "dup-key.gguf",
        &patch(&bytes, after(&bytes, b"t.i16") - 3, b"u"),
    );
    assert!(err.ends_with("duplicate metadata key 't.u16'"), "{err}");
    let err = open_err(
        &dir,
        "dup-tensor.gguf",
        &patch(&bytes, after(&bytes, b"b.weight") - 8, b"a"),
    );
    assert!(err.ends_with("duplicate tensor name 'a.weight'"), "{err}");
    let bool_at = after(&bytes, b"t.bool") + 4;
    let err = open_err(&dir, "bool.gguf", &patch(&bytes, bool_at, &[9]));
    assert!(err.contains("invalid bool value 9"), "{err}");
    let type_at = after(&bytes, b"t.u8");
    let err = open_err(
        &dir,
        "value-type.gguf",
        &patch(&bytes, type_at, &99u32.to_le_bytes()),
    );
    assert!(
        err.contains("reading metadata 't.u8'") && err.contains("unknown metadata value type 99"),
        "{err}"
    );
}

#[test]
fn describe_summarizes_a_file() {
    let dir = TestDir::new("describe");
    let (path, _) = sample_file(&dir);
    let text = describe(&GgufFile::open(&path).unwrap());
    assert!(text.contains("architecture: \"qwen3vl\""), "{text}");
    assert!(text.contains("tensors: 4"), "{text}");
    assert!(text.contains("Q8_0"), "{text}");
    assert!(text.contains("vision encoder: none"), "{text}");
    assert!(text.contains("  a.u32 = [151645, 151643]"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// converting tiny Hugging Face checkpoints

const VOCAB_SIZE: usize = 12;
const TEXT_HIDDEN: usize = 16;
const TEXT_FF: usize = 32;
const TEXT_LAYERS: usize = 2;
const HEAD_DIM: usize = 8;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const VISION_HIDDEN: usize = 8;
const VISION_FF: usize = 16;
const VISION_DEPTH: usize = 2;
const PATCH: usize = 4;
const MERGED: usize = VISION_HIDDEN * 4;

fn tiny_config(tied: bool) -> Value {
    json!({
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "model_type": "qwen3_vl",
        "image_token_id": 8,
        "video_token_id": 9,
        "vision_start_token_id": 6,
        "vision_end_token_id": 7,
        "tie_word_embeddings": tied,
        "text_config": {
            "hidden_size": TEXT_HIDDEN, "intermediate_size": TEXT_FF, "num_hidden_layers": TEXT_LAYERS,
            "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
            "rms_norm_eps": 1e-6, "max_position_embeddings": 1024, "vocab_size": VOCAB_SIZE,
            "rope_scaling": {"mrope_interleaved": true, "mrope_section": [2, 1, 1], "rope_type": "default"},
            "rope_theta": 5000000, "tie_word_embeddings": tied,
            "bos_token_id": 3, "eos_token_id": 5, "hidden_act": "silu", "model_type": "qwen3_vl_text"
        },
        "vision_config": {
            "depth": VISION_DEPTH, "hidden_size": VISION_HIDDEN, "intermediate_size": VISION_FF,
            "num_heads": 2, "patch_size": PATCH, "temporal_patch_size": 2, "spatial_merge_size": 2,
            "in_channels": 3, "out_hidden_size": TEXT_HIDDEN, "num_position_embeddings": 4,
            "deepstack_visual_indexes": [1], "hidden_act": "gelu_pytorch_tanh", "model_type": "qwen3_vl"
        }
    })
}

/// Every checkpoint tensor of the tiny model with its shape, written out by hand from the
/// Qwen3-VL layout (independent of the converter's own table).
fn tiny_tensor_shapes(tied: bool) -> Vec<(String, Vec<usize>)> {
    let t = "model.language_model";
    let v = "model.visual";
    let mut shapes = vec![(
        format!("{t}.embed_tokens.weight"),
        vec![VOCAB_SIZE, TEXT_HIDDEN],
    )];
    for l in 0..TEXT_LAYERS {
        let p = format!("{t}.layers.{l}");
        shapes.extend([
            (format!("{p}.input_layernorm.weight"), vec![TEXT_HIDDEN]),
            (
                format!("{p}.post_attention_layernorm.weight"),
                vec![TEXT_HIDDEN],
            ),
            (
                format!("{p}.self_attn.q_proj.weight"),
                vec![HEADS * HEAD_DIM, TEXT_HIDDEN],
            ),
            (
                format!("{p}.self_attn.k_proj.weight"),
                vec![KV_HEADS * HEAD_DIM, TEXT_HIDDEN],
            ),
            (
                format!("{p}.self_attn.v_proj.weight"),
                vec![KV_HEADS * HEAD_DIM, TEXT_HIDDEN],
            ),
            (
                format!("{p}.self_attn.o_proj.weight"),
                vec![TEXT_HIDDEN, HEADS * HEAD_DIM],
            ),
            (format!("{p}.self_attn.q_norm.weight"), vec![HEAD_DIM]),
            (format!("{p}.self_attn.k_norm.weight"), vec![HEAD_DIM]),
            (
                format!("{p}.mlp.gate_proj.weight"),
                vec![TEXT_FF, TEXT_HIDDEN],
            ),
            (
                format!("{p}.mlp.up_proj.weight"),
                vec![TEXT_FF, TEXT_HIDDEN],
            ),
            (
                format!("{p}.mlp.down_proj.weight"),
                vec![TEXT_HIDDEN, TEXT_FF],
            ),
        ]);
    }
    shapes.push((format!("{t}.norm.weight"), vec![TEXT_HIDDEN]));
    if !tied {
        shapes.push(("lm_head.weight".into(), vec![VOCAB_SIZE, TEXT_HIDDEN]));
    }
    shapes.extend([
        (
            format!("{v}.patch_embed.proj.weight"),
            vec![VISION_HIDDEN, 3, 2, PATCH, PATCH],
        ),
        (format!("{v}.patch_embed.proj.bias"), vec![VISION_HIDDEN]),
        (format!("{v}.pos_embed.weight"), vec![4, VISION_HIDDEN]),
    ]);
    let linear = |shapes: &mut Vec<(String, Vec<usize>)>, name: String, out: usize, inp: usize| {
        shapes.push((format!("{name}.weight"), vec![out, inp]));
        shapes.push((format!("{name}.bias"), vec![out]));
    };
    let norm = |shapes: &mut Vec<(String, Vec<usize>)>, name: String, width: usize| {
        shapes.push((format!("{name}.weight"), vec![width]));
        shapes.push((format!("{name}.bias"), vec![width]));
    };
    for b in 0..VISION_DEPTH {
        let p = format!("{v}.blocks.{b}");
        norm(&mut shapes, format!("{p}.norm1"), VISION_HIDDEN);
        norm(&mut shapes, format!("{p}.norm2"), VISION_HIDDEN);
        linear(
            &mut shapes,
            format!("{p}.attn.qkv"),
            3 * VISION_HIDDEN,
            VISION_HIDDEN,
        );
        linear(
            &mut shapes,
            format!("{p}.attn.proj"),
            VISION_HIDDEN,
            VISION_HIDDEN,
        );
        linear(
            &mut shapes,
            format!("{p}.mlp.linear_fc1"),
            VISION_FF,
            VISION_HIDDEN,
        );
        linear(
            &mut shapes,
            format!("{p}.mlp.linear_fc2"),
            VISION_HIDDEN,
            VISION_FF,
        );
    }
    norm(&mut shapes, format!("{v}.merger.norm"), VISION_HIDDEN);
    linear(
        &mut shapes,
        format!("{v}.merger.linear_fc1"),
        MERGED,
        MERGED,
    );
    linear(
        &mut shapes,
        format!("{v}.merger.linear_fc2"),
        TEXT_HIDDEN,
        MERGED,
    );
    norm(
        &mut shapes,
        format!("{v}.deepstack_merger_list.0.norm"),
        MERGED,
    );
    linear(
        &mut shapes,
        format!("{v}.deepstack_merger_list.0.linear_fc1"),
        MERGED,
        MERGED,
    );
    linear(
        &mut shapes,
        format!("{v}.deepstack_merger_list.0.linear_fc2"),
        TEXT_HIDDEN,
        MERGED,
    );
    shapes
}

/// Deterministic bf16-representable values, different for every tensor.
fn tensor_values(name: &str, count: usize) -> Vec<f32> {
    let mut state = name
        .bytes()
        .fold(0x9e37_79b9_u32, |h, b| h.rotate_left(5) ^ u32::from(b));
    (0..count)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            bf16::from_f32((state >> 8) as f32 / (1u32 << 24) as f32 * 4.0 - 2.0).to_f32()
        })
        .collect()
}

fn bf16_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
        .collect()
}

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>)]) {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| {
            (
                name.clone(),
                shape.clone(),
                bf16_bytes(&tensor_values(name, shape.iter().product())),
            )
        })
        .collect();
    let views: HashMap<String, TensorView> = data
        .iter()
        .map(|(name, shape, bytes)| {
            (
                name.clone(),
                TensorView::new(Dtype::BF16, shape.clone(), bytes).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

const CHAT_TEMPLATE: &str =
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";

fn tiny_tokenizer() -> Value {
    let added = [
        (3, "<|endoftext|>", true),
        (4, "<|im_start|>", true),
        (5, "<|im_end|>", true),
        (6, "<|vision_start|>", true),
        (7, "<|vision_end|>", true),
        (8, "<|image_pad|>", true),
        (9, "<think>", false),
    ];
    json!({
        "version": "1.0",
        "added_tokens": added.iter().map(|(id, content, special)| json!({
            "id": id, "content": content, "special": special, "normalized": false,
            "single_word": false, "lstrip": false, "rstrip": false
        })).collect::<Vec<_>>(),
        "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": [["a", "b"]]}
    })
}

/// Writes a complete tiny checkpoint; `tied` selects tied or separate lm_head.
fn tiny_checkpoint(label: &str, tied: bool) -> TestDir {
    let dir = TestDir::new(label);
    let p = dir.path();
    std::fs::write(
        p.join("config.json"),
        serde_json::to_string_pretty(&tiny_config(tied)).unwrap(),
    )
    .unwrap();
    write_safetensors(&p.join("model.safetensors"), &tiny_tensor_shapes(tied));
    std::fs::write(p.join("tokenizer.json"), tiny_tokenizer().to_string()).unwrap();
    let tokenizer_config = json!({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "bos_token": null, "add_bos_token": false, "chat_template": "not this one"});
    std::fs::write(
        p.join("tokenizer_config.json"),
        tokenizer_config.to_string(),
    )
    .unwrap();
    std::fs::write(
        p.join("chat_template.json"),
        json!({"chat_template": CHAT_TEMPLATE}).to_string(),
    )
    .unwrap();
    let preprocessor = json!({"size": {"shortest_edge": 256, "longest_edge": 4096}, "patch_size": PATCH, "temporal_patch_size": 2, "merge_size": 2, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.5, 0.75]});
    std::fs::write(p.join("preprocessor_config.json"), preprocessor.to_string()).unwrap();
    std::fs::write(
        p.join("generation_config.json"),
        json!({"eos_token_id": [5, 3], "top_k": 20}).to_string(),
    )
    .unwrap();
    dir
}

fn convert_tiny(
    dir: &TestDir,
    out_type: OutType,
) -> anyhow::Result<(PathBuf, glimpse_convert::ConvertSummary)> {
    let output = dir.path().join("out.gguf");
    let summary = convert(&ConvertOptions {
        input_dir: dir.path().to_path_buf(),
        output: output.clone(),
        mmproj_output: None,
        out_type,
        progress: false,
    })?;
    Ok((output, summary))
}

fn expected_gguf_names(tied: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["token_embd.weight", "output_norm.weight"]
        .map(String::from)
        .into();
    for l in 0..TEXT_LAYERS {
        for t in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_q_norm",
            "attn_k_norm",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            names.insert(format!("blk.{l}.{t}.weight"));
        }
    }
    if !tied {
        names.insert("output.weight".into());
    }
    for n in [
        "v.patch_embd.weight",
        "v.patch_embd.weight.1",
        "v.patch_embd.bias",
        "v.position_embd.weight",
    ] {
        names.insert(n.into());
    }
    for b in 0..VISION_DEPTH {
        for t in ["attn_qkv", "attn_out", "ln1", "ln2", "ffn_up", "ffn_down"] {
            names.insert(format!("v.blk.{b}.{t}.weight"));
            names.insert(format!("v.blk.{b}.{t}.bias"));
        }
    }
    for t in [
        "v.post_ln",
        "mm.0",
        "mm.2",
        "v.deepstack.1.norm",
        "v.deepstack.1.fc1",
        "v.deepstack.1.fc2",
    ] {
        names.insert(format!("{t}.weight"));
        names.insert(format!("{t}.bias"));
    }
    names
}

fn gguf_names(file: &GgufFile) -> BTreeSet<String> {
    file.tensor_infos().iter().map(|t| t.name.clone()).collect()
}

#[test]
fn tied_checkpoint_converts_to_llama_cpp_names_and_shapes() {
    let dir = tiny_checkpoint("convert-tied", true);
    let (output, summary) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();

    assert_eq!(gguf_names(&file), expected_gguf_names(true));
    assert!(!file.has_tensor("output.weight"));
    assert!(summary.tied_embeddings);
    assert_eq!(summary.tensor_count, file.tensor_infos().len());
    assert_eq!(summary.file_bytes as usize, file.file_size());
    assert!(!dir.path().join("out.gguf.tmp").exists());

    let shape = |name: &str| file.tensor(name).unwrap().shape;
    assert_eq!(shape("token_embd.weight"), [VOCAB_SIZE, TEXT_HIDDEN]);
    assert_eq!(
        shape("blk.1.attn_k.weight"),
        [KV_HEADS * HEAD_DIM, TEXT_HIDDEN]
    );
    assert_eq!(shape("blk.0.attn_q_norm.weight"), [HEAD_DIM]);
    assert_eq!(
        shape("v.patch_embd.weight"),
        [VISION_HIDDEN, 3, PATCH, PATCH]
    );
    assert_eq!(
        shape("v.patch_embd.weight.1"),
        [VISION_HIDDEN, 3, PATCH, PATCH]
    );
    assert_eq!(shape("v.position_embd.weight"), [4, VISION_HIDDEN]);
    assert_eq!(
        shape("v.blk.1.attn_qkv.weight"),
        [3 * VISION_HIDDEN, VISION_HIDDEN]
    );
    assert_eq!(shape("mm.0.weight"), [MERGED, MERGED]);
    assert_eq!(shape("mm.2.weight"), [TEXT_HIDDEN, MERGED]);
    assert_eq!(shape("v.deepstack.1.norm.weight"), [MERGED]);
    assert!(file.tensor_infos().iter().all(|t| t.dtype == GgmlType::F32));
}

#[test]
fn converted_values_match_the_checkpoint() {
    let dir = tiny_checkpoint("convert-values", true);
    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();

    let embed = tensor_values(
        "model.language_model.embed_tokens.weight",
        VOCAB_SIZE * TEXT_HIDDEN,
    );
    assert_eq!(
        file.tensor("token_embd.weight").unwrap().as_f32().unwrap(),
        embed.as_slice()
    );
    let down = tensor_values(
        "model.language_model.layers.1.mlp.down_proj.weight",
        TEXT_HIDDEN * TEXT_FF,
    );
    assert_eq!(
        file.tensor("blk.1.ffn_down.weight")
            .unwrap()
            .as_f32()
            .unwrap(),
        down.as_slice()
    );
    let fc1 = tensor_values(
        "model.visual.deepstack_merger_list.0.linear_fc1.bias",
        MERGED,
    );
    assert_eq!(
        file.tensor("v.deepstack.1.fc1.bias")
            .unwrap()
            .as_f32()
            .unwrap(),
        fc1.as_slice()
    );

    // Conv3d [out, in, t, p, p] → frame t of every (out, in) plane
    let conv = tensor_values(
        "model.visual.patch_embed.proj.weight",
        VISION_HIDDEN * 3 * 2 * PATCH * PATCH,
    );
    let plane = PATCH * PATCH;
    for t in 0..2 {
        let expected: Vec<f32> = (0..VISION_HIDDEN * 3)
            .flat_map(|oc| conv[(oc * 2 + t) * plane..(oc * 2 + t + 1) * plane].to_vec())
            .collect();
        let name = if t == 0 {
            "v.patch_embd.weight"
        } else {
            "v.patch_embd.weight.1"
        };
        assert_eq!(
            file.tensor(name).unwrap().as_f32().unwrap(),
            expected.as_slice(),
            "{name}"
        );
    }
}

#[test]
fn converted_metadata_follows_llama_cpp_and_glimpse_keys() {
    let dir = tiny_checkpoint("convert-meta", true);
    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    let meta = file.metadata();

    assert_eq!(file.architecture().unwrap(), "qwen3vl");
    assert_eq!(meta.get_u32("general.file_type").unwrap(), 0);
    assert_eq!(meta.get_u32("general.alignment").unwrap(), 32);
    assert_eq!(meta.get_u32("general.quantization_version").unwrap(), 2);
    let u32_keys = [
        ("qwen3vl.block_count", TEXT_LAYERS),
        ("qwen3vl.context_length", 1024),
        ("qwen3vl.embedding_length", TEXT_HIDDEN),
        ("qwen3vl.feed_forward_length", TEXT_FF),
        ("qwen3vl.attention.head_count", HEADS),
        ("qwen3vl.attention.head_count_kv", KV_HEADS),
        ("qwen3vl.attention.key_length", HEAD_DIM),
        ("qwen3vl.attention.value_length", HEAD_DIM),
        ("qwen3vl.n_deepstack_layers", 1),
        ("clip.vision.projection_dim", TEXT_HIDDEN),
        ("clip.vision.image_size", 2 * PATCH),
        ("clip.vision.patch_size", PATCH),
        ("clip.vision.embedding_length", VISION_HIDDEN),
        ("clip.vision.feed_forward_length", VISION_FF),
        ("clip.vision.block_count", VISION_DEPTH),
        ("clip.vision.attention.head_count", 2),
        ("clip.vision.spatial_merge_size", 2),
        ("glimpse.image_token_id", 8),
        ("glimpse.video_token_id", 9),
        ("glimpse.vision_start_token_id", 6),
        ("glimpse.vision_end_token_id", 7),
        ("tokenizer.ggml.eos_token_id", 5),
        ("tokenizer.ggml.padding_token_id", 3),
        ("tokenizer.ggml.bos_token_id", 3),
    ];
    for (key, value) in u32_keys {
        assert_eq!(meta.get(key), Some(&MetaValue::U32(value as u32)), "{key}");
    }
    assert_eq!(meta.get_f32("qwen3vl.rope.freq_base").unwrap(), 5_000_000.0);
    assert_eq!(
        meta.get_f32("qwen3vl.attention.layer_norm_rms_epsilon")
            .unwrap(),
        1e-6
    );
    assert_eq!(
        meta.get_f32("clip.vision.attention.layer_norm_epsilon")
            .unwrap(),
        1e-6
    );
    assert_eq!(
        meta.get("qwen3vl.rope.dimension_sections"),
        Some(&MetaValue::Array(MetaArray::I32(vec![2, 1, 1, 0])))
    );
    assert!(meta.get_bool("clip.has_vision_encoder").unwrap());
    assert!(meta.get_bool("clip.use_gelu").unwrap());
    assert_eq!(
        meta.get_str("clip.projector_type").unwrap(),
        "qwen3vl_merger"
    );
    assert_eq!(
        meta.get_bool_array("clip.vision.is_deepstack_layers")
            .unwrap(),
        [false, true]
    );
    assert_eq!(
        meta.get_f32_array("clip.vision.image_mean").unwrap(),
        [0.5, 0.5, 0.5]
    );
    assert_eq!(
        meta.get_f32_array("clip.vision.image_std").unwrap(),
        [0.25, 0.5, 0.75]
    );

    assert_eq!(meta.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    assert_eq!(meta.get_str("tokenizer.ggml.pre").unwrap(), "qwen2");
    let tokens = meta.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), VOCAB_SIZE);
    assert_eq!(tokens[8], "<|image_pad|>");
    assert_eq!(tokens[10..], ["[PAD10]", "[PAD11]"]);
    assert_eq!(
        meta.get("tokenizer.ggml.token_type"),
        Some(&MetaValue::Array(MetaArray::I32(vec![
            1, 1, 1, 3, 3, 3, 3, 3, 3, 4, 5, 5
        ])))
    );
    assert_eq!(
        meta.get_str_array("tokenizer.ggml.merges").unwrap(),
        ["a b"]
    );
    assert!(!meta.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    assert_eq!(
        meta.get_str("tokenizer.chat_template").unwrap(),
        CHAT_TEMPLATE
    );

    let verbatim = |key: &str, file_name: &str| {
        assert_eq!(
            meta.get_str(key).unwrap(),
            std::fs::read_to_string(dir.path().join(file_name)).unwrap(),
            "{key}"
        );
    };
    verbatim(keys::glimpse::TOKENIZER_JSON, "tokenizer.json");
    verbatim(keys::glimpse::HF_CONFIG, "config.json");
    verbatim(
        keys::glimpse::PREPROCESSOR_CONFIG,
        "preprocessor_config.json",
    );
    verbatim(keys::glimpse::GENERATION_CONFIG, "generation_config.json");
    assert_eq!(
        meta.get("glimpse.eos_token_ids"),
        Some(&MetaValue::Array(MetaArray::U32(vec![5, 3])))
    );

    let text = describe(&file);
    assert!(
        text.contains("vision encoder: \"qwen3vl_merger\" (2 blocks"),
        "{text}"
    );
    assert!(text.contains("output tied to token_embd"), "{text}");
    assert!(text.contains("chat template: present"), "{text}");
}

#[test]
fn eos_ids_fall_back_to_config_without_generation_config() {
    let dir = tiny_checkpoint("convert-eos", true);
    std::fs::remove_file(dir.path().join("generation_config.json")).unwrap();
    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    assert_eq!(file.get_u32_array("glimpse.eos_token_ids").unwrap(), [5]);
    assert!(!file.contains(keys::glimpse::GENERATION_CONFIG));
}

/// generation_config.json's sampling becomes llama.cpp's `general.sampling.*` (top_k an i32,
/// the others f32); keys it does not set stay out; `do_sample: false` is temperature 0.
#[test]
fn recommended_sampling_is_written_as_llama_cpp_keys() {
    let dir = tiny_checkpoint("convert-sampling", true);
    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    let meta = file.metadata();
    assert_eq!(
        meta.get(keys::general::SAMPLING_TOP_K),
        Some(&MetaValue::I32(20))
    );
    for key in [
        keys::general::SAMPLING_TOP_P,
        keys::general::SAMPLING_TEMP,
        keys::general::SAMPLING_PENALTY_REPEAT,
    ] {
        assert!(!file.contains(key), "{key}");
    }

    let thinking = json!({"eos_token_id": [5, 3], "do_sample": true, "top_k": 20, "top_p": 0.95, "temperature": 1.0, "repetition_penalty": 1.05});
    std::fs::write(
        dir.path().join("generation_config.json"),
        thinking.to_string(),
    )
    .unwrap();
    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    let meta = file.metadata();
    assert_eq!(
        meta.get(keys::general::SAMPLING_TOP_P),
        Some(&MetaValue::F32(0.95))
    );
    assert_eq!(
        meta.get(keys::general::SAMPLING_TEMP),
        Some(&MetaValue::F32(1.0))
    );
    assert_eq!(
        meta.get(keys::general::SAMPLING_PENALTY_REPEAT),
        Some(&MetaValue::F32(1.05))
    );

    let greedy = json!({"eos_token_id": 5, "do_sample": false, "temperature": 0.7});
    std::fs::write(
        dir.path().join("generation_config.json"),
        greedy.to_string(),
    )
    .unwrap();
    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    assert_eq!(
        file.metadata().get(keys::general::SAMPLING_TEMP),
        Some(&MetaValue::F32(0.0))
    );

    let bad = json!({"eos_token_id": 5, "top_k": 2.5});
    std::fs::write(dir.path().join("generation_config.json"), bad.to_string()).unwrap();
    let err = chain(convert_tiny(&dir, OutType::F32).unwrap_err());
    assert!(err.contains("top_k 2.5 is not a count"), "{err}");
}

#[test]
fn untied_checkpoint_keeps_a_separate_output_matrix() {
    let dir = tiny_checkpoint("convert-untied", false);
    let (output, summary) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    assert!(!summary.tied_embeddings);
    assert_eq!(gguf_names(&file), expected_gguf_names(false));
    let head = tensor_values("lm_head.weight", VOCAB_SIZE * TEXT_HIDDEN);
    assert_eq!(
        file.tensor("output.weight").unwrap().as_f32().unwrap(),
        head.as_slice()
    );
    assert!(describe(&file).contains("output separate"));
}

#[test]
fn f16_output_keeps_vectors_norms_and_position_embedding_f32() {
    let dir = tiny_checkpoint("convert-f16", true);
    let (output, summary) = convert_tiny(&dir, OutType::F16).unwrap();
    let file = GgufFile::open(&output).unwrap();
    assert_eq!(summary.out_type, OutType::F16);
    assert_eq!(file.get_u32("general.file_type").unwrap(), 1);

    for info in file.tensor_infos() {
        let stays_f32 = info.shape.len() == 1 || info.name == "v.position_embd.weight";
        let expected = if stays_f32 {
            GgmlType::F32
        } else {
            GgmlType::F16
        };
        assert_eq!(info.dtype, expected, "{}", info.name);
    }
    assert_eq!(
        file.tensor("v.patch_embd.weight.1").unwrap().dtype,
        GgmlType::F16
    );
    let embed = tensor_values(
        "model.language_model.embed_tokens.weight",
        VOCAB_SIZE * TEXT_HIDDEN,
    );
    let expected: Vec<f16> = embed.iter().map(|&v| f16::from_f32(v)).collect();
    assert_eq!(
        file.tensor("token_embd.weight").unwrap().as_f16().unwrap(),
        expected.as_slice()
    );
    let f32_dir = tiny_checkpoint("convert-f16-vs-f32", true);
    let (f32_output, _) = convert_tiny(&f32_dir, OutType::F32).unwrap();
    let f16_size = std::fs::metadata(&output).unwrap().len();
    let f32_size = std::fs::metadata(&f32_output).unwrap().len();
    assert!(
        f16_size < f32_size,
        "f16 file ({f16_size}) must be smaller than f32 ({f32_size})"
    );
}

#[test]
fn sharded_checkpoints_convert_like_single_files() {
    let dir = tiny_checkpoint("convert-sharded", true);
    let p = dir.path();
    std::fs::remove_file(p.join("model.safetensors")).unwrap();
    let shapes = tiny_tensor_shapes(true);
    let (text, vision): (Vec<_>, Vec<_>) = shapes
        .into_iter()
        .partition(|(n, _)| n.contains("language_model"));
    write_safetensors(&p.join("model-00001-of-00002.safetensors"), &text);
    write_safetensors(&p.join("model-00002-of-00002.safetensors"), &vision);
    let weight_map: serde_json::Map<String, Value> = text
        .iter()
        .map(|(n, _)| (n.clone(), json!("model-00001-of-00002.safetensors")))
        .chain(
            vision
                .iter()
                .map(|(n, _)| (n.clone(), json!("model-00002-of-00002.safetensors"))),
        )
        .collect();
    std::fs::write(
        p.join("model.safetensors.index.json"),
        json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();

    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    assert_eq!(gguf_names(&file), expected_gguf_names(true));
}

#[test]
fn the_real_qwen_tokenizer_converts_like_llama_cpp() {
    const QWEN_VOCAB: usize = 151936;
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer");
    let dir = tiny_checkpoint("real-tokenizer", true);
    for name in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(name), dir.path().join(name)).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run scripts/fetch_tokenizer.sh to fetch the Qwen tokenizer",
                fixture.join(name).display()
            )
        });
    }
    std::fs::remove_file(dir.path().join("chat_template.json")).unwrap();
    let mut config = tiny_config(true);
    config["text_config"]["vocab_size"] = json!(QWEN_VOCAB);
    config["text_config"]["bos_token_id"] = json!(151643);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let shapes: Vec<_> = tiny_tensor_shapes(true)
        .into_iter()
        .map(|(n, s)| {
            if n.ends_with("embed_tokens.weight") {
                (n, vec![QWEN_VOCAB, TEXT_HIDDEN])
            } else {
                (n, s)
            }
        })
        .collect();
    write_safetensors(&dir.path().join("model.safetensors"), &shapes);

    let (output, _) = convert_tiny(&dir, OutType::F32).unwrap();
    let file = GgufFile::open(&output).unwrap();
    let tokens = file.get_str_array("tokenizer.ggml.tokens").unwrap();
    let Some(MetaValue::Array(MetaArray::I32(types))) =
        file.metadata().get("tokenizer.ggml.token_type")
    else {
        panic!("token types must be an i32 array");
    };
    assert_eq!(tokens.len(), QWEN_VOCAB);
    assert_eq!(types.len(), QWEN_VOCAB);
    for (id, token, token_type) in [
        (0, "!", 1),
        (151643, "<|endoftext|>", 3),
        (151645, "<|im_end|>", 3),
        (151655, "<|image_pad|>", 3),
        (151668, "</think>", 4),
        (151669, "[PAD151669]", 5),
        (QWEN_VOCAB - 1, "[PAD151935]", 5),
    ] {
        assert_eq!(
            (tokens[id].as_str(), types[id]),
            (token, token_type),
            "token {id}"
        );
    }
    let merges = file.get_str_array("tokenizer.ggml.merges").unwrap();
    assert_eq!((merges.len(), merges[0].as_str()), (151387, "Ġ Ġ"));
    assert_eq!(file.get_u32("tokenizer.ggml.eos_token_id").unwrap(), 151645);
    assert_eq!(
        file.get_u32("tokenizer.ggml.padding_token_id").unwrap(),
        151643
    );
    assert_eq!(file.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 151643);
    assert!(!file.get_bool("tokenizer.ggml.add_bos_token").unwrap());
    let tokenizer_config: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        file.get_str("tokenizer.chat_template").unwrap(),
        tokenizer_config["chat_template"].as_str().unwrap()
    );
}

fn convert_err(dir: &TestDir) -> String {
    let err = chain(convert_tiny(dir, OutType::F32).unwrap_err());
    assert!(
        !dir.path().join("out.gguf").exists(),
        "a failed conversion must not leave an output"
    );
    assert!(
        !dir.path().join("out.gguf.tmp").exists(),
        "a failed conversion must not leave a temp file"
    );
    err
}

#[test]
fn a_missing_safetensors_file_is_reported() {
    let dir = tiny_checkpoint("err-no-weights", true);
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let err = convert_err(&dir);
    assert!(
        err.contains("expected model.safetensors or model.safetensors.index.json"),
        "{err}"
    );

    let sharded = tiny_checkpoint("err-missing-shard", true);
    std::fs::remove_file(sharded.path().join("model.safetensors")).unwrap();
    let index = json!({"weight_map": {"model.language_model.norm.weight": "model-00001-of-00001.safetensors"}});
    std::fs::write(
        sharded.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let err = convert_err(&sharded);
    assert!(
        err.contains("failed to open") && err.contains("model-00001-of-00001.safetensors"),
        "{err}"
    );
}

#[test]
fn a_corrupt_safetensors_file_is_reported_by_name() {
    let dir = tiny_checkpoint("err-corrupt", true);
    let path = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = convert_err(&dir);
    assert!(
        err.contains("model.safetensors' is not a valid safetensors file"),
        "{err}"
    );
}

#[test]
fn a_llama_config_is_rejected() {
    let dir = tiny_checkpoint("err-llama", true);
    let mut config = tiny_config(true);
    config["model_type"] = json!("llama");
    config["architectures"] = json!(["LlamaForCausalLM"]);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = convert_err(&dir);
    assert!(
        err.ends_with("unsupported architecture 'llama': glimpse converts Qwen3-VL checkpoints (model_type qwen3_vl or qwen3_vl_moe)"),
        "{err}"
    );
}

#[test]
fn a_missing_tensor_is_named() {
    let dir = tiny_checkpoint("err-missing-tensor", true);
    let missing = "model.language_model.layers.1.mlp.up_proj.weight";
    let shapes: Vec<_> = tiny_tensor_shapes(true)
        .into_iter()
        .filter(|(n, _)| n != missing)
        .collect();
    write_safetensors(&dir.path().join("model.safetensors"), &shapes);
    let err = convert_err(&dir);
    assert!(
        err.contains(&format!("missing tensor '{missing}'")),
        "{err}"
    );
    assert!(err.contains("blk.1.ffn_up.weight"), "{err}");
}

#[test]
fn an_untied_config_without_lm_head_says_why_it_is_needed() {
    let dir = tiny_checkpoint("err-no-lm-head", true);
    let mut config = tiny_config(false);
    config["tie_word_embeddings"] = json!(false);
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let err = convert_err(&dir);
    assert!(
        err.contains("tie_word_embeddings is false")
            && err.contains("missing tensor 'lm_head.weight'"),
        "{err}"
    );
}

#[test]
fn a_tensor_with_the_wrong_shape_is_named_with_both_shapes() {
    let dir = tiny_checkpoint("err-shape", true);
    let shapes: Vec<_> = tiny_tensor_shapes(true)
        .into_iter()
        .map(|(n, s)| {
            if n.ends_with("layers.0.self_attn.k_proj.weight") {
                (n, vec![HEAD_DIM * 2, TEXT_HIDDEN])
            } else {
                (n, s)
            }
        })
        .collect();
    write_safetensors(&dir.path().join("model.safetensors"), &shapes);
    let err = convert_err(&dir);
    assert!(
        err.contains("tensor 'model.language_model.layers.0.self_attn.k_proj.weight' has shape [16, 16] in the checkpoint, expected [8, 16]"),
        "{err}"
    );
}

#[test]
fn an_unknown_checkpoint_tensor_is_reported() {
    let dir = tiny_checkpoint("err-extra", true);
    let mut shapes = tiny_tensor_shapes(true);
    shapes.push(("model.visual.extra_head.weight".into(), vec![2, 2]));
    write_safetensors(&dir.path().join("model.safetensors"), &shapes);
    let err = convert_err(&dir);
    assert!(
        err.contains("checkpoint tensor 'model.visual.extra_head.weight'"),
        "{err}"
    );
}
