//! The moment the lottery completes, for total queries held until then.
//!
//! An agency that asks for the total while others still load may let the central hold the
//! answer (`Request::AwaitWinners`). The thread serving it waits here until one of these: the
//! lottery completes ([`Completion::completed`]), told by the connection whose `AgencyDone`
//! completes it or, when the last `AgencyDone` commits through another central on the same
//! database, by the store ([`Completion::told_by_store`], `Engine::on_completion`); the
//! central begins to stop ([`Completion::stop`]); the hold ends; or the connection layer
//! releases that one query ([`HoldRelease`]: its connection is making room for another, see
//! `net/connections.rs`). Only the completion wakes anyone: after any other `AgencyDone` the
//! answer is still "pending", so waking the held queries would only have each ask the store
//! again (with 200 agencies on a database, 200 queries per finished agency).

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Condvar, Mutex, MutexGuard, PoisonError,
    },
    time::Instant,
};

/// One connection's say over its held query: once released, the query held now (or any later
/// one) is answered at once with what the store holds.
#[derive(Debug, Default)]
pub struct HoldRelease(AtomicBool);

impl HoldRelease {
    /// Whether the connection's holds are released.
    #[must_use]
    pub fn is_released(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Releases them; the waiter notices when [`Completion::wake`] is called after this.
    pub fn release(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Shared by every connection of one central.
#[derive(Debug, Default)]
pub struct Completion {
    /// Held only to read or set the two fields, and by waiters inside `Condvar::wait`.
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The total, once the lottery completed through this central.
    winners: Option<u64>,
    /// The central is stopping: no query is held from now on.
    stopping: bool,
}

impl Completion {
    /// Nothing completed, not stopping.
    #[must_use]
    pub fn new() -> Completion {
        Completion::default()
    }

    /// The lottery just completed with `winners` winners (committed): every held query is
    /// answered with it.
    pub fn completed(&self, winners: u64) {
        self.lock().winners = Some(winners);
        self.changed.notify_all();
    }

    /// What the store is given to call when it learns the lottery completed (through any
    /// central): the same as [`Completion::completed`], logged.
    #[must_use]
    pub fn told_by_store(completion: &Arc<Completion>) -> Box<dyn FnOnce(u64) + Send> {
        let completion = Arc::clone(completion);
        Box::new(move |winners| {
            log::info!("action: lottery_complete | result: success | winners: {winners} | told_by: store");
            completion.completed(winners);
        })
    }

    /// The central is stopping: every held query is answered now, and none is held after.
    pub fn stop(&self) {
        self.lock().stopping = true;
        self.changed.notify_all();
    }

    /// Wakes every held query to look at its [`HoldRelease`] again. Every waiter wakes (one
    /// condition variable serves them all), which costs a few microseconds each: it is called
    /// only when a full connection table makes room, not on the way of every request.
    pub fn wake(&self) {
        // Taken so a waiter between its check and its wait cannot miss the notification.
        drop(self.lock());
        self.changed.notify_all();
    }

    /// Waits until the lottery completes through this central (its total), the central stops,
    /// `release` is released or `until` passes (`None` but for the total: ask the store).
    #[must_use]
    pub fn wait(&self, until: Instant, release: &HoldRelease) -> Option<u64> {
        let mut state = self.lock();
        loop {
            if state.winners.is_some() || state.stopping || release.is_released() {
                return state.winners;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = self.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// The state; a panic elsewhere while it was held left nothing half-written (each write
    /// is one field), so a poisoned lock is still good.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread, time::Duration};

    use super::*;

    #[test]
    fn a_held_query_gets_the_total_the_moment_it_is_known() {
        let completion = Arc::new(Completion::new());
        let waiter = {
            let completion = Arc::clone(&completion);
            thread::spawn(move || {
                let asked = Instant::now();
                (completion.wait(asked + Duration::from_secs(30), &HoldRelease::default()), asked.elapsed())
            })
        };
        thread::sleep(Duration::from_millis(50));
        completion.completed(4573);
        let (total, waited) = waiter.join().unwrap();
        assert_eq!(total, Some(4573));
        assert!(waited < Duration::from_secs(5), "woken at once, not at the hold's end: {waited:?}");
        // Once known, no one waits.
        assert_eq!(
            completion.wait(Instant::now() + Duration::from_secs(30), &HoldRelease::default()),
            Some(4573)
        );
    }

    #[test]
    fn a_hold_ends_at_its_time_with_nothing_known() {
        let completion = Completion::new();
        let asked = Instant::now();
        assert_eq!(completion.wait(asked + Duration::from_millis(80), &HoldRelease::default()), None);
        assert!(asked.elapsed() >= Duration::from_millis(80));
    }

    #[test]
    fn the_stop_ends_every_hold_and_prevents_new_ones() {
        let completion = Arc::new(Completion::new());
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let completion = Arc::clone(&completion);
                thread::spawn(move || {
                    let asked = Instant::now();
                    (
                        completion.wait(asked + Duration::from_secs(30), &HoldRelease::default()),
                        asked.elapsed(),
                    )
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(50));
        completion.stop();
        for waiter in waiters {
            let (total, waited) = waiter.join().unwrap();
            assert_eq!(total, None);
            assert!(waited < Duration::from_secs(5), "{waited:?}");
        }
        let asked = Instant::now();
        assert_eq!(completion.wait(asked + Duration::from_secs(30), &HoldRelease::default()), None);
        assert!(asked.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_released_hold_ends_at_once_and_others_keep_holding() {
        let completion = Arc::new(Completion::new());
        let released = Arc::new(HoldRelease::default());
        let spawn = |release: Arc<HoldRelease>| {
            let completion = Arc::clone(&completion);
            thread::spawn(move || {
                let asked = Instant::now();
                (completion.wait(asked + Duration::from_millis(600), &release), asked.elapsed())
            })
        };
        let evicted = spawn(Arc::clone(&released));
        let kept = spawn(Arc::new(HoldRelease::default()));
        released.release();
        completion.wake();
        let (total, waited) = evicted.join().unwrap();
        assert_eq!(total, None);
        assert!(waited < Duration::from_millis(500), "released at once: {waited:?}");
        let (total, waited) = kept.join().unwrap();
        assert_eq!(total, None);
        assert!(waited >= Duration::from_millis(600), "the other hold ran its course: {waited:?}");
    }
}
