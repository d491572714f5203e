//! The agency's stop signal: a flag that can also be waited on, so a pause between two
//! winners queries ends the moment SIGTERM arrives instead of when the pause would have.

use std::{
    sync::{Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

/// Set once, by the signal thread (or a test); read by the agency between steps.
#[derive(Debug, Default)]
pub struct Stop {
    /// Whether a stop was asked; the `Condvar` wakes waiters when it turns true.
    requested: Mutex<bool>,
    changed: Condvar,
}

impl Stop {
    /// A stop not yet requested.
    #[must_use]
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the agency to stop, waking any [`Stop::wait`].
    pub fn request(&self) {
        *self.lock() = true;
        self.changed.notify_all();
    }

    /// Whether a stop was asked.
    #[must_use]
    pub fn is_requested(&self) -> bool {
        *self.lock()
    }

    /// Sleeps for `period` or until a stop is asked; returns whether one was.
    #[must_use]
    pub fn wait(&self, period: Duration) -> bool {
        // A period too long to represent waits as long as a day, which is as good as forever.
        let now = Instant::now();
        let deadline = now.checked_add(period).unwrap_or_else(|| now + Duration::from_secs(86_400));
        let mut requested = self.lock();
        while !*requested {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            requested = self
                .changed
                .wait_timeout(requested, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        *requested
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        // A bool cannot be left half-written: recover it from a poisoned lock.
        self.requested.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use super::*;

    #[test]
    fn wait_runs_its_period_when_nothing_happens() {
        let stop = Stop::new();
        let started = Instant::now();
        assert!(!stop.wait(Duration::from_millis(30)));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_request_ends_a_long_wait_at_once() {
        let stop = Arc::new(Stop::new());
        let waiter = {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let started = Instant::now();
                (stop.wait(Duration::from_secs(60)), started.elapsed())
            })
        };
        stop.request();
        let (stopped, waited) = waiter.join().unwrap();
        assert!(stopped);
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        assert!(stop.is_requested());
        assert!(stop.wait(Duration::from_secs(60)), "an earlier request is not missed");
    }
}
