//! One memory budget shared by many connections: bytes are reserved before a payload is
//! allocated and given back when the answer has left, so what all peers together make the
//! central hold is bounded by a setting, not by how many peers there are or how big their
//! frames are.
//!
//! A reservation that does not fit waits, up to a deadline, for others to be given back;
//! then it is refused. The frame's length is known from its prefix before any of its payload
//! is read, so a refused frame has cost nothing.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex,
    },
    time::Instant,
};

/// What the budget's lock guards.
#[derive(Debug, Default)]
struct State {
    /// Bytes reserved now.
    used: usize,
    /// Reservations asleep on `freed`: a give-back wakes them only if there are any, so
    /// every frame of a busy central does not pay a system call for nobody.
    waiting: usize,
}

/// A budget of bytes shared by every connection holding a clone of it.
#[derive(Debug, Clone)]
pub struct Budget {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit: usize,
    /// Bytes reserved now, and reservations waiting for room. A std `Mutex` (not an atomic)
    /// because waiters sleep on `freed`, which needs one; it is held only to add or subtract.
    state: Mutex<State>,
    /// Signalled when bytes are given back while a reservation waits (or the budget
    /// closes), to wake it.
    freed: Condvar,
    /// Set by [`Budget::close`]: no reservation is granted any more, and none waits.
    closed: AtomicBool,
}

impl Budget {
    /// A budget of `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Budget {
        Budget {
            inner: Arc::new(Inner {
                limit,
                state: Mutex::new(State::default()),
                freed: Condvar::new(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// Refuses every reservation from now on and wakes those waiting, so a stopping server
    /// does not wait out their deadlines.
    pub fn close(&self) {
        // Set under the lock, so a waiter between its check and its wait cannot miss it.
        let state = self.lock();
        self.inner.closed.store(true, Ordering::SeqCst);
        drop(state);
        self.inner.freed.notify_all();
    }

    /// The budget's size in bytes.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes reserved now.
    #[must_use]
    pub fn in_use(&self) -> usize {
        self.lock().used
    }

    /// Reserves `bytes`, waiting until `until` for room if there is none now; `None` when
    /// there is still no room then (or never could be: more than the whole budget), or the
    /// budget is closed.
    #[must_use]
    pub fn reserve(&self, bytes: usize, until: Instant) -> Option<Reservation> {
        if bytes > self.inner.limit {
            return None;
        }
        let mut state = self.lock();
        while state.used + bytes > self.inner.limit || self.inner.closed.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || self.inner.closed.load(Ordering::SeqCst) {
                return None;
            }
            // Counted under the lock before sleeping, so a give-back after this sees it.
            state.waiting += 1;
            state = self.inner.freed.wait_timeout(state, left).expect("the budget's counter lock").0;
            state.waiting -= 1;
        }
        state.used += bytes;
        Some(Reservation { budget: self.clone(), bytes })
    }

    /// Reservations asleep waiting for room now.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.lock().waiting
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Poisoned only if a thread panicked while adding or subtracting, which cannot happen.
        self.inner.state.lock().expect("the budget's counter lock")
    }
}

/// Bytes held from a [`Budget`]; dropping it gives them back.
#[derive(Debug)]
pub struct Reservation {
    budget: Budget,
    bytes: usize,
}

impl Reservation {
    /// Bytes this reservation holds.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // A poisoned lock still holds a valid count: take it rather than panic in `drop`.
        let mut state = self.budget.inner.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        state.used -= self.bytes;
        let waiting = state.waiting > 0;
        drop(state);
        if waiting {
            self.budget.inner.freed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{thread, time::Duration};

    use super::*;

    #[test]
    fn reservations_add_up_to_the_limit_and_are_given_back_on_drop() {
        let budget = Budget::new(100);
        let now = Instant::now();
        let a = budget.reserve(60, now).unwrap();
        assert!(budget.reserve(41, now).is_none(), "60 + 41 is over 100");
        let b = budget.reserve(40, now).unwrap();
        assert_eq!(budget.in_use(), 100);
        drop(a);
        assert_eq!(budget.in_use(), 40);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn more_than_the_whole_budget_is_refused_at_once() {
        let budget = Budget::new(10);
        let start = Instant::now();
        assert!(budget.reserve(11, start + Duration::from_secs(30)).is_none());
        assert!(start.elapsed() < Duration::from_secs(5), "it did not wait for what can never come");
    }

    #[test]
    fn a_waiting_reservation_gets_the_room_given_back() {
        let budget = Budget::new(10);
        let held = budget.reserve(10, Instant::now()).unwrap();
        let waiter = {
            let budget = budget.clone();
            thread::spawn(move || {
                budget.reserve(5, Instant::now() + Duration::from_secs(30)).map(|r| r.bytes())
            })
        };
        drop(held);
        assert_eq!(waiter.join().unwrap(), Some(5));
    }

    #[test]
    fn a_give_back_wakes_a_reservation_already_asleep() {
        let budget = Budget::new(10);
        let held = budget.reserve(10, Instant::now()).unwrap();
        let waiter = {
            let budget = budget.clone();
            thread::spawn(move || {
                let start = Instant::now();
                let got = budget.reserve(5, start + Duration::from_secs(60)).map(|r| r.bytes());
                (got, start.elapsed())
            })
        };
        while budget.waiting() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        let (got, waited) = waiter.join().unwrap();
        assert_eq!(got, Some(5));
        assert!(waited < Duration::from_secs(30), "woken, not timed out: {waited:?}");
        assert_eq!(budget.waiting(), 0);
    }

    #[test]
    fn closing_wakes_the_waiting_and_refuses_the_rest() {
        let budget = Budget::new(10);
        let _held = budget.reserve(10, Instant::now()).unwrap();
        let waiter = {
            let budget = budget.clone();
            thread::spawn(move || {
                let start = Instant::now();
                let got = budget.reserve(5, start + Duration::from_secs(60)).is_some();
                (got, start.elapsed())
            })
        };
        budget.close();
        let (got, waited) = waiter.join().unwrap();
        assert!(!got);
        assert!(waited < Duration::from_secs(30), "woken, not timed out: {waited:?}");
        assert!(budget.reserve(0, Instant::now()).is_none(), "closed for good");
    }

    #[test]
    fn a_waiting_reservation_gives_up_at_its_deadline() {
        let budget = Budget::new(10);
        let _held = budget.reserve(10, Instant::now()).unwrap();
        let start = Instant::now();
        assert!(budget.reserve(1, start + Duration::from_millis(50)).is_none());
        assert!(start.elapsed() >= Duration::from_millis(50));
    }
}
