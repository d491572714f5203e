//! Capped exponential backoff with a bounded total: how long an agency waits before trying
//! the central again, and when it gives up.
//!
//! Pure arithmetic, no clock and no sleeping, so it is tested alone: the caller sleeps (on
//! its `Stop`, so a SIGTERM ends the wait) and calls [`Backoff::reset`] once the central
//! answers again, so each outage gets the whole budget.

use std::time::Duration;

/// The retry settings (`retry.initial`, `retry.max`, `retry.total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First wait after a failure.
    pub initial: Duration,
    /// No single wait is longer than this.
    pub max: Duration,
    /// The waits of one outage add up to at most this; then the agency gives up.
    pub total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            total: Duration::from_secs(60),
        }
    }
}

/// The waits of one outage.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    next: Duration,
    waited: Duration,
    attempts: u32,
}

impl Backoff {
    /// A backoff that has not waited yet.
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Backoff {
        Backoff { policy, next: policy.initial, waited: Duration::ZERO, attempts: 0 }
    }

    /// The wait before the next attempt, doubling from `initial` up to `max`; `None` once the
    /// waits would exceed `total` (the last wait is cut so the total is met exactly).
    pub fn next_wait(&mut self) -> Option<Duration> {
        let left = self.policy.total.saturating_sub(self.waited);
        if left.is_zero() {
            return None;
        }
        let wait = self.next.min(self.policy.max).min(left);
        self.waited += wait;
        self.attempts += 1;
        self.next = self.next.saturating_mul(2);
        Some(wait)
    }

    /// The outage is over: the next failure starts again from `initial` with the whole budget.
    pub fn reset(&mut self) {
        *self = Backoff::new(self.policy);
    }

    /// Retries so far in this outage.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time waited so far in this outage.
    #[must_use]
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn waits_double_up_to_the_cap_and_stop_at_the_total() {
        let mut backoff = Backoff::new(RetryPolicy { initial: ms(100), max: ms(500), total: ms(2000) });
        let waits: Vec<Duration> = std::iter::from_fn(|| backoff.next_wait()).collect();
        assert_eq!(waits, [ms(100), ms(200), ms(400), ms(500), ms(500), ms(300)]);
        assert_eq!(backoff.waited(), ms(2000));
        assert_eq!(backoff.attempts(), 6);
        assert_eq!(backoff.next_wait(), None, "stays given up");
    }

    #[test]
    fn a_reset_restores_the_whole_budget() {
        let mut backoff = Backoff::new(RetryPolicy { initial: ms(10), max: ms(40), total: ms(50) });
        while backoff.next_wait().is_some() {}
        backoff.reset();
        assert_eq!(backoff.next_wait(), Some(ms(10)));
        assert_eq!(backoff.attempts(), 1);
    }

    #[test]
    fn huge_settings_do_not_overflow() {
        let mut backoff =
            Backoff::new(RetryPolicy { initial: Duration::MAX, max: Duration::MAX, total: Duration::MAX });
        assert_eq!(backoff.next_wait(), Some(Duration::MAX));
        assert_eq!(backoff.next_wait(), None);
    }
}
