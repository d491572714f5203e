//! The registry of live connections: who may hold a connection slot, and a way for the stop
//! to reach every socket.
//!
//! Each accepted connection registers a clone of its socket with its [`Standing`] and gets
//! back a [`Registration`], through which its handler says when the standing changes, and
//! which unregisters it when dropped (when the connection's thread ends).
//!
//! # Who may hold a slot
//! The rule, stated here once (docs/scale.md argues it):
//! - A connection is **unproved** (keys configured, no `Prove` yet), **working** (uploading,
//!   or anything else an agency does) or **waiting** (its agency is done: it only holds or
//!   asks for the total).
//! - Unproved connections share at most `unproved_max` slots. A newcomer (unproved itself when
//!   keys are configured) that finds them all taken evicts the oldest unproved one, so a keyed
//!   agency always gets far enough to prove itself, whatever keyless peers do.
//! - When the table is full, a newcomer evicts the oldest waiting connection (its held query
//!   is answered `Pending` at once and it is closed: its agency asks again after its period),
//!   else the oldest unproved one; only when every slot is working is it refused `Busy`.
//!
//! Working connections are never evicted: each one is an agency with bets still to send,
//! which finishes (or idles out), so a full table of them empties by itself. A waiting
//! agency never keeps one with bets out: that is what makes any cap live.
//!
//! # The stop
//! Closing the registry refuses new registrations and shuts the read half of every
//! registered socket: a thread blocked reading wakes with end-of-stream, while a thread in the
//! middle of a batch finishes it and can still write its answer, within a short write
//! timeout. What is still registered when the stop's patience ends is shut both ways
//! ([`Connections::force_close`]).

use std::{
    collections::BTreeMap,
    net::{Shutdown, TcpStream},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use crate::lottery::HoldRelease;

/// How long an evicted waiting connection has to send its last `Pending`: its peer was
/// reading (it asked), so this is a safety net against one that stopped.
const EVICTED_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connection is doing, as far as its right to a slot goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Keys are configured and it has not proved an agency yet.
    Unproved,
    /// It acts for an agency that still has work to do (or runs open and has not said).
    Working,
    /// Its agency is done: it only holds or asks for the total.
    Waiting,
}

/// Live connections, shared by the accept loop, the connection threads and shutdown.
#[derive(Debug)]
pub struct Connections {
    /// Guards the slots and the open flag together, so a connection accepted while
    /// shutdown sweeps is either swept or refused, never missed, and an eviction sees every
    /// standing as it is. Held only for map updates and `shutdown` calls, which do not block.
    inner: Mutex<Registry>,
    /// Signalled when a connection unregisters, so shutdown can wait for the last one.
    changed: Condvar,
    max: usize,
    /// Most slots unproved connections may hold at once.
    unproved_max: usize,
}

#[derive(Debug)]
struct Registry {
    open: bool,
    next_id: u64,
    /// By registration order, so the first match of a standing is its oldest connection.
    slots: BTreeMap<u64, Slot>,
}

#[derive(Debug)]
struct Slot {
    socket: TcpStream,
    standing: Standing,
    /// Set once the slot is given up to a newcomer: the connection is ending and no longer
    /// counts against the cap. Also ends its held total query.
    evicted: Arc<HoldRelease>,
}

/// Why a connection was not registered.
#[derive(Debug)]
pub enum Refusal {
    /// The cap is reached and every slot is working.
    Full(usize),
    /// Shutdown has begun.
    Closed,
    /// The socket could not be cloned (out of file descriptors).
    Io(std::io::Error),
}

/// A registered connection; dropping it frees its slot.
#[derive(Debug)]
pub struct Registration {
    id: u64,
    evicted: Arc<HoldRelease>,
    connections: Arc<Connections>,
}

impl Connections {
    /// An open registry admitting at most `max` connections at once, of which at most
    /// `unproved_max` unproved.
    #[must_use]
    pub fn new(max: usize, unproved_max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            inner: Mutex::new(Registry { open: true, next_id: 0, slots: BTreeMap::new() }),
            changed: Condvar::new(),
            max,
            unproved_max: unproved_max.max(1),
        })
    }

    /// Registers `socket` with `standing`, making room by the rule above if needed. Returns
    /// the registration and the standing of the connection evicted for it, if any (a waiting
    /// one's held query must then be woken: `Lottery::wake_released`).
    ///
    /// # Errors
    /// A [`Refusal`] saying why not.
    pub fn register(
        self: &Arc<Self>,
        socket: &TcpStream,
        standing: Standing,
    ) -> Result<(Registration, Option<Standing>), Refusal> {
        let mut registry = self.lock();
        if !registry.open {
            return Err(Refusal::Closed);
        }
        let victim = self.victim(&registry, standing)?;
        let clone = socket.try_clone().map_err(Refusal::Io)?;
        let evicted = victim.and_then(|id| registry.slots.get(&id)).map(evict);
        let id = registry.next_id;
        registry.next_id += 1;
        let release = Arc::new(HoldRelease::default());
        registry.slots.insert(id, Slot { socket: clone, standing, evicted: Arc::clone(&release) });
        Ok((Registration { id, evicted: release, connections: Arc::clone(self) }, evicted))
    }

    /// Which connection gives its slot to a newcomer of `standing`: `Ok(None)` when there is
    /// room, `Err(Full)` when every slot is working.
    fn victim(&self, registry: &Registry, standing: Standing) -> Result<Option<u64>, Refusal> {
        let live = || registry.slots.iter().filter(|(_, slot)| !slot.evicted.is_released());
        let oldest = |wanted: Standing| live().find(|(_, slot)| slot.standing == wanted).map(|(id, _)| *id);
        let unproved = live().filter(|(_, slot)| slot.standing == Standing::Unproved).count();
        if standing == Standing::Unproved && unproved >= self.unproved_max {
            return Ok(oldest(Standing::Unproved));
        }
        if live().count() < self.max {
            return Ok(None);
        }
        match oldest(Standing::Waiting).or_else(|| oldest(Standing::Unproved)) {
            Some(id) => Ok(Some(id)),
            None => Err(Refusal::Full(self.max)),
        }
    }

    /// Refuses further registrations, shuts the read half of every live socket and bounds
    /// each of its later writes by `write_timeout` (a write already blocked keeps its old
    /// timeout: [`Connections::force_close`] ends those). Returns how many were live.
    pub fn close_all(&self, write_timeout: Duration) -> usize {
        let mut registry = self.lock();
        registry.open = false;
        for slot in registry.slots.values() {
            // Both fail only if the peer is already gone, which is what we want anyway.
            let _ = slot.socket.set_write_timeout(Some(write_timeout));
            let _ = slot.socket.shutdown(Shutdown::Read);
        }
        self.changed.notify_all();
        registry.slots.len()
    }

    /// Shuts both halves of every socket still registered: a thread blocked writing to a peer
    /// that does not read fails at once. Returns how many there were.
    pub fn force_close(&self) -> usize {
        let registry = self.lock();
        for slot in registry.slots.values() {
            let _ = slot.socket.shutdown(Shutdown::Both);
        }
        registry.slots.len()
    }

    /// Waits until no connection is registered, or until `deadline`; returns how many still
    /// are.
    pub fn wait_empty(&self, deadline: Instant) -> usize {
        let mut registry = self.lock();
        while !registry.slots.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            registry = self.changed.wait_timeout(registry, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        registry.slots.len()
    }

    /// Connections registered now, evicted ones still ending included.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether no connection is registered.
    #[cfg(test)]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Nothing that can panic runs under this lock (map operations and `shutdown` calls),
        // and the map stays consistent even if something did: recover it rather than stop.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Gives `slot` up: its hold is released and its socket shut so its thread ends soon. A
/// waiting connection keeps its write half for the `Pending` it owes; an unproved one is owed
/// nothing. Returns its standing.
fn evict(slot: &Slot) -> Standing {
    slot.evicted.release();
    let _ = slot.socket.set_write_timeout(Some(EVICTED_WRITE_TIMEOUT));
    let how = if slot.standing == Standing::Waiting { Shutdown::Read } else { Shutdown::Both };
    // Fails only if the peer is already gone, which is what eviction wants anyway.
    let _ = slot.socket.shutdown(how);
    slot.standing
}

impl Registration {
    /// Records the connection's new standing (nothing once it was evicted).
    pub fn set(&self, standing: Standing) {
        if let Some(slot) = self.connections.lock().slots.get_mut(&self.id) {
            slot.standing = standing;
        }
    }

    /// Whether the connection gave its slot up to a newcomer: it must end now.
    #[must_use]
    pub fn is_evicted(&self) -> bool {
        self.evicted.is_released()
    }

    /// What ends this connection's held total query when it is evicted.
    #[must_use]
    pub fn hold_release(&self) -> Arc<HoldRelease> {
        Arc::clone(&self.evicted)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().slots.remove(&self.id);
        self.connections.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Read,
        net::{TcpListener, TcpStream},
    };

    use super::*;

    fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn the_cap_is_enforced_and_slots_are_freed_on_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(2, 1);
        let (_c1, s1) = pair(&listener);
        let (_c2, s2) = pair(&listener);
        let (_c3, s3) = pair(&listener);
        let (r1, _) = connections.register(&s1, Standing::Working).unwrap();
        let _r2 = connections.register(&s2, Standing::Working).unwrap();
        assert!(matches!(connections.register(&s3, Standing::Working), Err(Refusal::Full(2))));
        drop(r1);
        assert_eq!(connections.len(), 1);
        assert!(connections.register(&s3, Standing::Working).is_ok());
    }

    #[test]
    fn closing_wakes_blocked_readers_and_refuses_newcomers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(8, 8);
        let (_client, server) = pair(&listener);
        let (registration, _) = connections.register(&server, Standing::Working).unwrap();
        let reader = std::thread::spawn(move || {
            let mut server = server;
            let mut buf = [0u8; 1];
            let n = server.read(&mut buf).unwrap();
            drop(registration);
            n
        });
        assert_eq!(connections.close_all(Duration::from_millis(100)), 1);
        assert_eq!(reader.join().unwrap(), 0, "a blocked read sees end-of-stream");
        let (_c, s) = pair(&listener);
        assert!(matches!(connections.register(&s, Standing::Working), Err(Refusal::Closed)));
        assert!(connections.is_empty());
    }

    #[test]
    fn a_full_table_evicts_a_waiting_connection_then_an_unproved_one_never_a_working_one() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(3, 2);
        let pairs: Vec<_> = (0..6).map(|_| pair(&listener)).collect();
        let (working, _) = connections.register(&pairs[0].1, Standing::Working).unwrap();
        let (waiting, _) = connections.register(&pairs[1].1, Standing::Working).unwrap();
        waiting.set(Standing::Waiting);
        let (unproved, _) = connections.register(&pairs[2].1, Standing::Unproved).unwrap();
        // Full: the waiting one goes first, and its held query is released.
        let (newcomer, evicted) = connections.register(&pairs[3].1, Standing::Unproved).unwrap();
        assert_eq!(evicted, Some(Standing::Waiting));
        assert!(waiting.is_evicted() && waiting.hold_release().is_released());
        // Two unproved now, their whole share: the oldest of them goes.
        let (_third, evicted) = connections.register(&pairs[4].1, Standing::Unproved).unwrap();
        assert_eq!(evicted, Some(Standing::Unproved));
        assert!(unproved.is_evicted() && !newcomer.is_evicted());
        newcomer.set(Standing::Working);
        // Full of working connections but one unproved: that one goes.
        let (_fourth, evicted) = connections.register(&pairs[5].1, Standing::Working).unwrap();
        assert_eq!(evicted, Some(Standing::Unproved));
        assert!(!working.is_evicted());
        // Every slot working: refused.
        let (_c, s) = pair(&listener);
        assert!(matches!(connections.register(&s, Standing::Working), Err(Refusal::Full(3))));
    }

    #[test]
    fn an_evicted_waiting_connection_keeps_its_write_half_for_the_pending_it_owes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(1, 1);
        let (mut client, server) = pair(&listener);
        let (waiting, _) = connections.register(&server, Standing::Waiting).unwrap();
        let (_c, s) = pair(&listener);
        let (_newcomer, evicted) = connections.register(&s, Standing::Working).unwrap();
        assert_eq!(evicted, Some(Standing::Waiting));
        assert!(waiting.is_evicted());
        let mut writer = &server;
        std::io::Write::write_all(&mut writer, b"p").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!(client.read(&mut buf).unwrap(), 1);
        let mut reader = &server;
        assert_eq!(reader.read(&mut buf).unwrap(), 0, "its read half is shut");
    }
}
