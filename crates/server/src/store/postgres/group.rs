//! Group commit: batches staged by many connections at once share one transaction.
//!
//! A connection submits a batch ([`Group::submit`]) and goes on: it reads and stages the next
//! batches its agency already sent, while the batch waits in the queue. When the connection
//! wants its answers it collects them ([`Group::collect`]). Whenever fewer than
//! [`Group::in_flight`] groups are being committed, a collecting connection whose batch is
//! still queued becomes the group's leader: it takes every queued batch (its own, and those
//! every other connection submitted meanwhile), commits them in one statement and one
//! transaction (`lottery_stage_group`, see `schema.rs`), and hands each its own outcome. While
//! a group commits, the next one fills; under load a commit (and its WAL flush) carries as many
//! batches as arrived during the previous one, with no timer and no added wait when idle.
//!
//! Each batch's answer is given only after the commit that holds it: a collector returns only
//! with the outcome its leader read back after the commit, or with an error that acknowledges
//! nothing. [`Group::interrupt`] (the central's stop) makes every collector return at once with
//! such an error; a batch already sent may still commit, which the key on (agency, sequence)
//! turns into a replay when the agency sends it again.
//!
//! Each collector sleeps on a `Condvar` of its own: a group's end wakes the collectors of that
//! group and the first queued one (to lead the next), not every connection thread of the
//! central.

use std::{
    collections::HashMap,
    io,
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
};

use crate::store::StoreError;

/// Queued batches, their outcomes, and the groups in flight.
#[derive(Debug)]
pub(crate) struct Group<B, O> {
    /// How many groups may commit at once (each on its own pooled connection).
    in_flight: usize,
    /// A std `Mutex`: held to queue, take or hand out, never across a database call.
    state: Mutex<State<B, O>>,
}

#[derive(Debug)]
struct State<B, O> {
    /// Batches waiting for a leader, with their numbers.
    queued: Vec<(u64, B)>,
    /// Every collector's own wake-up, by the number of the batch it waits for: signalled
    /// when its outcome is in, when it may lead (first collector in the queue as a slot
    /// frees), or on interrupt.
    waiters: HashMap<u64, Arc<Condvar>>,
    /// Outcomes of committed groups, by batch number, until collected.
    outcomes: HashMap<u64, Result<O, StoreError>>,
    /// The next batch's number.
    next: u64,
    /// Groups being committed now.
    committing: usize,
    /// The central is stopping: no one waits any more.
    interrupted: bool,
}

impl<B, O> Group<B, O> {
    /// Commits at most `in_flight` groups at once (at least 1).
    pub(crate) fn new(in_flight: usize) -> Group<B, O> {
        Group {
            in_flight: in_flight.max(1),
            state: Mutex::new(State {
                queued: Vec::new(),
                waiters: HashMap::new(),
                outcomes: HashMap::new(),
                next: 0,
                committing: 0,
                interrupted: false,
            }),
        }
    }

    /// Queues `batch` and returns its outcome once the group holding it is committed
    /// ([`Group::submit`], then [`Group::collect`]).
    ///
    /// # Errors
    /// As [`Group::collect`].
    pub(crate) fn commit(
        &self,
        batch: B,
        commit: impl FnOnce(Vec<B>) -> Vec<Result<O, StoreError>>,
    ) -> Result<O, StoreError> {
        let number = self.submit(batch)?;
        self.collect(number, commit)
    }

    /// Queues `batch` for the next group and returns its number, to collect its outcome
    /// with; returns at once. Every number is collected once (the engine's `make_durable`).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the central is stopping: nothing is queued.
    pub(crate) fn submit(&self, batch: B) -> Result<u64, StoreError> {
        let mut state = self.lock();
        if state.interrupted {
            return Err(stopping());
        }
        let number = state.next;
        state.next += 1;
        state.queued.push((number, batch));
        Ok(number)
    }

    /// The outcome of batch `number` once the group holding it is committed: `commit` runs
    /// on this thread if it leads, with every batch queued by then, and must return one
    /// outcome per batch, in their order.
    ///
    /// # Errors
    /// What `commit` gave for this batch; [`StoreError::Io`] if `commit` panicked, gave too
    /// few outcomes, or the central is stopping (nothing acknowledged).
    pub(crate) fn collect(
        &self,
        number: u64,
        commit: impl FnOnce(Vec<B>) -> Vec<Result<O, StoreError>>,
    ) -> Result<O, StoreError> {
        let mut state = self.lock();
        let wake = Arc::new(Condvar::new());
        state.waiters.insert(number, Arc::clone(&wake));
        let mut commit = Some(commit);
        loop {
            if let Some(outcome) = state.outcomes.remove(&number) {
                state.waiters.remove(&number);
                return outcome;
            }
            if state.interrupted {
                state.queued.retain(|(queued, _)| *queued != number);
                state.waiters.remove(&number);
                return Err(stopping());
            }
            let queued = state.queued.iter().any(|(queued, _)| *queued == number);
            if queued && state.committing < self.in_flight {
                if let Some(commit) = commit.take() {
                    state = self.lead(state, commit);
                    continue;
                }
            }
            state = wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Takes every queued batch, commits them through `commit` with the lock released, and
    /// records their outcomes (errors for those `commit` did not give, even if it panicked).
    fn lead<'a>(
        &'a self,
        mut state: MutexGuard<'a, State<B, O>>,
        commit: impl FnOnce(Vec<B>) -> Vec<Result<O, StoreError>>,
    ) -> MutexGuard<'a, State<B, O>> {
        let (numbers, batches): (Vec<u64>, Vec<B>) = std::mem::take(&mut state.queued).into_iter().unzip();
        state.committing += 1;
        drop(state);
        let mut leading = Leading { group: self, numbers, outcomes: Vec::new() };
        leading.outcomes = commit(batches);
        drop(leading);
        self.lock()
    }

    /// The central is stopping: every collector returns now, with nothing acknowledged.
    pub(crate) fn interrupt(&self) {
        let mut state = self.lock();
        state.interrupted = true;
        state.waiters.values().for_each(|wake| wake.notify_one());
    }

    fn lock(&self) -> MutexGuard<'_, State<B, O>> {
        // Poison only marks that a holder panicked; every change under the lock is whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One group being committed; on drop (a panic included) records the outcomes, frees its slot,
/// wakes its collectors and the first queued one.
struct Leading<'a, B, O> {
    group: &'a Group<B, O>,
    numbers: Vec<u64>,
    outcomes: Vec<Result<O, StoreError>>,
}

impl<B, O> Drop for Leading<'_, B, O> {
    fn drop(&mut self) {
        let mut outcomes = std::mem::take(&mut self.outcomes).into_iter();
        let mut state = self.group.lock();
        state.committing -= 1;
        for &number in &self.numbers {
            let outcome = outcomes.next().unwrap_or_else(|| {
                Err(StoreError::Io(io::Error::other("the group's commit gave no outcome for this batch")))
            });
            // After an interrupt nobody collects them; the central is about to exit.
            if !state.interrupted {
                state.outcomes.insert(number, outcome);
            }
            if let Some(wake) = state.waiters.get(&number) {
                wake.notify_one();
            }
        }
        // A slot is free: the first queued batch whose connection collects leads the next
        // group (one that comes to collect first leads it instead, and this one finds its
        // batch taken and sleeps again). Batches nobody collects yet wait for the next
        // collector: their connections are still staging.
        let next = state.queued.iter().find_map(|(number, _)| state.waiters.get(number));
        if let Some(wake) = next {
            wake.notify_one();
        }
    }
}

fn stopping() -> StoreError {
    StoreError::Io(io::Error::new(
        io::ErrorKind::Interrupted,
        "the central is stopping: the batch is not acknowledged (sent again, it is committed once)",
    ))
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicUsize, Ordering},
            Arc, Barrier,
        },
        thread,
        time::Duration,
    };

    use super::*;

    #[test]
    fn batches_arriving_together_share_groups_and_each_gets_its_own_outcome() {
        let group = Arc::new(Group::<u32, u32>::new(1));
        let commits = Arc::new(AtomicUsize::new(0));
        let callers = 16;
        let start = Arc::new(Barrier::new(callers));
        let threads: Vec<_> = (0..callers)
            .map(|i| {
                let (group, commits, start) = (Arc::clone(&group), Arc::clone(&commits), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    let n = u32::try_from(i).unwrap();
                    group.commit(n, |batches| {
                        commits.fetch_add(1, Ordering::SeqCst);
                        // Long enough for the others to queue behind this group.
                        thread::sleep(Duration::from_millis(30));
                        batches
                            .into_iter()
                            .map(|b| if b == 3 { Err(StoreError::AgencyFinished(b)) } else { Ok(b * 10) })
                            .collect()
                    })
                })
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            let n = u32::try_from(i).unwrap();
            match t.join().unwrap() {
                Ok(v) => assert_eq!(v, n * 10),
                Err(e) => assert!(n == 3 && matches!(e, StoreError::AgencyFinished(3)), "{n}: {e}"),
            }
        }
        let ran = commits.load(Ordering::SeqCst);
        assert!(ran < callers, "{ran} commits for {callers} batches");
    }

    #[test]
    fn a_panicking_commit_fails_its_group_only() {
        let group = Group::<u32, u32>::new(1);
        let panicked =
            thread::scope(|s| s.spawn(|| group.commit(1, |_| panic!("a commit that panics"))).join());
        assert!(panicked.is_err());
        assert_eq!(group.commit(2, |b| b.into_iter().map(Ok).collect()).unwrap(), 2);
    }

    #[test]
    fn an_interrupt_releases_every_waiter_at_once() {
        let group = Arc::new(Group::<u32, u32>::new(1));
        let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
        let leader = {
            let (group, entered, release) = (Arc::clone(&group), Arc::clone(&entered), Arc::clone(&release));
            thread::spawn(move || {
                group.commit(1, |b| {
                    entered.wait();
                    release.wait();
                    b.into_iter().map(Ok).collect()
                })
            })
        };
        entered.wait();
        // The only slot is taken: this one waits, queued, until the interrupt.
        let waiter = {
            let group = Arc::clone(&group);
            thread::spawn(move || group.commit(2, |b| b.into_iter().map(Ok).collect()))
        };
        group.interrupt();
        let err = waiter.join().unwrap().unwrap_err();
        assert!(matches!(&err, StoreError::Io(e) if e.kind() == io::ErrorKind::Interrupted), "{err}");
        release.wait();
        // Its group may have committed, but the stop came first: not acknowledged either.
        let err = leader.join().unwrap().unwrap_err();
        assert!(matches!(&err, StoreError::Io(e) if e.kind() == io::ErrorKind::Interrupted), "{err}");
        assert!(group.commit(3, |b| b.into_iter().map(Ok).collect()).is_err(), "nothing staged after a stop");
    }
}
