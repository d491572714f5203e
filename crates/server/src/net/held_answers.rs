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
//!   - any other answer is about to be written (answers go out in request order, the
//!     held ones in the same write), a request that may wait (`AwaitWinners`) is taken, or
//!     the connection is ending.
//!
//! An answer that needs no sync (the proof's `Ack`, a `Resumed`) is **held early** when no
//! batch answer is held and the peer's next request is already whole in the buffer: an
//! agency on TLS sends its proof and its first request in one write, and gets both answers in
//! one. Held early answers go out by the same rule, ahead of any batch answer held after them.
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
    /// Answers that need no sync, to requests older than any held batch.
    early: Vec<Response>,
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

    /// Holds `response`, which needs no sync, if the rule above lets it wait: no batch answer
    /// is held and the next request is already whole in `conn`'s buffer. Gives it back
    /// otherwise, to be written now; a refusal always (a `Conflict` ends the connection).
    pub fn hold_early(&mut self, response: Response, conn: &Connection<Stream>) -> Option<Response> {
        let refusal = matches!(response, Response::Error { .. });
        if !refusal && self.responses.is_empty() && self.early.len() < MAX_HELD && conn.has_buffered_frame() {
            self.early.push(response);
            None
        } else {
            Some(response)
        }
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
        let held = self.early.len() + self.responses.len();
        if held == 0 {
            return Ok(());
        }
        let more_here = conn.has_buffered_frame() || bytes_waiting(conn.get_ref());
        if held >= MAX_HELD || !more_here {
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

    /// Makes every held batch answer durable with one sync (or turns each into a `Storage`
    /// refusal if it fails), then writes the held answers in order, in one write.
    ///
    /// # Errors
    /// When writing them fails.
    pub fn release(
        &mut self,
        conn: &mut Connection<Stream>,
        lottery: &Lottery,
        peer: SocketAddr,
    ) -> Result<(), protocol::Error> {
        self.release_with(conn, lottery, peer, None)
    }

    /// As [`HeldAnswers::release`], with `then` (the answer to the request in hand) written
    /// after them in the same write.
    ///
    /// # Errors
    /// When writing them fails.
    pub fn release_with(
        &mut self,
        conn: &mut Connection<Stream>,
        lottery: &Lottery,
        peer: SocketAddr,
        then: Option<&Response>,
    ) -> Result<(), protocol::Error> {
        if self.early.is_empty() && self.responses.is_empty() {
            return match then {
                Some(response) => conn.write_message(response),
                None => Ok(()),
            };
        }
        if !self.responses.is_empty() {
            lottery.release(&self.tickets, &mut self.responses, &self.counted, peer);
            self.conflict |=
                self.responses.iter().any(|r| matches!(r, Response::Error { kind: ErrorKind::Conflict, .. }));
        }
        let written = conn.write_messages(self.early.iter().chain(&self.responses).chain(then));
        self.early.clear();
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

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        sync::Arc,
        time::{Duration, Instant},
    };

    use protocol::{Bet, Request, Response, WireBets};

    use super::*;
    use crate::{
        lottery::{HoldRelease, Reply, Session, StopClock},
        metrics::Metrics,
        store::memory::Memory,
    };

    /// The central's end of a connection (plain TCP), the peer's, and the peer's address.
    fn connection() -> (Connection<Stream>, Connection<TcpStream>, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let (socket, addr) = listener.accept().unwrap();
        (Connection::new(Stream::Plain(socket)), Connection::new(peer), addr)
    }

    fn lottery() -> Lottery {
        Lottery::new(Arc::new(Memory::new(1)), None, Duration::ZERO, StopClock::new(), Metrics::new(1))
    }

    /// Whether any answer has reached the peer yet.
    fn answered(peer: &Connection<TcpStream>) -> bool {
        peer.get_ref().set_nonblocking(true).unwrap();
        let here = peer.get_ref().peek(&mut [0; 1]).is_ok();
        peer.get_ref().set_nonblocking(false).unwrap();
        here
    }

    fn answers(peer: &mut Connection<TcpStream>, n: usize) -> Vec<Response> {
        (0..n).map(|_| peer.read_message().unwrap().unwrap()).collect()
    }

    fn echo(text: &str) -> Request {
        Request::Echo(text.as_bytes().to_vec())
    }

    fn echoed(text: &str) -> Response {
        Response::Echo(text.as_bytes().to_vec())
    }

    fn batch(sequence: u64) -> Request {
        let mut bets = WireBets::default();
        bets.push_bet(&Bet::new("Ana".into(), "Pérez".into(), "30000000".into(), "1990-01-31").unwrap());
        Request::BetBatch { agency: 1, sequence, bets }
    }

    #[test]
    fn an_answer_held_early_waits_for_the_next_and_leaves_with_it() {
        let (mut conn, mut peer, addr) = connection();
        let lottery = lottery();
        let mut held = HeldAnswers::default();
        // One write, as an agency sends its proof and its first request.
        peer.write_messages(&[echo("first"), echo("second")]).unwrap();
        assert_eq!(conn.read_request(1).unwrap(), Some(echo("first")));
        assert!(held.hold_early(echoed("first"), &conn).is_none(), "the next request is here");
        held.release_before_blocking(&mut conn, &lottery, addr).unwrap();
        assert!(!answered(&peer), "held while the next request is whole in the buffer");
        assert_eq!(conn.read_request(1).unwrap(), Some(echo("second")));
        let second = held.hold_early(echoed("second"), &conn).expect("nothing more is here: sent now");
        held.release_with(&mut conn, &lottery, addr, Some(&second)).unwrap();
        assert_eq!(answers(&mut peer, 2), [echoed("first"), echoed("second")]);
    }

    #[test]
    fn an_answer_held_early_goes_out_before_a_read_that_could_block() {
        let (mut conn, mut peer, addr) = connection();
        let lottery = lottery();
        let mut held = HeldAnswers::default();
        peer.write_messages(&[echo("a"), echo("b")]).unwrap();
        assert!(conn.read_request(1).unwrap().is_some());
        assert!(held.hold_early(echoed("a"), &conn).is_none());
        assert!(conn.read_request(1).unwrap().is_some());
        // Nothing more is buffered: the next read could wait on the peer, so "a" goes now.
        held.release_before_blocking(&mut conn, &lottery, addr).unwrap();
        assert_eq!(answers(&mut peer, 1), [echoed("a")]);
    }

    #[test]
    fn a_refusal_is_never_held_early() {
        let (mut conn, mut peer, _) = connection();
        let mut held = HeldAnswers::default();
        peer.write_messages(&[echo("a"), echo("b")]).unwrap();
        assert!(conn.read_request(1).unwrap().is_some());
        assert!(conn.has_buffered_frame(), "the next request is here");
        let refusal = Response::Error { kind: protocol::ErrorKind::Conflict, message: "taken".into() };
        assert_eq!(held.hold_early(refusal.clone(), &conn), Some(refusal), "written at once");
    }

    #[test]
    fn no_answer_is_held_early_behind_a_held_batch_answer() {
        let (mut conn, mut peer, addr) = connection();
        let lottery = lottery();
        let mut session = Session::new(security::Binding::default(), Arc::new(HoldRelease::default()));
        let mut held = HeldAnswers::default();
        peer.write_messages(&[batch(1), echo("x"), echo("y")]).unwrap();
        let request = conn.read_request(10).unwrap().unwrap();
        let Reply::WhenDurable { response, ticket, check, counted } =
            lottery.handle(request, addr, &mut session, Instant::now())
        else {
            panic!("a batch's answer waits for its sync")
        };
        held.hold(response.clone(), ticket, check, counted);
        assert!(conn.read_request(10).unwrap().is_some());
        assert!(conn.has_buffered_frame(), "the next request is here");
        // It goes out now, with the batch's, rather than wait for a later sync.
        let x = held.hold_early(echoed("x"), &conn).expect("not held behind a batch");
        held.release_with(&mut conn, &lottery, addr, Some(&x)).unwrap();
        assert_eq!(answers(&mut peer, 2), [response, echoed("x")]);
    }
}
