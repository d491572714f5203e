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

use protocol::{Connection, Error, ErrorKind, Request, Response};

use crate::{
    service::{Central, Reply},
    shutdown::ShutdownHandle,
};

/// Most batch answers held for one shared sync; past it they are released even if more
/// requests are buffered, so answers keep flowing to a peer that never stops sending.
const MAX_STAGED: usize = 16;

/// Socket settings of a served connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for the next request, or for a stalled write, before closing.
    pub idle_timeout: Duration,
    /// Largest frame payload accepted.
    pub max_frame_len: usize,
}

/// Serves `stream` until the peer closes it, it breaks, it idles out, or shutdown begins (the
/// request in hand, if any, is answered first; no request after it is handled).
pub fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    central: &Central,
    limits: Limits,
    shutdown: &ShutdownHandle,
) {
    if let Err(e) = configure(&stream, limits) {
        log::warn!("action: configure_socket | result: fail | peer: {peer} | error: {e}");
        return;
    }
    let mut conn = Connection::with_max_frame_len(stream, limits.max_frame_len);
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
        let request = match conn.read_message::<Request>() {
            Ok(Some(request)) => request,
            // Shutdown closes the read half, which reads as end-of-stream too.
            Ok(None) if shutdown.is_triggered() => break Close::Shutdown,
            Ok(None) => break Close::ByPeer,
            Err(e) if e.is_timeout() => {
                log::info!(
                    "action: idle_timeout | result: success | peer: {peer} | after_secs: {}",
                    limits.idle_timeout.as_secs()
                );
                break Close::IdleTimeout;
            }
            Err(Error::Malformed(reason)) => {
                // The frame was whole, so the stream is still in step: answer and go on.
                log::warn!(
                    "action: read_request | result: fail | peer: {peer} | error: malformed message: {reason}"
                );
                let refusal = Response::Error {
                    kind: ErrorKind::Malformed,
                    message: format!("malformed message: {reason}"),
                };
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
                log::warn!("action: read_request | result: fail | peer: {peer} | error: {e}");
                let _ = staged.release(&mut conn, central, peer);
                let _ = conn.write_message(&Response::Error {
                    kind: ErrorKind::FrameTooLarge,
                    message: e.to_string(),
                });
                break Close::FrameTooLarge;
            }
            Err(e) => {
                log::warn!("action: read_request | result: fail | peer: {peer} | error: {e}");
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
        match central.handle(request, peer) {
            Reply::AfterSync { response, durable_at, may_wait } => {
                staged.slow |= !may_wait;
                staged.responses.push(response);
                staged.durable_at = staged.durable_at.max(durable_at);
            }
            Reply::Abandoned => break Close::Shutdown,
            Reply::Now(response) => {
                // Answers go out in the order of their requests.
                if let Err(close) = staged.release(&mut conn, central, peer) {
                    break close;
                }
                if let Err(e) = conn.write_message(&response) {
                    log::warn!("action: write_response | result: fail | peer: {peer} | error: {e}");
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
            log::warn!("action: write_response | result: fail | peer: {peer} | error: {e}");
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

fn configure(stream: &TcpStream, limits: Limits) -> std::io::Result<()> {
    stream.set_read_timeout(Some(limits.idle_timeout))?;
    stream.set_write_timeout(Some(limits.idle_timeout))?;
    // Answers are small and each one completes a round trip: send them now.
    stream.set_nodelay(true)
}
