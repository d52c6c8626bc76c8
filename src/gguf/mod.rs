//! Zero-copy GGUF reading: `GgufFile::open` memory-maps a file, validates its whole header
//! (bounds-checked, never panics on corrupt input) and hands out typed metadata and borrowed
//! tensor views. The format's shared pieces (ggml types, metadata values, key names) come from
//! `glimpse_convert`, which writes the files. Views assume a little-endian host, like ggml.
mod byte_cursor;
mod describe;
mod file;
mod header;
mod requantize;
mod tensor_info;
mod tensor_view;

pub use describe::describe;
pub use file::GgufFile;
pub use glimpse_convert::{keys, GgmlType, MetaArray, MetaValue, MetaValueType, Metadata};
pub use requantize::requantize;
pub use tensor_info::TensorInfo;
pub use tensor_view::TensorView;
