//! Runtime choice of the SIMD path, made once per process: AVX2+FMA on x86_64 when the
//! CPU has it, NEON on aarch64, otherwise portable scalar code. `GLIMPSE_SIMD=scalar`
//! forces the scalar path (parity runs and debugging).
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdPath {
    Scalar,
    Avx2,
    Neon,
}

impl SimdPath {
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Scalar => "scalar",
            SimdPath::Avx2 => "avx2",
            SimdPath::Neon => "neon",
        }
    }
}

fn detect() -> SimdPath {
    if std::env::var("GLIMPSE_SIMD").is_ok_and(|v| v.eq_ignore_ascii_case("scalar")) {
        return SimdPath::Scalar;
    }
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        return SimdPath::Avx2;
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        return SimdPath::Neon;
    }
    SimdPath::Scalar
}

/// The path every kernel uses in this process.
pub fn simd_path() -> SimdPath {
    static PATH: OnceLock<SimdPath> = OnceLock::new();
    *PATH.get_or_init(detect)
}
