//! A weight matrix as stored in the model file (f32 or f16, one row per output
//! feature) and the product `x · Wᵀ` over it. Quantized formats plug in here.
use half::f16;
use rayon::prelude::*;

use super::gemm::{matmul_a_bt, Threads};

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
}

/// Output rows converted to f32 at a time when the weight is f16.
const F16_ROWS_PER_TILE: usize = 64;

impl WeightMatrix<'_> {
    pub fn rows(&self) -> usize {
        match *self {
            WeightMatrix::F32 { rows, .. } | WeightMatrix::F16 { rows, .. } => rows,
        }
    }

    pub fn cols(&self) -> usize {
        match *self {
            WeightMatrix::F32 { cols, .. } | WeightMatrix::F16 { cols, .. } => cols,
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
                let tiles: Vec<Vec<f32>> = data
                    .par_chunks(F16_ROWS_PER_TILE * cols)
                    .map(|tile| {
                        let tile_rows = tile.len() / cols;
                        let weights: Vec<f32> = tile.iter().map(|v| v.to_f32()).collect();
                        let mut part = vec![0.0; m * tile_rows];
                        matmul_a_bt(
                            x,
                            &weights,
                            &mut part,
                            (m, cols, tile_rows),
                            tile_rows,
                            Threads::Single,
                        );
                        part
                    })
                    .collect();
                for (t, part) in tiles.iter().enumerate() {
                    let tile_rows = part.len() / m.max(1);
                    for i in 0..m {
                        let dst = i * rows + t * F16_ROWS_PER_TILE;
                        out[dst..dst + tile_rows]
                            .copy_from_slice(&part[i * tile_rows..(i + 1) * tile_rows]);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
