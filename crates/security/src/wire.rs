//! The central's TLS socket, seen through the frame deadline: the clock that counts ciphertext.
//!
//! rustls reads a record (or a handshake) through many socket reads and hands back nothing
//! until it is whole, so a deadline measured above it, on plaintext, never sees a record whose
//! bytes trickle in: each read would wait a full idle timeout. [`Wire`] sits under rustls and
//! follows the record layer itself (a 5-byte header, then as many bytes as it declares):
//! - before a record's first byte, a read waits as long as the reader above asked (the idle
//!   timeout, or the time left for the frame it is reading);
//! - from that byte on, the whole record must arrive within the frame deadline;
//! - during the handshake, the whole handshake must end within the frame deadline from its
//!   first byte, its writes included.
//!
//! Past the deadline a read fails with [`LateBytes`], which the connection above reports as
//! [`protocol::Error::TooSlow`], as it does for a trickling plaintext frame. Records that arrive
//! whole in one read (every honest small one) cost no extra system call.
//!
//! rustls asks for at most 4 KiB a read, less than one batch's record (about 4.5 KiB for 100
//! bets), so [`Wire`] reads ahead: one system call takes up to [`AHEAD_LEN`] of what has
//! arrived, and rustls's next reads are served from it. Without it an upload cost two reads
//! per record, and each read that ended inside a record one more call to set the deadline.
//! The clocks follow bytes as they arrive from the socket, so reading ahead moves no deadline.

use std::{
    cell::Cell,
    io::{self, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use protocol::LateBytes;

/// Bytes of a TLS record's header: type, version, and a 2-byte length.
const HEADER_LEN: u8 = 5;

/// The most one read from the socket takes: the largest record (three or more of an
/// upload's), so a connection reading costs 16 KiB more than rustls's own buffers.
pub const AHEAD_LEN: usize = 16 * 1024 + 256 + HEADER_LEN as usize;

/// How long a peer may take, as [`Wire`] counts it.
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// Longest wait for the handshake's first byte.
    pub idle: Duration,
    /// Longest time from the first byte of a handshake, or of a record, to its last.
    pub frame: Duration,
}

/// A TCP socket whose reads are bounded by the time left for the record (or handshake) under
/// way; see the module's text.
#[derive(Debug)]
pub struct Wire {
    socket: TcpStream,
    frame: Duration,
    /// The per-read timeout the reader above asked for (`set_read_timeout`); a `Cell` because
    /// the reader sets it through a shared reference to the stream.
    wanted: Cell<Option<Duration>>,
    /// The read timeout now set on the socket, so an unchanged one costs no system call.
    applied: Option<Duration>,
    /// When the handshake must be over: `None` outside it or before its first byte.
    handshake_until: Option<Instant>,
    /// Whether a handshake is under way (its clock starts at its first byte).
    handshaking: bool,
    /// When the record under way began arriving; `None` between records.
    record_since: Option<Instant>,
    records: Records,
    /// Bytes read from the socket that rustls has not taken yet: `ahead[start..end]`. Empty
    /// (unallocated) until the first read, and again after [`Wire::release_buffers`].
    ahead: Vec<u8>,
    start: usize,
    end: usize,
}

impl Wire {
    /// Wraps `socket` for a handshake: the first byte is awaited for `deadlines.idle`, the
    /// rest within `deadlines.frame` of it.
    ///
    /// # Errors
    /// When the socket refuses its timeouts.
    pub fn for_handshake(socket: TcpStream, deadlines: Deadlines) -> io::Result<Wire> {
        socket.set_read_timeout(Some(deadlines.idle))?;
        socket.set_write_timeout(Some(deadlines.frame))?;
        Ok(Wire {
            socket,
            frame: deadlines.frame,
            wanted: Cell::new(Some(deadlines.idle)),
            applied: Some(deadlines.idle),
            handshake_until: None,
            handshaking: true,
            record_since: None,
            records: Records::default(),
            ahead: Vec::new(),
            start: 0,
            end: 0,
        })
    }

    /// Bytes read ahead that rustls has not taken yet.
    #[must_use]
    pub fn unread(&self) -> usize {
        self.end - self.start
    }

    /// Frees the read-ahead buffer if it holds nothing: a connection that only waits (for
    /// the total, say, thousands at once) keeps no upload-sized buffer.
    pub fn release_buffers(&mut self) {
        if self.start == self.end {
            self.ahead = Vec::new();
            (self.start, self.end) = (0, 0);
        }
    }

    /// The handshake is over: from now on only records are timed by the wire.
    pub fn handshake_done(&mut self) {
        self.handshaking = false;
        self.handshake_until = None;
    }

    /// The socket underneath.
    #[must_use]
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Bounds each later read as a socket timeout would, within the record clock.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        self.wanted.set(timeout);
    }

    /// The earliest instant the bytes under way must be in by, if any are under way.
    fn deadline(&self) -> Option<Instant> {
        let record = self.record_since.map(|since| since + self.frame);
        match (self.handshake_until, record) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Sets the socket's read timeout for the next read: what the reader asked, cut to the
    /// time left when bytes are under way.
    fn prepare_read(&mut self, deadline: Option<Instant>) -> io::Result<()> {
        let timeout = match deadline {
            None => self.wanted.get(),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LateBytes::error());
                }
                Some(self.wanted.get().map_or(left, |wanted| wanted.min(left)))
            }
        };
        if timeout != self.applied {
            self.socket.set_read_timeout(timeout)?;
            self.applied = timeout;
        }
        Ok(())
    }

    /// Starts the clocks that the `n` bytes just read ahead start, stops the record clock at
    /// a record's end.
    fn arrived(&mut self, n: usize) {
        if n == 0 {
            return;
        }
        if self.handshaking && self.handshake_until.is_none() {
            self.handshake_until = Some(Instant::now() + self.frame);
        }
        match self.records.advance(&self.ahead[..n]) {
            Progress::Between => self.record_since = None,
            Progress::Began => self.record_since = Some(Instant::now()),
            Progress::Continues => {}
        }
    }

    /// One read from the socket into the (empty) read-ahead buffer, within the clocks.
    fn read_ahead(&mut self) -> io::Result<()> {
        let deadline = self.deadline();
        self.prepare_read(deadline)?;
        if self.ahead.is_empty() {
            self.ahead = vec![0; AHEAD_LEN];
        }
        match self.socket.read(&mut self.ahead) {
            Ok(n) => {
                (self.start, self.end) = (0, n);
                self.arrived(n);
                Ok(())
            }
            // Bytes were under way: whichever clock ran out, the peer was too slow.
            Err(e)
                if deadline.is_some()
                    && matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) =>
            {
                Err(LateBytes::error())
            }
            Err(e) => Err(e),
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.start == self.end {
            self.read_ahead()?;
        }
        let n = buf.len().min(self.end - self.start);
        buf[..n].copy_from_slice(&self.ahead[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl Wire {
    /// Bounds the next write by the handshake's deadline while one is under way: its own
    /// flight must leave within it too.
    fn prepare_write(&mut self) -> io::Result<()> {
        if let Some(until) = self.handshake_until {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LateBytes::error());
            }
            self.socket.set_write_timeout(Some(left))?;
        }
        Ok(())
    }
}

/// rustls hands its queued records over as one vectored write (the handshake's flight is
/// three: ServerHello, ChangeCipherSpec, the encrypted rest), so they leave in one system
/// call and one segment, not one each.
impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.prepare_write()?;
        self.socket.write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.prepare_write()?;
        self.socket.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// Where the bytes read so far stand in the TLS record layer.
#[derive(Debug, Default)]
struct Records {
    /// Header bytes of the record under way seen so far (0 between records).
    header_seen: u8,
    /// The high byte of the record's length, once seen.
    len_high: u8,
    /// Body bytes of the record under way still to come.
    body_left: usize,
}

/// What a read did to the record under way.
#[derive(Debug, PartialEq, Eq)]
enum Progress {
    /// It ended on a record's boundary.
    Between,
    /// It ended inside a record that began in it.
    Began,
    /// It ended inside the record that was already under way.
    Continues,
}

impl Records {
    /// Follows `bytes` through record headers and bodies.
    fn advance(&mut self, mut bytes: &[u8]) -> Progress {
        let mut began = false;
        while let Some((&byte, rest)) = bytes.split_first() {
            if self.header_seen < HEADER_LEN {
                // Headers byte by byte (five per record); bodies are skipped whole below.
                began |= self.header_seen == 0;
                match self.header_seen {
                    3 => self.len_high = byte,
                    4 => self.body_left = usize::from(u16::from_be_bytes([self.len_high, byte])),
                    _ => {}
                }
                self.header_seen += 1;
                bytes = rest;
            } else {
                let take = self.body_left.min(bytes.len());
                self.body_left -= take;
                bytes = &bytes[take..];
            }
            if self.header_seen == HEADER_LEN && self.body_left == 0 {
                self.header_seen = 0;
            }
        }
        match (self.header_seen, began) {
            (0, _) => Progress::Between,
            (_, true) => Progress::Began,
            (_, false) => Progress::Continues,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wire over one end of a loopback connection (in its handshake), and the other end.
    fn wire_and_peer() -> (Wire, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (socket, _) = listener.accept().unwrap();
        let deadlines = Deadlines { idle: Duration::from_secs(5), frame: Duration::from_secs(5) };
        (Wire::for_handshake(socket, deadlines).unwrap(), peer)
    }

    fn record(len: u16) -> Vec<u8> {
        let mut bytes = vec![23, 3, 3];
        bytes.extend(len.to_be_bytes());
        bytes.extend(vec![0; usize::from(len)]);
        bytes
    }

    #[test]
    fn one_socket_read_serves_several_small_reads_and_an_emptied_buffer_is_freed() {
        let (mut wire, mut peer) = wire_and_peer();
        wire.handshake_done();
        let mut sent = record(9000);
        sent.extend(record(100));
        peer.write_all(&sent).unwrap();
        let mut peeked = vec![0; sent.len()];
        while wire.socket().peek(&mut peeked).unwrap() < sent.len() {
            std::thread::sleep(Duration::from_millis(1));
        }
        // rustls's reads are 4 KiB at most: the first takes everything that has arrived.
        let mut got: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        let n = wire.read(&mut buf).unwrap();
        got.extend(&buf[..n]);
        assert_eq!((n, wire.unread()), (4096, sent.len() - 4096), "read ahead");
        assert!(wire.record_since.is_none(), "both records arrived whole: no clock runs");
        wire.release_buffers();
        assert_eq!(wire.ahead.len(), AHEAD_LEN, "kept while it holds bytes");
        while got.len() < sent.len() {
            let n = wire.read(&mut buf).unwrap();
            got.extend(&buf[..n]);
        }
        assert_eq!(got, sent);
        wire.release_buffers();
        assert!(wire.ahead.is_empty(), "freed once emptied");
    }

    #[test]
    fn queued_records_leave_in_one_write() {
        let (mut wire, mut peer) = wire_and_peer();
        let flight = [record(90), record(1), record(400)];
        let slices: Vec<io::IoSlice<'_>> = flight.iter().map(|r| io::IoSlice::new(r)).collect();
        // std's default takes the first slice only: three system calls for one flight.
        assert_eq!(wire.write_vectored(&slices).unwrap(), flight.iter().map(Vec::len).sum::<usize>());
        let mut got = vec![0; flight.concat().len()];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(got, flight.concat());
    }

    #[test]
    fn whole_records_leave_the_clock_stopped() {
        let mut records = Records::default();
        let mut bytes = record(10);
        bytes.extend(record(0));
        bytes.extend(record(300));
        assert_eq!(records.advance(&bytes), Progress::Between);
    }

    #[test]
    fn a_record_split_anywhere_is_followed_to_its_end() {
        let whole = record(20);
        for cut in 1..whole.len() {
            let mut records = Records::default();
            let mut bytes = record(3);
            bytes.extend(&whole[..cut]);
            assert_eq!(records.advance(&bytes), Progress::Began, "cut at {cut}");
            if cut + 1 < whole.len() {
                assert_eq!(records.advance(&whole[cut..cut + 1]), Progress::Continues, "cut at {cut}");
                assert_eq!(records.advance(&whole[cut + 1..]), Progress::Between, "cut at {cut}");
            } else {
                assert_eq!(records.advance(&whole[cut..]), Progress::Between, "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_record_that_ends_where_the_next_begins_restarts_the_clock() {
        let mut records = Records::default();
        let mut bytes = vec![23, 3];
        assert_eq!(records.advance(&bytes), Progress::Began);
        bytes = vec![3, 0, 1, 9, 23];
        assert_eq!(records.advance(&bytes), Progress::Began, "the second record began here");
    }
}
