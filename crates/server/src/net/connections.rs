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
//! - An unproved connection keeps its slot for a **grace** first: four times what proofs
//!   take here lately, at least [`GRACE_MIN`], at most [`GRACE_MAX`]. A newcomer that would
//!   evict a younger one waits (in the accept loop, the rest in the kernel's queue) until a
//!   slot frees or the grace ends. So agencies arriving together (a restart, the night's
//!   opening: hundreds of TLS handshakes at once) are served in turn instead of evicting each
//!   other before they can prove, and a keyed agency once admitted always has its grace to
//!   prove itself, however fast keyless peers reconnect. Keyless peers hold a slot for a grace
//!   at most once the share is full: the share turns over at least `unproved_max` times per
//!   [`GRACE_MAX`]. Only proofs move the grace, and only keyed agencies can prove.
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

/// The shortest grace an unproved connection has before a newcomer may evict it: a handshake
/// and a proof over a far network, or the first of many at once on a loaded central (200 TLS
/// agencies arriving together on 2 cores: the first proofs take 100 ms and more while the
/// agencies' own processes start beside them).
pub const GRACE_MIN: Duration = Duration::from_millis(250);
/// The longest grace, the shortest proof deadline (`SERVER_PROOF_TIMEOUT_SECS` is at least
/// 1 s): past it the connection is closed anyway. The stop wakes a newcomer waiting for it.
pub const GRACE_MAX: Duration = Duration::from_secs(1);
/// The grace is this many times the recent proofs' time.
const GRACE_FACTOR: u32 = 4;
/// Each proof moves the recent proofs' time by this fraction of its difference from it.
const PROOF_TIME_WEIGHT: u32 = 4;

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
    /// Signalled when a connection unregisters or proves, and when the registry closes: the
    /// stop waits for the last connection, a newcomer for an unproved slot.
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
    /// What proofs take here lately, from registration to proof (a moving average).
    proof_time: Duration,
}

impl Registry {
    /// How long an unproved connection keeps its slot before a newcomer may take it.
    fn grace(&self) -> Duration {
        (self.proof_time * GRACE_FACTOR).clamp(GRACE_MIN, GRACE_MAX)
    }
}

#[derive(Debug)]
struct Slot {
    socket: TcpStream,
    standing: Standing,
    /// When it registered: an unproved connection's grace counts from here.
    since: Instant,
    /// Set once the slot is given up to a newcomer: the connection is ending and no longer
    /// counts against the cap. Also ends its held total query.
    evicted: Arc<HoldRelease>,
}

/// Where a newcomer's slot comes from.
#[derive(Debug, PartialEq, Eq)]
enum Room {
    /// A free slot.
    Free,
    /// The slot of the connection with this id, evicted.
    Evict(u64),
    /// None yet: an unproved connection's grace ends then (or a slot frees before).
    After(Instant),
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
            inner: Mutex::new(Registry {
                open: true,
                next_id: 0,
                slots: BTreeMap::new(),
                proof_time: Duration::ZERO,
            }),
            changed: Condvar::new(),
            max,
            unproved_max: unproved_max.max(1),
        })
    }

    /// Registers `socket` with `standing`, making room by the rule above if needed, waiting
    /// for an unproved connection's grace to end if that is what it takes. Returns the
    /// registration and the standing of the connection evicted for it, if any (a waiting
    /// one's held query must then be woken: `Lottery::wake_released`).
    ///
    /// # Errors
    /// A [`Refusal`] saying why not (`Closed` also when the stop comes while it waits).
    pub fn register(
        self: &Arc<Self>,
        socket: &TcpStream,
        standing: Standing,
    ) -> Result<(Registration, Option<Standing>), Refusal> {
        let mut registry = self.lock();
        let victim = loop {
            if !registry.open {
                return Err(Refusal::Closed);
            }
            match self.victim(&registry, standing)? {
                Room::Free => break None,
                Room::Evict(id) => break Some(id),
                Room::After(until) => {
                    let left = until.saturating_duration_since(Instant::now());
                    registry =
                        self.changed.wait_timeout(registry, left).unwrap_or_else(PoisonError::into_inner).0;
                }
            }
        };
        let clone = socket.try_clone().map_err(Refusal::Io)?;
        let evicted = victim.and_then(|id| registry.slots.get(&id)).map(evict);
        let id = registry.next_id;
        registry.next_id += 1;
        let release = Arc::new(HoldRelease::default());
        let slot = Slot { socket: clone, standing, since: Instant::now(), evicted: Arc::clone(&release) };
        registry.slots.insert(id, slot);
        Ok((Registration { id, evicted: release, connections: Arc::clone(self) }, evicted))
    }

    /// Where a newcomer of `standing` finds its slot, by the rule above; `Err(Full)` when
    /// every slot is working.
    fn victim(&self, registry: &Registry, standing: Standing) -> Result<Room, Refusal> {
        let live = || registry.slots.iter().filter(|(_, slot)| !slot.evicted.is_released());
        let oldest = |wanted: Standing| live().find(|(_, slot)| slot.standing == wanted);
        // An unproved connection gives its slot up only once its grace is over.
        let unproved_room = |(id, slot): (&u64, &Slot)| {
            let until = slot.since + registry.grace();
            if Instant::now() >= until {
                Room::Evict(*id)
            } else {
                Room::After(until)
            }
        };
        let unproved = live().filter(|(_, slot)| slot.standing == Standing::Unproved).count();
        if standing == Standing::Unproved && unproved >= self.unproved_max {
            // Not empty: `unproved_max` is at least 1.
            return Ok(oldest(Standing::Unproved).map_or(Room::Free, unproved_room));
        }
        if live().count() < self.max {
            return Ok(Room::Free);
        }
        if let Some((id, _)) = oldest(Standing::Waiting) {
            return Ok(Room::Evict(*id));
        }
        oldest(Standing::Unproved).map(unproved_room).ok_or(Refusal::Full(self.max))
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
    /// Records the connection's new standing (nothing once it was evicted). A proof moves
    /// the grace, and frees an unproved slot a newcomer may be waiting for.
    pub fn set(&self, standing: Standing) {
        let mut registry = self.connections.lock();
        let Some(slot) = registry.slots.get_mut(&self.id) else { return };
        let proved = slot.standing == Standing::Unproved && standing != Standing::Unproved;
        slot.standing = standing;
        if proved {
            let took = slot.since.elapsed();
            let recent = registry.proof_time;
            registry.proof_time = if took > recent {
                recent + (took - recent) / PROOF_TIME_WEIGHT
            } else {
                recent - (recent - took) / PROOF_TIME_WEIGHT
            };
            self.connections.changed.notify_all();
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

    /// How long a registration took, and what came of it.
    type Registered = (Duration, Result<(Registration, Option<Standing>), Refusal>);

    /// Registers `socket` as unproved on a thread of its own, as the accept loop would while
    /// the test goes on.
    fn register_meanwhile(
        connections: &Arc<Connections>,
        socket: &TcpStream,
    ) -> std::thread::JoinHandle<Registered> {
        let connections = Arc::clone(connections);
        let socket = socket.try_clone().unwrap();
        std::thread::spawn(move || {
            let start = Instant::now();
            let registered = connections.register(&socket, Standing::Unproved);
            (start.elapsed(), registered)
        })
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
    fn a_newcomer_waits_for_an_unproved_connections_grace_and_takes_a_proved_ones_place_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(8, 1);
        let pairs: Vec<_> = (0..3).map(|_| pair(&listener)).collect();
        let (young, _) = connections.register(&pairs[0].1, Standing::Unproved).unwrap();
        // The share is full of a connection within its grace: the newcomer waits it out.
        let start = Instant::now();
        let (second, evicted) = connections.register(&pairs[1].1, Standing::Unproved).unwrap();
        let waited = start.elapsed();
        assert_eq!(evicted, Some(Standing::Unproved));
        assert!(young.is_evicted());
        assert!(waited >= GRACE_MIN - Duration::from_millis(5), "evicted after {waited:?}");
        assert!(waited < GRACE_MIN + Duration::from_millis(250), "waited {waited:?}");
        // A proof frees the share: the newcomer waiting for it goes in then, evicting nobody.
        let waiter = register_meanwhile(&connections, &pairs[2].1);
        std::thread::sleep(Duration::from_millis(20));
        second.set(Standing::Working);
        let (waited, registered) = waiter.join().unwrap();
        let (_third, evicted) = registered.unwrap();
        assert_eq!(evicted, None);
        assert!(!second.is_evicted());
        assert!(waited < GRACE_MIN, "waited {waited:?} for a slot a proof freed");
    }

    #[test]
    fn the_stop_ends_a_newcomers_wait_for_a_slot() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(8, 1);
        let pairs: Vec<_> = (0..2).map(|_| pair(&listener)).collect();
        let (_young, _) = connections.register(&pairs[0].1, Standing::Unproved).unwrap();
        let waiter = register_meanwhile(&connections, &pairs[1].1);
        std::thread::sleep(Duration::from_millis(20));
        connections.close_all(Duration::from_millis(100));
        let (waited, registered) = waiter.join().unwrap();
        assert!(matches!(registered, Err(Refusal::Closed)));
        assert!(waited < GRACE_MIN, "the stop ended the wait after {waited:?}");
    }

    #[test]
    fn the_grace_follows_recent_proofs_within_its_bounds() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(64, 64);
        assert_eq!(connections.lock().grace(), GRACE_MIN);
        // Proofs that take 100 ms: four times that, once the average has followed them.
        let pairs: Vec<_> = (0..40).map(|_| pair(&listener)).collect();
        let registrations: Vec<_> =
            pairs.iter().map(|(_, s)| connections.register(s, Standing::Unproved).unwrap().0).collect();
        std::thread::sleep(Duration::from_millis(100));
        for registration in &registrations {
            registration.set(Standing::Working);
        }
        let grace = connections.lock().grace();
        assert!(grace > Duration::from_millis(350) && grace <= GRACE_MAX, "grace {grace:?}");
        // A standing change that is not a proof leaves it alone.
        registrations[0].set(Standing::Waiting);
        assert_eq!(connections.lock().grace(), grace);
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
