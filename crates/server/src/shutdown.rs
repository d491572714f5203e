//! Shutdown: the one switch that stops the central.
//!
//! Triggering it (from the signal thread, or from a test) sets a flag, shuts the read half of
//! every live connection and wakes the accept loop by connecting to the central's own
//! address, so nothing ever polls a flag on a timer.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use crate::connections::Connections;

/// A cloneable handle that stops a running central.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requested: AtomicBool,
    /// Where a connection reaches the listener, to wake a blocked `accept`.
    wake_addr: SocketAddr,
    connections: Arc<Connections>,
}

impl ShutdownHandle {
    pub(crate) fn new(listen_addr: SocketAddr, connections: Arc<Connections>) -> ShutdownHandle {
        let wake_ip = match listen_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        ShutdownHandle {
            inner: Arc::new(Inner {
                requested: AtomicBool::new(false),
                wake_addr: SocketAddr::new(wake_ip, listen_addr.port()),
                connections,
            }),
        }
    }

    /// Stops the central: no new connections, idle connections closed, busy ones finish the
    /// request in hand. Returns at once; [`crate::Server::run`] returns when all is closed.
    /// Calling it again does nothing.
    pub fn trigger(&self) {
        if self.inner.requested.swap(true, Ordering::SeqCst) {
            return;
        }
        let live = self.inner.connections.close_all();
        log::info!("action: shutdown | result: in_progress | open_connections: {live}");
        // The accept loop checks the flag after every accept; this connection is only there
        // to make that accept return.
        if let Err(e) = TcpStream::connect_timeout(&self.inner.wake_addr, Duration::from_secs(1)) {
            log::error!(
                "action: wake_listener | result: fail | address: {} | error: {e}",
                self.inner.wake_addr
            );
        }
    }

    /// Whether shutdown has been triggered.
    #[must_use]
    pub fn is_triggered(&self) -> bool {
        self.inner.requested.load(Ordering::SeqCst)
    }
}
