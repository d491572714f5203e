//! How many batches an agency keeps in flight.
//!
//! More than one lets the central answer several batches with one disk sync and keeps the
//! agency reading its file while the central works, which is what makes a fast central fast.
//! But every batch in flight is work the agency must wait for when it is asked to stop, and
//! with the course's simulated check (1 ms a bet, 100 ms a batch) sixteen of them would hold a
//! stop for 1.6 s, past the 1 s `docker compose stop -t 1` allows. So the window is bounded by
//! time as well as by count: it holds at most [`IN_FLIGHT_BUDGET`] of the central's work, as
//! measured by the gap between consecutive answers, and never fewer than 2 batches, which is
//! already enough to keep a slow central busy. It starts at 2 and opens once two answers have
//! shown the pace.

use std::time::{Duration, Instant};

/// The most central work, in time, an agency keeps queued ahead of the answers.
pub const IN_FLIGHT_BUDGET: Duration = Duration::from_millis(250);

/// The in-flight limit, adjusted after each answer.
#[derive(Debug)]
pub struct Window {
    max: usize,
    /// Smoothed time between two answers, in nanoseconds; `None` before two answers.
    gap_nanos: Option<f64>,
    last_answer: Option<Instant>,
}

impl Window {
    /// A window of at most `max` batches (at least 1).
    #[must_use]
    pub fn new(max: usize) -> Window {
        Window { max: max.max(1), gap_nanos: None, last_answer: None }
    }

    /// Whether one more batch may be sent while `in_flight` are unanswered.
    #[must_use]
    pub fn allows(&self, in_flight: usize) -> bool {
        in_flight < self.limit()
    }

    /// The current limit: 2 until answers have shown how fast the central is (so a slow one
    /// never gets a full window up front), then `max`, or fewer when answers come slowly.
    #[must_use]
    pub fn limit(&self) -> usize {
        let Some(gap) = self.gap_nanos else { return 2.min(self.max) };
        let fits = (IN_FLIGHT_BUDGET.as_nanos() as f64 / gap.max(1.0)) as usize;
        fits.clamp(2.min(self.max), self.max)
    }

    /// Notes an answer that arrived `at`.
    pub fn answered(&mut self, at: Instant) {
        if let Some(last) = self.last_answer {
            let gap = at.saturating_duration_since(last).as_nanos() as f64;
            // Smoothed, so one slow answer (a shared sync) does not shut the window.
            self.gap_nanos = Some(self.gap_nanos.map_or(gap, |g| 0.8 * g + 0.2 * gap));
        }
        self.last_answer = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(answers: usize, gap: Duration, max: usize) -> Window {
        let mut window = Window::new(max);
        let start = Instant::now();
        for i in 0..answers {
            window.answered(start + gap * i as u32);
        }
        window
    }

    #[test]
    fn fast_answers_open_the_whole_window() {
        assert_eq!(Window::new(16).limit(), 2, "before any answer");
        assert_eq!(after(50, Duration::from_micros(80), 16).limit(), 16);
    }

    #[test]
    fn slow_answers_hold_the_queue_to_the_time_budget() {
        // The course's check: 100 bets at 1 ms, 100 ms a batch.
        let window = after(50, Duration::from_millis(100), 16);
        assert_eq!(window.limit(), 2);
        assert!(window.allows(1));
        assert!(!window.allows(2));
        // 25 ms a batch: ten fit in 250 ms.
        assert_eq!(after(50, Duration::from_millis(25), 16).limit(), 10);
    }

    #[test]
    fn the_limit_stays_within_one_and_max() {
        assert_eq!(after(50, Duration::from_secs(5), 16).limit(), 2);
        assert_eq!(after(50, Duration::from_secs(5), 1).limit(), 1);
        assert_eq!(after(50, Duration::ZERO, 4).limit(), 4);
        assert_eq!(Window::new(0).limit(), 1);
        assert_eq!(Window::new(1).limit(), 1);
    }

    #[test]
    fn one_slow_answer_does_not_shut_the_window() {
        // Answers every 100 µs, then one that waited 5 ms (a sync shared with others).
        let mut window = Window::new(16);
        let start = Instant::now();
        let mut at = start;
        for _ in 0..50 {
            at += Duration::from_micros(100);
            window.answered(at);
        }
        window.answered(at + Duration::from_millis(5));
        assert_eq!(window.limit(), 16);
    }
}
