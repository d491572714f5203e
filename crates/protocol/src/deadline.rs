//! Whole-frame deadlines and the memory budget, for a connection that serves peers it cannot
//! trust ([`crate::Connection::guarded`]).
//!
//! A socket timeout bounds one `read` or one `write`, so a peer sending one byte just inside
//! it each time, or reading our answer a byte at a time, could hold a connection forever.
//! Here the idle timeout bounds only the wait for a frame's first byte; from that byte on the
//! whole frame must arrive within the frame deadline, and a whole answer must leave within it
//! too. Each `read` or `write` that may block is given the time that remains as its socket
//! timeout, so the deadline holds without a timer thread. A frame that arrives in one piece
//! (every honest one) costs no extra system call.

use std::{
    fmt,
    io::{self, BufRead, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use crate::{
    budget::{Budget, Reservation},
    error::Error,
    frame,
    read_buffer::ReadBuffer,
};

/// Buffers a guarded connection keeps between messages; bigger ones (a large echo) are freed
/// once used, so an idle connection holds little whatever it carried before.
const KEEP: usize = 16 * 1024;

/// A stream whose reads and writes can be given timeouts, as a `TcpStream`'s can.
pub trait Timeouts {
    /// Bounds each later `read` (`None`: wait forever).
    ///
    /// # Errors
    /// When the stream refuses the setting.
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
    /// Bounds each later `write` (`None`: wait forever).
    ///
    /// # Errors
    /// When the stream refuses the setting.
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()>;
}

impl Timeouts for TcpStream {
    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_read_timeout(self, timeout)
    }
    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        TcpStream::set_write_timeout(self, timeout)
    }
}

/// What a stream beneath a guarded connection reports when bytes it frames itself (a TLS
/// record, a TLS handshake) did not all arrive within the frame deadline from the first one.
/// The connection reads it as [`Error::TooSlow`], like a plaintext frame that trickled: one
/// refusal and one log line whatever the transport.
#[derive(Debug, Clone, Copy)]
pub struct LateBytes;

impl LateBytes {
    /// As an I/O error (kind `TimedOut`), for a `Read` or `Write` to return.
    #[must_use]
    pub fn error() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, LateBytes)
    }

    /// Whether `e` is one.
    #[must_use]
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<LateBytes>())
    }
}

impl fmt::Display for LateBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bytes on the wire came slower than the frame deadline")
    }
}

impl std::error::Error for LateBytes {}

/// What a guarded connection allows a peer.
#[derive(Debug, Clone)]
pub struct Guards {
    /// Longest wait for the first byte of the next frame.
    pub idle: Duration,
    /// Longest time from a frame's first byte to its last, and for a whole answer to leave.
    pub frame: Duration,
    /// Shared by every connection: each frame reserves twice its payload (the request, then
    /// its answer) before any of it is allocated, until its answer has left. `None`: no budget.
    pub budget: Option<Budget>,
}

/// A connection's guard: its limits, how to set its stream's timeouts, and the budget it holds.
#[derive(Debug)]
pub(crate) struct Guard<S> {
    guards: Guards,
    set_read: fn(&S, Option<Duration>) -> io::Result<()>,
    set_write: fn(&S, Option<Duration>) -> io::Result<()>,
    /// Whether the read timeout was lowered below `idle` for the frame's remaining time.
    read_lowered: bool,
    /// Whether the write timeout was lowered below `frame` for the answer's remaining time.
    write_lowered: bool,
    /// The budget held for the request being answered.
    held: Option<Reservation>,
}

impl<S: Read + Write> Guard<S> {
    /// Sets `stream`'s timeouts to the guards' and returns the guard.
    pub(crate) fn new(stream: &S, guards: Guards) -> io::Result<Guard<S>>
    where
        S: Timeouts,
    {
        stream.set_read_timeout(Some(guards.idle))?;
        stream.set_write_timeout(Some(guards.frame))?;
        Ok(Guard {
            guards,
            set_read: <S as Timeouts>::set_read_timeout,
            set_write: <S as Timeouts>::set_write_timeout,
            read_lowered: false,
            write_lowered: false,
            held: None,
        })
    }

    /// New idle timeout and frame deadline, applied from the next read or write on: both
    /// socket timeouts are marked as lowered so they are set again before use.
    pub(crate) fn set_limits(&mut self, idle: Duration, frame: Duration) {
        self.guards.idle = idle;
        self.guards.frame = frame;
        self.read_lowered = true;
        self.write_lowered = true;
    }

    /// Reads the next frame's payload as [`frame::read_frame`] does, within the idle timeout
    /// for its first byte and the frame deadline for the rest, reserving its budget first.
    /// Gives back what the previous request held, and frees a big payload buffer it left.
    pub(crate) fn read_frame(
        &mut self,
        reader: &mut ReadBuffer<S>,
        payload: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<bool, Error> {
        self.held = None;
        shrink(payload);
        // The idle timeout matters only to a read that waits on the socket: a frame that
        // begins in the buffer (a peer sending without waiting) keeps the lowered one, and the
        // read of its rest sets its own below.
        if self.read_lowered && reader.buffer().is_empty() {
            (self.set_read)(reader.get_ref(), Some(self.guards.idle))?;
            self.read_lowered = false;
        }
        loop {
            match reader.fill_buf() {
                Ok([]) => return Ok(false),
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A TLS record that began while we waited and then trickled.
                Err(e) if LateBytes::is(&e) => return Err(Error::TooSlow { limit: self.guards.frame }),
                Err(e) => return Err(e.into()),
            }
        }
        let limit = self.guards.frame;
        let deadline = later(limit);
        let mut bounded = Bounded { reader, deadline, set: self.set_read, lowered: &mut self.read_lowered };
        let (budget, held) = (self.guards.budget.as_ref(), &mut self.held);
        let mut refused = None;
        let result = frame::read_frame_admitted(&mut bounded, payload, max_len, |len| {
            reserve(budget, held, len, deadline).inspect_err(|_| refused = Some(len))
        });
        if let Some(len) = refused {
            // Skipped through a small buffer, never held: the stream stays in step and the
            // peer can be answered.
            let skipped = io::copy(&mut (&mut bounded).take(len as u64), &mut io::sink())
                .map_err(|e| too_slow(e, limit))?;
            if skipped < len as u64 {
                let expected = frame::PREFIX_LEN + len;
                #[allow(clippy::cast_possible_truncation)] // at most `len`, a usize
                let received = frame::PREFIX_LEN + skipped as usize;
                return Err(Error::Truncated { expected, received });
            }
        }
        result.map_err(|e| match e {
            Error::Io(e) => too_slow(e, limit),
            other => other,
        })
    }

    /// Admits a frame of `len` payload bytes already whole in the read buffer (decoded there,
    /// with no read and no payload copy): gives back what the previous request held, frees
    /// a big payload buffer it left, and reserves the frame's budget as
    /// [`Guard::read_frame`] does.
    ///
    /// # Errors
    /// [`Error::OverBudget`] when the budget has no room by the frame deadline: the caller
    /// skips the frame.
    pub(crate) fn admit_buffered(&mut self, len: usize, payload: &mut Vec<u8>) -> Result<(), Error> {
        self.held = None;
        shrink(payload);
        reserve(self.guards.budget.as_ref(), &mut self.held, len, later(self.guards.frame))
    }

    /// Frees a buffer done with (a payload decoded, frames written), if it is a big one.
    pub(crate) fn done_with(buffer: &mut Vec<u8>) {
        shrink(buffer);
    }

    /// Writes `bytes` whole within the frame deadline, and flushes them.
    pub(crate) fn write_all(&mut self, stream: &mut S, bytes: &[u8]) -> Result<(), Error> {
        let limit = self.guards.frame;
        if self.write_lowered {
            (self.set_write)(stream, Some(limit))?;
            self.write_lowered = false;
        }
        let deadline = later(limit);
        let mut written = 0;
        while written < bytes.len() {
            match stream.write(&bytes[written..]) {
                Ok(0) => return Err(Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(too_slow(e, limit)),
            }
            if written < bytes.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::TooSlow { limit });
                }
                (self.set_write)(stream, Some(left))?;
                self.write_lowered = true;
            }
        }
        stream.flush()?;
        Ok(())
    }
}

/// The connection's reader, seen through the frame deadline: a read served from the buffer is
/// free; one that would block on the socket first lowers its timeout to the time left.
struct Bounded<'a, S> {
    reader: &'a mut ReadBuffer<S>,
    deadline: Instant,
    set: fn(&S, Option<Duration>) -> io::Result<()>,
    lowered: &'a mut bool,
}

impl<S: Read> Read for Bounded<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reader.buffer().is_empty() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            (self.set)(self.reader.get_ref(), Some(left))?;
            *self.lowered = true;
        }
        self.reader.read(buf)
    }
}

/// `limit` from now; a limit too far to represent is as good as never.
fn later(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit).unwrap_or_else(|| now + Duration::from_secs(u64::from(u32::MAX)))
}

/// A socket timeout (or the deadline passing) as the peer being too slow; other errors as
/// they are.
fn too_slow(e: io::Error, limit: Duration) -> Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::TooSlow { limit },
        _ => Error::Io(e),
    }
}

/// Reserves the budget of a frame of `len` payload bytes (twice its length: the payload and
/// what decoding it makes) into `held`, waiting until `deadline` for room; nothing without
/// a budget.
fn reserve(
    budget: Option<&Budget>,
    held: &mut Option<Reservation>,
    len: usize,
    deadline: Instant,
) -> Result<(), Error> {
    let Some(budget) = budget else { return Ok(()) };
    let reservation = budget
        .reserve(len.saturating_mul(2), deadline)
        .ok_or(Error::OverBudget { length: len, budget: budget.limit() })?;
    *held = Some(reservation);
    Ok(())
}

fn shrink(buffer: &mut Vec<u8>) {
    if buffer.capacity() > KEEP {
        *buffer = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{TcpListener, TcpStream},
        thread,
    };

    use super::*;
    use crate::{codec, Connection, Request, Response};

    /// A connected pair of sockets on loopback: (the served side, the peer's side).
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (served, _) = listener.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        (served, peer)
    }

    fn guards(frame: Duration, budget: Option<Budget>) -> Guards {
        Guards { idle: Duration::from_secs(20), frame, budget }
    }

    fn framed(request: &Request) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_frame(request, &mut out, frame::DEFAULT_MAX_FRAME_LEN).unwrap();
        out
    }

    #[test]
    fn a_trickling_peer_is_cut_off_at_the_frame_deadline() {
        let (served, mut peer) = pair();
        let frame = Duration::from_millis(300);
        let mut conn = Connection::guarded(served, 1024, guards(frame, None)).unwrap();
        let bytes = framed(&Request::Echo(vec![7; 64]));
        let trickler = thread::spawn(move || {
            // One byte every 50 ms: each read is well within any per-read timeout.
            for b in bytes {
                if peer.write_all(&[b]).is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
        });
        let start = Instant::now();
        let err = conn.read_message::<Request>().unwrap_err();
        let took = start.elapsed();
        assert!(matches!(err, Error::TooSlow { limit } if limit == frame), "{err:?}");
        assert!(took >= frame && took < frame * 10, "cut off after {took:?}");
        drop(conn);
        trickler.join().unwrap();
    }

    #[test]
    fn after_frames_read_in_pieces_and_from_the_buffer_the_wait_for_the_next_is_idle() {
        let (served, mut peer) = pair();
        let mut conn = Connection::guarded(served, 1024, guards(Duration::from_millis(100), None)).unwrap();
        let [a, b, c] = [1, 2, 3].map(|agency| Request::WinnersQuery { agency });
        let (first, second, third) = (framed(&a), framed(&b), framed(&c));
        let sender = thread::spawn(move || {
            // `a` in two pieces (its read lowers the timeout to the frame's time left), then
            // the rest of it with all of `b` (read from the buffer), then a silence longer
            // than the frame deadline before `c`: an idle wait, not a late frame.
            peer.write_all(&first[..3]).unwrap();
            thread::sleep(Duration::from_millis(20));
            peer.write_all(&[&first[3..], &second[..]].concat()).unwrap();
            thread::sleep(Duration::from_millis(300));
            peer.write_all(&third).unwrap();
            peer
        });
        for expected in [a, b, c] {
            assert_eq!(conn.read_message::<Request>().unwrap(), Some(expected));
        }
        drop(sender.join().unwrap());
        assert_eq!(conn.read_message::<Request>().unwrap(), None, "the peer closed");
    }

    #[test]
    fn the_idle_wait_is_not_the_frame_deadline() {
        let (served, mut peer) = pair();
        let mut conn = Connection::guarded(served, 1024, guards(Duration::from_millis(100), None)).unwrap();
        let request = Request::WinnersQuery { agency: 1 };
        let sender = thread::spawn(move || {
            // Silent for longer than the frame deadline, then a whole frame at once.
            thread::sleep(Duration::from_millis(300));
            peer.write_all(&framed(&request)).unwrap();
            peer
        });
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::WinnersQuery { agency: 1 }));
        drop(sender.join().unwrap());
        assert_eq!(conn.read_message::<Request>().unwrap(), None, "the peer closed");
    }

    #[test]
    fn a_frame_over_the_budget_is_skipped_and_the_stream_stays_in_step() {
        let (served, mut peer) = pair();
        let budget = Budget::new(1000);
        let mut conn =
            Connection::guarded(served, 4096, guards(Duration::from_secs(5), Some(budget.clone()))).unwrap();
        let mut bytes = framed(&Request::Echo(vec![1; 600]));
        bytes.extend(framed(&Request::Echo(vec![2; 10])));
        peer.write_all(&bytes).unwrap();
        let err = conn.read_message::<Request>().unwrap_err();
        assert!(matches!(err, Error::OverBudget { budget: 1000, .. }), "{err:?}");
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::Echo(vec![2; 10])));
        assert!(budget.in_use() > 0, "held while the answer is due");
        conn.write_message(&Response::Echo(vec![2; 10])).unwrap();
        drop(conn);
        assert_eq!(budget.in_use(), 0, "given back with the connection");
    }

    #[test]
    fn frames_already_buffered_are_admitted_by_the_budget_as_read_ones_are() {
        let (served, mut peer) = pair();
        let budget = Budget::new(1000);
        let mut conn =
            Connection::guarded(served, 4096, guards(Duration::from_secs(5), Some(budget.clone()))).unwrap();
        // One write: the first read buffers all three, the last two are taken from the buffer.
        let mut bytes = framed(&Request::Echo(vec![1; 10]));
        bytes.extend(framed(&Request::Echo(vec![2; 600])));
        bytes.extend(framed(&Request::Echo(vec![3; 10])));
        peer.write_all(&bytes).unwrap();
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::Echo(vec![1; 10])));
        assert!(conn.has_buffered_frame(), "the next frames came with the first");
        let err = conn.read_message::<Request>().unwrap_err();
        assert!(matches!(err, Error::OverBudget { budget: 1000, .. }), "{err:?}");
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::Echo(vec![3; 10])));
        assert!(budget.in_use() > 0, "held while the answer is due");
        drop(conn);
        assert_eq!(budget.in_use(), 0, "given back with the connection");
    }

    #[test]
    fn a_buffered_batch_over_the_bet_cap_is_refused_and_the_stream_stays_in_step() {
        let (served, mut peer) = pair();
        let mut conn = Connection::guarded(served, 1 << 20, guards(Duration::from_secs(5), None)).unwrap();
        let bet = crate::WireBet {
            first_name: "A".into(),
            last_name: "B".into(),
            document: "1".into(),
            birthdate: "2000-01-01".into(),
        };
        let batch = Request::BetBatch { agency: 1, sequence: 1, bets: vec![bet; 3].into() };
        let mut bytes = framed(&Request::WinnersQuery { agency: 1 });
        bytes.extend(framed(&batch));
        bytes.extend(framed(&Request::WinnersQuery { agency: 2 }));
        peer.write_all(&bytes).unwrap();
        assert_eq!(conn.read_request(2).unwrap(), Some(Request::WinnersQuery { agency: 1 }));
        assert!(conn.has_buffered_frame(), "the batch came with the first: it is read from the buffer");
        let err = conn.read_request(2).unwrap_err();
        assert!(matches!(err, Error::TooManyBets { bets: 3, max: 2 }), "{err:?}");
        assert_eq!(conn.read_request(2).unwrap(), Some(Request::WinnersQuery { agency: 2 }));
    }

    #[test]
    fn an_answer_the_peer_never_reads_is_given_up_at_the_deadline() {
        let (served, _peer) = pair();
        let frame = Duration::from_millis(300);
        let mut conn = Connection::guarded(served, 64 << 20, guards(frame, None)).unwrap();
        // Far more than the socket buffers hold, and the peer reads none of it.
        let answer = Response::Echo(vec![0; 32 << 20]);
        // Encoding 32 MiB in a debug build takes a while on a busy machine, before the first
        // byte is written: timed apart (and allowed twice, as the load varies), so the bound
        // below is on the wait for the peer: the deadline's, not forever.
        let encoding = {
            let started = Instant::now();
            let mut frame_bytes = Vec::new();
            codec::encode_frame(&answer, &mut frame_bytes, 64 << 20).unwrap();
            started.elapsed()
        };
        let start = Instant::now();
        let err = conn.write_message(&answer).unwrap_err();
        assert!(matches!(err, Error::TooSlow { .. }), "{err:?}");
        let waited = start.elapsed().saturating_sub(encoding * 2);
        assert!(waited < frame * 10, "gave up after {waited:?} (and {encoding:?} encoding)");
    }
}
