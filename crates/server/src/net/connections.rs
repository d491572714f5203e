//! The registry of live connections: enforces the connection cap and lets shutdown reach
//! every socket.
//!
//! Each accepted connection registers a clone of its socket and gets back a
//! [`Registration`] that unregisters it when dropped (when the connection's thread ends).
//! Closing the registry refuses new registrations and shuts the read half of every
//! registered socket: a thread blocked reading wakes with end-of-stream, while a thread in the
//! middle of a batch finishes it and can still write its answer, within a short write
//! timeout. What is still registered when the stop's patience ends is shut both ways
//! ([`Connections::force_close`]).

use std::{
    collections::HashMap,
    net::{Shutdown, TcpStream},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// Live connections, shared by the accept loop, the connection threads and shutdown.
#[derive(Debug)]
pub struct Connections {
    /// Guards the socket map and the open flag together, so a connection accepted while
    /// shutdown sweeps is either swept or refused, never missed. Held only for map updates and
    /// `shutdown` calls, which do not block.
    inner: Mutex<Registry>,
    /// Signalled when a connection unregisters, so shutdown can wait for the last one.
    changed: Condvar,
    max: usize,
}

#[derive(Debug)]
struct Registry {
    open: bool,
    next_id: u64,
    sockets: HashMap<u64, TcpStream>,
}

/// Why a connection was not registered.
#[derive(Debug)]
pub enum Refusal {
    /// The cap is reached.
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
    connections: Arc<Connections>,
}

impl Connections {
    /// An open registry admitting at most `max` connections at once.
    #[must_use]
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            inner: Mutex::new(Registry { open: true, next_id: 0, sockets: HashMap::new() }),
            changed: Condvar::new(),
            max,
        })
    }

    /// Registers `socket` if there is room and shutdown has not begun.
    ///
    /// # Errors
    /// A [`Refusal`] saying why not.
    pub fn register(self: &Arc<Self>, socket: &TcpStream) -> Result<Registration, Refusal> {
        let mut registry = self.lock();
        if !registry.open {
            return Err(Refusal::Closed);
        }
        if registry.sockets.len() >= self.max {
            return Err(Refusal::Full(self.max));
        }
        let clone = socket.try_clone().map_err(Refusal::Io)?;
        let id = registry.next_id;
        registry.next_id += 1;
        registry.sockets.insert(id, clone);
        Ok(Registration { id, connections: Arc::clone(self) })
    }

    /// Refuses further registrations, shuts the read half of every live socket and bounds
    /// each of its later writes by `write_timeout` (a write already blocked keeps its old
    /// timeout: [`Connections::force_close`] ends those). Returns how many were live.
    pub fn close_all(&self, write_timeout: Duration) -> usize {
        let mut registry = self.lock();
        registry.open = false;
        for socket in registry.sockets.values() {
            // Both fail only if the peer is already gone, which is what we want anyway.
            let _ = socket.set_write_timeout(Some(write_timeout));
            let _ = socket.shutdown(Shutdown::Read);
        }
        self.changed.notify_all();
        registry.sockets.len()
    }

    /// Shuts both halves of every socket still registered: a thread blocked writing to a peer
    /// that does not read fails at once. Returns how many there were.
    pub fn force_close(&self) -> usize {
        let registry = self.lock();
        for socket in registry.sockets.values() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        registry.sockets.len()
    }

    /// Waits until no connection is registered, or until `deadline`; returns how many still
    /// are.
    pub fn wait_empty(&self, deadline: Instant) -> usize {
        let mut registry = self.lock();
        while !registry.sockets.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            registry = self.changed.wait_timeout(registry, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        registry.sockets.len()
    }

    /// Connections registered now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().sockets.len()
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

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.lock().sockets.remove(&self.id);
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
        let connections = Connections::new(2);
        let (_c1, s1) = pair(&listener);
        let (_c2, s2) = pair(&listener);
        let (_c3, s3) = pair(&listener);
        let r1 = connections.register(&s1).unwrap();
        let _r2 = connections.register(&s2).unwrap();
        assert!(matches!(connections.register(&s3), Err(Refusal::Full(2))));
        drop(r1);
        assert_eq!(connections.len(), 1);
        assert!(connections.register(&s3).is_ok());
    }

    #[test]
    fn closing_wakes_blocked_readers_and_refuses_newcomers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let connections = Connections::new(8);
        let (_client, server) = pair(&listener);
        let registration = connections.register(&server).unwrap();
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
        assert!(matches!(connections.register(&s), Err(Refusal::Closed)));
        assert!(connections.is_empty());
    }
}
