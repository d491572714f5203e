//! Framing: one message is a 4-byte big-endian length followed by that many payload bytes.
//!
//! No sockets and no messages here, only byte streams: `read_frame` and `write_frame` work on
//! any `Read`/`Write`, so the tests drive them through readers that yield one byte at a time,
//! fail midway or close mid-frame. Both are complete or fail: a short read or short write is
//! never taken for a frame.

use std::io::{self, Read, Write};

use crate::error::Error;

/// Bytes of the length prefix.
pub const PREFIX_LEN: usize = 4;

/// Default cap on a frame's payload length (1 MiB). A bet batch is at most 8 KiB, so this
/// leaves room for any honest message while bounding what a peer can make us hold.
pub const DEFAULT_MAX_FRAME_LEN: usize = 1 << 20;

/// Buffer reserved up front for a payload. The declared length is a claim, not a fact: the
/// buffer grows with the bytes that really arrive, so a peer announcing 1 MiB and sending
/// nothing costs this much, not a mebibyte.
const INITIAL_RESERVE: usize = 16 * 1024;

/// Reads one frame's payload into `payload` (cleared first).
///
/// Returns `Ok(false)` when the stream ends cleanly before the first byte of a frame, and
/// `Ok(true)` when a whole payload was read.
///
/// # Errors
/// [`Error::FrameTooLarge`] when the declared length exceeds `max_len` (checked before
/// anything is allocated; the stream cannot be resynchronised after it),
/// [`Error::Truncated`] when the stream ends mid-frame, [`Error::Io`] when reading fails.
pub fn read_frame<R: Read>(reader: &mut R, payload: &mut Vec<u8>, max_len: usize) -> Result<bool, Error> {
    read_frame_admitted(reader, payload, max_len, |_| Ok(()))
}

/// As [`read_frame`], with `admit` asked about the payload's length once the prefix is read
/// and before anything is allocated for it (the central reserves its memory budget there).
///
/// # Errors
/// As [`read_frame`], and whatever `admit` returns: the payload is then left unread in the
/// stream, for the caller to skip or to close on.
pub fn read_frame_admitted<R: Read>(
    reader: &mut R,
    payload: &mut Vec<u8>,
    max_len: usize,
    admit: impl FnOnce(usize) -> Result<(), Error>,
) -> Result<bool, Error> {
    payload.clear();
    let mut prefix = [0u8; PREFIX_LEN];
    let mut got = 0;
    while got < PREFIX_LEN {
        match reader.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(Error::Truncated { expected: PREFIX_LEN, received: got }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_be_bytes(prefix);
    if len as usize > max_len {
        return Err(Error::FrameTooLarge { length: u64::from(len), max: max_len });
    }
    let len = len as usize;
    admit(len)?;
    payload.reserve(len.min(INITIAL_RESERVE));
    // `take` + `read_to_end` retries on `Interrupted` and stops at EOF; a short count is a
    // peer that closed mid-frame.
    let received = reader.take(len as u64).read_to_end(payload)?;
    if received < len {
        return Err(Error::Truncated { expected: PREFIX_LEN + len, received: PREFIX_LEN + received });
    }
    Ok(true)
}

/// Writes `payload` as one frame, prefix and payload in a single `write_all`.
///
/// # Errors
/// [`Error::FrameTooLarge`] when the payload exceeds `max_len` (nothing is written),
/// [`Error::Io`] when writing fails.
pub fn write_frame<W: Write>(writer: &mut W, payload: &[u8], max_len: usize) -> Result<(), Error> {
    let len = check_len(payload.len(), max_len)?;
    let mut frame = Vec::with_capacity(PREFIX_LEN + payload.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    writer.write_all(&frame)?;
    writer.flush()?;
    Ok(())
}

/// The length prefix for a payload of `len` bytes, if it is within `max_len`.
///
/// # Errors
/// [`Error::FrameTooLarge`] when `len` exceeds `max_len` or does not fit the 4-byte prefix.
pub fn check_len(len: usize, max_len: usize) -> Result<u32, Error> {
    match u32::try_from(len) {
        Ok(prefix) if len <= max_len => Ok(prefix),
        _ => Err(Error::FrameTooLarge { length: len as u64, max: max_len }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields at most one byte per `read`, like a peer trickling its bytes.
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match (self.0.split_first(), buf.first_mut()) {
                (Some((b, rest)), Some(slot)) => {
                    *slot = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    /// Yields `ok` bytes, then fails every read.
    struct FailsAfter<'a> {
        data: &'a [u8],
        ok: usize,
    }
    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.ok == 0 {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer reset"));
            }
            let n = buf.len().min(self.ok).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            self.ok -= n;
            Ok(n)
        }
    }

    /// Interrupts every other read, as a signal arriving mid-syscall would.
    struct Interrupting<'a> {
        data: &'a [u8],
        flip: bool,
    }
    impl Read for Interrupting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.flip = !self.flip;
            if self.flip {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
            let n = buf.len().min(self.data.len()).min(3);
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        write_frame(&mut out, payload, DEFAULT_MAX_FRAME_LEN).unwrap();
        out
    }

    #[test]
    fn writes_big_endian_prefix_then_payload() {
        assert_eq!(framed(b"hi"), [0, 0, 0, 2, b'h', b'i']);
        assert_eq!(framed(b""), [0, 0, 0, 0]);
    }

    #[test]
    fn reads_back_consecutive_frames_one_byte_at_a_time() {
        let mut bytes = framed(b"first");
        bytes.extend(framed(b""));
        bytes.extend(framed(&[7u8; 300]));
        let mut reader = OneByte(&bytes);
        let mut payload = Vec::new();
        assert!(read_frame(&mut reader, &mut payload, 1024).unwrap());
        assert_eq!(payload, b"first");
        assert!(read_frame(&mut reader, &mut payload, 1024).unwrap());
        assert!(payload.is_empty());
        assert!(read_frame(&mut reader, &mut payload, 1024).unwrap());
        assert_eq!(payload, [7u8; 300]);
        assert!(!read_frame(&mut reader, &mut payload, 1024).unwrap(), "clean EOF after the last frame");
    }

    #[test]
    fn retries_interrupted_reads() {
        let bytes = framed(b"interrupted but whole");
        let mut reader = Interrupting { data: &bytes, flip: false };
        let mut payload = Vec::new();
        assert!(read_frame(&mut reader, &mut payload, 1024).unwrap());
        assert_eq!(payload, b"interrupted but whole");
    }

    #[test]
    fn eof_inside_the_prefix_is_truncation_not_a_clean_close() {
        let mut payload = Vec::new();
        let err = read_frame(&mut OneByte(&[0, 0]), &mut payload, 1024).unwrap_err();
        assert!(matches!(err, Error::Truncated { expected: 4, received: 2 }), "{err:?}");
    }

    #[test]
    fn eof_inside_the_payload_is_truncation() {
        let bytes = framed(b"0123456789");
        let mut payload = Vec::new();
        let err = read_frame(&mut OneByte(&bytes[..9]), &mut payload, 1024).unwrap_err();
        assert!(matches!(err, Error::Truncated { expected: 14, received: 9 }), "{err:?}");
    }

    #[test]
    fn a_reader_failing_midway_surfaces_its_error() {
        let bytes = framed(b"0123456789");
        for ok in [0, 2, 6] {
            let mut payload = Vec::new();
            let err = read_frame(&mut FailsAfter { data: &bytes, ok }, &mut payload, 1024).unwrap_err();
            assert!(
                matches!(&err, Error::Io(e) if e.kind() == io::ErrorKind::ConnectionReset),
                "after {ok} bytes: {err:?}"
            );
        }
    }

    #[test]
    fn oversized_lengths_are_refused_before_reading_the_payload() {
        for (prefix, max) in [([0, 0, 4, 1], 1024), ([0xff, 0xff, 0xff, 0xff], DEFAULT_MAX_FRAME_LEN)] {
            // Only the prefix is there: had the reader tried to read the payload it would
            // have reported truncation instead.
            let mut payload = Vec::new();
            let err = read_frame(&mut &prefix[..], &mut payload, max).unwrap_err();
            assert!(matches!(err, Error::FrameTooLarge { max: m, .. } if m == max), "{err:?}");
            assert_eq!(payload.capacity(), 0, "nothing allocated for a refused frame");
        }
    }

    #[test]
    fn a_frame_of_exactly_the_maximum_is_accepted() {
        let bytes = framed(&[1u8; 1024]);
        let mut payload = Vec::new();
        assert!(read_frame(&mut &bytes[..], &mut payload, 1024).unwrap());
        assert_eq!(payload.len(), 1024);
    }

    #[test]
    fn writing_an_oversized_payload_writes_nothing() {
        let mut out = Vec::new();
        let err = write_frame(&mut out, &[0u8; 11], 10).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { length: 11, max: 10 }), "{err:?}");
        assert!(out.is_empty());
    }

    /// A writer that takes at most two bytes per call: `write_all` must loop until done.
    struct Trickle(Vec<u8>);
    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(2);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_are_completed() {
        let mut out = Trickle(Vec::new());
        write_frame(&mut out, b"complete", 1024).unwrap();
        assert_eq!(out.0, framed(b"complete"));
    }
}
