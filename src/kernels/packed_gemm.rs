//! f32 `out = a · bᵀ` of our own for AVX-512: the vision encoder's and the f32 prompt's
//! dense products. The `gemm` crate has no AVX-512 kernels on stable Rust and packs the
//! weight rows (`b`, one row per output column) with strided scalar loads; here both
//! operands are packed with vector transposes and a 14 × 32 tile (28 accumulators)
//! streams them.
//!
//! Layout, per call: `a` (activation rows) in tiles of `MR` rows, k-major inside a tile
//! (`[tile][k][MR]`), packed once; `b` per task in blocks of `KC` k by up to
//! `PANELS_PER_BLOCK` panels of `NR` columns, k-major inside a panel (`[panel][kk][NR]`).
//! Every output element is one chain of fused multiply-adds over k in order, started from
//! zero: its bits depend on nothing but its own row of `a` and column of `b` — not on the
//! row count, the blocking, the threads or the cache sizes.
//!
//! Not for decode (a few rows: `dense_dot` streams the weights once instead) nor for other
//! CPUs (the `gemm` crate, `gemm::matmul_a_bt`).
use std::arch::x86_64::*;

use rayon::prelude::*;

use super::gemm::Threads;
use super::scratch::Scratch;

/// Activation rows per tile (784 vision patches are 56 tiles).
const MR: usize = 14;
/// Output columns per panel: two vectors.
const NR: usize = 32;
/// k per packed block of `b`: a tile's slice of `a` (14 KiB) stays in L1 while it meets
/// every panel of the block.
const KC: usize = 256;
/// Panels per packed block of `b` (256 KiB at `KC`, an L2's share).
const PANELS_PER_BLOCK: usize = 8;

/// How `b` is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `b[n][k]`: one row per output column (an `nn.Linear` weight, attention keys).
    Transposed,
    /// `b[k][n]`: one row per step of k (attention values).
    Plain,
}

/// `out[m, n] (row stride out_stride) = a[m, k] · b` with `b` as `layout` says (n×k read as
/// its transpose, or k×n). The caller checks the shapes (`gemm::matmul_a_bt`,
/// `gemm::matmul_a_b`) and that the CPU has AVX-512F.
///
/// # Safety
/// `a` holds m×k, `b` n×k values, `out` (m−1)·out_stride + n, n ≤ out_stride; AVX-512F.
pub unsafe fn matmul(
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
    let tiles = m.div_ceil(MR);
    let mut packed_a = Scratch::<f32>::new(tiles * k * MR);
    let panels = n.div_ceil(NR);
    let parallel = threads == Threads::Pool && rayon::current_num_threads() > 1;
    // SAFETY (every call below): the tiles and panels index inside a, b and out by the
    // shapes the caller guarantees; AVX-512F is present.
    if parallel {
        packed_a
            .par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(tile, dst)| unsafe { pack_a_tile(a, k, tile * MR, m, dst) });
    } else {
        for (tile, dst) in packed_a.chunks_mut(k * MR).enumerate() {
            pack_a_tile(a, k, tile * MR, m, dst);
        }
    }
    let packed_a = &*packed_a;
    let out_ptr = SendPtr(out.as_mut_ptr());
    // Column tasks: whole panels, at least two per thread when there is work for it.
    let tasks = if parallel {
        let want = (rayon::current_num_threads() * 2).max(panels.div_ceil(PANELS_PER_BLOCK));
        want.min(panels)
    } else {
        1
    };
    let panels_per_task = panels.div_ceil(tasks);
    let run = |task: usize| {
        let first = task * panels_per_task;
        let last = (first + panels_per_task).min(panels);
        if first < last {
            let (c0, c1) = (first * NR, (last * NR).min(n));
            // SAFETY: tasks write disjoint column ranges of out.
            unsafe {
                columns(
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

/// Output columns `c0..c1` of every row: `b`'s rows packed block by block, each block met
/// by every tile of `a`.
#[target_feature(enable = "avx512f")]
unsafe fn columns(
    packed_a: &[f32],
    (b, layout): (&[f32], Layout),
    out: SendPtr,
    (m, k, n): (usize, usize, usize),
    (c0, c1): (usize, usize),
    out_stride: usize,
) {
    let tiles = m.div_ceil(MR);
    let mut packed_b = Scratch::<f32>::new(KC * NR * PANELS_PER_BLOCK);
    let mut j0 = c0;
    while j0 < c1 {
        let width = (c1 - j0).min(NR * PANELS_PER_BLOCK);
        let block_panels = width.div_ceil(NR);
        let mut p0 = 0;
        while p0 < k {
            let kc = (k - p0).min(KC);
            for panel in 0..block_panels {
                let cols = (width - panel * NR).min(NR);
                let dst = &mut packed_b[panel * KC * NR..][..kc * NR];
                let first = j0 + panel * NR;
                match layout {
                    Layout::Transposed => pack_b_stored(b, k, (first, cols), (p0, kc), dst),
                    Layout::Plain => pack_b_columns(b, n, (first, cols), (p0, kc), dst),
                }
            }
            for tile in 0..tiles {
                let rows = (m - tile * MR).min(MR);
                let a_tile = packed_a.as_ptr().add(tile * k * MR + p0 * MR);
                for panel in 0..block_panels {
                    let cols = (width - panel * NR).min(NR);
                    let c = out.0.add(tile * MR * out_stride + j0 + panel * NR);
                    let b_panel = packed_b.as_ptr().add(panel * KC * NR);
                    let tile_args = (a_tile, b_panel, kc, c, out_stride, cols, p0 > 0);
                    match rows {
                        14 => tile_kernel::<14>(tile_args),
                        13 => tile_kernel::<13>(tile_args),
                        12 => tile_kernel::<12>(tile_args),
                        11 => tile_kernel::<11>(tile_args),
                        10 => tile_kernel::<10>(tile_args),
                        9 => tile_kernel::<9>(tile_args),
                        8 => tile_kernel::<8>(tile_args),
                        7 => tile_kernel::<7>(tile_args),
                        6 => tile_kernel::<6>(tile_args),
                        5 => tile_kernel::<5>(tile_args),
                        4 => tile_kernel::<4>(tile_args),
                        3 => tile_kernel::<3>(tile_args),
                        2 => tile_kernel::<2>(tile_args),
                        _ => tile_kernel::<1>(tile_args),
                    }
                }
            }
            p0 += kc;
        }
        j0 += width;
    }
}

type TileArgs = (*const f32, *const f32, usize, *mut f32, usize, usize, bool);

/// `ROWS` rows × `cols` (≤ 32) columns of the output: the sums so far (`accumulate`) or
/// zero, plus `kc` steps of packed `a` (stride `MR`) times a packed panel (stride `NR`).
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile_kernel<const ROWS: usize>((a, b, kc, c, ldc, cols, accumulate): TileArgs) {
    let masks = column_masks(cols);
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    if accumulate {
        for (r, row) in acc.iter_mut().enumerate() {
            row[0] = _mm512_maskz_loadu_ps(masks[0], c.add(r * ldc));
            row[1] = _mm512_maskz_loadu_ps(masks[1], c.add(r * ldc + 16));
        }
    }
    for kk in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(kk * NR));
        let b1 = _mm512_loadu_ps(b.add(kk * NR + 16));
        let a_k = a.add(kk * MR);
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a_k.add(r));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_mask_storeu_ps(c.add(r * ldc), masks[0], row[0]);
        _mm512_mask_storeu_ps(c.add(r * ldc + 16), masks[1], row[1]);
    }
}

/// The lanes of a panel's two vectors that hold one of its `cols` columns.
fn column_masks(cols: usize) -> [__mmask16; 2] {
    let lanes = |from: usize| -> __mmask16 {
        let count = cols.saturating_sub(from).min(16);
        ((1u32 << count) - 1) as __mmask16
    };
    [lanes(0), lanes(16)]
}

/// Rows `first..first + MR` of `a` (rows from `m` on read as zero) into `dst[k][MR]`.
#[target_feature(enable = "avx512f")]
unsafe fn pack_a_tile(a: &[f32], k: usize, first: usize, m: usize, dst: &mut [f32]) {
    let rows = (m - first).min(MR);
    for r in 0..MR {
        if r < rows {
            let row = &a[(first + r) * k..][..k];
            for (kk, &v) in row.iter().enumerate() {
                *dst.get_unchecked_mut(kk * MR + r) = v;
            }
        } else {
            for kk in 0..k {
                *dst.get_unchecked_mut(kk * MR + r) = 0.0;
            }
        }
    }
}

/// Columns `j0..j0 + cols` (≤ NR; missing ones read as zero) of a k×n `b`, k from `p0` for
/// `kc`, into `dst[kc][NR]`: row pieces copied.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b_columns(
    b: &[f32],
    n: usize,
    (j0, cols): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    let masks = column_masks(cols);
    for kk in 0..kc {
        let src = b.as_ptr().add((p0 + kk) * n + j0);
        let to = dst.as_mut_ptr().add(kk * NR);
        _mm512_storeu_ps(to, _mm512_maskz_loadu_ps(masks[0], src));
        _mm512_storeu_ps(to.add(16), _mm512_maskz_loadu_ps(masks[1], src.add(16)));
    }
}

/// Rows `j0..j0 + cols` (≤ NR; missing ones read as zero) of an n×k `b`, k from `p0` for
/// `kc`, into `dst[kc][NR]`: 16 × 16 blocks transposed in registers.
#[target_feature(enable = "avx512f")]
unsafe fn pack_b_stored(
    b: &[f32],
    k: usize,
    (j0, cols): (usize, usize),
    (p0, kc): (usize, usize),
    dst: &mut [f32],
) {
    let mut block = [_mm512_setzero_ps(); 16];
    for half in 0..2 {
        let r0 = half * 16;
        let rows = cols.saturating_sub(r0).min(16);
        let mut kk = 0;
        while kk < kc {
            let width = (kc - kk).min(16);
            let mask = ((1u32 << width) - 1) as __mmask16;
            for (r, v) in block.iter_mut().enumerate() {
                *v = if r < rows {
                    _mm512_maskz_loadu_ps(mask, b.as_ptr().add((j0 + r0 + r) * k + p0 + kk))
                } else {
                    _mm512_setzero_ps()
                };
            }
            let columns = transpose16(&block);
            for (i, v) in columns.iter().enumerate().take(width) {
                _mm512_storeu_ps(dst.as_mut_ptr().add((kk + i) * NR + r0), *v);
            }
            kk += 16;
        }
    }
}

/// The 16 × 16 transpose of `rows`: element j of result i is element i of row j.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn transpose16(rows: &[__m512; 16]) -> [__m512; 16] {
    // 32-bit interleaves of row pairs, then 64-bit interleaves: u[4g + c] holds, in
    // 128-bit lane l, rows 4g..4g+3 of column 4l + c.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for g in 0..4 {
        let (lo, hi) = (t[4 * g], t[4 * g + 2]);
        let (lo2, hi2) = (t[4 * g + 1], t[4 * g + 3]);
        let pd = _mm512_castps_pd;
        u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(lo), pd(hi)));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(lo), pd(hi)));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(pd(lo2), pd(hi2)));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(pd(lo2), pd(hi2)));
    }
    // A 4 × 4 transpose of 128-bit lanes among u[c], u[4 + c], u[8 + c], u[12 + c].
    let mut out = [_mm512_setzero_ps(); 16];
    for c in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x44>(u[c], u[4 + c]);
        let v1 = _mm512_shuffle_f32x4::<0xEE>(u[c], u[4 + c]);
        let v2 = _mm512_shuffle_f32x4::<0x44>(u[8 + c], u[12 + c]);
        let v3 = _mm512_shuffle_f32x4::<0xEE>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[4 + c] = _mm512_shuffle_f32x4::<0xDD>(v0, v2);
        out[8 + c] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[12 + c] = _mm512_shuffle_f32x4::<0xDD>(v1, v3);
    }
    out
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

    #[test]
    fn products_equal_the_fused_multiply_add_chain_bit_for_bit() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!(
                "not run: this CPU has no AVX-512F, the packed f32 product's instruction set"
            );
            return;
        }
        let shapes = [
            (1, 1, 1),
            (14, 256, 32),
            (15, 257, 33),
            (29, 600, 300),
            (784, 64, 70),
            (3, 1000, 17),
            (40, 16, 513),
        ];
        for ((m, k, n), layout, threads) in shapes.into_iter().flat_map(|shape| {
            [Layout::Transposed, Layout::Plain]
                .into_iter()
                .flat_map(move |layout| {
                    [Threads::Pool, Threads::Single].map(|threads| (shape, layout, threads))
                })
        }) {
            let (a, b) = (values(m * k, 1), values(n * k, 2));
            let b_stored = match layout {
                Layout::Transposed => b.clone(),
                Layout::Plain => (0..n * k).map(|i| b[(i % n) * k + i / n]).collect(),
            };
            let expected = fma_chain_a_bt(&a, &b, (m, k, n));
            {
                let stride = n + 3;
                let mut out = vec![7.0; m * stride];
                // SAFETY: AVX-512F checked above; shapes as allocated.
                unsafe {
                    matmul(
                        &a,
                        (&b_stored, layout),
                        &mut out,
                        (m, k, n),
                        stride,
                        threads,
                    )
                };
                for i in 0..m {
                    assert_eq!(
                        out[i * stride..i * stride + n],
                        expected[i * n..(i + 1) * n],
                        "{m}x{k}x{n} {layout:?} {threads:?}: row {i}"
                    );
                    assert_eq!(
                        out[i * stride + n..(i + 1) * stride],
                        [7.0; 3],
                        "padding kept"
                    );
                }
            }
        }
    }

    #[test]
    fn transpose16_swaps_rows_and_columns() {
        if !is_x86_feature_detected!("avx512f") {
            eprintln!("not run: this CPU has no AVX-512F");
            return;
        }
        let input: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: AVX-512F checked above; every load and store is 16 floats in bounds.
        unsafe {
            let rows: [__m512; 16] =
                std::array::from_fn(|r| _mm512_loadu_ps(input.as_ptr().add(r * 16)));
            let cols = transpose16(&rows);
            let mut got = vec![0.0f32; 256];
            for (i, v) in cols.iter().enumerate() {
                _mm512_storeu_ps(got.as_mut_ptr().add(i * 16), *v);
            }
            for i in 0..16 {
                for j in 0..16 {
                    assert_eq!(got[i * 16 + j], input[j * 16 + i]);
                }
            }
        }
    }
}
