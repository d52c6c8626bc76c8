//! `GgufError`, the one error type of the crate: every way a GGUF file can be corrupt or
//! unsupported, every misuse of the writer and every metadata lookup that fails. Messages
//! name the offset, key or tensor concerned. Errors found inside a metadata entry, a tensor
//! info, a tensor or a file are wrapped in a variant naming that place, with the cause as
//! its `source`, so `{:#}` (anyhow's chain) reads "reading GGUF file 'x': tensor 'y': ...".
use std::io;
use std::num::TryFromIntError;
use std::path::PathBuf;

use crate::format::MAX_DIMS;
use crate::ggml_type::GgmlType;

/// `Result` with `GgufError` as the default error.
pub type Result<T, E = GgufError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GgufError {
    // -- opening a file ----------------------------------------------------------------------
    #[error("failed to open '{}'", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to map '{}'", path.display())]
    Map {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Anything wrong with the header of the file at `path`.
    #[error("reading GGUF file '{}'", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<GgufError>,
    },

    // -- the header's bytes ------------------------------------------------------------------
    #[error("not a GGUF file (bad magic)")]
    BadMagic,
    #[error(
        "unsupported GGUF version {version}{}: glimpse reads versions 2 and 3",
        big_endian_hint(.version)
    )]
    UnsupportedVersion { version: u32 },
    #[error(
        "truncated GGUF header: {needed} bytes needed at offset {offset} but the file has {file_len}"
    )]
    Truncated {
        needed: usize,
        offset: usize,
        file_len: usize,
    },
    /// A count whose elements cannot fit in the rest of the file.
    #[error(
        "truncated GGUF header: {what} {count} needs at least {needed} bytes at offset {offset} but the file has {file_len}"
    )]
    TruncatedCount {
        what: &'static str,
        count: u64,
        needed: u64,
        offset: usize,
        file_len: usize,
    },
    /// A count no file could hold.
    #[error("absurd {what} {count}")]
    AbsurdCount { what: &'static str, count: u64 },
    #[error("invalid bool value {value} at offset {offset}")]
    InvalidBool { value: u8, offset: usize },
    #[error("string at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { offset: usize },
    #[error("unknown metadata value type {0}")]
    UnknownValueType(u32),
    #[error("nested arrays are not supported")]
    NestedArray,
    #[error("reading the key of metadata entry {index}")]
    InMetadataKey {
        index: usize,
        #[source]
        source: Box<GgufError>,
    },
    #[error("reading metadata '{key}'")]
    InMetadataValue {
        key: String,
        #[source]
        source: Box<GgufError>,
    },
    #[error("reading tensor info {index}")]
    InTensorInfo {
        index: usize,
        #[source]
        source: Box<GgufError>,
    },
    #[error("data section offset overflows")]
    DataStartOverflow,

    // -- metadata ----------------------------------------------------------------------------
    #[error("duplicate metadata key '{0}'")]
    DuplicateKey(String),
    #[error("missing metadata key '{0}'")]
    MissingKey(String),
    /// A key present with a value of another type; `found` is its type, `value` its summary.
    #[error("metadata key '{key}' is {found} ({value}), expected {expected}")]
    WrongValueType {
        key: String,
        found: String,
        value: String,
        expected: &'static str,
    },
    #[error("general.alignment {0} is not a power of two")]
    BadAlignment(u32),

    // -- tensor types and shapes -------------------------------------------------------------
    #[error("unsupported tensor type {name} ({id})")]
    UnsupportedTensorType { name: &'static str, id: u32 },
    #[error("unknown tensor type id {0}")]
    UnknownTensorType(u32),
    #[error(
        "a row of {n_cols} elements is not a multiple of the {dtype} block size {}",
        .dtype.block_size()
    )]
    PartialBlockRow { n_cols: usize, dtype: GgmlType },
    #[error("a row of {n_cols} {dtype} elements overflows usize")]
    RowSizeOverflow { n_cols: usize, dtype: GgmlType },
    #[error("tensor shape {shape:?} of {dtype} overflows usize")]
    ShapeSizeOverflow { shape: Vec<usize>, dtype: GgmlType },
    #[error("{len} bytes are not whole {dtype} {}", if .dtype.is_block_quantized() { "blocks" } else { "elements" })]
    PartialElements { len: usize, dtype: GgmlType },
    #[error("{len} values are not whole {dtype} blocks")]
    PartialBlockValues { len: usize, dtype: GgmlType },
    #[error("{0} is not a block-quantized type")]
    NotBlockQuantized(GgmlType),
    #[error("{0} is block-quantized: encoding it needs a quantizer")]
    NotAFloatType(GgmlType),

    // -- tensor infos and data ---------------------------------------------------------------
    /// Anything wrong with tensor `name` itself.
    #[error("tensor '{name}'")]
    InTensor {
        name: String,
        #[source]
        source: Box<GgufError>,
    },
    #[error("tensor '{name}' has {n_dims} dimensions; GGUF allows 1 to {MAX_DIMS}")]
    BadDimensionCount { name: String, n_dims: usize },
    #[error("tensor '{name}': dimension does not fit in memory")]
    DimensionTooLarge {
        name: String,
        #[source]
        source: TryFromIntError,
    },
    #[error("duplicate tensor name '{0}'")]
    DuplicateTensor(String),
    #[error(
        "tensor '{name}': data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedData {
        name: String,
        offset: u64,
        alignment: usize,
    },
    /// Tensor data beyond the end of the file (byte range from the file's start).
    #[error("tensor '{name}': data ({start}..{end}) runs past end of file ({file_len})")]
    DataPastEnd {
        name: String,
        start: u128,
        end: u128,
        file_len: usize,
    },
    #[error("tensors '{first}' and '{second}' overlap in the data section")]
    Overlap { first: String, second: String },
    #[error("missing tensor '{0}'")]
    MissingTensor(String),
    /// A view of tensor `0` asked of a map that does not hold its data.
    #[error("tensor '{0}': data runs past end of file")]
    OutsideMap(String),
    #[error("tensor '{name}' is {found}, expected {expected}")]
    WrongTensorType {
        name: String,
        found: GgmlType,
        expected: GgmlType,
    },
    #[error("tensor '{name}': data cannot be viewed as {dtype}: {reason}")]
    Unviewable {
        name: String,
        dtype: GgmlType,
        reason: bytemuck::PodCastError,
    },

    // -- writing -----------------------------------------------------------------------------
    #[error("tensor name '{name}' is {} bytes; ggml allows at most {}", .name.len(), crate::format::MAX_TENSOR_NAME_LEN - 1)]
    NameTooLong { name: String },
    #[error("tensor '{0}' planned twice")]
    PlannedTwice(String),
    #[error("tensor '{current}' is still being written; cannot begin '{next}'")]
    StillWriting { current: String, next: String },
    #[error("tensor '{name}' written out of order: expected '{expected}'")]
    OutOfOrder { name: String, expected: String },
    #[error("tensor '{0}' was not in the plan (all planned tensors are written)")]
    NotPlanned(String),
    #[error("tensor data written outside begin_tensor/end_tensor")]
    DataOutsideTensor,
    #[error("end_tensor without begin_tensor")]
    EndWithoutBegin,
    #[error("tensor '{name}': {written} bytes written but it holds {size}")]
    TooManyBytes {
        name: String,
        written: usize,
        size: usize,
    },
    #[error("tensor '{name}': only {written} of {size} bytes written")]
    TooFewBytes {
        name: String,
        written: usize,
        size: usize,
    },
    #[error("GGUF file incomplete: tensor '{first}' and {more} more were never written")]
    Incomplete { first: String, more: usize },
    #[error("writing the GGUF file")]
    Write(#[source] io::Error),
    #[error("flushing the GGUF file")]
    Flush(#[source] io::Error),
}

/// A version that reads as 2 or 3 byte-swapped was most likely written big-endian.
fn big_endian_hint(version: &u32) -> &'static str {
    if matches!(version.swap_bytes(), 2 | 3) {
        " (a big-endian file?)"
    } else {
        ""
    }
}

impl GgufError {
    /// This error as the cause of a problem with tensor `name`.
    pub(crate) fn in_tensor(self, name: impl Into<String>) -> GgufError {
        GgufError::InTensor {
            name: name.into(),
            source: Box::new(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_that_look_byte_swapped_get_a_hint() {
        let swapped = GgufError::UnsupportedVersion {
            version: 3u32.swap_bytes(),
        };
        assert!(swapped
            .to_string()
            .ends_with(" (a big-endian file?): glimpse reads versions 2 and 3"));
        let v4 = GgufError::UnsupportedVersion { version: 4 };
        assert_eq!(
            v4.to_string(),
            "unsupported GGUF version 4: glimpse reads versions 2 and 3"
        );
    }

    #[test]
    fn wrapped_errors_keep_their_cause_as_source() {
        let err = GgufError::UnknownTensorType(99).in_tensor("a.weight");
        assert_eq!(err.to_string(), "tensor 'a.weight'");
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("unknown tensor type id 99"));
    }
}
