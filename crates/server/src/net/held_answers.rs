//! Held answers: group commit as a connection sees it.
//!
//! A batch is answered only once it is durable. Making it durable costs a sync (about a
//! millisecond), so a connection that has more requests already waiting holds its batch
//! answers and lets one sync cover them all. The rule, stated here once:
//!
//! - A batch's answer is **held** (with its commit [`Ticket`]) instead of written.
//! - Held answers are **released** (one [`Engine::make_durable`](crate::store::Engine) for
//!   their tickets, then all written in order, in one write) as soon as any of these holds:
//!   - the peer's next request is not already here, neither whole in the connection's buffer
//!     ([`Connection::has_buffered_frame`]), nor read ahead by TLS, nor in the socket (one
//!     non-blocking `MSG_PEEK`):
//!     the next read could block, and an answer must never wait on the peer;
//!   - [`MAX_HELD`] answers are held, so a peer that never stops sending still gets answers;
//!   - a held batch was slow to check ([`SLOW_BATCH`]) and the next request is taken: the
//!     next batch's check is paid from that instant, so its first wait covers the sync and
//!     the write ([`HeldAnswers::release_if_slow`], called by the handler just before it
//!     hands the request to the lottery), so a slow batch's answer costs the next batch nothing, where
//!     syncing before reading it put a sync between every two batches (about 1% of a 1 ms a
//!     bet lottery); it is never held longer, since the next one will be slow too;
//!   - any other answer is about to be written (answers go out in request order), or the
//!     connection is ending.
//!
//! Across connections the engine groups syncs too (the journal: one `fdatasync` covers every
//! batch appended before it started; the database: one transaction commits the batches every
//! connection staged meanwhile); that part lives in the engine, behind
//! [`Engine::make_durable`](crate::store::Engine). An engine that decides a batch only at its
//! commit may answer otherwise than staged (a replay, a refusal): the release writes what it
//! decided, and a `Conflict` among them ends the connection as one sent at once does.

use std::{mem::MaybeUninit, net::SocketAddr, time::Duration};

use socket2::SockRef;

use protocol::{Connection, ErrorKind, Response};
use security::Stream;

use crate::lottery::{Counted, Lottery, Ticket};

/// Most batch answers held for one shared sync (an agency's whole window); past it they are
/// released even if more requests are buffered, so answers keep flowing to a peer that never
/// stops sending.
pub const MAX_HELD: usize = protocol::MAX_WINDOW;

/// A batch whose simulated check takes this long is answered as the next one's check begins,
/// never later: a sync costs well under a millisecond, so holding an answer through another
/// 100 ms batch (1 ms a bet) would save nothing and keep the agency waiting.
pub const SLOW_BATCH: Duration = Duration::from_millis(2);

/// One connection's batch answers held for one shared sync.
#[derive(Debug, Default)]
pub struct HeldAnswers {
    responses: Vec<Response>,
    /// What each held answer counts once durable, in the same order.
    counted: Vec<Counted>,
    /// Each held batch's commit ticket, in the same order.
    tickets: Vec<Ticket>,
    /// Whether a released answer was a `Conflict` refusal: the connection must end.
    conflict: bool,
    /// Whether a held batch was slow to check: then the answers go out now.
    slow: bool,
}

impl HeldAnswers {
    /// Holds `response`, the answer to a batch staged under `ticket` whose check took `check`
    /// and that counts `counted` once durable.
    pub fn hold(&mut self, response: Response, ticket: Ticket, check: Duration, counted: Counted) {
        self.responses.push(response);
        self.counted.push(counted);
        self.tickets.push(ticket);
        self.slow |= check >= SLOW_BATCH;
    }

    /// Releases the held answers unless the rule above lets them wait: called before each
    /// read.
    ///
    /// # Errors
    /// When writing them fails.
    pub fn release_before_blocking(
        &mut self,
        conn: &mut Connection<Stream>,
        lottery: &Lottery,
        peer: SocketAddr,
    ) -> Result<(), protocol::Error> {
        if self.responses.is_empty() {
            return Ok(());
        }
        let more_here = conn.has_buffered_frame() || bytes_waiting(conn.get_ref());
        if self.responses.len() >= MAX_HELD || !more_here {
            self.release(conn, lottery, peer)?;
        }
        Ok(())
    }

    /// Releases the held answers if one of them is a slow batch's: called as the next request
    /// is taken, whose check (if it is a batch) is paid from that instant.
    ///
    /// # Errors
    /// When writing them fails.
    pub fn release_if_slow(
        &mut self,
        conn: &mut Connection<Stream>,
        lottery: &Lottery,
        peer: SocketAddr,
    ) -> Result<(), protocol::Error> {
        if self.slow {
            self.release(conn, lottery, peer)?;
        }
        Ok(())
    }

    /// Makes every held answer durable with one sync (or turns each into a `Storage`
    /// refusal if it fails), then writes them in order, in one write.
    ///
    /// # Errors
    /// When writing them fails.
    pub fn release(
        &mut self,
        conn: &mut Connection<Stream>,
        lottery: &Lottery,
        peer: SocketAddr,
    ) -> Result<(), protocol::Error> {
        if self.responses.is_empty() {
            return Ok(());
        }
        lottery.release(&self.tickets, &mut self.responses, &self.counted, peer);
        self.conflict |=
            self.responses.iter().any(|r| matches!(r, Response::Error { kind: ErrorKind::Conflict, .. }));
        let written = conn.write_messages(&self.responses);
        self.responses.clear();
        self.counted.clear();
        self.tickets.clear();
        self.slow = false;
        written
    }

    /// Whether a released answer refused a batch as a `Conflict`: another upload holds the
    /// agency's sequence, so nothing more this peer sends may be taken.
    pub fn conflicted(&self) -> bool {
        self.conflict
    }
}

/// Whether the peer's next bytes are already here (beyond what the connection has buffered):
/// read ahead by the TLS transport, or in the socket. A pipelining agency's next batch, which
/// should share the pending sync. At most one non-blocking peek; an error reads as "nothing
/// waiting", so the answers go out.
fn bytes_waiting(stream: &Stream) -> bool {
    if stream.read_ahead() > 0 {
        return true;
    }
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    matches!(SockRef::from(stream.socket()).recv_with_flags(&mut probe, flags), Ok(n) if n > 0)
}
