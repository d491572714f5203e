//! A connection's read buffer, small while the connection waits and full-sized while it
//! carries an upload.
//!
//! A central holds thousands of connections that only wait for the total. A fixed 32 KiB
//! buffer each would keep an upload's worth of memory per waiting agency; here the buffer
//! starts at [`SMALL`], grows to its full size when one read fills it (a pipelined upload
//! or a big frame is arriving: the fast path then reads up to the full size at once), and
//! goes back to small when the connection says it will wait ([`ReadBuffer::shrink`]).

use std::io::{self, BufRead, Read};

/// What a waiting or new connection holds: room for any request before the proof and for
/// every total query, many times over.
pub(crate) const SMALL: usize = 1024;

/// Buffered reads from `S`, as `std::io::BufReader` does, with a size that changes.
#[derive(Debug)]
pub(crate) struct ReadBuffer<S> {
    inner: S,
    /// Its length is the buffer's size; `buf[pos..filled]` is read but not consumed.
    buf: Vec<u8>,
    pos: usize,
    filled: usize,
    /// The size the buffer grows to.
    full: usize,
}

impl<S> ReadBuffer<S> {
    /// A small buffer over `inner` that grows to `full` bytes when traffic fills it.
    pub(crate) fn new(inner: S, full: usize) -> Self {
        ReadBuffer { inner, buf: vec![0; SMALL.min(full)], pos: 0, filled: 0, full }
    }

    /// Bytes read but not consumed yet.
    pub(crate) fn buffer(&self) -> &[u8] {
        &self.buf[self.pos..self.filled]
    }

    /// Goes back to a small buffer, unless bytes are still buffered (they are kept).
    pub(crate) fn shrink(&mut self) {
        if self.pos == self.filled && self.buf.len() > SMALL {
            self.buf = vec![0; SMALL];
            (self.pos, self.filled) = (0, 0);
        }
    }

    /// The buffer's size now.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }
}

impl<S: Read> BufRead for ReadBuffer<S> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            let n = self.inner.read(&mut self.buf)?;
            (self.pos, self.filled) = (0, n);
            if n == self.buf.len() && n < self.full {
                // More is coming than a small buffer holds: read the rest in big pieces.
                self.buf.resize(self.full, 0);
            }
        }
        Ok(self.buffer())
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.filled);
    }
}

impl<S: Read> Read for ReadBuffer<S> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.filled && out.len() >= self.full {
            // As big as the full buffer: no point copying through it.
            return self.inner.read(out);
        }
        let n = self.fill_buf()?.read(out)?;
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    #[test]
    fn it_grows_when_a_read_fills_it_and_shrinks_only_when_empty() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut reader = ReadBuffer::new(Cursor::new(bytes.clone()), 4096);
        assert_eq!(reader.capacity(), SMALL);
        let mut first = [0u8; 10];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(reader.capacity(), 4096, "a full small read grows it");
        reader.shrink();
        assert_eq!(reader.capacity(), 4096, "buffered bytes are kept");
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!([&first[..], &rest[..]].concat(), bytes);
        reader.shrink();
        assert_eq!(reader.capacity(), SMALL);
    }

    #[test]
    fn a_small_message_does_not_grow_it() {
        let mut reader = ReadBuffer::new(Cursor::new(vec![7u8; 100]), 32 * 1024);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, vec![7u8; 100]);
        assert_eq!(reader.capacity(), SMALL);
    }
}
