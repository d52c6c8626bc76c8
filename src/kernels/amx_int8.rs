//! Intel AMX-INT8 tiles for the interleaved q8_0 / q4_K kernels (`quant::q8_0x16`,
//! `quant::q4_kx16`) on prompts: one tile product multiplies 16 tokens' 32 activation
//! bytes (a run, `Q8Blocks`) by one run of a 16-row group, whose interleaved bytes are
//! already the tile unit's B layout (four consecutive values of each row per 4 bytes,
//! one row of 64 bytes per four values). `tdpbsud` takes signed activations and
//! unsigned weights, the two formats' stored signs. The 16 × 16 integer sums go to
//! memory and the format's kernel scales them with AVX-512 as its scalar twin does
//! (q8_0: a float step per run; q4_K: the run scales in integers, a float step per
//! super-block).
//!
//! The tile operations sit behind `RunTiles`: `AmxRunTiles` runs them on the CPU's tile
//! unit; the test-only `EmulatedRunTiles` computes the same integer sums in scalar code,
//! so the kernels around them are checked on CPUs without AMX too.
use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
use super::amx::{release_tiles, TileConfig};

/// Tokens of one tile product (the rows of the A tile).
pub const TILE_TOKENS: usize = 16;
/// Rows of the interleaved group (the i32 columns of the C tile).
pub const TILE_ROWS: usize = 16;
/// A value aligned to a cache line (tile loads and stores, aligned vector loads).
#[repr(C, align(64))]
pub struct CacheAligned<T>(pub T);

/// The integer sums of one tile product, token-major (`[token][row]`), one cache line
/// per token.
pub type RunSums = CacheAligned<[[i32; TILE_ROWS]; TILE_TOKENS]>;

/// One run of a group as the B operand, for formats whose stored values need unpacking
/// first (q4_K nibbles): line `q` holds values `4q..4q + 4` of each of the 16 rows.
pub type RunValues = CacheAligned<[u8; 512]>;

impl<T: bytemuck::Zeroable> CacheAligned<T> {
    pub fn zeroed() -> Self {
        CacheAligned(T::zeroed())
    }
}

/// Whether AMX-INT8 tiles can run in this process: AMX is usable (`amx::amx_available`:
/// CPU bits, the Linux tile-data permission, no `GLIMPSE_SIMD` cap) and the CPU has the
/// int8 tile products. `GLIMPSE_AMX_INT8=off` keeps the VNNI kernels for prompts too
/// (comparisons on AMX hosts).
pub fn amx_int8_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let off = std::env::var("GLIMPSE_AMX_INT8").is_ok_and(|v| v.eq_ignore_ascii_case("off"));
        !off && super::amx::amx_available() && cpu_has_amx_int8()
    })
}

#[cfg(target_arch = "x86_64")]
fn cpu_has_amx_int8() -> bool {
    // CPUID leaf 7, EDX bit 25: AMX-INT8.
    std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 25) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_amx_int8() -> bool {
    false
}

/// One run product: `sums[t][r] = Σ_k a[t][k] · b[k][r]` over 32 values, for 16 tokens
/// `t` (signed bytes, rows `a_stride` bytes apart) and 16 weight rows `r` (unsigned
/// bytes in the interleaved layout: 8 lines of 64 bytes, line `q` holding values
/// `4q..4q + 4` of each row).
pub trait RunTiles {
    /// # Safety
    /// `a` addresses 16 rows of 32 readable bytes `a_stride` apart, `b` 512 readable
    /// bytes; `slot` is 0 or 1 (two products in flight use different tiles).
    unsafe fn run_product(
        &mut self,
        slot: usize,
        a: *const i8,
        a_stride: usize,
        b: *const u8,
        sums: &mut RunSums,
    );
}

/// The tile unit configured for `RunTiles` on this thread; released on drop. Tiles 0–1
/// hold activations (16 rows × 32 bytes), 2–3 weights (8 × 64), 4–5 sums (16 × 64).
pub struct AmxRunTiles(());

#[cfg(target_arch = "x86_64")]
static RUN_TILE_CONFIG: TileConfig = TileConfig::with_shapes(&[
    (0, 32, 16),
    (1, 32, 16),
    (2, 64, 8),
    (3, 64, 8),
    (4, 64, 16),
    (5, 64, 16),
]);

impl AmxRunTiles {
    /// # Safety
    /// AMX-INT8 must be available (`amx_int8_available`). While the value lives, no other
    /// tile configuration may be loaded on this thread.
    pub unsafe fn configure() -> Self {
        #[cfg(target_arch = "x86_64")]
        RUN_TILE_CONFIG.load();
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("AMX exists only on x86_64, where amx_int8_available() is checked first");
        #[cfg(target_arch = "x86_64")]
        AmxRunTiles(())
    }
}

impl Drop for AmxRunTiles {
    fn drop(&mut self) {
        // SAFETY: tiles were configured by `configure`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            release_tiles()
        };
    }
}

/// One slot's tile program: load A and B, zero C, `tdpbsud`, store C.
#[cfg(target_arch = "x86_64")]
macro_rules! run_product_on_tiles {
    ($a_tile:literal, $b_tile:literal, $c_tile:literal, $a:expr, $a_stride:expr, $b:expr, $c:expr) => {
        std::arch::asm!(
            concat!("tileloadd tmm", $a_tile, ", [{a} + {sa}*1]"),
            concat!("tileloadd tmm", $b_tile, ", [{b} + {sb}*1]"),
            concat!("tilezero tmm", $c_tile),
            concat!("tdpbsud tmm", $c_tile, ", tmm", $a_tile, ", tmm", $b_tile),
            concat!("tilestored [{c} + {sc}*1], tmm", $c_tile),
            a = in(reg) $a,
            sa = in(reg) $a_stride,
            b = in(reg) $b,
            sb = in(reg) 64usize,
            c = in(reg) $c,
            sc = in(reg) 64usize,
            options(nostack)
        )
    };
}

impl RunTiles for AmxRunTiles {
    #[inline(always)]
    unsafe fn run_product(
        &mut self,
        slot: usize,
        a: *const i8,
        a_stride: usize,
        b: *const u8,
        sums: &mut RunSums,
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            let c = sums.0.as_mut_ptr() as *mut u8;
            if slot == 0 {
                run_product_on_tiles!("0", "2", "4", a, a_stride, b, c);
            } else {
                run_product_on_tiles!("1", "3", "5", a, a_stride, b, c);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (slot, a, a_stride, b, sums);
    }
}

/// The tile product computed in scalar code (tests on CPUs without AMX-INT8): the
/// integer sums `tdpbsud` gives (signed × unsigned bytes, wrapping i32 adds).
#[cfg(test)]
pub struct EmulatedRunTiles;

#[cfg(test)]
impl RunTiles for EmulatedRunTiles {
    unsafe fn run_product(
        &mut self,
        _slot: usize,
        a: *const i8,
        a_stride: usize,
        b: *const u8,
        sums: &mut RunSums,
    ) {
        for (t, row) in sums.0.iter_mut().enumerate() {
            let a = std::slice::from_raw_parts(a.add(t * a_stride), 32);
            let b = std::slice::from_raw_parts(b, 512);
            for (r, sum) in row.iter_mut().enumerate() {
                *sum = (0..32).fold(0i32, |s, k| {
                    let w = b[(k / 4) * 64 + 4 * r + k % 4] as i32;
                    s.wrapping_add(a[k] as i32 * w)
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tile unit and its scalar emulation give the same sums (the kernels' tests run
    /// on the emulation everywhere, on the tile unit where the CPU has AMX-INT8).
    #[test]
    fn tile_unit_sums_like_the_emulation() {
        if !amx_int8_available() {
            eprintln!(
                "amx_int8: this CPU has no usable AMX-INT8 tiles (or GLIMPSE_AMX_INT8=off / \
                 GLIMPSE_SIMD caps it): the tile unit was not run; the kernels are checked \
                 on the scalar emulation"
            );
            return;
        }
        let stride = 96;
        let a: Vec<i8> = (0..16 * stride)
            .map(|i| (i * 37 % 255) as u8 as i8)
            .collect();
        let b: Vec<u8> = (0..512).map(|i| (i * 91 % 256) as u8).collect();
        let (mut got, mut want) = (RunSums::zeroed(), RunSums::zeroed());
        // SAFETY: AMX-INT8 is available; `a` holds 16 rows of `stride` ≥ 32 bytes, `b` 512.
        unsafe {
            let mut tiles = AmxRunTiles::configure();
            for slot in 0..2 {
                tiles.run_product(slot, a.as_ptr().add(3), stride, b.as_ptr(), &mut got);
                EmulatedRunTiles.run_product(
                    slot,
                    a.as_ptr().add(3),
                    stride,
                    b.as_ptr(),
                    &mut want,
                );
                assert_eq!(got.0, want.0, "slot {slot}");
            }
        }
    }
}
