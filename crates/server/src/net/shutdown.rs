//! Shutdown: the one switch that stops the central, and the clock it stops by.
//!
//! Triggering it (from the signal thread, or from a test) sets a flag, notes the instant,
//! shuts the read half of every live connection, shortens every socket's write timeout, and
//! wakes the accept loop by connecting to the central's own address, so nothing ever polls a
//! flag on a timer.
//!
//! The stop is bounded whatever the peers do, within [`STOP_BUDGET`] of the signal:
//! - a connection takes no new request once the switch is on (the ones already buffered
//!   are dropped unanswered; the agency resends them after reconnecting, since only
//!   committed batches count);
//! - a batch whose simulated check is under way is finished, stored and answered only if its
//!   check ends within [`CHECK_GRACE`](crate::lottery::CHECK_GRACE) of the signal; otherwise it is abandoned, unstored (the
//!   lottery reads the switch's [`StopClock`]);
//! - a write (held answers, a last refusal) waits at most [`WRITE_GRACE`] for a peer that
//!   does not read;
//! - at [`FORCE_CLOSE_AFTER`] the accept loop shuts both halves of every socket still open,
//!   which ends any write still blocked, and joins every thread.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use super::connections::Connections;
use crate::lottery::StopClock;

/// From the signal to the process's exit, whatever the peers do.
pub const STOP_BUDGET: Duration = Duration::from_secs(1);

/// Longest wait of one write once the switch is on: a peer that does not read its answers
/// cannot hold the stop.
pub const WRITE_GRACE: Duration = Duration::from_millis(150);

/// When the accept loop stops waiting for connections to end on their own and shuts both
/// halves of every socket still open.
pub const FORCE_CLOSE_AFTER: Duration = Duration::from_millis(700);

/// A cloneable handle that stops a running central.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// When it was triggered: the stop's clock, which the lottery reads too.
    clock: StopClock,
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
                clock: StopClock::new(),
                wake_addr: SocketAddr::new(wake_ip, listen_addr.port()),
                connections,
            }),
        }
    }

    /// Stops the central: no new connections, idle connections closed, busy ones finish the
    /// request in hand. Returns at once; [`crate::Server::run`] returns when all is closed.
    /// Calling it again does nothing.
    pub fn trigger(&self) {
        if !self.inner.clock.start() {
            return;
        }
        let live = self.inner.connections.close_all(WRITE_GRACE);
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
        self.inner.clock.is_stopping()
    }

    /// The instant `after` past the trigger, once triggered: the deadlines of the stop.
    #[must_use]
    pub fn deadline(&self, after: Duration) -> Option<Instant> {
        self.inner.clock.deadline(after)
    }

    /// The stop's clock, for the lottery.
    #[must_use]
    pub fn clock(&self) -> StopClock {
        self.inner.clock.clone()
    }
}
