//! A weight matrix as stored in the model file (f32, f16 or a ggml block format, one
//! row per output feature) and the product `x · Wᵀ` over it. Quantized weights are
//! used as they are; the activations are quantized once per product.
use half::f16;
use rayon::prelude::*;

use super::gemm::{matmul_a_bt, Threads};
use super::quant::q8_0;

/// Borrowed weight data, `rows` × `cols`, row-major (PyTorch `nn.Linear` layout).
#[derive(Clone, Copy, Debug)]
pub enum WeightMatrix<'a> {
    F32 {
        data: &'a [f32],
        rows: usize,
        cols: usize,
    },
    F16 {
        data: &'a [f16],
        rows: usize,
        cols: usize,
    },
    /// ggml Q8_0 rows (`cols` a multiple of 32).
    Q8_0 {
        data: &'a [u8],
        rows: usize,
        cols: usize,
    },
}

/// Weight rows per parallel task (at most; fewer when the matrix is small).
const ROWS_PER_TILE: usize = 64;

impl WeightMatrix<'_> {
    pub fn rows(&self) -> usize {
        match *self {
            WeightMatrix::F32 { rows, .. }
            | WeightMatrix::F16 { rows, .. }
            | WeightMatrix::Q8_0 { rows, .. } => rows,
        }
    }

    pub fn cols(&self) -> usize {
        match *self {
            WeightMatrix::F32 { cols, .. }
            | WeightMatrix::F16 { cols, .. }
            | WeightMatrix::Q8_0 { cols, .. } => cols,
        }
    }

    /// Copies row `index` as f32 into `out` (an embedding lookup).
    pub fn row_into(&self, index: usize, out: &mut [f32]) {
        let cols = self.cols();
        match *self {
            WeightMatrix::F32 { data, .. } => {
                out.copy_from_slice(&data[index * cols..(index + 1) * cols])
            }
            WeightMatrix::F16 { data, .. } => {
                for (o, v) in out.iter_mut().zip(&data[index * cols..(index + 1) * cols]) {
                    *o = v.to_f32();
                }
            }
            WeightMatrix::Q8_0 { data, .. } => {
                let bytes = q8_0::row_bytes(cols);
                q8_0::dequantize_row(&data[index * bytes..(index + 1) * bytes], out)
            }
        }
    }

    /// `out[m, rows] = x[m, cols] · Wᵀ`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (rows, cols) = (self.rows(), self.cols());
        assert_eq!(x.len(), m * cols, "matmul: input width");
        assert_eq!(out.len(), m * rows, "matmul: output size");
        match *self {
            WeightMatrix::F32 { data, .. } => {
                matmul_a_bt(x, data, out, (m, cols, rows), rows, Threads::Pool)
            }
            WeightMatrix::F16 { data, .. } => {
                for_row_tiles(rows, m, out, |first, tile_rows, part| {
                    let tile = &data[first * cols..(first + tile_rows) * cols];
                    let weights: Vec<f32> = tile.iter().map(|v| v.to_f32()).collect();
                    matmul_a_bt(
                        x,
                        &weights,
                        part,
                        (m, cols, tile_rows),
                        tile_rows,
                        Threads::Single,
                    );
                });
            }
            WeightMatrix::Q8_0 { data, .. } => {
                let bytes = q8_0::row_bytes(cols);
                let mut xq = vec![0u8; m * bytes];
                for (row, q) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(bytes)) {
                    q8_0::quantize_row(row, q);
                }
                for_row_tiles(rows, m, out, |first, tile_rows, part| {
                    for r in 0..tile_rows {
                        let w = &data[(first + r) * bytes..(first + r + 1) * bytes];
                        for (i, xi) in xq.chunks_exact(bytes).enumerate() {
                            part[i * tile_rows + r] = q8_0::dot(w, xi);
                        }
                    }
                });
            }
        }
    }
}

/// Splits the output columns (weight rows) into tiles computed in parallel:
/// `compute(first_row, tile_rows, part)` fills `part` (`m × tile_rows`, row-major),
/// which is then copied into its columns of `out` (`m × rows`).
fn for_row_tiles(
    rows: usize,
    m: usize,
    out: &mut [f32],
    compute: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let tile = ROWS_PER_TILE.min(rows.div_ceil(rayon::current_num_threads()).max(1));
    let tiles: Vec<(usize, Vec<f32>)> = (0..rows.div_ceil(tile))
        .into_par_iter()
        .map(|t| {
            let first = t * tile;
            let tile_rows = tile.min(rows - first);
            let mut part = vec![0.0f32; m * tile_rows];
            compute(first, tile_rows, &mut part);
            (first, part)
        })
        .collect();
    for (first, part) in tiles {
        let tile_rows = part.len() / m.max(1);
        for i in 0..m {
            out[i * rows + first..][..tile_rows]
                .copy_from_slice(&part[i * tile_rows..(i + 1) * tile_rows]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_0_product_matches_the_dequantized_weights() {
        let (rows, cols, m) = (130, 64, 3);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 31 % 97) as f32 - 48.0) / 48.0)
            .collect();
        let bytes = q8_0::row_bytes(cols);
        let mut wq = vec![0u8; rows * bytes];
        for (row, q) in w.chunks_exact(cols).zip(wq.chunks_exact_mut(bytes)) {
            q8_0::quantize_row(row, q);
        }
        let mut deq = vec![0.0; rows * cols];
        for r in 0..rows {
            q8_0::dequantize_row(
                &wq[r * bytes..(r + 1) * bytes],
                &mut deq[r * cols..(r + 1) * cols],
            );
        }
        let x: Vec<f32> = (0..m * cols)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
            .collect();
        let (mut got, mut want) = (vec![0.0; m * rows], vec![0.0; m * rows]);
        WeightMatrix::Q8_0 {
            data: &wq,
            rows,
            cols,
        }
        .matmul(&x, m, &mut got);
        WeightMatrix::F32 {
            data: &deq,
            rows,
            cols,
        }
        .matmul(&x, m, &mut want);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 0.02 * (1.0 + w.abs()), "{g} vs {w}");
        }
    }

    #[test]
    fn f16_and_f32_weights_give_the_same_product() {
        let (rows, cols, m) = (150, 24, 3);
        let w32: Vec<f32> = (0..rows * cols)
            .map(|i| ((i % 17) as f32 - 8.0) * 0.125)
            .collect();
        let w16: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let x: Vec<f32> = (0..m * cols).map(|i| (i % 5) as f32 - 2.0).collect();
        let (mut a, mut b) = (vec![0.0; m * rows], vec![0.0; m * rows]);
        WeightMatrix::F32 {
            data: &w32,
            rows,
            cols,
        }
        .matmul(&x, m, &mut a);
        WeightMatrix::F16 {
            data: &w16,
            rows,
            cols,
        }
        .matmul(&x, m, &mut b);
        assert_eq!(
            a, b,
            "values exactly representable in f16 must give identical products"
        );
    }
}
