//! Limits: linear memory per instance (a resource limiter that records when the
//! guest hits it) and wall-clock time (epoch interruption plus an async timeout).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the engine's epoch advances.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// A memory limiter that remembers whether the guest hit the limit.
pub struct MemoryLimiter {
    max: usize,
    /// Set when a growth was refused.
    pub hit: Arc<AtomicBool>,
}

impl MemoryLimiter {
    /// A limiter of `max` bytes.
    pub fn new(max: u64) -> MemoryLimiter {
        MemoryLimiter {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            hit: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// The error a refused growth raises, so the run ends at once with a clear cause.
#[derive(Debug, thiserror::Error)]
#[error("the guest tried to grow its memory to {desired} bytes, over the limit of {max} bytes")]
pub struct MemoryLimitExceeded {
    /// Requested size.
    pub desired: usize,
    /// The limit.
    pub max: usize,
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            self.hit.store(true, Ordering::SeqCst);
            return Err(MemoryLimitExceeded {
                desired,
                max: self.max,
            }
            .into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Starts the thread that advances the engine's epoch (once per process).
pub fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("wpkg-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(e) => e.increment_epoch(),
                None => return,
            }
        })
        .expect("spawning the epoch thread");
}

/// Arms the store: yield to the executor every tick, trap once `deadline` passes.
pub fn arm_deadline<T: 'static>(
    store: &mut wasmtime::Store<T>,
    deadline: Option<Instant>,
    timed_out: Arc<AtomicBool>,
) {
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            timed_out.store(true, Ordering::SeqCst);
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        Ok(wasmtime::UpdateDeadline::Yield(1))
    });
}
