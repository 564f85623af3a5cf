//! Opt-in phase timings of one run: where the milliseconds of a `wpkg run` go.
//!
//! Off unless [`enable`] is called (the front end does when asked); then each
//! [`mark`] records the time since the previous mark under a phase name, so that the
//! phases add up to the time since [`enable`]. When off, a mark is one atomic load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
static STATE: Mutex<Option<Recorder>> = Mutex::new(None);

struct Recorder {
    last: Instant,
    phases: Vec<(&'static str, Duration)>,
}

/// Starts recording; the first phase is measured from now.
pub fn enable() {
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = Some(Recorder {
        last: Instant::now(),
        phases: Vec::new(),
    });
    ENABLED.store(true, Ordering::Release);
}

/// Whether timings are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Ends the phase called `phase` now; a phase marked twice adds up.
pub fn mark(phase: &'static str) {
    if !enabled() {
        return;
    }
    let now = Instant::now();
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = state.as_mut() {
        let took = now.saturating_duration_since(r.last);
        r.last = now;
        match r.phases.iter_mut().find(|(name, _)| *name == phase) {
            Some((_, d)) => *d += took,
            None => r.phases.push((phase, took)),
        }
    }
}

/// The phases recorded so far, in the order they first ended.
pub fn phases() -> Vec<(&'static str, Duration)> {
    STATE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|r| r.phases.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_in_order_and_nothing_is_recorded_before_enable() {
        mark("before");
        assert!(phases().is_empty());
        enable();
        std::thread::sleep(Duration::from_millis(5));
        mark("first");
        mark("second");
        std::thread::sleep(Duration::from_millis(2));
        mark("first");
        let p = phases();
        let names: Vec<_> = p.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["first", "second"]);
        assert!(p[0].1 >= Duration::from_millis(7), "{p:?}");
    }
}
