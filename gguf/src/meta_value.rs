//! GGUF metadata values: the thirteen value types of the format (`MetaValueType`, with their
//! on-disk ids), one value (`MetaValue`) and a homogeneous array (`MetaArray`), plus typed
//! accessors. Integer accessors convert losslessly between integer widths (an `i32` array of
//! small positive numbers reads as `u32`), which is how llama.cpp's own files store some ids.
use std::fmt;

use crate::error::{GgufError, Result};

/// The on-disk type id of a metadata value (`gguf_type` in ggml).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetaValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl MetaValueType {
    /// The type with on-disk id `id`.
    pub fn from_id(id: u32) -> Result<MetaValueType> {
        Ok(match id {
            0 => MetaValueType::U8,
            1 => MetaValueType::I8,
            2 => MetaValueType::U16,
            3 => MetaValueType::I16,
            4 => MetaValueType::U32,
            5 => MetaValueType::I32,
            6 => MetaValueType::F32,
            7 => MetaValueType::Bool,
            8 => MetaValueType::String,
            9 => MetaValueType::Array,
            10 => MetaValueType::U64,
            11 => MetaValueType::I64,
            12 => MetaValueType::F64,
            other => return Err(GgufError::UnknownValueType(other)),
        })
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    /// Bytes of one value of this type on disk, or `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            MetaValueType::U8 | MetaValueType::I8 | MetaValueType::Bool => Some(1),
            MetaValueType::U16 | MetaValueType::I16 => Some(2),
            MetaValueType::U32 | MetaValueType::I32 | MetaValueType::F32 => Some(4),
            MetaValueType::U64 | MetaValueType::I64 | MetaValueType::F64 => Some(8),
            MetaValueType::String | MetaValueType::Array => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MetaValueType::U8 => "u8",
            MetaValueType::I8 => "i8",
            MetaValueType::U16 => "u16",
            MetaValueType::I16 => "i16",
            MetaValueType::U32 => "u32",
            MetaValueType::I32 => "i32",
            MetaValueType::F32 => "f32",
            MetaValueType::Bool => "bool",
            MetaValueType::String => "string",
            MetaValueType::Array => "array",
            MetaValueType::U64 => "u64",
            MetaValueType::I64 => "i64",
            MetaValueType::F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(MetaArray),
}

/// A homogeneous metadata array. GGUF also allows arrays of arrays; neither llama.cpp nor
/// glimpse reads them, so they are not representable.
#[derive(Clone, Debug, PartialEq)]
pub enum MetaArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    Bool(Vec<bool>),
    String(Vec<String>),
}

impl MetaValue {
    pub fn value_type(&self) -> MetaValueType {
        match self {
            MetaValue::U8(_) => MetaValueType::U8,
            MetaValue::I8(_) => MetaValueType::I8,
            MetaValue::U16(_) => MetaValueType::U16,
            MetaValue::I16(_) => MetaValueType::I16,
            MetaValue::U32(_) => MetaValueType::U32,
            MetaValue::I32(_) => MetaValueType::I32,
            MetaValue::U64(_) => MetaValueType::U64,
            MetaValue::I64(_) => MetaValueType::I64,
            MetaValue::F32(_) => MetaValueType::F32,
            MetaValue::F64(_) => MetaValueType::F64,
            MetaValue::Bool(_) => MetaValueType::Bool,
            MetaValue::String(_) => MetaValueType::String,
            MetaValue::Array(_) => MetaValueType::Array,
        }
    }

    /// A short type description for error messages: "u32", "string", "array of i32".
    pub fn type_description(&self) -> String {
        match self {
            MetaValue::Array(array) => format!("array of {}", array.element_type().name()),
            scalar => scalar.value_type().name().to_string(),
        }
    }

    /// The value as an `i128` when it is an integer of any width.
    fn as_integer(&self) -> Option<i128> {
        Some(match *self {
            MetaValue::U8(v) => v.into(),
            MetaValue::I8(v) => v.into(),
            MetaValue::U16(v) => v.into(),
            MetaValue::I16(v) => v.into(),
            MetaValue::U32(v) => v.into(),
            MetaValue::I32(v) => v.into(),
            MetaValue::U64(v) => v.into(),
            MetaValue::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// An integer value that fits in `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        self.as_integer().and_then(|v| u32::try_from(v).ok())
    }

    /// An integer value that fits in `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_integer().and_then(|v| u64::try_from(v).ok())
    }

    /// An integer value that fits in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_integer().and_then(|v| i64::try_from(v).ok())
    }

    /// An `f32` value (an `f64` is not narrowed silently).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            MetaValue::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&MetaArray> {
        match self {
            MetaValue::Array(v) => Some(v),
            _ => None,
        }
    }

    /// An integer array whose every element fits in `u32`.
    pub fn as_u32_array(&self) -> Option<Vec<u32>> {
        self.as_array().and_then(MetaArray::to_u32_vec)
    }

    pub fn as_f32_array(&self) -> Option<&[f32]> {
        match self.as_array()? {
            MetaArray::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool_array(&self) -> Option<&[bool]> {
        match self.as_array()? {
            MetaArray::Bool(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str_array(&self) -> Option<&[String]> {
        match self.as_array()? {
            MetaArray::String(v) => Some(v),
            _ => None,
        }
    }
}

impl MetaArray {
    pub fn element_type(&self) -> MetaValueType {
        match self {
            MetaArray::U8(_) => MetaValueType::U8,
            MetaArray::I8(_) => MetaValueType::I8,
            MetaArray::U16(_) => MetaValueType::U16,
            MetaArray::I16(_) => MetaValueType::I16,
            MetaArray::U32(_) => MetaValueType::U32,
            MetaArray::I32(_) => MetaValueType::I32,
            MetaArray::U64(_) => MetaValueType::U64,
            MetaArray::I64(_) => MetaValueType::I64,
            MetaArray::F32(_) => MetaValueType::F32,
            MetaArray::F64(_) => MetaValueType::F64,
            MetaArray::Bool(_) => MetaValueType::Bool,
            MetaArray::String(_) => MetaValueType::String,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            MetaArray::U8(v) => v.len(),
            MetaArray::I8(v) => v.len(),
            MetaArray::U16(v) => v.len(),
            MetaArray::I16(v) => v.len(),
            MetaArray::U32(v) => v.len(),
            MetaArray::I32(v) => v.len(),
            MetaArray::U64(v) => v.len(),
            MetaArray::I64(v) => v.len(),
            MetaArray::F32(v) => v.len(),
            MetaArray::F64(v) => v.len(),
            MetaArray::Bool(v) => v.len(),
            MetaArray::String(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `u32` when the array holds integers that all fit.
    pub fn to_u32_vec(&self) -> Option<Vec<u32>> {
        fn convert<T: Copy>(values: &[T]) -> Option<Vec<u32>>
        where
            u32: TryFrom<T>,
        {
            values.iter().map(|&v| u32::try_from(v).ok()).collect()
        }
        match self {
            MetaArray::U8(v) => convert(v),
            MetaArray::I8(v) => convert(v),
            MetaArray::U16(v) => convert(v),
            MetaArray::I16(v) => convert(v),
            MetaArray::U32(v) => Some(v.clone()),
            MetaArray::I32(v) => convert(v),
            MetaArray::U64(v) => convert(v),
            MetaArray::I64(v) => convert(v),
            MetaArray::F32(_) | MetaArray::F64(_) | MetaArray::Bool(_) | MetaArray::String(_) => {
                None
            }
        }
    }
}

/// Longest string shown verbatim by `Display`; longer ones are summarized.
const DISPLAY_STRING_LIMIT: usize = 60;
/// Most array elements shown by `Display` before the rest are summarized.
const DISPLAY_ARRAY_LIMIT: usize = 8;

/// A short human-readable rendering: long strings and arrays are summarized
/// (`"<|im_start|>..." (5292 bytes)`, `[24, 20, 20, 0]`, `[...] (151936 strings)`).
impl fmt::Display for MetaValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaValue::U8(v) => write!(f, "{v}"),
            MetaValue::I8(v) => write!(f, "{v}"),
            MetaValue::U16(v) => write!(f, "{v}"),
            MetaValue::I16(v) => write!(f, "{v}"),
            MetaValue::U32(v) => write!(f, "{v}"),
            MetaValue::I32(v) => write!(f, "{v}"),
            MetaValue::U64(v) => write!(f, "{v}"),
            MetaValue::I64(v) => write!(f, "{v}"),
            MetaValue::F32(v) => write!(f, "{v}"),
            MetaValue::F64(v) => write!(f, "{v}"),
            MetaValue::Bool(v) => write!(f, "{v}"),
            MetaValue::String(v) => write_short_string(f, v),
            MetaValue::Array(array) => write!(f, "{array}"),
        }
    }
}

impl fmt::Display for MetaArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Debug>(f: &mut fmt::Formatter<'_>, values: &[T]) -> fmt::Result {
            let shown: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
            write!(f, "[{}]", shown.join(", "))
        }
        if self.len() > DISPLAY_ARRAY_LIMIT
            || matches!(self, MetaArray::String(v) if v.iter().any(|s| s.len() > DISPLAY_STRING_LIMIT))
        {
            return write!(
                f,
                "[...] ({} {} values)",
                self.len(),
                self.element_type().name()
            );
        }
        match self {
            MetaArray::U8(v) => list(f, v),
            MetaArray::I8(v) => list(f, v),
            MetaArray::U16(v) => list(f, v),
            MetaArray::I16(v) => list(f, v),
            MetaArray::U32(v) => list(f, v),
            MetaArray::I32(v) => list(f, v),
            MetaArray::U64(v) => list(f, v),
            MetaArray::I64(v) => list(f, v),
            MetaArray::F32(v) => list(f, v),
            MetaArray::F64(v) => list(f, v),
            MetaArray::Bool(v) => list(f, v),
            MetaArray::String(v) => list(f, v),
        }
    }
}

fn write_short_string(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    if value.len() <= DISPLAY_STRING_LIMIT && !value.contains('\n') {
        return write!(f, "{value:?}");
    }
    let head: String = value
        .chars()
        .take_while(|&c| c != '\n')
        .take(DISPLAY_STRING_LIMIT / 2)
        .collect();
    write!(f, "{:?}... ({} bytes)", head, value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_type_ids_round_trip() {
        for id in 0..=12 {
            assert_eq!(MetaValueType::from_id(id).unwrap().id(), id);
        }
        assert!(MetaValueType::from_id(13).is_err());
    }

    #[test]
    fn integer_accessors_convert_losslessly_only() {
        assert_eq!(MetaValue::U8(7).as_u32(), Some(7));
        assert_eq!(MetaValue::I32(7).as_u32(), Some(7));
        assert_eq!(MetaValue::I32(-1).as_u32(), None);
        assert_eq!(MetaValue::U64(u64::MAX).as_u32(), None);
        assert_eq!(MetaValue::U64(u64::MAX).as_u64(), Some(u64::MAX));
        assert_eq!(MetaValue::F32(1.0).as_u32(), None);
        assert_eq!(MetaValue::F64(1.0).as_f32(), None);
    }

    #[test]
    fn integer_arrays_read_as_u32_when_every_element_fits() {
        let signed = MetaValue::Array(MetaArray::I32(vec![24, 20, 20, 0]));
        assert_eq!(signed.as_u32_array(), Some(vec![24, 20, 20, 0]));
        let negative = MetaValue::Array(MetaArray::I32(vec![1, -1]));
        assert_eq!(negative.as_u32_array(), None);
        let floats = MetaValue::Array(MetaArray::F32(vec![0.5]));
        assert_eq!(floats.as_u32_array(), None);
        assert_eq!(floats.as_f32_array(), Some(&[0.5f32][..]));
    }

    #[test]
    fn display_summarizes_long_strings_and_arrays() {
        let long = MetaValue::String("x".repeat(500));
        assert!(long.to_string().ends_with("(500 bytes)"));
        let tokens = MetaValue::Array(MetaArray::String(vec!["a".into(); 100]));
        assert_eq!(tokens.to_string(), "[...] (100 string values)");
        let sections = MetaValue::Array(MetaArray::I32(vec![24, 20, 20, 0]));
        assert_eq!(sections.to_string(), "[24, 20, 20, 0]");
        assert_eq!(
            MetaValue::String("qwen3vl".into()).to_string(),
            "\"qwen3vl\""
        );
    }
}
