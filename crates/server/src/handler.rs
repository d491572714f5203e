//! One connection, from accept to close: read a request, answer it, repeat.
//!
//! Whatever the peer sends, the outcome stays inside this connection: malformed bytes are
//! answered with an error frame and logged once with the peer's address, a broken stream
//! closes this connection only, and nothing here can stop the accept loop.
//!
//! The loop reads as "read, handle, flush": batch answers wait for the disk in
//! [`HeldAnswers`], which says when they go out (`held_answers.rs` states the rule).

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use protocol::{Connection, Error, ErrorKind, Request, Response};

use crate::{
    held_answers::HeldAnswers,
    service::{Lottery, Reply},
    shutdown::ShutdownHandle,
};

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
    lottery: &Lottery,
    limits: Limits,
    shutdown: &ShutdownHandle,
) {
    if let Err(e) = configure(&stream, limits) {
        log::warn!("action: configure_socket | result: fail | peer: {peer} | error: {e}");
        return;
    }
    let mut conn = Connection::with_max_frame_len(stream, limits.max_frame_len);
    let mut held = HeldAnswers::default();
    let mut requests = 0u64;
    let mut echoes = 0u64;
    let outcome = loop {
        // Held answers go out before the read could block.
        if let Err(e) = held.release_before_blocking(&mut conn, lottery, peer) {
            break write_failed(&e, peer);
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
                if let Err(e) = held.release(&mut conn, lottery, peer) {
                    break write_failed(&e, peer);
                }
                if conn.write_message(&refusal).is_err() {
                    break Close::WriteFailed;
                }
                continue;
            }
            Err(e @ Error::FrameTooLarge { .. }) => {
                // The framing is lost: answer once, then close.
                log::warn!("action: read_request | result: fail | peer: {peer} | error: {e}");
                let _ = held.release(&mut conn, lottery, peer);
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
        match lottery.handle(request, peer) {
            Reply::WhenDurable { response, ticket, check } => held.hold(response, ticket, check),
            Reply::Abandoned => break Close::Shutdown,
            Reply::Now(response) => {
                // Answers go out in the order of their requests.
                if let Err(e) = held.release(&mut conn, lottery, peer) {
                    break write_failed(&e, peer);
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
    let _ = held.release(&mut conn, lottery, peer);
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

/// Logs a failed write of answers; the connection closes.
fn write_failed(e: &Error, peer: SocketAddr) -> Close {
    log::warn!("action: write_response | result: fail | peer: {peer} | error: {e}");
    Close::WriteFailed
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

fn configure(stream: &TcpStream, limits: Limits) -> std::io::Result<()> {
    stream.set_read_timeout(Some(limits.idle_timeout))?;
    stream.set_write_timeout(Some(limits.idle_timeout))?;
    // Answers are small and each one completes a round trip: send them now.
    stream.set_nodelay(true)
}
