//! The parallel driver of the interleaved weight kernels (weights repacked at load into
//! groups of 16 rows, one row per 32-bit lane of a 512-bit vector). Groups are split
//! over the pool in contiguous ranges; inside a task, panels of a few groups are
//! multiplied with tiles of up to `TILE_TOKENS` tokens, so a tile's activations stay in
//! L1 across the panel and a panel's weights stay in L2 across the tiles. Decode (one
//! token) is the same loop with one tile: each task streams its groups once.
use rayon::prelude::*;

/// Rows per interleaved group (the 16 i32 lanes of a 512-bit vector).
pub const GROUP_ROWS: usize = 16;
/// Tokens a kernel call computes together (their accumulators stay in registers).
pub const TILE_TOKENS: usize = 8;
/// Groups multiplied with one token tile before moving to the next tile.
const GROUPS_PER_PANEL: usize = 4;
/// Tasks per pool thread: enough to even out uneven progress.
const TASKS_PER_THREAD: usize = 4;

/// Where one kernel call writes: `tokens` rows of `out` (stride `stride` floats), from
/// column `first_row`, `valid` (≤ 16) columns each.
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
}

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
/// and every tile of the `m` tokens, filling `out[t·rows + r]` (`m × rows`).
pub fn for_each_tile(
    rows: usize,
    m: usize,
    out: &mut [f32],
    tile: impl Fn(usize, usize, usize, TileOut) + Sync,
) {
    assert!(out.len() >= m * rows, "interleaved product: output size");
    let groups = rows.div_ceil(GROUP_ROWS);
    let tasks = (rayon::current_num_threads() * TASKS_PER_THREAD).min(groups.max(1));
    let per_task = groups.div_ceil(tasks.max(1)).max(1);
    let shared = SharedOut(out.as_mut_ptr());
    let run_task = |task: usize| {
        let end = ((task + 1) * per_task).min(groups);
        let mut panel = task * per_task;
        while panel < end {
            let panel_end = (panel + GROUPS_PER_PANEL).min(end);
            for t0 in (0..m).step_by(TILE_TOKENS) {
                let tokens = TILE_TOKENS.min(m - t0);
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
                    tile(group, t0, tokens, out);
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
