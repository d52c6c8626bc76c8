//! The compute thread pool: one global rayon pool sized to the physical cores
//! (`--threads` / `GLIMPSE_THREADS` override), built once at start-up so no thread is
//! ever spawned per token.
use anyhow::{Context, Result};

/// Physical core count, falling back to logical CPUs when it cannot be read.
pub fn physical_cores() -> usize {
    sysinfo::System::physical_core_count()
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sizes the global pool (`requested` or the physical cores) and returns its size.
/// A second call keeps the existing pool and returns its size.
pub fn init_thread_pool(requested: Option<usize>) -> Result<usize> {
    let threads = requested.filter(|&n| n > 0).unwrap_or_else(physical_cores);
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("glimpse-{i}"))
        .build_global()
    {
        Ok(()) => Ok(threads),
        Err(_) if rayon::current_num_threads() > 0 => Ok(rayon::current_num_threads()),
        Err(e) => Err(e).context("creating the compute thread pool"),
    }
}
