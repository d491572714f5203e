//! One connection, from accept to close: read a request, answer it, repeat.
//!
//! Whatever the peer sends, the outcome stays inside this connection: malformed bytes are
//! answered with an error frame and logged (at most once a second per kind of trouble, with
//! the peer's address), a broken or too slow stream closes this connection only, and nothing
//! here can stop the accept loop.
//!
//! The loop reads as "read, handle, flush": batch answers wait for the disk in
//! [`HeldAnswers`], and so may an answer whose next request is already here, to share its
//! write; `held_answers.rs` states when they go out.
//!
//! The handler also tells the registry the connection's [`Standing`] at the moments it
//! changes (`connections.rs` states who may hold a slot), and ends the connection once it was
//! evicted. Before the proof, with keys configured, the connection has [`PROOF_FRAME_LEN`] as
//! its largest frame and its proof deadline as its idle and frame limit: `Echo` keep-alives do
//! not extend it.

use std::{
    net::{SocketAddr, TcpStream},
    time::{Duration, Instant},
};

use log::Level;
use protocol::{Budget, Connection, Error, ErrorKind, Guards, LateBytes, Request, Response};
use runtime::throttled;
use security::{tls::ServerTls, Binding, Deadlines, Stream};

use super::{
    connections::{Registration, Standing},
    held_answers::HeldAnswers,
    peers::WARNINGS,
    shutdown::ShutdownHandle,
};
use crate::lottery::{Lottery, Reply, Session, MAX_BATCH_BETS};

/// What a served connection allows its peer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest wait for the first byte of the next request before closing.
    pub idle_timeout: Duration,
    /// Longest time from a request's first byte to its last, and for a whole answer to leave.
    pub frame_timeout: Duration,
    /// Largest frame payload accepted.
    pub max_frame_len: usize,
    /// Shared by every connection: what all requests and answers in flight may hold.
    pub budget: Budget,
    /// TLS, when the central has a certificate: every connection starts with a handshake.
    pub tls: Option<std::sync::Arc<ServerTls>>,
    /// With keys configured, how long after accept a connection has to prove an agency.
    pub proof_timeout: Duration,
}

/// Largest frame before the proof: an `Echo` of the netcat check, a `Hello`, a `Prove` (a
/// 64-byte signature) fit many times over, and announcing a bigger one reserves nothing of
/// the memory budget: the connection is closed with `FrameTooLarge`.
pub const PROOF_FRAME_LEN: usize = 4 * 1024;

/// The proof deadline of an unproved connection, and the limits it had before.
struct ProofClock {
    deadline: Instant,
    max_frame_len: usize,
    idle: Duration,
    frame: Duration,
}

impl ProofClock {
    /// Narrows `conn`'s limits to what is left of the deadline (at least a millisecond: a
    /// zero socket timeout means none). `false` once the deadline has passed.
    fn narrow(&self, conn: &mut Connection<Stream>) -> bool {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let left = left.max(Duration::from_millis(1));
        conn.set_limits(PROOF_FRAME_LEN, self.idle.min(left), self.frame.min(left));
        true
    }

    /// Gives `conn` back its full limits: it proved an agency.
    fn widen(&self, conn: &mut Connection<Stream>) {
        conn.set_limits(self.max_frame_len, self.idle, self.frame);
    }

    fn passed(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// The standing a request puts its connection in, once the connection is proved (or open):
/// the total queries only wait, and so does a connection whose agency just said it is done;
/// uploads and resumes work. `Echo`, `Hello` and `Prove` change nothing.
fn standing_after(request: &Request) -> Option<Standing> {
    match request {
        Request::AgencyDone { .. } | Request::WinnersQuery { .. } | Request::AwaitWinners { .. } => {
            Some(Standing::Waiting)
        }
        Request::BetBatch { .. } | Request::Resume { .. } => Some(Standing::Working),
        Request::Echo(_) | Request::Hello { .. } | Request::Prove { .. } => None,
    }
}

/// Serves `stream` until the peer closes it, it breaks, it idles out or is too slow, or
/// shutdown begins (the request in hand, if any, is answered first; no request after it is
/// handled).
pub fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    lottery: &Lottery,
    limits: Limits,
    shutdown: &ShutdownHandle,
    registration: &Registration,
) {
    let accepted = Instant::now();
    let Some((conn, binding)) = open(stream, peer, &limits) else { return };
    let proof = lottery.proofs_required().then(|| ProofClock {
        deadline: accepted + limits.proof_timeout,
        max_frame_len: limits.max_frame_len,
        idle: limits.idle_timeout,
        frame: limits.frame_timeout,
    });
    let mut served = Served {
        conn,
        peer,
        lottery,
        shutdown,
        registration,
        session: Session::new(binding, registration.hold_release()),
        proof,
        held: HeldAnswers::default(),
        idle_timeout: limits.idle_timeout,
        requests: 0,
        echoes: 0,
    };
    let outcome = served.run();
    served.close(outcome);
}

/// The connection's stream and its channel binding (empty on plain TCP), or `None` (logged,
/// throttled) when the socket or the TLS session cannot be set up.
fn open(stream: TcpStream, peer: SocketAddr, limits: &Limits) -> Option<(Connection<Stream>, Binding)> {
    let conn = match configure(stream, limits) {
        Ok(conn) => conn,
        Err(e) => {
            throttled!(
                WARNINGS,
                "configure_socket",
                Level::Warn,
                "action: accept_connection | result: fail | peer: {peer} | error: {e}"
            );
            return None;
        }
    };
    match conn.get_ref().binding() {
        Ok(binding) => Some((conn, binding)),
        Err(e) => {
            throttled!(
                WARNINGS,
                "tls",
                Level::Warn,
                "action: tls_binding | result: fail | peer: {peer} | error: {e}"
            );
            None
        }
    }
}

/// One served connection: its stream, what it proved, the answers it still owes.
struct Served<'a> {
    conn: Connection<Stream>,
    peer: SocketAddr,
    lottery: &'a Lottery,
    shutdown: &'a ShutdownHandle,
    registration: &'a Registration,
    session: Session,
    /// Until the connection proves an agency (keys configured only).
    proof: Option<ProofClock>,
    held: HeldAnswers,
    /// For the idle line: the limit the connection had.
    idle_timeout: Duration,
    requests: u64,
    echoes: u64,
}

impl Served<'_> {
    /// Reads and answers requests until the connection has to end; says why.
    fn run(&mut self) -> Close {
        loop {
            let request = match self.next_request() {
                Ok(Some(request)) => request,
                // A refusal was answered and the stream is still in step.
                Ok(None) => continue,
                Err(close) => return close,
            };
            if let Err(close) = self.answer(request) {
                return close;
            }
        }
    }

    /// Releases what is owed, then reads the next request: `Ok(None)` when what arrived was
    /// refused (and answered), `Err` with the reason when the connection must end.
    fn next_request(&mut self) -> Result<Option<Request>, Close> {
        // Held answers go out before the read could block.
        self.held
            .release_before_blocking(&mut self.conn, self.lottery, self.peer)
            .map_err(|e| write_failed(&e, self.peer))?;
        if self.held.conflicted() {
            // As after a `Conflict` sent at once (`send`): nothing more is taken.
            return Err(Close::Conflict);
        }
        if self.registration.is_evicted() {
            return Err(Close::Evicted);
        }
        if self.proof.as_ref().is_some_and(|proof| !proof.narrow(&mut self.conn)) {
            return Err(Close::ProofTimeout);
        }
        match self.conn.read_request(MAX_BATCH_BETS) {
            // The stop takes no new request, even one already buffered: it was not answered,
            // so the agency sends it again after reconnecting.
            Ok(Some(_)) if self.shutdown.is_triggered() => Err(Close::Shutdown),
            Ok(Some(request)) => Ok(Some(request)),
            Ok(None) if self.registration.is_evicted() => Err(Close::Evicted),
            // Shutdown closes the read half, which reads as end-of-stream too.
            Ok(None) if self.shutdown.is_triggered() => Err(Close::Shutdown),
            Ok(None) => Err(Close::ByPeer),
            Err(e) => self.read_failed(e),
        }
    }

    /// Maps a failed read to the reason to close, or answers a refusal when the stream is
    /// still in step (`Ok(None)`).
    fn read_failed(&mut self, e: Error) -> Result<Option<Request>, Close> {
        let peer = self.peer;
        if e.is_timeout() && self.proof.as_ref().is_some_and(ProofClock::passed) {
            return Err(Close::ProofTimeout);
        }
        match e {
            Error::TooSlow { .. } => {
                throttled!(
                    WARNINGS,
                    "too_slow",
                    Level::Warn,
                    "action: read_request | result: fail | peer: {peer} | error: {e}"
                );
                Err(Close::TooSlow)
            }
            e if e.is_timeout() => {
                throttled!(
                    WARNINGS,
                    "idle_timeout",
                    Level::Info,
                    "action: idle_timeout | result: success | peer: {peer} | after_secs: {}",
                    self.idle_timeout.as_secs()
                );
                Err(Close::IdleTimeout)
            }
            // Once the stop begins nothing more is handled, refusals included (a stop also
            // closes the budget, which turns every frame still buffered into `OverBudget`).
            Error::Malformed(_) | Error::TooManyBets { .. } | Error::OverBudget { .. }
                if self.shutdown.is_triggered() =>
            {
                Err(Close::Shutdown)
            }
            Error::Malformed(_) | Error::TooManyBets { .. } | Error::OverBudget { .. } => {
                self.refuse(&e).map(|()| None)
            }
            Error::FrameTooLarge { .. } => {
                self.refuse_frame_too_large(&e);
                Err(Close::FrameTooLarge)
            }
            e => {
                throttled!(
                    WARNINGS,
                    "read_failed",
                    Level::Warn,
                    "action: read_request | result: fail | peer: {peer} | error: {e}"
                );
                Err(Close::ReadFailed)
            }
        }
    }

    /// Answers a whole frame that cannot be handled (malformed, too many bets, over the
    /// budget): the frame was whole (or skipped whole), so the stream is still in step.
    fn refuse(&mut self, e: &Error) -> Result<(), Close> {
        let peer = self.peer;
        let kind = match e {
            Error::TooManyBets { .. } => ErrorKind::BatchTooLarge,
            Error::OverBudget { .. } => ErrorKind::Overloaded,
            _ => ErrorKind::Malformed,
        };
        throttled!(
            WARNINGS,
            "read_request",
            Level::Warn,
            "action: read_request | result: fail | peer: {peer} | kind: {kind} | error: {e}"
        );
        self.lottery.count_refusal(kind);
        let refusal = Response::Error { kind, message: e.to_string() };
        self.held
            .release_with(&mut self.conn, self.lottery, peer, Some(&refusal))
            .map_err(|e| write_failed(&e, peer))
    }

    /// The framing is lost: answers once, best effort, before the connection closes.
    fn refuse_frame_too_large(&mut self, e: &Error) {
        let peer = self.peer;
        throttled!(
            WARNINGS,
            "frame_too_large",
            Level::Warn,
            "action: read_request | result: fail | peer: {peer} | error: {e}"
        );
        let _ = self.held.release(&mut self.conn, self.lottery, peer);
        self.lottery.count_refusal(ErrorKind::FrameTooLarge);
        let _ = self
            .conn
            .write_message(&Response::Error { kind: ErrorKind::FrameTooLarge, message: e.to_string() });
    }

    /// Handles one request and sends or holds its answer, updating the connection's standing
    /// and its proof; `Err` with the reason when the connection must end.
    fn answer(&mut self, request: Request) -> Result<(), Close> {
        let peer = self.peer;
        self.requests += 1;
        self.echoes += u64::from(matches!(request, Request::Echo(_)));
        // A slow batch's held answers go out now, within the next request's time: a batch's
        // check is paid from the instant it was taken, so this write overlaps it.
        let taken = Instant::now();
        self.held.release_if_slow(&mut self.conn, self.lottery, peer).map_err(|e| write_failed(&e, peer))?;
        if self.held.conflicted() {
            return Err(Close::Conflict);
        }
        if matches!(request, Request::AwaitWinners { .. }) {
            // It may be held for seconds: nothing owed waits behind it.
            self.held.release(&mut self.conn, self.lottery, peer).map_err(|e| write_failed(&e, peer))?;
        }
        let standing = standing_after(&request).filter(|_| self.proof.is_none());
        if standing == Some(Standing::Waiting) {
            // Before the query is held: a held query is what a newcomer may evict.
            self.registration.set(Standing::Waiting);
            // It may wait for minutes, thousands of agencies at once: it keeps no
            // upload-sized buffer meanwhile.
            self.conn.release_buffers();
            self.conn.get_mut().release_buffers();
        }
        let reply = self.lottery.handle(request, peer, &mut self.session, taken);
        if standing == Some(Standing::Working) {
            self.registration.set(Standing::Working);
        }
        if let (Some(clock), Some(_)) = (&self.proof, self.session.agency()) {
            clock.widen(&mut self.conn);
            self.proof = None;
            self.registration.set(Standing::Working);
        }
        match reply {
            Reply::WhenDurable { response, ticket, check, counted } => {
                self.held.hold(response, ticket, check, counted);
                Ok(())
            }
            Reply::Abandoned => Err(Close::Shutdown),
            // Held if the next request is already here, to go out with its answer.
            Reply::Now(response) => match self.held.hold_early(response, &self.conn) {
                Some(response) => self.send(&response),
                None => Ok(()),
            },
        }
    }

    /// Sends an answer now, after the ones held before it, in the same write (answers go out
    /// in the order of their requests).
    fn send(&mut self, response: &Response) -> Result<(), Close> {
        let peer = self.peer;
        self.held
            .release_with(&mut self.conn, self.lottery, peer, Some(response))
            .map_err(|e| write_failed(&e, peer))?;
        if matches!(response, Response::Error { kind: ErrorKind::Conflict, .. }) {
            // Another upload holds this agency's sequence: whatever this peer sent after the
            // refused batch belongs to that other upload's sequence, so none of it is taken.
            // Never merged, even by pipelining.
            return Err(Close::Conflict);
        }
        Ok(())
    }

    /// Ends the connection: answers owed when the stream ended (a shutdown, a peer gone after
    /// sending) are synced and sent if the write half still works; then the close line.
    fn close(mut self, outcome: Close) {
        let (peer, requests) = (self.peer, self.requests);
        let _ = self.held.release(&mut self.conn, self.lottery, peer);
        self.conn.get_mut().close();
        let reason = outcome.as_str();
        if requests == self.echoes && outcome == Close::ByPeer {
            // A bare connect-and-close (`nc -z`) or an echo probe (the container's health
            // check, every few seconds): routine, so only at debug level.
            log::debug!("action: close_connection | result: success | peer: {peer} | requests: {requests}");
        } else if let Some(kind) = outcome.provoked() {
            // Hundreds of peers can provoke these every second: one line per kind a second.
            throttled!(
                WARNINGS,
                kind,
                Level::Info,
                "action: close_connection | result: success | peer: {peer} | requests: {requests} | reason: {reason}"
            );
        } else {
            log::info!(
                "action: close_connection | result: success | peer: {peer} | requests: {requests} | reason: {reason}"
            );
        }
    }
}

/// Logs a failed write of answers (throttled); the connection closes.
fn write_failed(e: &Error, peer: SocketAddr) -> Close {
    throttled!(
        WARNINGS,
        "write_response",
        Level::Warn,
        "action: write_response | result: fail | peer: {peer} | error: {e}"
    );
    Close::WriteFailed
}

/// Why a connection ended, as its close line says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Close {
    ByPeer,
    Shutdown,
    IdleTimeout,
    TooSlow,
    FrameTooLarge,
    ReadFailed,
    WriteFailed,
    Conflict,
    Evicted,
    ProofTimeout,
}

impl Close {
    /// The throttle's kind for a close that a peer can provoke at will, many times a second
    /// (by reconnecting): it is logged at most once a second per kind. `None` for the closes
    /// of an agency's normal course (it closed, the stop, a conflict), logged each time.
    fn provoked(self) -> Option<&'static str> {
        match self {
            Close::ByPeer | Close::Shutdown | Close::Conflict => None,
            Close::IdleTimeout => Some("close_idle"),
            Close::TooSlow => Some("close_too_slow"),
            Close::FrameTooLarge => Some("close_frame_too_large"),
            Close::ReadFailed => Some("close_read_failed"),
            Close::WriteFailed => Some("close_write_failed"),
            Close::Evicted => Some("close_evicted"),
            Close::ProofTimeout => Some("close_no_proof"),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Close::ByPeer => "closed by peer",
            Close::Shutdown => "shutdown",
            Close::IdleTimeout => "idle timeout",
            Close::TooSlow => "too slow",
            Close::FrameTooLarge => "frame too large",
            Close::ReadFailed => "read failed",
            Close::WriteFailed => "write failed",
            Close::Conflict => "conflict",
            Close::Evicted => "evicted to make room",
            Close::ProofTimeout => "no proof in time",
        }
    }
}

/// The connection's stream, plain or TLS, guarded by the deadlines and the budget. A TLS
/// handshake is awaited for the idle timeout, then must end within the frame deadline of its
/// first byte; after it, each TLS record must arrive whole within the frame deadline of its
/// first byte, as a plaintext frame must (`security::wire`).
fn configure(stream: TcpStream, limits: &Limits) -> std::io::Result<Connection<Stream>> {
    // Answers are small and each one completes a round trip: send them now.
    stream.set_nodelay(true)?;
    let stream = match &limits.tls {
        Some(tls) => {
            let deadlines = Deadlines { idle: limits.idle_timeout, frame: limits.frame_timeout };
            Stream::accept_tls(stream, std::sync::Arc::clone(tls), deadlines).map_err(|e| {
                // A handshake that trickled is refused as a trickling frame is.
                let reason = if LateBytes::is(&e) {
                    Error::TooSlow { limit: limits.frame_timeout }.to_string()
                } else {
                    e.to_string()
                };
                std::io::Error::new(e.kind(), format!("TLS handshake: {reason}"))
            })?
        }
        None => Stream::Plain(stream),
    };
    let guards = Guards {
        idle: limits.idle_timeout,
        frame: limits.frame_timeout,
        budget: Some(limits.budget.clone()),
    };
    Connection::guarded(stream, limits.max_frame_len, guards)
}
