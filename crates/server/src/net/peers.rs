//! What the central allows a peer it cannot trust, apart from the protocol's own guards: its
//! warnings about peers are rate-limited, and a failing `accept` backs off.
//!
//! Every line about something a peer did (a malformed frame, a refused batch, a stalled
//! read) goes through [`WARNINGS`] (kept by the lottery layer, which refuses requests too),
//! at most one line per kind per second with the count of those suppressed, so no peer can
//! fill the disk through the log.

use std::time::Duration;

pub use crate::lottery::WARNINGS;

/// First pause after a failed `accept` (such as running out of file descriptors).
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// Longest pause: the condition clears only as connections close, and a stop (which wakes
/// `accept` with a connection of its own) must still be seen within about a second.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// A pause that doubles with each failed `accept` in a row, and starts over after a success,
/// so an exhausted descriptor table is not polled in a tight loop.
#[derive(Debug, Default)]
pub struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// The pause to take after one more failure.
    pub fn failed(&mut self) -> Duration {
        let pause = self.next.unwrap_or(ACCEPT_BACKOFF_FIRST);
        self.next = Some(pause.saturating_mul(2).min(ACCEPT_BACKOFF_MAX));
        pause
    }

    /// An `accept` succeeded: the next failure pauses briefly again.
    pub fn succeeded(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_doubles_to_its_cap_and_starts_over_after_a_success() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u64> = (0..8).map(|_| backoff.failed().as_millis() as u64).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 500, 500]);
        backoff.succeeded();
        assert_eq!(backoff.failed(), ACCEPT_BACKOFF_FIRST);
    }
}
