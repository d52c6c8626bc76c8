//! f32 `out = a · b` (b as stored or transposed) of our own for x86_64: the vision encoder's,
//! the f32 prompt's and attention's dense products. The `gemm` crate has no AVX-512 kernels
//! on stable Rust and packs the weight rows (`b`, one row per output column) with strided
//! scalar loads; here both operands are packed with vector loads (register transposes for
//! weight rows) and an `Isa`'s tile of accumulators streams them: 14 rows × 32 columns in
//! 28 zmm registers (`avx512`). On AVX2 the crate's own 16 × 6 kernel already runs at the
//! FMA units' rate (an AVX2 twin of this file measured no faster on AMD Zen 5: kernel bench
//! 226–244 against 232–249 GFLOP/s at 784 rows, f32 vision 3.5–3.7 against 3.3–3.6 s).
//!
//! Layout, per call: `a` (activation rows) in tiles of `MR` rows, k-major inside a tile
//! (`[tile][k][MR]`), packed once; `b` per task in blocks of `KC` k by `BLOCK_COLUMNS`
//! columns, in panels of `NR` columns, k-major inside a panel (`[panel][kk][NR]`).
//! Every output element is one chain of fused multiply-adds over k in order, started from
//! zero: its bits depend on nothing but its own row of `a` and column of `b` — not on the
//! row count, the blocking, the threads or the cache sizes.
//!
//! Not for decode (a few rows: `dense_dot` streams the weights once instead).
use rayon::prelude::*;

use super::gemm::Threads;
use super::scratch::Scratch;

mod avx512;

pub use avx512::Avx512;

/// k per packed block of `b`: a tile's slice of `a` (14 KiB for AVX-512) stays in L1 while
/// it meets every panel of the block.
const KC: usize = 256;
/// Output columns per packed block of `b` (256 KiB at `KC`, an L2's share).
const BLOCK_COLUMNS: usize = 256;

/// How `b` is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `b[n][k]`: one row per output column (an `nn.Linear` weight, attention keys).
    Transposed,
    /// `b[k][n]`: one row per step of k (attention values).
    Plain,
}

/// One tile's work: packed `a` (stride `MR`), a packed panel (stride `NR`), `kc` steps, the
/// output corner and row stride, the columns that exist (≤ `NR`), and whether the output
/// holds sums so far to continue (else they start from zero).
#[derive(Clone, Copy)]
pub struct Tile {
    a: *const f32,
    b: *const f32,
    kc: usize,
    out: *mut f32,
    out_stride: usize,
    cols: usize,
    accumulate: bool,
}

/// An instruction set's tile kernel and packers.
///
/// # Safety
/// Implementors are only used where the CPU has their features (the caller checks).
pub unsafe trait Isa {
    /// Activation rows per tile.
    const MR: usize;
    /// Output columns per panel.
    const NR: usize;
    /// `rows` (1..=MR) rows × `tile.cols` columns of the output.
    ///
    /// # Safety
    /// The pointers cover the tile as `Tile` describes it; the CPU has the features.
    unsafe fn tile(rows: usize, tile: Tile);
    /// Rows `first..first + rows` (≤ MR; the tile's other rows read as zero) of an m×k
    /// `a` into `dst[k][MR]`.
    ///
    /// # Safety
    /// The rows lie inside `a`; `dst` holds k × MR; the CPU has the features.
    unsafe fn pack_a(a: &[f32], k: usize, rows: (usize, usize), dst: &mut [f32]);
    /// Rows `first..first + cols` (≤ NR; missing ones read as zero) of an n×k `b`, k from
    /// `p0` for `kc`, into `dst[kc][NR]`.
    ///
    /// # Safety
    /// The rows and k range lie inside `b`; `dst` holds kc × NR; the CPU has the features.
    unsafe fn pack_b_rows(
        b: &[f32],
        k: usize,
        cols: (usize, usize),
        ks: (usize, usize),
        dst: &mut [f32],
    );
    /// Columns `first..first + cols` (≤ NR; missing ones read as zero) of a k×n `b`, k from
    /// `p0` for `kc`, into `dst[kc][NR]`.
    ///
    /// # Safety
    /// As `pack_b_rows`.
    unsafe fn pack_b_columns(
        b: &[f32],
        n: usize,
        cols: (usize, usize),
        ks: (usize, usize),
        dst: &mut [f32],
    );
}

/// `out[m, n] (row stride out_stride) = a[m, k] · b` with `b` as `layout` says (n×k read as
/// its transpose, or k×n). The caller checks the shapes (`gemm::matmul_a_bt`,
/// `gemm::matmul_a_b`).
///
/// # Safety
/// `a` holds m×k, `b` n×k values, `out` (m−1)·out_stride + n, n ≤ out_stride; the CPU has
/// `I`'s features.
pub unsafe fn matmul<I: Isa>(
    a: &[f32],
    (b, layout): (&[f32], Layout),
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
    out_stride: usize,
    threads: Threads,
) {
    if k == 0 {
        for row in out.chunks_mut(out_stride).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    let tile_len = k * I::MR;
    let mut packed_a = Scratch::<f32>::new(m.div_ceil(I::MR) * tile_len);
    let panels = n.div_ceil(I::NR);
    let parallel = threads == Threads::Pool && rayon::current_num_threads() > 1;
    let pack = |(tile, dst): (usize, &mut [f32])| {
        let first = tile * I::MR;
        // SAFETY: the tile's rows lie inside a (m×k); features as the caller checked.
        unsafe { I::pack_a(a, k, (first, (m - first).min(I::MR)), dst) }
    };
    if parallel {
        packed_a.par_chunks_mut(tile_len).enumerate().for_each(pack);
    } else {
        packed_a.chunks_mut(tile_len).enumerate().for_each(pack);
    }
    let packed_a = &*packed_a;
    let out_ptr = SendPtr(out.as_mut_ptr());
    // Column tasks: whole panels, at least two per thread when there is work for it.
    let tasks = if parallel {
        let blocks = (panels * I::NR).div_ceil(BLOCK_COLUMNS);
        (rayon::current_num_threads() * 2).max(blocks).min(panels)
    } else {
        1
    };
    let panels_per_task = panels.div_ceil(tasks);
    let run = |task: usize| {
        let first = task * panels_per_task;
        let last = (first + panels_per_task).min(panels);
        if first < last {
            let (c0, c1) = (first * I::NR, (last * I::NR).min(n));
            // SAFETY: tasks write disjoint column ranges of out; shapes as the caller
            // guarantees, features as it checked.
            unsafe {
                columns::<I>(
                    packed_a,
                    (b, layout),
                    out_ptr,
                    (m, k, n),
                    (c0, c1),
                    out_stride,
                )
            };
        }
    };
    if parallel {
        (0..tasks).into_par_iter().for_each(run);
    } else {
        (0..tasks).for_each(run);
    }
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the tasks that share it write disjoint columns.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Output columns `c0..c1` of every row: `b` packed block by block, each block met by
/// every tile of `a`.
unsafe fn columns<I: Isa>(
    packed_a: &[f32],
    (b, layout): (&[f32], Layout),
    out: SendPtr,
    (m, k, n): (usize, usize, usize),
    (c0, c1): (usize, usize),
    out_stride: usize,
) {
    let tiles = m.div_ceil(I::MR);
    let block_panels = BLOCK_COLUMNS / I::NR;
    let panel_len = KC * I::NR;
    let mut packed_b = Scratch::<f32>::new(panel_len * block_panels);
    for j0 in (c0..c1).step_by(BLOCK_COLUMNS) {
        let width = (c1 - j0).min(BLOCK_COLUMNS);
        let panels = width.div_ceil(I::NR);
        let panel_cols = |panel: usize| (width - panel * I::NR).min(I::NR);
        for p0 in (0..k).step_by(KC) {
            let kc = (k - p0).min(KC);
            for panel in 0..panels {
                let cols = (j0 + panel * I::NR, panel_cols(panel));
                let dst = &mut packed_b[panel * panel_len..][..kc * I::NR];
                match layout {
                    Layout::Transposed => I::pack_b_rows(b, k, cols, (p0, kc), dst),
                    Layout::Plain => I::pack_b_columns(b, n, cols, (p0, kc), dst),
                }
            }
            for tile in 0..tiles {
                let rows = (m - tile * I::MR).min(I::MR);
                let a_tile = packed_a.as_ptr().add(tile * k * I::MR + p0 * I::MR);
                for panel in 0..panels {
                    let tile_work = Tile {
                        a: a_tile,
                        b: packed_b.as_ptr().add(panel * panel_len),
                        kc,
                        out: out.0.add(tile * I::MR * out_stride + j0 + panel * I::NR),
                        out_stride,
                        cols: panel_cols(panel),
                        accumulate: p0 > 0,
                    };
                    I::tile(rows, tile_work);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar twin: one fused multiply-add chain over k per output, from zero.
    fn fma_chain_a_bt(a: &[f32], b: &[f32], (m, k, n): (usize, usize, usize)) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).fold(0.0f32, |s, t| a[i * k + t].mul_add(b[j * k + t], s));
            }
        }
        out
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0)
            .collect()
    }

    /// Every shape, layout and thread mode of `I` against the scalar twin, bit for bit.
    fn check<I: Isa>(name: &str) {
        let shapes = [
            (1, 1, 1),
            (14, 256, 32),
            (15, 257, 33),
            (29, 600, 300),
            (784, 64, 70),
            (3, 1000, 17),
            (40, 16, 513),
        ];
        let layouts = [Layout::Transposed, Layout::Plain];
        for ((m, k, n), layout) in shapes.into_iter().flat_map(|s| layouts.map(|l| (s, l))) {
            let (a, b) = (values(m * k, 1), values(n * k, 2));
            let b_stored = match layout {
                Layout::Transposed => b.clone(),
                Layout::Plain => (0..n * k).map(|i| b[(i % n) * k + i / n]).collect(),
            };
            let expected = fma_chain_a_bt(&a, &b, (m, k, n));
            for threads in [Threads::Pool, Threads::Single] {
                let stride = n + 3;
                let mut out = vec![7.0; m * stride];
                let b = (&b_stored[..], layout);
                // SAFETY: the caller checked the features; shapes as allocated.
                unsafe { matmul::<I>(&a, b, &mut out, (m, k, n), stride, threads) };
                for i in 0..m {
                    let row = &out[i * stride..(i + 1) * stride];
                    let what = format!("{name} {m}x{k}x{n} {layout:?} {threads:?}: row {i}");
                    assert_eq!(row[..n], expected[i * n..(i + 1) * n], "{what}");
                    assert_eq!(row[n..], [7.0; 3], "{what}: padding kept");
                }
            }
        }
    }

    #[test]
    fn avx512_products_equal_the_fused_multiply_add_chain_bit_for_bit() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("not run: this CPU has no AVX-512F, the instruction set of the tile");
            return;
        }
        check::<Avx512>("avx512");
    }
}
