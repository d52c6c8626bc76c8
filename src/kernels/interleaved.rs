//! The parallel driver of the interleaved weight kernels (weights repacked at load into
//! groups of 16 rows, one row per 32-bit lane of a 512-bit vector). Groups are split
//! over the pool in contiguous ranges; inside a task, panels of a few groups are
//! multiplied with tiles of up to `TILE_TOKENS` tokens, so a tile's activations stay in
//! L1 across the panel and a panel's weights stay in L2 across the tiles. Decode (one
//! token) is the same loop with one tile: each task streams its groups once.
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::amx_int8::{self, amx_int8_available, AmxRunTiles, RunTiles};
use super::quant::q8_blocks::Q8Blocks;
use super::simd::SimdPath;

/// Rows per interleaved group (the 16 i32 lanes of a 512-bit vector).
pub const GROUP_ROWS: usize = 16;
/// Tokens a kernel call computes together (their accumulators stay in registers).
pub const TILE_TOKENS: usize = 8;
/// Tokens per tile on the AVX2 path: its kernels unpack each weight block once per tile,
/// and a tile of 16 pays for the accumulators it spills to L1 (Zen 1, `cargo bench
/// --bench kernels`, 512 tokens, builds with 8 and 16 run alternately: q4_K 1–9 % faster,
/// q8_0 0–8 %).
pub const AVX2_TILE_TOKENS: usize = 16;
/// Groups multiplied with one token tile before moving to the next tile.
const GROUPS_PER_PANEL: usize = 4;
/// Tasks per pool thread: enough to even out uneven progress.
const TASKS_PER_THREAD: usize = 4;

/// Where one kernel call writes: `tokens` rows of `out` (stride `stride` floats), from
/// the group's first column, `valid` (≤ 16) columns each.
#[derive(Clone, Copy)]
pub struct TileOut {
    ptr: *mut f32,
    pub stride: usize,
    pub valid: usize,
}

impl TileOut {
    /// The first of the 16 output values of token `t` of the tile.
    ///
    /// # Safety
    /// `t` is below the tile's token count; at most `valid` values may be written there.
    #[inline(always)]
    pub unsafe fn token(&self, t: usize) -> *mut f32 {
        self.ptr.add(t * self.stride)
    }

    /// Writes the first `valid` of `values` as token `t`'s outputs.
    ///
    /// # Safety
    /// As for `token`.
    #[inline(always)]
    pub unsafe fn store(&self, t: usize, values: &[f32; GROUP_ROWS]) {
        std::ptr::copy_nonoverlapping(values.as_ptr(), self.token(t), self.valid);
    }

    /// Writes `values` as token `t`'s outputs for rows `8·half..8·half + 8` of the
    /// group (those below `valid`).
    ///
    /// # Safety
    /// As for `token`; AVX present (inlined into a caller that enables it).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub unsafe fn store_half(&self, t: usize, half: usize, values: std::arch::x86_64::__m256) {
        use std::arch::x86_64::*;
        const HALF: usize = GROUP_ROWS / 2;
        let mut lanes = [0.0f32; HALF];
        _mm256_storeu_ps(lanes.as_mut_ptr(), values);
        let count = self.valid.saturating_sub(HALF * half).min(HALF);
        std::ptr::copy_nonoverlapping(lanes.as_ptr(), self.token(t).add(HALF * half), count);
    }

    /// The same tile moved `tokens` tokens on (a kernel splitting its tile).
    #[inline(always)]
    pub fn skip_tokens(&self, tokens: usize) -> TileOut {
        TileOut {
            ptr: self.ptr.wrapping_add(tokens * self.stride),
            ..*self
        }
    }

    /// Writes the first `valid` lanes of `values` as token `t`'s outputs.
    ///
    /// # Safety
    /// As for `token`; AVX-512 F present (inlined into a caller that enables it).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub unsafe fn store_avx512(&self, t: usize, values: std::arch::x86_64::__m512) {
        use std::arch::x86_64::*;
        let mask: __mmask16 = ((1u32 << self.valid) - 1) as __mmask16;
        _mm512_mask_storeu_ps(self.token(t), mask, values);
    }
}

/// A format's kernel for one group and one token tile:
/// `(group weights, activations, first token, tokens, out)`.
///
/// # Safety (for implementations)
/// Called with `weights` one whole group, `1..=TILE_TOKENS` tokens (`AVX2_TILE_TOKENS`
/// for the AVX2 kernel) of `x` from the first
/// token on, and `out` addressing that many rows of `out.valid` writable floats.
pub type TileKernel = unsafe fn(&[u8], &Q8Blocks, usize, usize, TileOut);

/// A format's AMX-INT8 kernel for one group and a whole tile of `amx_int8::TILE_TOKENS`
/// tokens: `(tiles, group weights, activations, first token, out)`, with the safety
/// contract of `TileKernel`.
#[cfg(target_arch = "x86_64")]
pub type AmxTileKernel<U> = unsafe fn(&mut U, &[u8], &Q8Blocks, usize, TileOut);

/// The tile kernels of one interleaved format.
pub struct TileKernels {
    pub scalar: TileKernel,
    #[cfg(target_arch = "x86_64")]
    pub avx2: TileKernel,
    #[cfg(target_arch = "x86_64")]
    pub avx512: TileKernel,
    #[cfg(target_arch = "x86_64")]
    pub amx: AmxTileKernel<AmxRunTiles>,
}

/// `out[t·rows + r] = Σ W[r]·x[t]` over a repacked matrix of `group_bytes` per group,
/// on the kernel of `path` (AVX-512 or AVX2 there, scalar on every other path). On the
/// AVX-512 path, batches of at least 16 tokens go to the AMX-INT8 kernel where the CPU
/// has one (`amx_int8_available`).
pub fn interleaved_matmul(
    path: SimdPath,
    packed: &[u8],
    group_bytes: usize,
    rows: usize,
    x: &Q8Blocks,
    out: &mut [f32],
    kernels: &TileKernels,
) {
    #[cfg(target_arch = "x86_64")]
    if path == SimdPath::Avx512 && x.rows >= amx_int8::TILE_TOKENS && amx_int8_available() {
        // SAFETY: AMX-INT8 is available; a task configures its thread's tiles and runs
        // only tile kernels (no nested pool work) until it drops them.
        let tiles = || unsafe { AmxRunTiles::configure() };
        amx_matmul(
            tiles,
            kernels.amx,
            kernels.avx512,
            packed,
            group_bytes,
            rows,
            x,
            out,
        );
        return;
    }
    assert!(
        packed.len() == rows.div_ceil(GROUP_ROWS) * group_bytes && out.len() == x.rows * rows,
        "interleaved product: sizes"
    );
    let (kernel, tile_tokens) = match path {
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx512 => (kernels.avx512, TILE_TOKENS),
        #[cfg(target_arch = "x86_64")]
        SimdPath::Avx2 => (kernels.avx2, AVX2_TILE_TOKENS),
        _ => (kernels.scalar, TILE_TOKENS),
    };
    for_each_tile(rows, x.rows, tile_tokens, out, |group, t0, tokens, tile| {
        let weights = &packed[group * group_bytes..][..group_bytes];
        // SAFETY: the AVX-512 and AVX2 kernels are only chosen when the CPU reports
        // AVX-512 VNNI or AVX2 + FMA + F16C (`simd::hardware_path`); the group and the tile lie inside `packed`, `x` and
        // `out` (sizes checked above, tiles from `for_each_tile`).
        unsafe { kernel(weights, x, t0, tokens, tile) }
    });
}

/// `interleaved_matmul` on tiles of `amx_int8::TILE_TOKENS` tokens through `amx` (each
/// task gets its tile unit from `tiles`); a last, shorter tile goes through the AVX-512
/// kernel `vnni` in pieces of at most `TILE_TOKENS`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
pub fn amx_matmul<U: RunTiles>(
    tiles: impl Fn() -> U + Sync,
    amx: AmxTileKernel<U>,
    vnni: TileKernel,
    packed: &[u8],
    group_bytes: usize,
    rows: usize,
    x: &Q8Blocks,
    out: &mut [f32],
) {
    assert!(
        packed.len() == rows.div_ceil(GROUP_ROWS) * group_bytes && out.len() == x.rows * rows,
        "interleaved product: sizes"
    );
    let tile_tokens = amx_int8::TILE_TOKENS;
    for_each_tile_with(
        rows,
        x.rows,
        tile_tokens,
        out,
        tiles,
        |tiles, group, t0, tokens, tile| {
            let weights = &packed[group * group_bytes..][..group_bytes];
            // SAFETY: callers reach here on CPUs with AVX-512 VNNI (and, for `AmxRunTiles`,
            // AMX-INT8); the group and the tile lie inside `packed`, `x` and `out` (sizes
            // checked above, tiles from `for_each_tile_with`).
            unsafe {
                if tokens == tile_tokens {
                    amx(tiles, weights, x, t0, tile)
                } else {
                    for first in (0..tokens).step_by(TILE_TOKENS) {
                        let count = (tokens - first).min(TILE_TOKENS);
                        vnni(weights, x, t0 + first, count, tile.skip_tokens(first))
                    }
                }
            }
        },
    );
}

/// Calls `$kernel::<T>(args…)` with `T` the tile's token count (`1..=TILE_TOKENS`), so
/// each count gets its own register-resident accumulators (used by the x86 kernels).
#[cfg(target_arch = "x86_64")]
macro_rules! for_token_count {
    ($tokens:expr, $kernel:ident($($arg:expr),*)) => {
        match $tokens {
            1 => $kernel::<1>($($arg),*),
            2 => $kernel::<2>($($arg),*),
            3 => $kernel::<3>($($arg),*),
            4 => $kernel::<4>($($arg),*),
            5 => $kernel::<5>($($arg),*),
            6 => $kernel::<6>($($arg),*),
            7 => $kernel::<7>($($arg),*),
            _ => $kernel::<8>($($arg),*),
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(crate) use for_token_count;

/// The AVX2 kernels' entry: `$kernel::<16>` for a whole tile of `AVX2_TILE_TOKENS`, and
/// `for_token_count!` on chunks of at most `TILE_TOKENS` otherwise (the last tile).
#[cfg(target_arch = "x86_64")]
macro_rules! for_avx2_tile {
    ($tokens:expr, $kernel:ident($weights:expr, $x:expr, $t0:expr, $out:expr)) => {{
        debug_assert!((1..=$crate::kernels::interleaved::AVX2_TILE_TOKENS).contains(&$tokens));
        if $tokens == $crate::kernels::interleaved::AVX2_TILE_TOKENS {
            $kernel::<{ $crate::kernels::interleaved::AVX2_TILE_TOKENS }>($weights, $x, $t0, $out)
        } else {
            for first in (0..$tokens).step_by($crate::kernels::interleaved::TILE_TOKENS) {
                let count = ($tokens - first).min($crate::kernels::interleaved::TILE_TOKENS);
                let (t0, out) = ($t0 + first, $out.skip_tokens(first));
                $crate::kernels::interleaved::for_token_count!(
                    count,
                    $kernel($weights, $x, t0, out)
                )
            }
        }
    }};
}
#[cfg(target_arch = "x86_64")]
pub(crate) use for_avx2_tile;

/// A pointer to `out` shared by the tasks; each task writes only its own groups' columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: tasks write disjoint column ranges (their own groups) of the buffer.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// # Safety
    /// `offset` lies inside the buffer.
    unsafe fn at(&self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// Calls `tile(group, first_token, tokens, out)` for every group of `rows` weight rows
/// and every tile of at most `tile_tokens` of the `m` tokens, filling `out[t·rows + r]`
/// (`m × rows`).
pub fn for_each_tile(
    rows: usize,
    m: usize,
    tile_tokens: usize,
    out: &mut [f32],
    tile: impl Fn(usize, usize, usize, TileOut) + Sync,
) {
    for_each_tile_with(
        rows,
        m,
        tile_tokens,
        out,
        || (),
        |_, group, t0, tokens, out| tile(group, t0, tokens, out),
    )
}

/// `for_each_tile` with a per-task state made by `state` and handed to every call of
/// `tile` in that task (such as the thread's configured tile unit).
pub fn for_each_tile_with<S>(
    rows: usize,
    m: usize,
    tile_tokens: usize,
    out: &mut [f32],
    state: impl Fn() -> S + Sync,
    tile: impl Fn(&mut S, usize, usize, usize, TileOut) + Sync,
) {
    assert!(out.len() >= m * rows, "interleaved product: output size");
    let groups = rows.div_ceil(GROUP_ROWS);
    let tasks = (rayon::current_num_threads() * TASKS_PER_THREAD).min(groups.max(1));
    let per_task = groups.div_ceil(tasks.max(1)).max(1);
    let shared = SharedOut(out.as_mut_ptr());
    let run_task = |task: usize| {
        let mut state = state();
        let end = ((task + 1) * per_task).min(groups);
        let mut panel = task * per_task;
        while panel < end {
            let panel_end = (panel + GROUPS_PER_PANEL).min(end);
            for t0 in (0..m).step_by(tile_tokens) {
                let tokens = tile_tokens.min(m - t0);
                for group in panel..panel_end {
                    let first_row = group * GROUP_ROWS;
                    // SAFETY: the tile's columns first_row..first_row + valid and tokens
                    // t0..t0 + tokens lie inside `out` (checked above); no other task
                    // writes these columns.
                    let ptr = unsafe { shared.at(t0 * rows + first_row) };
                    let out = TileOut {
                        ptr,
                        stride: rows,
                        valid: GROUP_ROWS.min(rows - first_row),
                    };
                    tile(&mut state, group, t0, tokens, out);
                }
            }
            panel = panel_end;
        }
    };
    let task_count = groups.div_ceil(per_task);
    if task_count <= 1 {
        (0..task_count).for_each(run_task);
    } else {
        (0..task_count).into_par_iter().for_each(run_task);
    }
}

/// Test support shared by the interleaved formats.
#[cfg(test)]
pub(crate) mod test_support {
    use super::Q8Blocks;
    use crate::kernels::simd::{available_paths, SimdPath};
    use crate::kernels::test_data::assert_same_bits;

    /// Every SIMD path's product over `packed` equals the f32 product of the dequantized
    /// weights `w` (`rows × cols`, row-major) and the dequantized activations, within
    /// `tolerance` (relative, at least 1 absolute), and has the bits of the scalar twin.
    pub fn check_every_path(
        packed: &[u8],
        w: &[f32],
        rows: usize,
        x: &Q8Blocks,
        tolerance: f32,
        matmul_with: fn(SimdPath, &[u8], usize, &Q8Blocks, &mut [f32]),
    ) {
        let (m, cols) = (x.rows, x.cols);
        let xd: Vec<f32> = (0..m * cols)
            .map(|i| x.quants[i] as f32 * x.scales[i / 32])
            .collect();
        let want: Vec<f32> = (0..m * rows)
            .map(|i| {
                let (t, r) = (i / rows, i % rows);
                (0..cols).map(|k| xd[t * cols + k] * w[r * cols + k]).sum()
            })
            .collect();
        let mut scalar = vec![f32::NAN; m * rows];
        matmul_with(SimdPath::Scalar, packed, rows, x, &mut scalar);
        for path in available_paths() {
            let mut got = vec![f32::NAN; m * rows];
            matmul_with(path, packed, rows, x, &mut got);
            for (g, e) in got.iter().zip(&want) {
                assert!(
                    (g - e).abs() <= tolerance * e.abs().max(1.0),
                    "{path:?} m={m}: {g} vs {e}"
                );
            }
            // The SIMD kernels sum the integers exactly and repeat the scalar twin's float
            // steps (the same fused multiply-adds), so they give its bits.
            assert_same_bits(
                &got,
                &scalar,
                &format!("{path:?} m={m} against the scalar twin"),
            );
        }
    }

    /// The AMX-INT8 kernel `amx` of a format, on the scalar emulation of the tile unit
    /// (its AVX-512 float steps run for real), gives the scalar twin's bits for every
    /// token count of `x` (whole tiles of 16, the rest on the VNNI kernel). Says so and
    /// returns where the CPU lacks AVX-512 VNNI.
    #[cfg(target_arch = "x86_64")]
    pub fn check_amx_on_emulated_tiles(
        packed: &[u8],
        rows: usize,
        x: &Q8Blocks,
        kernels: &super::TileKernels,
        amx: super::AmxTileKernel<crate::kernels::amx_int8::EmulatedRunTiles>,
    ) {
        use crate::kernels::amx_int8::EmulatedRunTiles;
        if !available_paths().contains(&SimdPath::Avx512) {
            eprintln!(
                "interleaved AMX kernels: this CPU has no AVX-512 VNNI (their float steps), \
                 so they were not checked here"
            );
            return;
        }
        let group_bytes = packed.len() / rows.div_ceil(super::GROUP_ROWS);
        let mut scalar = vec![f32::NAN; x.rows * rows];
        super::interleaved_matmul(
            SimdPath::Scalar,
            packed,
            group_bytes,
            rows,
            x,
            &mut scalar,
            kernels,
        );
        let mut got = vec![f32::NAN; x.rows * rows];
        let avx512 = kernels.avx512;
        super::amx_matmul(
            || EmulatedRunTiles,
            amx,
            avx512,
            packed,
            group_bytes,
            rows,
            x,
            &mut got,
        );
        assert_same_bits(&got, &scalar, &format!("AMX (emulated tiles) m={}", x.rows));
    }
}
