//! Intel AMX (tile matrix multiply) for dense bf16 products: availability (CPU bits plus
//! the Linux permission to use tile data, asked for once per process) and the tile
//! kernel `C[16·2 × 16·2] += A · B` that `dense_bf16` drives. AMX instructions are
//! emitted with inline assembly (their intrinsics are not stable Rust).
use std::sync::OnceLock;

/// Whether AMX-BF16 (with AVX-512 BF16 for the conversions) can run in this process.
pub fn amx_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use crate::kernels::simd::{simd_path, SimdPath};
    if simd_path() != SimdPath::Avx512
        || std::env::var("GLIMPSE_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("avx512"))
        || !is_x86_feature_detected!("avx512bf16")
    {
        return false;
    }
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let (amx_bf16, amx_tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
    if !(amx_bf16 && amx_tile) {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM) only asks the kernel for permission; it
    // touches no memory of ours and fails cleanly on kernels without AMX support.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// Tile geometry: every tile is 16 rows of 64 bytes (16 f32, or 32 bf16 = 16 pairs).
pub const TILE: usize = 16;
/// bf16 values along K per tile step.
pub const K_STEP: usize = 32;

/// A tile configuration (palette 1): bytes 16.. give each tile's bytes per row (u16),
/// bytes 48.. its rows.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
pub(crate) struct TileConfig([u8; 64]);

#[cfg(target_arch = "x86_64")]
impl TileConfig {
    /// Tiles `(index, bytes per row, rows)`; the others unused.
    pub(crate) const fn with_shapes(shapes: &[(usize, u8, u8)]) -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        let mut i = 0;
        while i < shapes.len() {
            let (tile, row_bytes, rows) = shapes[i];
            bytes[16 + 2 * tile] = row_bytes;
            bytes[48 + tile] = rows;
            i += 1;
        }
        TileConfig(bytes)
    }

    /// Loads this configuration into the thread's tile unit (undone by `release_tiles`).
    ///
    /// # Safety
    /// AMX must be available (`amx_available`).
    pub(crate) unsafe fn load(&'static self) {
        std::arch::asm!("ldtilecfg [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly));
    }
}

/// Releases the thread's tile configuration.
///
/// # Safety
/// A configuration was loaded (`TileConfig::load`) on this thread.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn release_tiles() {
    std::arch::asm!("tilerelease", options(nostack, nomem))
}

/// Palette 1, eight tiles of 16 rows × 64 bytes.
#[cfg(target_arch = "x86_64")]
static CONFIG: TileConfig = TileConfig::with_shapes(&[
    (0, 64, 16),
    (1, 64, 16),
    (2, 64, 16),
    (3, 64, 16),
    (4, 64, 16),
    (5, 64, 16),
    (6, 64, 16),
    (7, 64, 16),
]);

/// Operands of one call of `tile_product_2x2`.
pub struct TileOperands {
    /// 32 rows of A (bf16, row-major, `a_stride` bytes apart), starting at k = 0.
    pub a: *const u8,
    pub a_stride: usize,
    /// Two B column blocks, each `k_steps` consecutive 1 KiB tiles (VNNI-packed pairs).
    pub b: [*const u8; 2],
    pub k_steps: usize,
    /// C: 32 rows of 32 f32 (`c_stride` bytes apart).
    pub c: *mut u8,
    pub c_stride: usize,
    /// Add to C's contents (otherwise overwrite them).
    pub accumulate: bool,
}

/// The tile registers configured for `tile_product_2x2` on this thread; released on drop.
/// Configuring costs about as much as a few tile products, so a task does it once.
pub struct Tiles(());

impl Tiles {
    /// # Safety
    /// AMX must be available (`amx_available`).
    pub unsafe fn configure() -> Self {
        #[cfg(target_arch = "x86_64")]
        CONFIG.load();
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("AMX exists only on x86_64, where amx_available() is checked first");
        #[cfg(target_arch = "x86_64")]
        Tiles(())
    }

    /// C rows `16i..16i+16`, columns `16j..16j+16` (+)= Σ_k A rows `16i..` · B block `j`.
    ///
    /// # Safety
    /// Every pointer must cover the bytes the shapes of `TileOperands` describe.
    pub unsafe fn product_2x2(&self, op: &TileOperands) {
        #[cfg(target_arch = "x86_64")]
        tile_product_2x2(op);
        #[cfg(not(target_arch = "x86_64"))]
        let _ = op;
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: tiles were configured by `configure`.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            release_tiles()
        };
    }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn tile_product_2x2(op: &TileOperands) {
    use std::arch::asm;
    let (c0, c1) = (op.c, op.c.add(64));
    let (c2, c3) = (
        op.c.add(TILE * op.c_stride),
        op.c.add(TILE * op.c_stride + 64),
    );
    if op.accumulate {
        asm!(
            "tileloadd tmm4, [{c0} + {s}*1]",
            "tileloadd tmm5, [{c1} + {s}*1]",
            "tileloadd tmm6, [{c2} + {s}*1]",
            "tileloadd tmm7, [{c3} + {s}*1]",
            c0 = in(reg) c0,
            c1 = in(reg) c1,
            c2 = in(reg) c2,
            c3 = in(reg) c3,
            s = in(reg) op.c_stride,
            options(nostack, readonly)
        );
    } else {
        asm!(
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        );
    }
    let a1 = op.a.add(TILE * op.a_stride);
    for s in 0..op.k_steps {
        let (a0, a1) = (op.a.add(s * 64), a1.add(s * 64));
        let (b0, b1) = (op.b[0].add(s * 1024), op.b[1].add(s * 1024));
        asm!(
            "tileloadd tmm0, [{a0} + {sa}*1]",
            "tileloadd tmm1, [{a1} + {sa}*1]",
            "tileloadd tmm2, [{b0} + {sb}*1]",
            "tileloadd tmm3, [{b1} + {sb}*1]",
            "tdpbf16ps tmm4, tmm0, tmm2",
            "tdpbf16ps tmm5, tmm0, tmm3",
            "tdpbf16ps tmm6, tmm1, tmm2",
            "tdpbf16ps tmm7, tmm1, tmm3",
            a0 = in(reg) a0,
            a1 = in(reg) a1,
            b0 = in(reg) b0,
            b1 = in(reg) b1,
            sa = in(reg) op.a_stride,
            sb = in(reg) 64usize,
            options(nostack, readonly)
        );
    }
    asm!(
        "tilestored [{c0} + {s}*1], tmm4",
        "tilestored [{c1} + {s}*1], tmm5",
        "tilestored [{c2} + {s}*1], tmm6",
        "tilestored [{c3} + {s}*1], tmm7",
        c0 = in(reg) c0,
        c1 = in(reg) c1,
        c2 = in(reg) c2,
        c3 = in(reg) c3,
        s = in(reg) op.c_stride,
        options(nostack)
    );
}
