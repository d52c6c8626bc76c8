//! The ggml tensor element types glimpse reads and writes, with their GGUF type ids and block
//! geometry (elements per block, bytes per block). Every other ggml type id is known by name
//! only, so a file using it fails with "unsupported tensor type Q5_K (13)" instead of garbage.
use std::fmt;

use crate::error::{GgufError, Result};

/// A supported ggml element type; the discriminant is its id in GGUF tensor infos.
/// Variants keep ggml's spelling (`Q4_K`), which everyone in this field searches for.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    BF16 = 30,
}

/// Names of the ggml type ids glimpse does not support, for error messages.
const UNSUPPORTED_TYPE_NAMES: &[(u32, &str)] = &[
    (9, "Q8_1"),
    (15, "Q8_K"),
    (16, "IQ2_XXS"),
    (17, "IQ2_XS"),
    (18, "IQ3_XXS"),
    (19, "IQ1_S"),
    (20, "IQ4_NL"),
    (21, "IQ3_S"),
    (22, "IQ2_S"),
    (23, "IQ4_XS"),
    (24, "I8"),
    (25, "I16"),
    (26, "I32"),
    (27, "I64"),
    (28, "F64"),
    (29, "IQ1_M"),
    (34, "TQ1_0"),
    (35, "TQ2_0"),
    (39, "MXFP4"),
    (40, "NVFP4"),
    (41, "Q1_0"),
    (42, "Q2_0"),
];

impl GgmlType {
    /// Every supported type, in id order.
    pub const ALL: [GgmlType; 13] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::BF16,
    ];

    /// The type with GGUF id `id`, or an error naming the (unsupported or unknown) type.
    pub fn from_id(id: u32) -> Result<GgmlType> {
        if let Some(ty) = GgmlType::ALL.iter().find(|ty| ty.id() == id) {
            return Ok(*ty);
        }
        match UNSUPPORTED_TYPE_NAMES
            .iter()
            .find(|(known, _)| *known == id)
        {
            Some(&(_, name)) => Err(GgufError::UnsupportedTensorType { name, id }),
            None => Err(GgufError::UnknownTensorType(id)),
        }
    }

    /// The id stored in GGUF tensor infos.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// ggml's name for the type ("F32", "Q4_K", ...).
    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q5_1 => "Q5_1",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q2_K => "Q2_K",
            GgmlType::Q3_K => "Q3_K",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q5_K => "Q5_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::BF16 => "BF16",
        }
    }

    /// Whether the type stores blocks of quantized values (everything but F32, F16, BF16).
    pub fn is_block_quantized(self) -> bool {
        self.block_size() > 1
    }

    /// Elements per block (1 for the plain float types).
    pub fn block_size(self) -> usize {
        match self {
            GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => 1,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 => {
                32
            }
            GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K => {
                256
            }
        }
    }

    /// Bytes per block.
    pub fn type_size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::BF16 => 2,
            GgmlType::Q4_0 => 18,
            GgmlType::Q4_1 => 20,
            GgmlType::Q5_0 => 22,
            GgmlType::Q5_1 => 24,
            GgmlType::Q8_0 => 34,
            GgmlType::Q2_K => 84,
            GgmlType::Q3_K => 110,
            GgmlType::Q4_K => 144,
            GgmlType::Q5_K => 176,
            GgmlType::Q6_K => 210,
        }
    }

    /// Bytes of one row of `n_cols` elements; errors when the row is not a whole number of
    /// blocks or the size overflows.
    pub fn row_byte_size(self, n_cols: usize) -> Result<usize> {
        if !n_cols.is_multiple_of(self.block_size()) {
            return Err(GgufError::PartialBlockRow {
                n_cols,
                dtype: self,
            });
        }
        (n_cols / self.block_size())
            .checked_mul(self.type_size())
            .ok_or(GgufError::RowSizeOverflow {
                n_cols,
                dtype: self,
            })
    }

    /// Bytes of a whole tensor of `shape` (any dimension order; the last dimension is the row,
    /// as in PyTorch). A zero-dimensional shape is one element.
    pub fn tensor_byte_size(self, shape: &[usize]) -> Result<usize> {
        let row = self.row_byte_size(shape.last().copied().unwrap_or(1))?;
        let outer = shape
            .iter()
            .rev()
            .skip(1)
            .try_fold(1usize, |acc, &d| acc.checked_mul(d));
        outer
            .and_then(|rows| rows.checked_mul(row))
            .ok_or_else(|| GgufError::ShapeSizeOverflow {
                shape: shape.to_vec(),
                dtype: self,
            })
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_for_every_supported_type() {
        for ty in GgmlType::ALL {
            assert_eq!(GgmlType::from_id(ty.id()).unwrap(), ty);
        }
        assert_eq!(GgmlType::BF16.id(), 30);
        assert_eq!(GgmlType::Q4_K.id(), 12);
    }

    #[test]
    fn unsupported_and_unknown_ids_are_named_in_the_error() {
        let err = GgmlType::from_id(16).unwrap_err().to_string();
        assert_eq!(err, "unsupported tensor type IQ2_XXS (16)");
        let err = GgmlType::from_id(999).unwrap_err().to_string();
        assert_eq!(err, "unknown tensor type id 999");
    }

    #[test]
    fn row_sizes_follow_block_geometry() {
        assert_eq!(GgmlType::F32.row_byte_size(10).unwrap(), 40);
        assert_eq!(GgmlType::F16.row_byte_size(10).unwrap(), 20);
        assert_eq!(GgmlType::Q8_0.row_byte_size(64).unwrap(), 68);
        assert_eq!(GgmlType::Q4_0.row_byte_size(64).unwrap(), 36);
        assert_eq!(GgmlType::Q4_K.row_byte_size(512).unwrap(), 288);
        assert!(GgmlType::Q8_0.row_byte_size(33).is_err());
    }

    #[test]
    fn tensor_size_multiplies_rows_and_rejects_overflow() {
        assert_eq!(GgmlType::F16.tensor_byte_size(&[3, 4, 5]).unwrap(), 120);
        assert_eq!(GgmlType::F32.tensor_byte_size(&[]).unwrap(), 4);
        assert!(GgmlType::F32.tensor_byte_size(&[usize::MAX, 2, 2]).is_err());
    }
}
