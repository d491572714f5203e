//! The stop's clock, as the lottery sees it: whether the central is stopping, and since when.
//!
//! The connection layer owns the switch (`net::shutdown`) and sets this clock when it is
//! thrown; the lottery only reads it, to abandon a batch whose simulated check could not end
//! within [`CHECK_GRACE`] of the signal. Keeping the clock here lets the rules ask "must I
//! stop?" without knowing anything of sockets.

use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

/// A batch being checked when the stop begins is finished only if its check ends this soon
/// after; a longer one is abandoned (it was never acknowledged, so the agency resends it).
pub const CHECK_GRACE: Duration = Duration::from_millis(450);

/// Set once, when the stop begins; shared by the switch and the lottery.
#[derive(Debug, Clone, Default)]
pub struct StopClock {
    /// The instant the stop began; set at most once.
    began: Arc<OnceLock<Instant>>,
}

impl StopClock {
    /// A clock that has not started: the central is serving.
    #[must_use]
    pub fn new() -> StopClock {
        StopClock::default()
    }

    /// Starts the clock now; returns `false` if it had already started.
    pub fn start(&self) -> bool {
        self.began.set(Instant::now()).is_ok()
    }

    /// Whether the stop has begun.
    #[must_use]
    pub fn is_stopping(&self) -> bool {
        self.began.get().is_some()
    }

    /// `after` past the stop's beginning, once it has begun.
    #[must_use]
    pub fn deadline(&self, after: Duration) -> Option<Instant> {
        self.began.get().map(|&at| at + after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_once_and_every_clone_sees_it() {
        let clock = StopClock::new();
        let seen = clock.clone();
        assert!(!seen.is_stopping());
        assert_eq!(seen.deadline(CHECK_GRACE), None);
        assert!(clock.start());
        let first = seen.deadline(Duration::ZERO).unwrap();
        assert!(!clock.start(), "a second start changes nothing");
        assert_eq!(seen.deadline(Duration::ZERO), Some(first));
        assert_eq!(seen.deadline(CHECK_GRACE), Some(first + CHECK_GRACE));
    }
}
