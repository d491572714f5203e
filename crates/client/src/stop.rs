//! The agency's stop signal: a flag that can also be waited on, and the bound on how long a
//! stop takes.
//!
//! A pause (a retry's backoff, the wait between two winners queries) ends the moment SIGTERM
//! arrives. A blocking read or write cannot see a flag, so every connection to the central is
//! watched here ([`Stop::watch`]): if the agency has not finished [`CUT_OFF_AFTER`] after the
//! request (it waits for answers owed by a central that is slow or gone), both halves of each
//! watched socket are shut, the blocked call fails at once, and the agency ends with what the
//! central acknowledged.

use std::{
    collections::HashMap,
    net::{Shutdown, TcpStream},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// How long a stopping agency waits for the answers owed to it before cutting its
/// connections: well within the second a stop may take.
pub const CUT_OFF_AFTER: Duration = Duration::from_millis(500);

/// Set once, by the signal thread (or a test); read by the agency between steps. Clones share
/// the same flag.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// The flag, the finished mark and the watched sockets, together so a socket watched as
    /// the cut-off sweeps is either swept or sees the flag. Held only for map updates and
    /// `shutdown` calls, which do not block.
    state: Mutex<State>,
    /// Wakes [`Stop::wait`] when the flag turns on, and the cut-off when the agency finishes.
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    requested: bool,
    finished: bool,
    next_id: u64,
    sockets: HashMap<u64, TcpStream>,
}

/// A watched connection; dropping it stops watching.
#[derive(Debug)]
pub struct Watched {
    id: u64,
    stop: Stop,
}

impl Stop {
    /// A stop not yet requested.
    #[must_use]
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Asks the agency to stop, waking any [`Stop::wait`].
    pub fn request(&self) {
        self.lock().requested = true;
        self.inner.changed.notify_all();
    }

    /// Whether a stop was asked.
    #[must_use]
    pub fn is_requested(&self) -> bool {
        self.lock().requested
    }

    /// Sleeps for `period` or until a stop is asked; returns whether one was.
    #[must_use]
    pub fn wait(&self, period: Duration) -> bool {
        let deadline = Instant::now().checked_add(period);
        let mut state = self.lock();
        while !state.requested {
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                // A period past what the clock can hold: wait in long steps.
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            state = self.inner.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.requested
    }

    /// Watches `socket` (a clone of it is kept) until the returned guard is dropped.
    ///
    /// # Errors
    /// When the socket cannot be cloned (out of file descriptors).
    pub fn watch(&self, socket: &TcpStream) -> std::io::Result<Watched> {
        let clone = socket.try_clone()?;
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        state.sockets.insert(id, clone);
        Ok(Watched { id, stop: self.clone() })
    }

    /// Marks the agency's work finished, so a pending [`Stop::cut_off`] returns at once.
    pub fn finish(&self) {
        self.lock().finished = true;
        self.inner.changed.notify_all();
    }

    /// Called once a stop was requested: waits up to `grace` for [`Stop::finish`], then shuts
    /// both halves of every watched socket. Returns how many were cut.
    pub fn cut_off(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        let mut state = self.lock();
        while !state.finished {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.inner.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        if state.finished {
            return 0;
        }
        for socket in state.sockets.values() {
            // Fails only when the socket is already closed, which is the aim anyway.
            let _ = socket.shutdown(Shutdown::Both);
        }
        state.sockets.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain flags and a map, never left half-written: recover them from a poisoned lock.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.stop.lock().sockets.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::{io::Read, net::TcpListener, thread};

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
        let stop = Stop::new();
        let waiter = {
            let stop = stop.clone();
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

    #[test]
    fn a_huge_period_does_not_overflow() {
        let stop = Stop::new();
        stop.request();
        assert!(stop.wait(Duration::MAX));
    }

    #[test]
    fn the_cut_off_wakes_a_blocked_read_unless_the_agency_finished() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stop = Stop::new();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server_side = listener.accept().unwrap();
        let watched = stop.watch(&client).unwrap();
        let reader = thread::spawn(move || {
            let mut client = client;
            let mut buf = [0u8; 1];
            let n = client.read(&mut buf);
            drop(watched);
            n.map_err(|e| e.kind())
        });
        stop.request();
        let started = Instant::now();
        assert_eq!(stop.cut_off(Duration::from_millis(50)), 1);
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert_eq!(reader.join().unwrap(), Ok(0), "the blocked read ends");

        let finished = Stop::new();
        finished.finish();
        let started = Instant::now();
        assert_eq!(finished.cut_off(Duration::from_secs(60)), 0);
        assert!(started.elapsed() < Duration::from_secs(30), "a finished agency is not waited for");
    }
}
