//! The walk shared by the several-token kernels (`q4_k_tokens`, `q8_0_tokens`): weight rows
//! times up to four tokens per register tile, two rows at a time, the tokens in blocks of
//! 64 so that their quantized activations stay in L2 while every row passes. A kernel
//! supplies the tile; the walk picks its shape (the last rows and tokens make smaller
//! tiles) through const generics, so each shape compiles to straight-line code.

/// Weight rows and tokens of a full tile.
pub const ROWS: usize = 2;
pub const TOKENS: usize = 4;
/// Tokens whose activations are reused across all rows before the next ones are read
/// (64 Q8K rows of 2048 values are 141 KB).
const TOKEN_BLOCK: usize = 64;

/// Where one tile reads and writes: its first weight row and first token, their strides,
/// and its first output (`out[r·m + t]`, row-major by weight row).
#[derive(Clone, Copy)]
pub struct Tile {
    pub w: *const u8,
    pub row_bytes: usize,
    pub x: *const u8,
    pub x_bytes: usize,
    pub out: *mut f32,
    pub m: usize,
}

/// A kernel's R × T tile (R ≤ `ROWS`, T ≤ `TOKENS`).
pub trait TileKernel {
    /// # Safety
    /// `tile` addresses R readable weight rows, T readable activation rows and the R × T
    /// outputs; the CPU has the kernel's features.
    unsafe fn tile<const R: usize, const T: usize>(tile: Tile);
}

/// Every tile of `out[r·m + t] = w_r · x_t` for the rows of `w` (`row_bytes` each) and the
/// `m` rows of `x`. Inlined into the caller, whose target features the tiles compile with.
///
/// # Safety
/// `w` holds `out.len() / m` rows and `x` holds `m` rows; the CPU has `K`'s features.
#[inline(always)]
pub unsafe fn for_each_tile<K: TileKernel>(
    w: &[u8],
    row_bytes: usize,
    x: &[u8],
    m: usize,
    out: &mut [f32],
) {
    let x_bytes = x.len() / m;
    let rows = out.len() / m;
    for first_token in (0..m).step_by(TOKEN_BLOCK) {
        let block_end = (first_token + TOKEN_BLOCK).min(m);
        for row in (0..rows).step_by(ROWS) {
            let nr = ROWS.min(rows - row);
            for token in (first_token..block_end).step_by(TOKENS) {
                let tile = Tile {
                    w: w.as_ptr().add(row * row_bytes),
                    row_bytes,
                    x: x.as_ptr().add(token * x_bytes),
                    x_bytes,
                    out: out.as_mut_ptr().add(row * m + token),
                    m,
                };
                match (nr, TOKENS.min(block_end - token)) {
                    (2, 4) => K::tile::<2, 4>(tile),
                    (2, 3) => K::tile::<2, 3>(tile),
                    (2, 2) => K::tile::<2, 2>(tile),
                    (2, _) => K::tile::<2, 1>(tile),
                    (_, 4) => K::tile::<1, 4>(tile),
                    (_, 3) => K::tile::<1, 3>(tile),
                    (_, 2) => K::tile::<1, 2>(tile),
                    _ => K::tile::<1, 1>(tile),
                }
            }
        }
    }
}
