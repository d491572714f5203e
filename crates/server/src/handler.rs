//! One connection, from accept to close: read a request, answer it, repeat.
//!
//! Whatever the peer sends, the outcome stays inside this connection: malformed bytes are
//! answered with an error frame and logged once with the peer's address, a broken stream
//! closes this connection only, and nothing here can stop the accept loop.
//!
//! Batch answers are sent only once their batches are on disk. When a peer has sent several
//! batches without waiting (they are already buffered), their answers are held and released
//! together after one sync (group commit within the connection; the store also groups syncs
//! across connections).

use std::{
    mem::MaybeUninit,
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use socket2::SockRef;

use log::Level;
use protocol::{Budget, Connection, Error, ErrorKind, Guards, Request, Response};
use runtime::throttled;

use crate::{
    peers::WARNINGS,
    service::{Central, Reply, MAX_BATCH_BETS},
    shutdown::ShutdownHandle,
};

/// Most batch answers held for one shared sync; past it they are released even if more
/// requests are buffered, so answers keep flowing to a peer that never stops sending.
const MAX_STAGED: usize = 16;

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
}

/// Serves `stream` until the peer closes it, it breaks, it idles out, or shutdown shuts its
/// read half (the request in hand, if any, is answered first).
pub fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    central: &Central,
    limits: Limits,
    shutdown: &ShutdownHandle,
) {
    let mut conn = match configure(stream, &limits) {
        Ok(conn) => conn,
        Err(e) => {
            throttled!(
                WARNINGS,
                "configure_socket",
                Level::Warn,
                "action: configure_socket | result: fail | peer: {peer} | error: {e}"
            );
            return;
        }
    };
    let mut staged = Staged::default();
    let mut requests = 0u64;
    let mut echoes = 0u64;
    let outcome = loop {
        // Batch answers wait while more requests are already buffered (a pipelining agency),
        // so one sync covers them all; before the read could block, they go out.
        if !staged.responses.is_empty()
            && (staged.responses.len() >= MAX_STAGED
                || staged.slow
                || !(conn.has_buffered_frame() || bytes_waiting(conn.get_ref())))
        {
            if let Err(close) = staged.release(&mut conn, central, peer) {
                break close;
            }
        }
        let request = match conn.read_request(MAX_BATCH_BETS) {
            Ok(Some(request)) => request,
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
                let refusal = Response::Error { kind, message: e.to_string() };
                if let Err(close) = staged.release(&mut conn, central, peer) {
                    break close;
                }
                if conn.write_message(&refusal).is_err() {
                    break Close::WriteFailed;
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
                let _ = staged.release(&mut conn, central, peer);
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
        requests += 1;
        echoes += u64::from(matches!(request, Request::Echo(_)));
        match central.handle(request, peer) {
            Reply::AfterSync { response, durable_at, may_wait } => {
                staged.slow |= !may_wait;
                staged.responses.push(response);
                staged.durable_at = staged.durable_at.max(durable_at);
            }
            Reply::Now(response) => {
                // Answers go out in the order of their requests.
                if let Err(close) = staged.release(&mut conn, central, peer) {
                    break close;
                }
                if let Err(e) = conn.write_message(&response) {
                    throttled!(
                        WARNINGS,
                        "write_response",
                        Level::Warn,
                        "action: write_response | result: fail | peer: {peer} | error: {e}"
                    );
                    break Close::WriteFailed;
                }
            }
        }
    };
    // Answers owed when the stream ended (a shutdown, a peer gone after sending): the batches
    // are synced and answered if the write half still works.
    let _ = staged.release(&mut conn, central, peer);
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

/// Batch answers held for one shared sync.
#[derive(Debug, Default)]
struct Staged {
    responses: Vec<Response>,
    /// The journal offset the sync must reach: the furthest of the held batches.
    durable_at: u64,
    /// Whether a held batch was slow to check (the simulated delay): then the next one is
    /// too, and the answers go out now.
    slow: bool,
}

impl Staged {
    /// Syncs once for every held answer, then writes them in order, in one write.
    fn release(
        &mut self,
        conn: &mut Connection<TcpStream>,
        central: &Central,
        peer: SocketAddr,
    ) -> Result<(), Close> {
        if self.responses.is_empty() {
            return Ok(());
        }
        central.release(self.durable_at, &mut self.responses, peer);
        let written = conn.write_messages(&self.responses);
        self.responses.clear();
        self.slow = false;
        written.map_err(|e| {
            throttled!(
                WARNINGS,
                "write_response",
                Level::Warn,
                "action: write_response | result: fail | peer: {peer} | error: {e}"
            );
            Close::WriteFailed
        })
    }
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
        }
    }
}

/// Whether the peer's next bytes already sit in the socket (beyond what the connection has
/// buffered): a pipelining agency's next batch, which should share the pending sync. One
/// non-blocking peek; an error reads as "nothing waiting", so the answers go out.
fn bytes_waiting(stream: &TcpStream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    let flags = libc::MSG_PEEK | libc::MSG_DONTWAIT;
    matches!(SockRef::from(stream).recv_with_flags(&mut probe, flags), Ok(n) if n > 0)
}

fn configure(stream: TcpStream, limits: &Limits) -> std::io::Result<Connection<TcpStream>> {
    // Answers are small and each one completes a round trip: send them now.
    stream.set_nodelay(true)?;
    let guards = Guards {
        idle: limits.idle_timeout,
        frame: limits.frame_timeout,
        budget: Some(limits.budget.clone()),
    };
    Connection::guarded(stream, limits.max_frame_len, guards)
}
