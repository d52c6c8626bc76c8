//! The fixed numbers of the GGUF container (magic, versions, ggml's limits on tensor names
//! and dimensions) and the data alignment a file's metadata implies, shared by the reader
//! and the writer.
use crate::error::{GgufError, Result};
use crate::keys;
use crate::metadata::Metadata;

/// "GGUF" as it appears at the start of a file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// The version the writer produces.
pub const GGUF_VERSION: u32 = 3;
/// The versions the reader accepts (2 has the same layout as 3).
pub const READABLE_VERSIONS: [u32; 2] = [2, 3];
/// ggml's `GGML_MAX_NAME`: tensor names must be shorter than this.
pub const MAX_TENSOR_NAME_LEN: usize = 64;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;

/// The alignment of tensor data: `general.alignment` when `metadata` has it (a power of
/// two), else `keys::DEFAULT_ALIGNMENT`.
pub fn data_alignment(metadata: &Metadata) -> Result<usize> {
    match metadata.get_u32_opt(keys::general::ALIGNMENT)? {
        None => Ok(keys::DEFAULT_ALIGNMENT as usize),
        Some(a) if a.is_power_of_two() => Ok(a as usize),
        Some(a) => Err(GgufError::BadAlignment(a)),
    }
}
