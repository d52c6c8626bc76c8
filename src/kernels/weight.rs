//! A weight matrix as stored in the model file (f32, f16 or a ggml block format, one
//! row per output feature) and the product `x · Wᵀ` over it. Quantized weights are
//! used as they are: a few activation rows (decode) go through the format's integer dot
//! kernels with the activations quantized once per product; many rows (prefill, the
//! vision encoder) dequantize panels of weight rows and run a dense product on them:
//! bf16 on AMX tiles where present for quantized weights, f32 otherwise (f32 and f16
//! weights always take the exact f32 product; f32 and f16 weights at up to eight
//! activation rows stream through `dense_dot`, the decode kernel). Q6_K weights (the output
//! projection of the 4-bit profiles) only meet one row per sequence and always take the
//! integer dots. `matmul_groups` runs a batch of independent sequences' rows so that each
//! gets the result it would get alone. On CPUs with AVX-512 VNNI and without AMX, and on
//! AVX2 CPUs, quantized weights are repacked at load into 16-row groups
//! (`quant::q8_0x16`, `quant::q4_kx16`) and every batch size runs the interleaved integer
//! kernels. In the file layout on AVX2 (`GLIMPSE_INTERLEAVE=off`), Q4_K and Q8_0 products
//! of 2 to 127 activation rows run integer kernels that reuse each weight block for
//! several tokens (`quant::q4_k_tokens`, `quant::q8_0_tokens`).
use std::sync::OnceLock;

use half::f16;
use rayon::prelude::*;

use super::amx::amx_available;
use super::amx_int8::amx_int8_available;
use super::dense_bf16::{self, dense_bf16_matmul};
use super::dense_dot::{self, DenseElement, SimdLoads};
use super::f16_convert;
use super::gemm::{self, matmul_a_bt, Threads};
use super::matvec::{packed_matmul, packed_matvec, PackedRows};
use super::quant::q8_blocks::Q8Blocks;
use super::quant::{q4_k, q4_k_tokens, q4_kx16, q6_k, q8_0, q8_0_tokens, q8_0x16, q8_k};
use super::simd::{simd_path, SimdPath};

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
    /// ggml Q4_K rows (`cols` a multiple of 256).
    Q4K {
        data: &'a [u8],
        rows: usize,
        cols: usize,
    },
    /// ggml Q6_K rows (`cols` a multiple of 256): decode-sized products only (the output
    /// projection), always through the integer dot kernels.
    Q6K {
        data: &'a [u8],
        rows: usize,
        cols: usize,
    },
    /// Q8_0 repacked into interleaved 16-row groups (`quant::q8_0x16`).
    Q8_0x16 {
        data: &'a [u8],
        rows: usize,
        cols: usize,
    },
    /// Q4_K repacked into interleaved 16-row groups (`quant::q4_kx16`).
    Q4Kx16 {
        data: &'a [u8],
        rows: usize,
        cols: usize,
    },
}

/// Whether a Q4_K or Q8_0 product of `m` activation rows takes the AVX2 several-token
/// integer kernel (`quant::q4_k_tokens`, `quant::q8_0_tokens`) rather than one-token dots
/// (fewer than 8 rows) or f32 panels. Measured with `cargo bench --profile test --bench
/// kernels` on AMD Zen 1 (2 threads, 2048- and 6144-row matrices): q4_K 1.6× the one-token
/// dots at 4 rows, 2.6× the f32 panels at 16 rows, 1.3× at 64, equal at 128, 0.87× at 512;
/// q8_0 1.2–1.4× at 4 rows, 2.2× at 16, equal at 128, 0.85× at 512. AVX-512 CPUs have their
/// own paths (interleaved VNNI, AMX tiles).
fn token_kernels_pay(m: usize) -> bool {
    simd_path() == SimdPath::Avx2 && (2..TOKEN_KERNELS_BELOW_ROWS).contains(&m)
}

/// See `token_kernels_pay`.
const TOKEN_KERNELS_BELOW_ROWS: usize = 128;

/// Whether this process multiplies block-quantized weights in the interleaved layout
/// (`quant::q8_0x16`, `quant::q4_kx16`): with AVX-512 VNNI (on AMX hosts too, where
/// batches of 16 tokens and more run on AMX-INT8 tiles over the same bytes; with
/// `GLIMPSE_AMX_INT8=off` those hosts keep the file layout and bf16 tile panels), and on
/// AVX2 CPUs. On an AMX host (Sapphire Rapids class, 2 threads, 2B; issue 23's run of
/// the interleaved VNNI kernels against the file layout with bf16 panels, before the
/// AMX-INT8 kernels) the interleaved layout decoded 1.18× (q4_K) and 1.24× (q8_0)
/// faster, its image-turn time to first token was 0.81× and 0.60×, and prompts were
/// 14 % and 9 % slower — what the AMX-INT8 kernels are for. Measured with `cargo bench
/// --profile test --bench kernels` on AMD Zen 1 (AVX2, 2 threads, 6144 × 2048): the interleaved kernels
/// beat the file-layout ones at every batch size: q4_K 1.9–2.2× at 1 token, 1.9× at 4,
/// 2.3× at 16, 2.7× at 128 and 2.3× (over the f32 panels) at 512; q8_0 3.7×, 3.4×,
/// 4.1×, 3.5× and 1.9×. `GLIMPSE_INTERLEAVE=off` keeps the file layout (comparisons, debugging).
pub fn interleaving_pays() -> bool {
    static PAYS: OnceLock<bool> = OnceLock::new();
    *PAYS.get_or_init(|| {
        let off = std::env::var("GLIMPSE_INTERLEAVE").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        !off && match simd_path() {
            SimdPath::Avx512 => !amx_available() || amx_int8_available(),
            SimdPath::Avx2 => true,
            _ => false,
        }
    })
}

/// How this process multiplies block-quantized weights (q8_0, q4_K), for reports such as
/// `glimpse bench`: which layout and kernels the measurement above chose on this CPU.
pub fn quantized_weights_path() -> &'static str {
    if interleaving_pays() && amx_int8_available() {
        "interleaved 16-row groups, AMX int8 tiles from 16 tokens, VNNI kernels below"
    } else if interleaving_pays() {
        "interleaved 16-row groups, integer kernels for every batch size"
    } else if simd_path() == SimdPath::Avx512 && amx_available() {
        "file layout, integer dots for decode, AMX bf16 tiles for prompts"
    } else if simd_path() == SimdPath::Avx2 {
        "file layout, integer kernels up to 127 rows, f32 panels beyond"
    } else {
        "file layout, integer dots for decode, dequantized panels for prompts"
    }
}

/// Up to this many activation rows, f32 and f16 weights (f16 where `dense_dot` widens it)
/// go through the one-row dot kernel for each activation row while a block of weight rows
/// is in cache: the weights are read from memory once, and every row's result is the one
/// it gets alone, so a decode batch answers as each sequence would alone.
const DOT_ROWS_UP_TO: usize = 8;

/// Weight rows per dequantized panel of the dense path (at most; fewer when small).
const ROWS_PER_PANEL: usize = 64;
/// From this many activation rows on, dequantizing panels and running a dense product
/// beats one integer dot product per (row, activation) pair.
const DENSE_FROM_ROWS: usize = 8;

impl<'a> WeightMatrix<'a> {
    pub fn rows(&self) -> usize {
        match *self {
            WeightMatrix::F32 { rows, .. }
            | WeightMatrix::F16 { rows, .. }
            | WeightMatrix::Q8_0 { rows, .. }
            | WeightMatrix::Q4K { rows, .. }
            | WeightMatrix::Q6K { rows, .. }
            | WeightMatrix::Q8_0x16 { rows, .. }
            | WeightMatrix::Q4Kx16 { rows, .. } => rows,
        }
    }

    pub fn cols(&self) -> usize {
        match *self {
            WeightMatrix::F32 { cols, .. }
            | WeightMatrix::F16 { cols, .. }
            | WeightMatrix::Q8_0 { cols, .. }
            | WeightMatrix::Q4K { cols, .. }
            | WeightMatrix::Q6K { cols, .. }
            | WeightMatrix::Q8_0x16 { cols, .. }
            | WeightMatrix::Q4Kx16 { cols, .. } => cols,
        }
    }

    /// Bytes of this matrix in the interleaved layout, for formats that have one.
    pub fn interleaved_bytes(&self) -> Option<usize> {
        match *self {
            WeightMatrix::Q8_0 { rows, cols, .. } => Some(q8_0x16::packed_bytes(rows, cols)),
            WeightMatrix::Q4K { rows, cols, .. } => Some(q4_kx16::packed_bytes(rows, cols)),
            _ => None,
        }
    }

    /// Repacks this matrix into `out` (`interleaved_bytes()` long) and returns the view
    /// of the result; formats without an interleaved layout are returned unchanged.
    pub fn interleave_into<'b>(&self, out: &'b mut [u8]) -> WeightMatrix<'b>
    where
        'a: 'b,
    {
        match *self {
            WeightMatrix::Q8_0 { data, rows, cols } => {
                q8_0x16::pack(data, rows, cols, out);
                WeightMatrix::Q8_0x16 {
                    data: out,
                    rows,
                    cols,
                }
            }
            WeightMatrix::Q4K { data, rows, cols } => {
                q4_kx16::pack(data, rows, cols, out);
                WeightMatrix::Q4Kx16 {
                    data: out,
                    rows,
                    cols,
                }
            }
            other => other,
        }
    }

    /// Copies rows `first..first + out.len() / cols` as f32 into `out` (one row: an
    /// embedding lookup).
    pub fn rows_into(&self, first: usize, out: &mut [f32]) {
        let cols = self.cols();
        let count = out.len() / cols;
        match *self {
            WeightMatrix::F32 { data, .. } => {
                out.copy_from_slice(&data[first * cols..(first + count) * cols])
            }
            WeightMatrix::F16 { data, .. } => {
                f16_convert::widen(&data[first * cols..(first + count) * cols], out)
            }
            WeightMatrix::Q8_0 { data, .. } => {
                let bytes = q8_0::row_bytes(cols);
                q8_0::dequantize_row(&data[first * bytes..(first + count) * bytes], out)
            }
            WeightMatrix::Q4K { data, .. } => {
                let bytes = q4_k::row_bytes(cols);
                q4_k::dequantize_row(&data[first * bytes..(first + count) * bytes], out)
            }
            WeightMatrix::Q6K { data, .. } => {
                let bytes = q6_k::row_bytes(cols);
                q6_k::dequantize_row(&data[first * bytes..(first + count) * bytes], out)
            }
            WeightMatrix::Q8_0x16 { data, .. } => q8_0x16::dequantize_rows(data, cols, first, out),
            WeightMatrix::Q4Kx16 { data, .. } => q4_kx16::dequantize_rows(data, cols, first, out),
        }
    }

    /// Below how many activation rows every row's product is bit-identical to the product
    /// of that row alone (`usize::MAX`: at any count).
    pub fn independent_rows_below(&self) -> usize {
        match *self {
            WeightMatrix::F32 { .. } => DOT_ROWS_UP_TO + 1,
            WeightMatrix::F16 { .. } if dense_dot::widens_f16() => DOT_ROWS_UP_TO + 1,
            WeightMatrix::F16 { .. } => 2,
            // The several-token kernels of the file layout keep their own sums.
            WeightMatrix::Q8_0 { .. } | WeightMatrix::Q4K { .. } if token_kernels_pay(2) => 2,
            WeightMatrix::Q8_0 { .. } | WeightMatrix::Q4K { .. } => DENSE_FROM_ROWS,
            // Each token's integer sums and scale steps are its own at any tile size.
            WeightMatrix::Q8_0x16 { .. } | WeightMatrix::Q4Kx16 { .. } => usize::MAX,
            // Every activation row goes through the one-token dots.
            WeightMatrix::Q6K { .. } => usize::MAX,
        }
    }

    /// Prompt rows a model should give one product group (and one attention call) at most,
    /// so that a long prompt computed in pieces of this size, whatever else shares each
    /// pass, gives the same results. Where the pieces of one pass share its products (the
    /// interleaved kernels never mix rows; f32 prompt pieces share one dense product) they
    /// are small, which lets a scheduler cut a slow CPU's prompt work into short steps;
    /// elsewhere every piece is a product of its own that reads every weight, so pieces are
    /// long enough that the weight pass stays a small share (f32 on AMD Zen 1, 2 threads:
    /// 0.3 s per pass against 10 s of arithmetic for 256 rows).
    pub fn prompt_chunk_rows(&self) -> usize {
        match *self {
            WeightMatrix::Q8_0x16 { .. } | WeightMatrix::Q4Kx16 { .. } => 8,
            // Pieces of several prompts share one dense product (`matmul_groups`).
            WeightMatrix::F32 { rows, .. } if gemm::rows_independent(rows) => 32,
            _ => 256,
        }
    }

    /// Activation rows from which a product runs near its best rate per row: a scheduler
    /// gives a step at least this much prompt. Measured with `cargo bench --profile test
    /// --bench kernels` on AMD Zen 1 (2 threads): the AVX2 interleaved q4_K kernel runs
    /// 39 GFLOP/s at 1 row, 62 at 4, 78 from 16; the f32 dense product roughly halves its
    /// rate from 512 rows to 32 (a 2B model's prompt: 23 → 13 tokens/s).
    pub fn efficient_rows(&self) -> usize {
        match *self {
            WeightMatrix::Q8_0x16 { .. } | WeightMatrix::Q4Kx16 { .. } => 8,
            _ => 128,
        }
    }

    /// `out = x · Wᵀ` over consecutive groups of activation rows (`groups`: row counts
    /// summing to the rows of `x`), each group's result bit-identical to the product of
    /// that group alone, with the weights read as few times as that allows. f32 weights
    /// run every group of up to `DOT_ROWS_UP_TO` rows (decode tokens) through one dot
    /// product and every longer group (prompt pieces) through one dense product, whose rows
    /// never depend on each other (`gemm::rows_independent`); other formats share a product among
    /// neighbouring groups while each row's result stays its own (`independent_rows_below`;
    /// f16's dense path dequantizes panels for single-threaded products whose rows do
    /// depend on the row count).
    pub fn matmul_groups(&self, x: &[f32], groups: &[usize], out: &mut [f32]) {
        let cols = self.cols();
        assert_eq!(
            groups.iter().sum::<usize>() * cols,
            x.len(),
            "matmul_groups: groups cover the input"
        );
        match *self {
            // Longer groups: `matmul` of more than DOT_ROWS_UP_TO rows is the dense product.
            WeightMatrix::F32 { data, rows, .. } if gemm::rows_independent(rows) => dense_groups(
                x,
                groups,
                out,
                rows,
                |x, m, out| dense_matvec(data, rows, x, m, out),
                |x, m, out| self.matmul(x, m, out),
            ),
            _ => self.neighbour_groups(x, groups, out),
        }
    }

    /// `matmul_groups` by runs of neighbouring groups that stay below
    /// `independent_rows_below` rows together (a longer group alone).
    fn neighbour_groups(&self, x: &[f32], groups: &[usize], out: &mut [f32]) {
        let (rows, cols) = (self.rows(), self.cols());
        let limit = self.independent_rows_below();
        let (mut first_row, mut next) = (0, 0);
        while next < groups.len() {
            let (mut count, mut end) = (0, next);
            while end < groups.len() && count + groups[end] < limit {
                count += groups[end];
                end += 1;
            }
            if end == next {
                count = groups[next];
                end = next + 1;
            }
            if count > 0 {
                self.matmul(
                    &x[first_row * cols..(first_row + count) * cols],
                    count,
                    &mut out[first_row * rows..(first_row + count) * rows],
                );
            }
            first_row += count;
            next = end;
        }
    }

    /// `out[m, rows] = x[m, cols] · Wᵀ`.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (rows, cols) = (self.rows(), self.cols());
        assert_eq!(x.len(), m * cols, "matmul: input width");
        assert_eq!(out.len(), m * rows, "matmul: output size");
        match *self {
            WeightMatrix::F32 { data, .. } if m <= DOT_ROWS_UP_TO => {
                dense_matvec(data, rows, x, m, out)
            }
            WeightMatrix::F16 { data, .. } if m <= DOT_ROWS_UP_TO && dense_dot::widens_f16() => {
                dense_matvec(data, rows, x, m, out)
            }
            WeightMatrix::F32 { data, .. } => {
                matmul_a_bt(x, data, out, (m, cols, rows), rows, Threads::Pool)
            }
            WeightMatrix::Q8_0x16 { data, .. } => {
                q8_0x16::matmul(data, rows, &Q8Blocks::quantize(x, cols), out)
            }
            WeightMatrix::Q4Kx16 { data, .. } => {
                q4_kx16::matmul(data, rows, &Q8Blocks::quantize_super_blocks(x, cols), out)
            }
            WeightMatrix::Q8_0 { data, .. } if m < DENSE_FROM_ROWS || token_kernels_pay(m) => {
                let w = PackedRows {
                    data,
                    row_bytes: q8_0::row_bytes(cols),
                    rows,
                };
                let companion: Companion = (q8_0::row_bytes(cols), q8_0::quantize_row);
                file_layout_integer_matmul(
                    w,
                    x,
                    m,
                    out,
                    companion,
                    Some(q8_0_tokens::dot_tokens_with),
                    q8_0::dot_rows,
                )
            }
            WeightMatrix::Q4K { data, .. } if m < DENSE_FROM_ROWS || token_kernels_pay(m) => {
                let w = PackedRows {
                    data,
                    row_bytes: q4_k::row_bytes(cols),
                    rows,
                };
                let companion: Companion = (q8_k::row_bytes(cols), q8_k::quantize_row);
                file_layout_integer_matmul(
                    w,
                    x,
                    m,
                    out,
                    companion,
                    Some(q4_k_tokens::dot_tokens_with),
                    q4_k::dot_rows,
                )
            }
            WeightMatrix::Q6K { data, .. } => {
                let w = PackedRows {
                    data,
                    row_bytes: q6_k::row_bytes(cols),
                    rows,
                };
                let companion: Companion = (q8_k::row_bytes(cols), q8_k::quantize_row);
                file_layout_integer_matmul(w, x, m, out, companion, None, q6_k::dot_rows)
            }
            WeightMatrix::Q8_0 { .. } | WeightMatrix::Q4K { .. } if dense_bf16::supports(cols) => {
                dense_bf16_matmul(rows, cols, x, m, out, |first, buf| {
                    self.rows_into(first, buf)
                })
            }
            _ => self.dense_matmul(x, m, out),
        }
    }

    /// Panels of weight rows dequantized to f32, each multiplied on one thread.
    fn dense_matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        let (rows, cols) = (self.rows(), self.cols());
        for_row_panels(rows, m, out, |first, panel_rows, part| {
            let mut weights = vec![0.0f32; panel_rows * cols];
            self.rows_into(first, &mut weights);
            matmul_a_bt(
                x,
                &weights,
                part,
                (m, cols, panel_rows),
                panel_rows,
                Threads::Single,
            );
        });
    }
}

/// `matmul_groups` for dense weights: the rows of the groups of up to `DOT_ROWS_UP_TO`
/// rows go through `dot` (`dot(x, m, out)`, the one-row kernel for each row) in one call,
/// the rows of the longer groups through `dense` in one call; rows are gathered into and
/// scattered from contiguous buffers when the two kinds interleave.
fn dense_groups(
    x: &[f32],
    groups: &[usize],
    out: &mut [f32],
    rows: usize,
    dot: impl Fn(&[f32], usize, &mut [f32]),
    dense: impl Fn(&[f32], usize, &mut [f32]),
) {
    let cols = x.len() / groups.iter().sum::<usize>().max(1);
    let (mut few, mut many) = (Vec::new(), Vec::new());
    let mut first = 0;
    for &g in groups {
        let range = first..first + g;
        if g <= DOT_ROWS_UP_TO {
            few.push(range)
        } else {
            many.push(range)
        }
        first += g;
    }
    let product = |ranges: &[std::ops::Range<usize>], out: &mut [f32], long_groups: bool| {
        let m: usize = ranges.iter().map(|r| r.len()).sum();
        if m == 0 {
            return;
        }
        let gathered: Vec<f32>;
        let input = if ranges.len() == 1 {
            &x[ranges[0].start * cols..ranges[0].end * cols]
        } else {
            gathered = ranges
                .iter()
                .flat_map(|r| x[r.start * cols..r.end * cols].iter().copied())
                .collect();
            &gathered
        };
        let mut result = vec![0.0f32; m * rows];
        if long_groups {
            dense(input, m, &mut result);
        } else {
            dot(input, m, &mut result);
        }
        let mut at = 0;
        for r in ranges {
            out[r.start * rows..r.end * rows]
                .copy_from_slice(&result[at * rows..(at + r.len()) * rows]);
            at += r.len();
        }
    };
    product(&few, out, false);
    product(&many, out, true);
}

/// A format's companion activation rows: bytes per row, and the quantizer filling one.
type Companion = (usize, fn(&[f32], &mut [u8]));

/// A several-token integer kernel: `(path, weights, x, m, out)` fills `out[i·m + t]`.
type TokenKernel = fn(SimdPath, &[u8], &[u8], usize, &mut [f32]);

/// `out = x · Wᵀ` over block-quantized rows in the file layout, with integer kernels: the
/// activations are quantized once into the format's companion rows (`x_bytes` each, by
/// `quantize`); several rows go through the several-token kernel where the format has one
/// and it pays (`token_kernels_pay`), otherwise each row through the one-token dots.
fn file_layout_integer_matmul(
    w: PackedRows,
    x: &[f32],
    m: usize,
    out: &mut [f32],
    (x_bytes, quantize): Companion,
    dot_tokens: Option<TokenKernel>,
    dot_rows: impl Fn(&[u8], &[u8], &mut [f32]) + Sync,
) {
    let cols = x.len() / m;
    let xq = quantize_rows(x, cols, x_bytes, quantize);
    let xq = PackedRows {
        data: &xq,
        row_bytes: x_bytes,
        rows: m,
    };
    match dot_tokens {
        Some(dot_tokens) if token_kernels_pay(m) => packed_matmul(w, xq, out, |w, x, m, part| {
            dot_tokens(SimdPath::Avx2, w, x, m, part)
        }),
        _ => packed_matvec(w, xq, out, dot_rows),
    }
}

/// `out = x · Wᵀ` for a few activation rows (`m`), `W` being `rows` dense rows: the
/// one-row dot kernel for every activation row (see `DOT_ROWS_UP_TO`).
fn dense_matvec<W: DenseElement + SimdLoads>(
    w: &[W],
    rows: usize,
    x: &[f32],
    m: usize,
    out: &mut [f32],
) {
    let cols = x.len() / m;
    let row_bytes = cols * size_of::<W>();
    packed_matvec(
        PackedRows {
            data: bytemuck::cast_slice(w),
            row_bytes,
            rows,
        },
        PackedRows {
            data: bytemuck::cast_slice(x),
            row_bytes: cols * size_of::<f32>(),
            rows: m,
        },
        out,
        |w, x, out| dense_dot::dot_rows::<W>(bytemuck::cast_slice(w), bytemuck::cast_slice(x), out),
    )
}

/// Each `cols`-wide row of `x` quantized into `x_bytes` bytes.
fn quantize_rows(
    x: &[f32],
    cols: usize,
    x_bytes: usize,
    quantize: fn(&[f32], &mut [u8]),
) -> Vec<u8> {
    let mut xq = vec![0u8; x.len() / cols * x_bytes];
    for (row, q) in x.chunks_exact(cols).zip(xq.chunks_exact_mut(x_bytes)) {
        quantize(row, q);
    }
    xq
}

/// Splits the output columns (weight rows) into panels computed in parallel:
/// `compute(first_row, panel_rows, part)` fills `part` (`m × panel_rows`, row-major),
/// which is then copied into its columns of `out` (`m × rows`).
fn for_row_panels(
    rows: usize,
    m: usize,
    out: &mut [f32],
    compute: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let panel = ROWS_PER_PANEL.min(rows.div_ceil(rayon::current_num_threads()).max(1));
    let panels: Vec<(usize, Vec<f32>)> = (0..rows.div_ceil(panel))
        .into_par_iter()
        .map(|t| {
            let first = t * panel;
            let panel_rows = panel.min(rows - first);
            let mut part = vec![0.0f32; m * panel_rows];
            compute(first, panel_rows, &mut part);
            (first, part)
        })
        .collect();
    for (first, part) in panels {
        let panel_rows = part.len() / m.max(1);
        for i in 0..m {
            out[i * rows + first..][..panel_rows]
                .copy_from_slice(&part[i * panel_rows..(i + 1) * panel_rows]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| (((i * 31 + seed * 17) % 97) as f32 - 48.0) / 48.0)
            .collect()
    }

    /// The product over `w` equals the f32 product over its dequantized rows, for a
    /// decode-sized and a prefill-sized batch.
    fn check_against_dequantized(w: WeightMatrix, tolerance: f32) {
        let (rows, cols) = (w.rows(), w.cols());
        let mut deq = vec![0.0; rows * cols];
        w.rows_into(0, &mut deq);
        let dense = WeightMatrix::F32 {
            data: &deq,
            rows,
            cols,
        };
        for m in [1, 3, DENSE_FROM_ROWS + 1] {
            let x = ramp(m * cols, m);
            let (mut got, mut want) = (vec![0.0; m * rows], vec![0.0; m * rows]);
            w.matmul(&x, m, &mut got);
            dense.matmul(&x, m, &mut want);
            let scale = want.iter().fold(0.0f32, |a, v| a.max(v.abs()));
            for (g, e) in got.iter().zip(&want) {
                assert!((g - e).abs() <= tolerance * scale, "m={m}: {g} vs {e}");
            }
        }
    }

    #[test]
    fn q8_0_product_matches_the_dequantized_weights() {
        let (rows, cols) = (130, 64);
        let bytes = q8_0::row_bytes(cols);
        let w = ramp(rows * cols, 1);
        let mut wq = vec![0u8; rows * bytes];
        for (row, q) in w.chunks_exact(cols).zip(wq.chunks_exact_mut(bytes)) {
            q8_0::quantize_row(row, q);
        }
        check_with_interleaved(
            WeightMatrix::Q8_0 {
                data: &wq,
                rows,
                cols,
            },
            0.02,
        );
    }

    /// The file layout and its interleaved repacking both match the dequantized product.
    fn check_with_interleaved(w: WeightMatrix, tolerance: f32) {
        check_against_dequantized(w, tolerance);
        let mut packed = vec![0u8; w.interleaved_bytes().expect("has a layout")];
        check_against_dequantized(w.interleave_into(&mut packed), tolerance);
    }

    #[test]
    fn q4_k_product_matches_the_dequantized_weights() {
        let (rows, cols) = (70, 512);
        let mut wq: Vec<u8> = (0..rows * q4_k::row_bytes(cols))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for block in wq.chunks_exact_mut(q4_k::BLOCK_BYTES) {
            block[..2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
            block[2..4].copy_from_slice(&f16::from_f32(0.02).to_le_bytes());
        }
        check_with_interleaved(
            WeightMatrix::Q4K {
                data: &wq,
                rows,
                cols,
            },
            0.02,
        );
    }

    #[test]
    fn q6_k_product_matches_the_dequantized_weights() {
        let (rows, cols) = (37, 512);
        let w = ramp(rows * cols, 2);
        let mut wq = Vec::new();
        glimpse_convert::encode_into(crate::gguf::GgmlType::Q6_K, &w, &mut wq).expect("encodes");
        let w = WeightMatrix::Q6K {
            data: &wq,
            rows,
            cols,
        };
        assert_eq!(w.interleaved_bytes(), None, "Q6_K keeps the file layout");
        check_against_dequantized(w, 0.02);
    }

    /// Every format: each group of a grouped product has the bits of its product alone,
    /// and each row of a decode-sized group the bits of that row alone.
    #[test]
    fn grouped_products_give_each_group_its_own_result() {
        let (rows, cols) = (40, 256);
        let w = ramp(rows * cols, 3);
        let w16: Vec<f16> = w.iter().map(|&v| f16::from_f32(v)).collect();
        let mut q8 = vec![0u8; rows * q8_0::row_bytes(cols)];
        for (row, q) in w
            .chunks_exact(cols)
            .zip(q8.chunks_exact_mut(q8_0::row_bytes(cols)))
        {
            q8_0::quantize_row(row, q);
        }
        let q8 = WeightMatrix::Q8_0 {
            data: &q8,
            rows,
            cols,
        };
        let mut q6k = Vec::new();
        glimpse_convert::encode_into(crate::gguf::GgmlType::Q6_K, &w, &mut q6k).expect("encodes");
        let mut q8x16 = vec![0u8; q8.interleaved_bytes().unwrap_or(0)];
        let formats = [
            WeightMatrix::F32 {
                data: &w,
                rows,
                cols,
            },
            WeightMatrix::F16 {
                data: &w16,
                rows,
                cols,
            },
            q8,
            q8.interleave_into(&mut q8x16),
            WeightMatrix::Q6K {
                data: &q6k,
                rows,
                cols,
            },
        ];
        let groups = [1, 1, 3, 1, 20, 1, 1, 9, 1, 12];
        let m: usize = groups.iter().sum();
        let x = ramp(m * cols, 5);
        for (name, w) in ["f32", "f16", "q8_0", "q8_0x16", "q6_K"]
            .into_iter()
            .zip(formats)
        {
            let mut grouped = vec![0.0; m * rows];
            w.matmul_groups(&x, &groups, &mut grouped);
            let mut first = 0;
            for &g in &groups {
                let mut alone = vec![0.0; g * rows];
                w.matmul(&x[first * cols..(first + g) * cols], g, &mut alone);
                assert_eq!(
                    alone,
                    grouped[first * rows..(first + g) * rows],
                    "{name}: group of {g} at row {first}"
                );
                first += g;
            }
            let singles = m.min(w.independent_rows_below() - 1);
            let mut together = vec![0.0; singles * rows];
            w.matmul(&x[..singles * cols], singles, &mut together);
            for t in 0..singles {
                let mut alone = vec![0.0; rows];
                w.matmul(&x[t * cols..(t + 1) * cols], 1, &mut alone);
                assert_eq!(alone, together[t * rows..(t + 1) * rows], "{name}: row {t}");
            }
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
