//! Dense products on AMX tiles for many activation rows (prefill, the vision encoder):
//! the activations are rounded to bf16 once per product (the A operand, row-major); each
//! task dequantizes its panels of 32 weight rows (any storage format) once to bf16 in the
//! tiles' pair layout (the B operand), then for each block of 128 activation rows runs
//! every panel over it in passes of 1024 columns of K, accumulating in a small f32 buffer
//! whose rows are copied into the output.
use rayon::prelude::*;

use super::amx::{TileOperands, Tiles, K_STEP, TILE};
use super::scratch::Scratch;

/// Weight rows per panel (two B tiles) and activation rows per product (two A tiles).
const PANEL: usize = 2 * TILE;
/// Tasks per pool thread.
const TASKS_PER_THREAD: usize = 2;
/// K steps per pass: the panel's slice of B (2 × 32 tiles, 64 KiB) stays near L1 while
/// the block's activation rows stream past it.
const STEPS_PER_PASS: usize = 32;
/// Pairs of 16 activation rows per block (128 rows: 512 KiB of bf16 at K = 2048 stays in L2).
const PAIRS_PER_BLOCK: usize = 4;

/// Whether `dense_bf16_matmul` handles a product of this shape on this machine.
pub fn supports(cols: usize) -> bool {
    cols.is_multiple_of(K_STEP) && super::amx::amx_available()
}

/// The output matrix, written by several tasks at once in disjoint column ranges.
struct SharedOut {
    ptr: *mut f32,
    rows: usize,
}
// SAFETY: each task writes only the columns of its own weight rows.
unsafe impl Sync for SharedOut {}

/// `out[m, rows] = x[m, cols] · Wᵀ`, where `dequantize(first, buf)` writes weight rows
/// `first..first + buf.len() / cols` as f32 into `buf`. Requires `supports(cols)`.
pub fn dense_bf16_matmul(
    rows: usize,
    cols: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    dequantize: impl Fn(usize, &mut [f32]) + Sync,
) {
    assert!(
        supports(cols),
        "dense_bf16_matmul: unsupported shape or CPU"
    );
    assert!(
        x.len() == m * cols && out.len() == m * rows,
        "dense_bf16_matmul: sizes"
    );
    let steps = cols / K_STEP;
    // One extra cache line per row keeps the 16 rows of an A tile out of one L1 set.
    let x_stride = cols + 32;
    let activations = activations_bf16(x, m, cols, x_stride);
    let token_pairs = m.div_ceil(PANEL);
    let panels = rows.div_ceil(PANEL);
    let per_task = panels
        .div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD)
        .max(1);
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        rows,
    };
    let panel_words = 2 * steps * TILE * TILE;
    (0..panels.div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            let shared = &shared;
            let task_panels = task * per_task..((task + 1) * per_task).min(panels);
            // Every panel of the task, dequantized and packed once.
            let mut packed = Scratch::<u32>::new(task_panels.len() * panel_words);
            let mut f32_rows = Scratch::<f32>::new(PANEL * cols);
            let mut bf16_rows = Scratch::<u16>::new(PANEL * cols);
            for (p, dst) in task_panels
                .clone()
                .zip(packed.chunks_exact_mut(panel_words))
            {
                let first = p * PANEL;
                let valid_rows = PANEL.min(rows - first);
                dequantize(first, &mut f32_rows[..valid_rows * cols]);
                f32_rows[valid_rows * cols..].fill(0.0);
                to_bf16(&f32_rows, &mut bf16_rows);
                pack_pairs(&bf16_rows, cols, dst);
            }
            let mut c = Scratch::<f32>::new(PAIRS_PER_BLOCK * PANEL * PANEL);
            // SAFETY: AMX is available (`supports`).
            let tiles = unsafe { Tiles::configure() };
            // Token blocks outermost: a block's activations stay in L2 while every panel
            // of the task passes by.
            for pair0 in (0..token_pairs).step_by(PAIRS_PER_BLOCK) {
                let pairs = pair0..(pair0 + PAIRS_PER_BLOCK).min(token_pairs);
                for (p, panel) in task_panels.clone().zip(packed.chunks_exact(panel_words)) {
                    for step0 in (0..steps).step_by(STEPS_PER_PASS) {
                        let k_steps = STEPS_PER_PASS.min(steps - step0);
                        let block = |j: usize| {
                            panel[(j * steps + step0) * TILE * TILE..].as_ptr() as *const u8
                        };
                        for pair in pairs.clone() {
                            let t0 = pair * PANEL;
                            let op = TileOperands {
                                a: activations[t0 * x_stride + step0 * K_STEP..].as_ptr()
                                    as *const u8,
                                a_stride: x_stride * 2,
                                b: [block(0), block(1)],
                                k_steps,
                                c: c[(pair - pair0) * PANEL * PANEL..].as_mut_ptr() as *mut u8,
                                c_stride: PANEL * 4,
                                accumulate: step0 > 0,
                            };
                            // SAFETY: A is 32 rows (zero-padded) of `x_stride` bf16 read from
                            // `step0`, each B block holds `k_steps` tiles of 1 KiB from there,
                            // and C is one 32 × 32 f32 block of `c`.
                            unsafe { tiles.product_2x2(&op) };
                        }
                    }
                    let first = p * PANEL;
                    let valid_rows = PANEL.min(rows - first);
                    for t in pairs.start * PANEL..(pairs.end * PANEL).min(m) {
                        // SAFETY: t < m and first + valid_rows <= rows: columns of this task.
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(
                                shared.ptr.add(t * shared.rows + first),
                                valid_rows,
                            )
                        };
                        let src = (t - pair0 * PANEL) * PANEL;
                        dst.copy_from_slice(&c[src..src + valid_rows]);
                    }
                }
            }
        });
}

/// `x` (m × cols) as bf16 rows of `stride` values, zero-padded to whole 32-row blocks.
fn activations_bf16(x: &[f32], m: usize, cols: usize, stride: usize) -> Scratch<u16> {
    let mut out = Scratch::<u16>::new(m.div_ceil(PANEL) * PANEL * stride);
    out[m * stride..].fill(0);
    out.par_chunks_mut(stride)
        .zip(x.par_chunks(cols))
        .for_each(|(dst, src)| to_bf16(src, &mut dst[..cols]));
    out
}

/// 32 bf16 rows of `cols` values into two B blocks of `cols / 32` tiles each: tile `s`
/// of block `j` holds in row `kk`, for each of the block's 16 rows `n`, the pair of
/// columns `32s + 2kk, 32s + 2kk + 1`. One 1 KiB tile at a time, so stores stay in L1.
pub(crate) fn pack_pairs(rows_bf16: &[u16], cols: usize, packed: &mut [u32]) {
    let steps = cols / K_STEP;
    for (tile_index, tile) in packed.chunks_exact_mut(TILE * TILE).enumerate() {
        let (j, s) = (tile_index / steps, tile_index % steps);
        for n in 0..TILE {
            let row = &rows_bf16[(j * TILE + n) * cols + s * K_STEP..][..K_STEP];
            for (kk, v) in row.chunks_exact(2).enumerate() {
                tile[kk * TILE + n] = v[0] as u32 | (v[1] as u32) << 16;
            }
        }
    }
}

/// f32 → bf16 bits, rounding to nearest even (as `half::bf16::from_f32`).
pub(crate) fn to_bf16(src: &[f32], dst: &mut [u16]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: only reached when AMX is available, which implies AVX-512 BF16.
    unsafe {
        to_bf16_avx512(src, dst)
    }
    #[cfg(not(target_arch = "x86_64"))]
    for (d, s) in dst.iter_mut().zip(src) {
        *d = half::bf16::from_f32(*s).to_bits();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16,avx512vl")]
unsafe fn to_bf16_avx512(src: &[f32], dst: &mut [u16]) {
    use std::arch::x86_64::*;
    let n = src.len().min(dst.len());
    let mut i = 0;
    while i + 32 <= n {
        let lo = _mm512_loadu_ps(src.as_ptr().add(i));
        let hi = _mm512_loadu_ps(src.as_ptr().add(i + 16));
        let v: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(hi, lo));
        _mm512_storeu_si512(dst.as_mut_ptr().add(i) as *mut _, v);
        i += 32;
    }
    for j in i..n {
        dst[j] = half::bf16::from_f32(src[j]).to_bits();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn round_bf16(v: &[f32]) -> Vec<f32> {
        v.iter().map(|&x| bf16::from_f32(x).to_f32()).collect()
    }

    #[test]
    fn amx_product_equals_the_f32_product_of_bf16_inputs() {
        if !super::super::amx::amx_available() {
            eprintln!("AMX not available: nothing to compare");
            return;
        }
        // Shapes with partial panels and partial token blocks.
        let (rows, cols, m) = (70, 96, 37);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 37.0)
            .collect();
        let x: Vec<f32> = (0..m * cols)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 29.0)
            .collect();
        let (wb, xb) = (round_bf16(&w), round_bf16(&x));
        let mut got = vec![0.0; m * rows];
        dense_bf16_matmul(rows, cols, &x, m, &mut got, |first, buf| {
            buf.copy_from_slice(&w[first * cols..first * cols + buf.len()])
        });
        for t in 0..m {
            for n in 0..rows {
                let want: f64 = (0..cols)
                    .map(|k| wb[n * cols + k] as f64 * xb[t * cols + k] as f64)
                    .sum();
                let g = got[t * rows + n] as f64;
                assert!(
                    (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "({t},{n}): {g} vs {want}"
                );
            }
        }
    }
}
