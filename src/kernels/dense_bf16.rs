//! Dense products on AMX tiles for many activation rows (prefill, the vision encoder):
//! the activations are rounded to bf16 once per product and packed in the tiles' pair
//! layout; each task dequantizes panels of 32 weight rows (any storage format) to bf16
//! and multiplies them with every activation row, accumulating in f32 over the whole K.
use rayon::prelude::*;

use super::amx::{tile_product_2x2, TileOperands, K_STEP, TILE};

/// Weight rows per panel (two A tiles) and activation rows per pass (two B tiles).
const PANEL: usize = 2 * TILE;
/// Tasks per pool thread.
const TASKS_PER_THREAD: usize = 2;

/// Whether `dense_bf16_matmul` handles a product of this shape on this machine.
pub fn supports(cols: usize) -> bool {
    cols % K_STEP == 0 && super::amx::amx_available()
}

/// The output matrix, written by several tasks at once in disjoint column ranges.
struct SharedOut {
    ptr: *mut f32,
    rows: usize,
}
// SAFETY: tasks write disjoint column ranges (their own weight rows) of the output.
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
    let packed = pack_activations(x, m, cols);
    let token_pairs = m.div_ceil(PANEL);
    let panels = rows.div_ceil(PANEL);
    let per_task = panels
        .div_ceil(rayon::current_num_threads() * TASKS_PER_THREAD)
        .max(1);
    let shared = SharedOut {
        ptr: out.as_mut_ptr(),
        rows,
    };
    (0..panels.div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            let shared = &shared;
            let mut f32_rows = vec![0.0f32; PANEL * cols];
            let mut panel = vec![0u16; PANEL * cols];
            let mut c = [[0.0f32; TILE * TILE]; 4];
            for p in task * per_task..((task + 1) * per_task).min(panels) {
                let first = p * PANEL;
                let valid_rows = PANEL.min(rows - first);
                dequantize(first, &mut f32_rows[..valid_rows * cols]);
                f32_rows[valid_rows * cols..].fill(0.0);
                to_bf16(&f32_rows, &mut panel);
                for pair in 0..token_pairs {
                    let block = |j: usize| {
                        // SAFETY: `packed` holds `2 · token_pairs` blocks of `steps` tiles.
                        unsafe {
                            packed.as_ptr().add((2 * pair + j) * steps * TILE * TILE) as *const u8
                        }
                    };
                    let op = TileOperands {
                        a: panel.as_ptr() as *const u8,
                        a_stride: cols * 2,
                        b: [block(0), block(1)],
                        k_steps: steps,
                    };
                    // SAFETY: AMX is available (`supports`); `panel` is 32 rows of `cols` bf16 and
                    // each B block is `steps` tiles of 1 KiB.
                    unsafe { tile_product_2x2(&op, &mut c) };
                    let t0 = pair * PANEL;
                    for (i, tile) in c.iter().enumerate() {
                        let (n_base, t_base) = (first + (i / 2) * TILE, t0 + (i % 2) * TILE);
                        for (n_local, row) in tile.chunks_exact(TILE).enumerate() {
                            let n = n_base + n_local;
                            if n >= rows {
                                break;
                            }
                            for (t_local, &v) in row.iter().enumerate() {
                                let t = t_base + t_local;
                                if t >= m {
                                    break;
                                }
                                // SAFETY: t < m and n < rows; column n belongs to this task only.
                                unsafe { *shared.ptr.add(t * shared.rows + n) = v };
                            }
                        }
                    }
                }
            }
        });
}

/// `x` (m × cols) as bf16 pairs in B-tile order: for each block of 16 rows (zero-padded
/// to an even number of blocks), each step of 32 columns is one 1 KiB tile whose row `kk`
/// holds, for every activation row `t`, the pair of columns `2kk, 2kk + 1`.
fn pack_activations(x: &[f32], m: usize, cols: usize) -> Vec<u32> {
    let steps = cols / K_STEP;
    let blocks = 2 * m.div_ceil(PANEL);
    let mut packed = vec![0u32; blocks * steps * TILE * TILE];
    packed
        .par_chunks_mut(steps * TILE * TILE)
        .enumerate()
        .for_each(|(block, dst)| {
            let mut row_bf16 = vec![0u16; cols];
            for t in 0..TILE {
                let row = block * TILE + t;
                if row >= m {
                    break;
                }
                to_bf16(&x[row * cols..(row + 1) * cols], &mut row_bf16);
                for (pair, v) in row_bf16.chunks_exact(2).enumerate() {
                    let (s, kk) = (pair / TILE, pair % TILE);
                    dst[(s * TILE + kk) * TILE + t] = v[0] as u32 | (v[1] as u32) << 16;
                }
            }
        });
    packed
}

/// f32 → bf16 bits, rounding to nearest even (as `half::bf16::from_f32`).
fn to_bf16(src: &[f32], dst: &mut [u16]) {
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
