//! Runtime choice of the SIMD path, made once per process: AVX-512 (F/BW/VL + VNNI) or
//! AVX2+FMA on x86_64 when the CPU has them, NEON on aarch64, otherwise portable scalar
//! code. `GLIMPSE_SIMD=scalar|avx2` caps the path (parity runs, debugging, benches).
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdPath {
    Scalar,
    Neon,
    Avx2,
    Avx512,
}

impl SimdPath {
    pub fn name(self) -> &'static str {
        match self {
            SimdPath::Scalar => "scalar",
            SimdPath::Avx2 => "avx2",
            SimdPath::Avx512 => "avx512-vnni",
            SimdPath::Neon => "neon",
        }
    }
}

/// The best path this CPU supports.
fn hardware_path() -> SimdPath {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c");
        let avx512 = avx2
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni");
        if avx512 {
            return SimdPath::Avx512;
        }
        if avx2 {
            return SimdPath::Avx2;
        }
    }
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("neon") {
        return SimdPath::Neon;
    }
    SimdPath::Scalar
}

fn detect() -> SimdPath {
    let hardware = hardware_path();
    match std::env::var("GLIMPSE_SIMD").map(|v| v.to_ascii_lowercase()) {
        Ok(v) if v == "scalar" => SimdPath::Scalar,
        Ok(v) if v == "avx2" && hardware >= SimdPath::Avx2 => SimdPath::Avx2,
        _ => hardware,
    }
}

/// The path every kernel uses in this process.
pub fn simd_path() -> SimdPath {
    static PATH: OnceLock<SimdPath> = OnceLock::new();
    *PATH.get_or_init(detect)
}

/// Every path this CPU can run, scalar first (kernel tests compare each with scalar).
pub fn available_paths() -> Vec<SimdPath> {
    let hardware = hardware_path();
    [
        SimdPath::Scalar,
        SimdPath::Neon,
        SimdPath::Avx2,
        SimdPath::Avx512,
    ]
    .into_iter()
    .filter(|&p| {
        p == SimdPath::Scalar
            || p == hardware
            || (p == SimdPath::Avx2 && hardware == SimdPath::Avx512)
    })
    .collect()
}

#[cfg(all(test, target_arch = "aarch64"))]
mod tests {
    use super::*;

    /// The kernel tests compare every path of `available_paths` with scalar, so on
    /// aarch64 (a board or qemu-user) NEON must be among them or they test nothing.
    #[test]
    fn neon_is_detected_on_aarch64() {
        assert_eq!(hardware_path(), SimdPath::Neon);
        assert_eq!(available_paths(), [SimdPath::Scalar, SimdPath::Neon]);
    }
}
