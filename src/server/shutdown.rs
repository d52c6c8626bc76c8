//! Graceful shutdown on SIGTERM / SIGINT (Ctrl-C): the server stops taking work (API
//! requests and `/health` answer 503 `shutting_down`, so a load balancer routes around
//! it), lets the requests in flight finish for up to the grace period, then interrupts
//! the generations still running (their clients get a `shutting_down` error, streams end
//! with `[DONE]`) and returns, so the process exits 0. A second signal exits at once (1).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

use super::state::AppState;

/// How often the waiting loops look at their condition.
const POLL: Duration = Duration::from_millis(50);
/// After interrupting, how long interrupted answers get to reach their clients.
const AFTER_INTERRUPT: Duration = Duration::from_secs(5);

/// The shutdown signals, caught from the moment this is installed.
pub struct ShutdownSignal {
    received: Arc<AtomicBool>,
}

impl ShutdownSignal {
    /// Catches SIGTERM and SIGINT; a second one terminates the process with status 1.
    pub fn install() -> Result<Self> {
        let received = Arc::new(AtomicBool::new(false));
        for signal in [SIGTERM, SIGINT] {
            // The conditional exit goes first, so it only fires once the flag is set.
            signal_hook::flag::register_conditional_shutdown(signal, 1, received.clone())
                .and_then(|_| signal_hook::flag::register(signal, received.clone()))
                .context("installing the shutdown signal handlers")?;
        }
        Ok(Self { received })
    }

    pub fn received(&self) -> bool {
        self.received.load(Ordering::SeqCst)
    }

    /// Blocks until a shutdown signal arrives.
    pub fn wait(&self) {
        while !self.received() {
            std::thread::sleep(POLL);
        }
    }
}

/// Refuses new work, waits up to `grace` for the requests in flight, interrupts the rest
/// and waits (briefly) for their clients to be told.
pub fn drain(state: &AppState, grace: Duration) {
    state.start_draining();
    let busy = state.requests_in_flight();
    eprintln!(
        "glimpse: shutting down: new requests are refused; waiting up to {} s for {busy} in flight",
        grace.as_secs_f64()
    );
    if !wait_for_idle(state, grace) {
        if let Some(model) = state.model() {
            eprintln!(
                "glimpse: interrupting {} generation(s) still running",
                model.scheduler.in_flight()
            );
            model.scheduler.interrupt();
        }
        if !wait_for_idle(state, AFTER_INTERRUPT) {
            eprintln!(
                "glimpse: {} request(s) still open; closing their connections",
                state.requests_in_flight()
            );
        }
    }
    eprintln!("glimpse: stopped");
}

/// Whether every request finished within `limit`.
fn wait_for_idle(state: &AppState, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if state.requests_in_flight() == 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}
