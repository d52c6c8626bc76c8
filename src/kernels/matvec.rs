//! Products of a weight matrix stored as packed rows (quantized blocks or plain f32) with a
//! few activation rows (decode and short prompts): the activations come in the format's
//! companion layout (quantized once per product, or f32 as they are), the weight rows are
//! split over the pool in contiguous ranges, and each task streams its rows once,
//! computing every activation row's dot products as it goes.
use rayon::prelude::*;

/// Weight rows per task are a multiple of this (the kernels stream eight rows at a time),
/// and several activation rows take turns over blocks of this many weight rows.
const ROW_GRAIN: usize = 16;
/// Tasks per pool thread: enough to even out uneven progress, few enough that each task
/// streams a long contiguous range.
const TASKS_PER_THREAD: usize = 4;
/// Below this many weight bytes, a one-row product runs on the calling thread: waking the
/// pool costs more than streaming them.
const MIN_PARALLEL_BYTES: usize = 64 << 10;

/// Rows of fixed byte length in one buffer (quantized weights or activations).
#[derive(Clone, Copy)]
pub struct PackedRows<'a> {
    pub data: &'a [u8],
    pub row_bytes: usize,
    pub rows: usize,
}

/// `out[t·rows + r] = dot(weight row r, activation row t)` for every activation row of `x`.
/// `dot_rows(weights, x, out)` fills `out[i]` for the consecutive rows in `weights`.
pub fn packed_matvec(
    w: PackedRows,
    x: PackedRows,
    out: &mut [f32],
    dot_rows: impl Fn(&[u8], &[u8], &mut [f32]) + Sync,
) {
    let (rows, w_bytes, m, x_bytes, xq) = (w.rows, w.row_bytes, x.rows, x.row_bytes, x.data);
    let data = w.data;
    assert!(data.len() >= rows * w_bytes && xq.len() >= m * x_bytes && out.len() >= m * rows);
    let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
    let chunk = rows.div_ceil(tasks).div_ceil(ROW_GRAIN).max(1) * ROW_GRAIN;
    if m == 1 && rows * w_bytes < MIN_PARALLEL_BYTES {
        dot_rows(&data[..rows * w_bytes], &xq[..x_bytes], &mut out[..rows]);
        return;
    }
    if m == 1 {
        out[..rows]
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, part)| {
                let first = c * chunk;
                dot_rows(
                    &data[first * w_bytes..(first + part.len()) * w_bytes],
                    &xq[..x_bytes],
                    part,
                );
            });
        return;
    }
    // Each block of weight rows is read from memory once and from cache for the other
    // activation rows; every (weight row, activation row) dot is the one-row kernel's.
    packed_matmul(w, x, out, |weights, xq, m, part| {
        let mut column = [0.0f32; ROW_GRAIN];
        for (block, part) in weights
            .chunks(ROW_GRAIN * w_bytes)
            .zip(part.chunks_mut(ROW_GRAIN * m))
        {
            let count = part.len() / m;
            for t in 0..m {
                dot_rows(
                    block,
                    &xq[t * x_bytes..(t + 1) * x_bytes],
                    &mut column[..count],
                );
                for (r, v) in column[..count].iter().enumerate() {
                    part[r * m + t] = *v;
                }
            }
        }
    });
}

/// `out[t·rows + r] = dot(weight row r, activation row t)` for several activation rows, with
/// a kernel that takes them all at once: `dot_tokens(weights, x, m, part)` fills
/// `part[i·m + t]` for the consecutive rows `i` in `weights` and the `m` rows of `x`. The
/// weight rows are split over the pool in contiguous ranges.
pub fn packed_matmul(
    w: PackedRows,
    x: PackedRows,
    out: &mut [f32],
    dot_tokens: impl Fn(&[u8], &[u8], usize, &mut [f32]) + Sync,
) {
    let (rows, w_bytes, m) = (w.rows, w.row_bytes, x.rows);
    let (w, xq) = (w.data, &x.data[..m * x.row_bytes]);
    assert!(w.len() >= rows * w_bytes && out.len() >= m * rows);
    let tasks = rayon::current_num_threads() * TASKS_PER_THREAD;
    let chunk = rows.div_ceil(tasks).div_ceil(ROW_GRAIN).max(1) * ROW_GRAIN;
    // Row-major per task ([rows of the task][m]), scattered into `out` afterwards.
    let mut by_row = vec![0.0f32; rows * m];
    by_row
        .par_chunks_mut(chunk * m)
        .enumerate()
        .for_each(|(c, part)| {
            let first = c * chunk;
            let count = part.len() / m;
            dot_tokens(&w[first * w_bytes..(first + count) * w_bytes], xq, m, part);
        });
    for (r, values) in by_row.chunks_exact(m).enumerate() {
        for (t, v) in values.iter().enumerate() {
            out[t * rows + r] = *v;
        }
    }
}
