//! One connection, from accept to close: read a request, answer it, repeat.
//!
//! Whatever the peer sends, the outcome stays inside this connection: malformed bytes are
//! answered with an error frame and logged (at most once a second per kind of trouble, with
//! the peer's address), a broken or too slow stream closes this connection only, and nothing
//! here can stop the accept loop.
//!
//! The loop reads as "read, handle, flush": batch answers wait for the disk in
//! [`HeldAnswers`], which says when they go out (`held_answers.rs` states the rule).
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
use security::{tls::ServerTls, Deadlines, Stream};

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
    let mut conn = match configure(stream, &limits) {
        Ok(conn) => conn,
        Err(e) => {
            throttled!(
                WARNINGS,
                "configure_socket",
                Level::Warn,
                "action: accept_connection | result: fail | peer: {peer} | error: {e}"
            );
            return;
        }
    };
    let binding = match conn.get_ref().binding() {
        Ok(binding) => binding,
        Err(e) => {
            throttled!(
                WARNINGS,
                "tls",
                Level::Warn,
                "action: tls_binding | result: fail | peer: {peer} | error: {e}"
            );
            return;
        }
    };
    let mut session = Session::new(binding, registration.hold_release());
    let mut proof = lottery.proofs_required().then(|| ProofClock {
        deadline: accepted + limits.proof_timeout,
        max_frame_len: limits.max_frame_len,
        idle: limits.idle_timeout,
        frame: limits.frame_timeout,
    });
    let mut held = HeldAnswers::default();
    let mut requests = 0u64;
    let mut echoes = 0u64;
    let outcome = loop {
        // Held answers go out before the read could block.
        if let Err(e) = held.release_before_blocking(&mut conn, lottery, peer) {
            break write_failed(&e, peer);
        }
        if registration.is_evicted() {
            break Close::Evicted;
        }
        if proof.as_ref().is_some_and(|proof| !proof.narrow(&mut conn)) {
            break Close::ProofTimeout;
        }
        let request = match conn.read_request(MAX_BATCH_BETS) {
            Ok(Some(request)) => request,
            Ok(None) if registration.is_evicted() => break Close::Evicted,
            Err(e) if proof.as_ref().is_some_and(|proof| e.is_timeout() && proof.passed()) => {
                break Close::ProofTimeout
            }
            // Shutdown closes the read half, which reads as end-of-stream too.
            Ok(None) if shutdown.is_triggered() => break Close::Shutdown,
            Ok(None) => break Close::ByPeer,
            Err(e @ Error::TooSlow { .. }) => {
                throttled!(
                    WARNINGS,
                    "too_slow",
                    Level::Warn,
                    "action: read_request | result: fail | peer: {peer} | error: {e}"
                );
                break Close::TooSlow;
            }
            Err(e) if e.is_timeout() => {
                log::info!(
                    "action: idle_timeout | result: success | peer: {peer} | after_secs: {}",
                    limits.idle_timeout.as_secs()
                );
                break Close::IdleTimeout;
            }
            // Once the stop begins nothing more is handled, refusals included (a stop also
            // closes the budget, which turns every frame still buffered into `OverBudget`).
            Err(Error::Malformed(_) | Error::TooManyBets { .. } | Error::OverBudget { .. })
                if shutdown.is_triggered() =>
            {
                break Close::Shutdown
            }
            Err(e @ (Error::Malformed(_) | Error::TooManyBets { .. } | Error::OverBudget { .. })) => {
                // The frame was whole (or skipped whole), so the stream is still in step:
                // answer and go on.
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
                lottery.count_refusal(kind);
                let refusal = Response::Error { kind, message: e.to_string() };
                if let Err(e) = held.release(&mut conn, lottery, peer) {
                    break write_failed(&e, peer);
                }
                if let Err(e) = conn.write_message(&refusal) {
                    break write_failed(&e, peer);
                }
                continue;
            }
            Err(e @ Error::FrameTooLarge { .. }) => {
                // The framing is lost: answer once, then close.
                throttled!(
                    WARNINGS,
                    "frame_too_large",
                    Level::Warn,
                    "action: read_request | result: fail | peer: {peer} | error: {e}"
                );
                let _ = held.release(&mut conn, lottery, peer);
                lottery.count_refusal(ErrorKind::FrameTooLarge);
                let _ = conn.write_message(&Response::Error {
                    kind: ErrorKind::FrameTooLarge,
                    message: e.to_string(),
                });
                break Close::FrameTooLarge;
            }
            Err(e) => {
                throttled!(
                    WARNINGS,
                    "read_failed",
                    Level::Warn,
                    "action: read_request | result: fail | peer: {peer} | error: {e}"
                );
                break Close::ReadFailed;
            }
        };
        if shutdown.is_triggered() {
            // The stop takes no new request, even one already buffered: it was not answered,
            // so the agency sends it again after reconnecting.
            break Close::Shutdown;
        }
        requests += 1;
        echoes += u64::from(matches!(request, Request::Echo(_)));
        // A slow batch's held answers go out now, within the next request's time: a batch's
        // check is paid from the instant it was taken, so this write overlaps it.
        let taken = Instant::now();
        if let Err(e) = held.release_if_slow(&mut conn, lottery, peer) {
            break write_failed(&e, peer);
        }
        let standing = standing_after(&request).filter(|_| proof.is_none());
        if standing == Some(Standing::Waiting) {
            // Before the query is held: a held query is what a newcomer may evict.
            registration.set(Standing::Waiting);
        }
        let reply = lottery.handle(request, peer, &mut session, taken);
        if standing == Some(Standing::Working) {
            registration.set(Standing::Working);
        }
        if let (Some(clock), Some(_)) = (&proof, session.agency()) {
            clock.widen(&mut conn);
            proof = None;
            registration.set(Standing::Working);
        }
        match reply {
            Reply::WhenDurable { response, ticket, check, counted } => {
                held.hold(response, ticket, check, counted);
            }
            Reply::Abandoned => break Close::Shutdown,
            Reply::Now(response) => {
                // Answers go out in the order of their requests.
                if let Err(e) = held.release(&mut conn, lottery, peer) {
                    break write_failed(&e, peer);
                }
                if let Err(e) = conn.write_message(&response) {
                    break write_failed(&e, peer);
                }
                if matches!(response, Response::Error { kind: ErrorKind::Conflict, .. }) {
                    // Another upload holds this agency's sequence: whatever this peer sent
                    // after the refused batch belongs to that other upload's sequence, so none
                    // of it is taken. Never merged, even by pipelining.
                    break Close::Conflict;
                }
            }
        }
    };
    // Answers owed when the stream ended (a shutdown, a peer gone after sending): the batches
    // are synced and answered if the write half still works.
    let _ = held.release(&mut conn, lottery, peer);
    conn.get_mut().close();
    if requests == echoes && outcome == Close::ByPeer {
        // A bare connect-and-close (`nc -z`) or an echo probe (the container's health check,
        // every few seconds): routine, so only at debug level.
        log::debug!("action: close_connection | result: success | peer: {peer} | requests: {requests}");
    } else {
        log::info!(
            "action: close_connection | result: success | peer: {peer} | requests: {requests} | reason: {}",
            outcome.as_str()
        );
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
