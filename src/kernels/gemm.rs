//! Safe f32 dense products over row-major matrices: `packed_gemm` on x86_64 with AVX-512
//! (measured 1.7× the crate on AMD Zen 5, whose kernels stop at AVX2 on stable Rust), the
//! `gemm` crate elsewhere.
//!
//! Shapes are checked on entry: a mismatch is a programming error inside glimpse,
//! never a consequence of user data (model shapes are validated at load time).
use gemm::Parallelism;

#[cfg(target_arch = "x86_64")]
use super::packed_gemm::{self, Avx512, Layout};
#[cfg(target_arch = "x86_64")]
use super::simd::{simd_path, SimdPath};

/// Whether a product may use the whole rayon pool or must stay on the calling thread
/// (it is already running inside a parallel loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    Pool,
    Single,
}

impl Threads {
    fn parallelism(self, work: usize) -> Parallelism {
        // Below this many multiply-adds, splitting the product costs more than it saves.
        const MIN_PARALLEL_WORK: usize = 1 << 15;
        match self {
            Threads::Pool if work >= MIN_PARALLEL_WORK && rayon::current_num_threads() > 1 => {
                Parallelism::Rayon(rayon::current_num_threads())
            }
            _ => Parallelism::None,
        }
    }
}

/// Whether a row's result of `matmul_a_bt` (from 9 rows on) does not depend on the other
/// rows of the product, for products of more than `SMALL_PRODUCT_COLUMNS` output columns
/// (`rows_independent`): true where the crate's SIMD kernels sum each output over k in an
/// order set by k and the cache sizes alone (`packed_gemm` sums in k order always) —
/// measured by `row_independence` on x86_64 and aarch64 (NEON, under qemu); its portable
/// kernels (LoongArch64) do depend on the row count.
pub const ROWS_INDEPENDENT: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Up to this many rows and columns, the gemm crate takes k in blocks of 512 whatever the
/// caches; larger products take blocks sized from the L1 cache. The two agree only where
/// the L1 size gives 512 too (32 KiB does; the 48 KiB a Zen 4 KVM guest reported does not,
/// and 64 columns × k = 6144 got other bits), so only products with more columns than
/// this have rows independent of their row count.
pub const SMALL_PRODUCT_COLUMNS: usize = 64;

/// Whether `matmul_a_bt` with `n` output columns gives each row (from 9 rows on) the same
/// bits whatever other rows share the product (`ROWS_INDEPENDENT`, `SMALL_PRODUCT_COLUMNS`).
pub fn rows_independent(n: usize) -> bool {
    ROWS_INDEPENDENT && n > SMALL_PRODUCT_COLUMNS
}

/// The product by `packed_gemm` where it has a tile for this CPU's SIMD path (x86_64 with
/// AVX-512): whether it ran. Shapes are the caller's, checked.
#[cfg(target_arch = "x86_64")]
fn packed_product(
    a: &[f32],
    b: (&[f32], Layout),
    out: &mut [f32],
    shape: (usize, usize, usize),
    out_stride: usize,
    threads: Threads,
) -> bool {
    match simd_path() {
        // SAFETY: shapes checked by the caller; the path implies the tile's features.
        SimdPath::Avx512 => unsafe {
            packed_gemm::matmul::<Avx512>(a, b, out, shape, out_stride, threads)
        },
        _ => return false,
    }
    true
}

/// `out[m, n] (row stride out_stride) = a[m, k] · b[n, k]ᵀ`: `b` holds one row per
/// output column, the layout of a PyTorch `nn.Linear` weight.
pub fn matmul_a_bt(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
    out_stride: usize,
    threads: Threads,
) {
    assert!(
        a.len() >= m * k && b.len() >= n * k,
        "matmul_a_bt: input too short"
    );
    assert!(n <= out_stride, "matmul_a_bt: output stride");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        out.len() >= (m - 1) * out_stride + n,
        "matmul_a_bt: output too short"
    );
    #[cfg(target_arch = "x86_64")]
    if packed_product(
        a,
        (b, Layout::Transposed),
        out,
        (m, k, n),
        out_stride,
        threads,
    ) {
        return;
    }
    // SAFETY: the asserts above keep every index the kernel touches inside the slices:
    // a is m×k (row stride k), b is n×k read as its transpose, out is m×n with row stride out_stride.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            out_stride as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            threads.parallelism(m * n * k),
        );
    }
}

/// `out[m, n] = a[m, k] · b[k, n]`, all row-major and contiguous.
pub fn matmul_a_b(
    a: &[f32],
    b: &[f32],
    out: &mut [f32],
    (m, k, n): (usize, usize, usize),
    threads: Threads,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n,
        "matmul_a_b: input too short"
    );
    assert!(out.len() >= m * n, "matmul_a_b: output too short");
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if packed_product(a, (b, Layout::Plain), out, (m, k, n), n, threads) {
        return;
    }
    // SAFETY: the asserts above bound every access: a is m×k, b is k×n, out is m×n, all row-major.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            threads.parallelism(m * n * k),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_a_bt(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
            }
        }
        out
    }

    fn ramp(len: usize, scale: f32) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * scale)
            .collect()
    }

    #[test]
    fn matmul_a_bt_matches_naive_product_with_padded_output_rows() {
        let (m, k, n) = (7, 33, 5);
        let (a, b) = (ramp(m * k, 0.01), ramp(n * k, 0.02));
        let stride = 9;
        let mut out = vec![-1.0; m * stride];
        matmul_a_bt(&a, &b, &mut out, (m, k, n), stride, Threads::Pool);
        let expected = naive_a_bt(&a, &b, m, k, n);
        for i in 0..m {
            for j in 0..n {
                assert!((out[i * stride + j] - expected[i * n + j]).abs() < 1e-4);
            }
            assert_eq!(
                out[i * stride + n],
                -1.0,
                "padding column must stay untouched"
            );
        }
    }

    #[test]
    fn matmul_a_b_matches_naive_product() {
        let (m, k, n) = (4, 6, 3);
        let (a, b) = (ramp(m * k, 0.1), ramp(k * n, 0.1));
        let mut out = vec![0.0; m * n];
        matmul_a_b(&a, &b, &mut out, (m, k, n), Threads::Single);
        for i in 0..m {
            for j in 0..n {
                let e: f32 = (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum();
                assert!((out[i * n + j] - e).abs() < 1e-4);
            }
        }
    }
}

#[cfg(test)]
mod row_independence {
    use super::*;

    /// `WeightMatrix::matmul_groups` shares one product among several sequences' prompt
    /// rows because a row's result here does not depend on the other rows: the crate sums
    /// each output over k in an order set by k and the cache sizes, not by m. Checked for
    /// row counts from 9 (smaller products take the dot kernel) with the pool's threads,
    /// on products with more than `SMALL_PRODUCT_COLUMNS` columns (65 is the first).
    #[test]
    fn a_row_gets_the_same_bits_whatever_rows_share_its_product() {
        if !rows_independent(SMALL_PRODUCT_COLUMNS + 1) {
            eprintln!(
                "not checked on this architecture: the gemm crate's portable kernels depend on \
                 the row count, so glimpse does not share products there (ROWS_INDEPENDENT)"
            );
            return;
        }
        for (n, k) in [(300, 512), (2048, 2048), (65, 6144), (100, 37)] {
            assert!(rows_independent(n));
            let total = 200;
            let a: Vec<f32> = (0..total * k)
                .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n * k)
                .map(|i| ((i * 104_729) % 1000) as f32 / 991.0 - 0.5)
                .collect();
            let mut all = vec![0.0; total * n];
            matmul_a_bt(&a, &b, &mut all, (total, k, n), n, Threads::Pool);
            for (start, m) in [(0, 9), (9, 50), (59, 141), (3, 17), (100, 64), (5, 128)] {
                let mut part = vec![0.0; m * n];
                matmul_a_bt(&a[start * k..], &b, &mut part, (m, k, n), n, Threads::Pool);
                assert!(
                    part == all[start * n..(start + m) * n],
                    "{n}x{k}: rows {start}..{} differ from the same rows among {total}",
                    start + m
                );
            }
        }
    }
}
