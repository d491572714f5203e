//! Rate-limited log lines: at most one line per kind per period, the next one saying how many
//! were suppressed meanwhile, so a peer sending garbage as fast as it can (or an `accept` that
//! keeps failing) costs a few lines a second, not megabytes.
//!
//! A [`Throttle`] can be a `static` (its constructor is `const`), shared by every thread that
//! logs about peers; [`throttled!`](crate::throttled) is the way to write through it.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// Decides, per kind of line, whether a line may be written now.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    /// Per kind: when its last line was written and how many were suppressed since. A std
    /// `Mutex` held only to look up and update one entry; kinds are a handful of constants,
    /// so a vector searched in order is enough.
    kinds: Mutex<Vec<(&'static str, Instant, u64)>>,
}

impl Throttle {
    /// At most one line per kind every `every`.
    #[must_use]
    pub const fn new(every: Duration) -> Throttle {
        Throttle { every, kinds: Mutex::new(Vec::new()) }
    }

    /// `Some(suppressed)` when a line of `kind` may be written now (with how many were
    /// suppressed since the last one); `None` when it must be suppressed (and is counted).
    pub fn allow(&self, kind: &'static str) -> Option<u64> {
        self.allow_at(kind, Instant::now())
    }

    fn allow_at(&self, kind: &'static str, now: Instant) -> Option<u64> {
        // A poisoned lock still holds valid counts: logging must never panic.
        let mut kinds = self.kinds.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match kinds.iter_mut().find(|(k, ..)| *k == kind) {
            None => {
                kinds.push((kind, now, 0));
                Some(0)
            }
            Some((_, last, suppressed)) if now.saturating_duration_since(*last) >= self.every => {
                *last = now;
                Some(std::mem::take(suppressed))
            }
            Some((.., suppressed)) => {
                *suppressed += 1;
                None
            }
        }
    }
}

/// Logs through a [`Throttle`]: `throttled!(THROTTLE, "kind", log::Level::Warn, "action: ...")`
/// writes the line if its kind is allowed now, with `| suppressed: N` appended when lines of
/// that kind were suppressed since the last one.
#[macro_export]
macro_rules! throttled {
    ($throttle:expr, $kind:expr, $level:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $throttle.allow($kind) {
            if suppressed == 0 {
                $crate::log::log!($level, $($arg)+);
            } else {
                $crate::log::log!($level, "{} | suppressed: {suppressed}", format_args!($($arg)+));
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use super::*;

    #[test]
    fn one_line_per_kind_per_period_then_the_count_of_the_suppressed() {
        let throttle = Throttle::new(Duration::from_secs(1));
        let start = Instant::now();
        assert_eq!(throttle.allow_at("malformed", start), Some(0));
        for _ in 0..5 {
            assert_eq!(throttle.allow_at("malformed", start + Duration::from_millis(10)), None);
        }
        assert_eq!(throttle.allow_at("too_slow", start), Some(0), "kinds are counted apart");
        assert_eq!(throttle.allow_at("malformed", start + Duration::from_millis(999)), None);
        assert_eq!(throttle.allow_at("malformed", start + Duration::from_secs(1)), Some(6));
        assert_eq!(throttle.allow_at("malformed", start + Duration::from_secs(3)), Some(0));
    }

    #[test]
    fn threads_share_one_budget_of_lines() {
        let throttle = Arc::new(Throttle::new(Duration::from_secs(3600)));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let throttle = Arc::clone(&throttle);
                thread::spawn(move || (0..1000).filter(|_| throttle.allow("kind").is_some()).count())
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(allowed, 1, "one line in the period, whatever the threads");
    }
}
