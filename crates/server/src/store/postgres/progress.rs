//! The winners query's answer, asked of the database at most once at a time per central.
//!
//! Agencies done early ask for the total again and again while others upload; each question
//! is a query over every agency's row. Questions that arrive while a query runs share the
//! next one instead of each running its own, and a complete lottery is remembered (nothing
//! changes once every agency is done). Freshness is kept: a caller's answer comes from a query
//! that started after the caller arrived, so it counts everything committed before the
//! question, an agency's own done included.

use std::{
    io,
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
};

use crate::store::{error::StoreError, ledger::Progress};

/// Coalesces the engine's progress queries.
#[derive(Debug, Default)]
pub(crate) struct Coalesced {
    state: Mutex<State>,
    /// Signalled when a query ends.
    ended: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Queries started so far; the running one, if any, is number `started`.
    started: u64,
    /// The number of the last query that ended, and its answer (errors as kind and text:
    /// `StoreError` is not `Clone`).
    ended: u64,
    last: Option<Result<Progress, (io::ErrorKind, String)>>,
    running: bool,
    /// Once complete, always complete: no agency stages or finishes after every one is done.
    complete: Option<Progress>,
}

impl Coalesced {
    /// The lottery's progress from a run of `query` that started after this call did: this
    /// caller's own, or one it shares with the callers that arrived with it.
    ///
    /// # Errors
    /// What `query` returned.
    pub(crate) fn get(
        &self,
        query: impl FnOnce() -> Result<Progress, StoreError>,
    ) -> Result<Progress, StoreError> {
        let mut state = self.lock();
        if let Some(complete) = state.complete {
            return Ok(complete);
        }
        let needed = state.started + 1;
        loop {
            if state.ended >= needed {
                if let Some(last) = &state.last {
                    return last.clone().map_err(|(kind, text)| StoreError::Io(io::Error::new(kind, text)));
                }
            }
            if !state.running {
                state.running = true;
                state.started += 1;
                let mine = state.started;
                drop(state);
                // Ends the run even if `query` panics, so the callers waiting on it go on.
                let mut run = Run { shared: self, number: mine, answer: None };
                let answer = query();
                run.answer = Some(match &answer {
                    Ok(progress) => Ok(*progress),
                    Err(e) => Err(match e {
                        StoreError::Io(io) => (io.kind(), io.to_string()),
                        other => (io::ErrorKind::Other, other.to_string()),
                    }),
                });
                drop(run);
                return answer;
            }
            state = self.ended.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poison only marks that a holder panicked; every field is written whole.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One running query; records its answer (none if it panicked) and wakes the waiters on drop.
struct Run<'a> {
    shared: &'a Coalesced,
    number: u64,
    answer: Option<Result<Progress, (io::ErrorKind, String)>>,
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.running = false;
        if let Some(Ok(complete @ Progress::Complete { .. })) = &self.answer {
            state.complete = Some(*complete);
        }
        // A panicked run leaves `ended` as it was: its waiters start the next one.
        if let Some(answer) = self.answer.take() {
            state.ended = self.number;
            state.last = Some(answer);
        }
        drop(state);
        self.shared.ended.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            atomic::{AtomicU64, Ordering},
            Arc, Barrier,
        },
        thread,
        time::Duration,
    };

    use super::*;

    #[test]
    fn callers_arriving_during_a_query_share_the_next_one() {
        let coalesced = Arc::new(Coalesced::default());
        let queries = Arc::new(AtomicU64::new(0));
        let callers = 8;
        let start = Arc::new(Barrier::new(callers));
        let threads: Vec<_> = (0..callers)
            .map(|_| {
                let (coalesced, queries, start) =
                    (Arc::clone(&coalesced), Arc::clone(&queries), Arc::clone(&start));
                thread::spawn(move || {
                    start.wait();
                    coalesced.get(|| {
                        let n = queries.fetch_add(1, Ordering::SeqCst) + 1;
                        // Long enough that the other callers arrive while it runs.
                        thread::sleep(Duration::from_millis(50));
                        Ok(Progress::Pending { agencies: u32::try_from(n).unwrap() })
                    })
                })
            })
            .collect();
        let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap().unwrap()).collect();
        let ran = queries.load(Ordering::SeqCst);
        assert!(ran < callers as u64, "{ran} queries for {callers} callers");
        assert!(answers.iter().all(|a| matches!(a, Progress::Pending { .. })), "{answers:?}");
    }

    #[test]
    fn an_answer_comes_from_a_query_started_after_the_call() {
        let coalesced = Coalesced::default();
        assert_eq!(
            coalesced.get(|| Ok(Progress::Pending { agencies: 2 })).unwrap(),
            Progress::Pending { agencies: 2 }
        );
        // Nothing runs now: the next caller runs its own query and sees the new state.
        assert_eq!(
            coalesced.get(|| Ok(Progress::Pending { agencies: 1 })).unwrap(),
            Progress::Pending { agencies: 1 }
        );
        let err = coalesced.get(|| Err(StoreError::Io(io::Error::other("down")))).unwrap_err();
        assert!(err.to_string().contains("down"), "{err}");
        assert_eq!(
            coalesced.get(|| Ok(Progress::Complete { winners: 7 })).unwrap(),
            Progress::Complete { winners: 7 }
        );
        // Complete stays complete without asking again.
        assert_eq!(
            coalesced.get(|| panic!("a complete lottery is not asked again")).unwrap(),
            Progress::Complete { winners: 7 }
        );
    }

    #[test]
    fn a_panicking_query_does_not_leave_the_others_waiting() {
        let coalesced = Arc::new(Coalesced::default());
        let panicked = {
            let coalesced = Arc::clone(&coalesced);
            thread::spawn(move || coalesced.get(|| panic!("a query that panics"))).join()
        };
        assert!(panicked.is_err());
        assert_eq!(
            coalesced.get(|| Ok(Progress::Pending { agencies: 3 })).unwrap(),
            Progress::Pending { agencies: 3 }
        );
    }
}
