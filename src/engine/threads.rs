//! The compute thread pool: one global rayon pool sized to the physical cores the process
//! may use (`--threads` / `GLIMPSE_THREADS` override), built once at start-up so no thread
//! is ever spawned per token.
use anyhow::{Context, Result};

/// Physical core count, capped by what the process may use: std's `available_parallelism`
/// follows the CPU affinity mask and a container's cgroup CPU quota (a pod limited to 2 CPUs
/// on a 64-core host gets 2 threads, not 64 threads fighting over 2 CPUs' time).
pub fn physical_cores() -> usize {
    let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
    sysinfo::System::physical_core_count()
        .filter(|&n| n > 0)
        .map_or(allowed, |cores| cores.min(allowed))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_never_exceeds_what_the_process_may_use() {
        let allowed = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = physical_cores();
        assert!((1..=allowed).contains(&threads), "{threads} of {allowed}");
    }
}
