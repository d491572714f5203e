//! A dataset file's CSV records, split as the `csv` crate splits them and numbered by its
//! line count, read in large chunks whose UTF-8 is checked once.
//!
//! The dialect is that of `csv`'s default reader without headers: comma between fields, `"`
//! around a field (doubled inside it), CR, LF or CRLF ending a record, blank lines skipped, a
//! UTF-8 byte order mark at the start dropped. `csv_core`, the engine under `csv`, stays the
//! reference: a line holding a quote, or bytes that are not UTF-8, is read by it. A line of
//! checked text without quotes is split here: `csv_core` would cut it at its commas too, but
//! only after copying it byte by byte through its state machine, and the fields would then
//! need a UTF-8 check of their own.
//!
//! Line numbers are `csv`'s: the reader's count of `\n`s consumed, plus one, when the reading
//! of a record begins. Terminators before a record are consumed while reading it (blank lines;
//! the `\n` of a `\r\n`, since `csv_core` ends a record at its `\r`), so a record after blank
//! lines is numbered as the first blank line, and in a CRLF file each record after the first
//! gets the number of the line before. Kept as `csv` has it: logs name rows as they always did.
//!
//! Memory: a chunk buffer and its checked copy, each [`CHUNK`] bytes; they grow only to hold
//! one line longer than that, as `csv`'s record buffer did.

use std::{
    io::{self, Read},
    ops::Range,
};

use csv_core::{ReadRecordResult, Reader};
use memchr::{memchr, memrchr2};

use super::scan::{scan_line, Line};

/// Bytes read from the file at once, and checked for UTF-8 at once.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The UTF-8 byte order mark, which `csv_core` drops from the start of its first input.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// One record: its line number and fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    /// The line number `csv` gives it (see the module's notes).
    pub(crate) line: u64,
    /// Its fields.
    pub(crate) fields: Fields<'a>,
}

/// A record's fields, in one of two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields<'a> {
    /// A line of UTF-8 text without quotes: its fields are its parts between commas.
    Line {
        /// The line, without its terminator.
        line: &'a str,
        /// Where its commas are, in order.
        commas: &'a [usize],
    },
    /// A record `csv_core` read, quotes undone, not checked for UTF-8: its fields' bytes one
    /// after the other, and where each field ends in them.
    Parsed {
        /// The fields' bytes.
        bytes: &'a [u8],
        /// Where each field ends in `bytes`; one entry a field.
        ends: &'a [usize],
    },
}

/// Reads the records of a CSV source, one at a time.
#[derive(Debug)]
pub(crate) struct Records<R> {
    source: R,
    /// Bytes read; `buf[start..end]` are not consumed yet.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Whether `source` has given all its bytes.
    eof: bool,
    /// Whether anything was read yet: only the first read may start with a byte order mark.
    started: bool,
    /// The whole lines at the front of the unconsumed bytes, checked: `text[text_pos..]` is
    /// byte for byte `buf[start..start + text.len() - text_pos]`.
    text: String,
    text_pos: usize,
    /// How many bytes from `start` on lie in a chunk whose check failed: those are checked
    /// with std's check, which stops at the first bad byte, so a bad line costs the way to
    /// it and not a chunk each time.
    suspect: usize,
    /// `csv`'s line count: one plus the `\n`s consumed.
    line: u64,
    /// The reference parser, for the records not split here. It only ever sees a record from
    /// its first byte (terminators before it are consumed here), so the records split here
    /// without it leave it in the state it needs.
    core: Reader,
    /// The last record `core` read: its fields' bytes, and where each ends.
    out: Vec<u8>,
    ends: Vec<usize>,
    /// Where the commas of the last line split here are.
    commas: Vec<usize>,
    /// Where the first quote at or after `text_pos` is in `text` (`usize::MAX`: none): a
    /// line before it has none, and quotes are rare enough to be looked for a chunk at once.
    quote: usize,
}

impl<R: Read> Records<R> {
    /// Records of `source`, read `chunk` bytes at a time (at least 3, the byte order mark's
    /// length).
    pub(crate) fn new(source: R, chunk: usize) -> Records<R> {
        let chunk = chunk.max(BOM.len());
        let mut core = Reader::new();
        // `csv_core` drops a byte order mark from its first input only; the one at the
        // start of the file is dropped here, so its first input is a blank line (discarded,
        // and its line count is not used) to keep it from dropping one a record starts with.
        let _ = core.read_record(b"\n", &mut [0], &mut [0]);
        Records {
            source,
            buf: vec![0; chunk],
            start: 0,
            end: 0,
            eof: false,
            started: false,
            text: String::with_capacity(chunk),
            text_pos: 0,
            suspect: 0,
            line: 1,
            core,
            out: vec![0; 256],
            ends: vec![0; 8],
            commas: Vec::with_capacity(8),
            quote: usize::MAX,
        }
    }

    /// The next record, or `None` at the end of the source.
    ///
    /// # Errors
    /// When reading the source fails.
    pub(crate) fn next(&mut self) -> io::Result<Option<Record<'_>>> {
        let line = self.line;
        // Terminators before a record are blank lines or the end of a CRLF: skipped, counted.
        loop {
            if self.start == self.end {
                if !self.fill()? {
                    return Ok(None);
                }
                continue;
            }
            match self.buf[self.start] {
                b'\n' => self.line += 1,
                b'\r' => {}
                _ => break,
            }
            self.consume(1);
        }
        if self.text_pos == self.text.len() {
            self.check_text()?;
        }
        if let Some(range) = self.quote_free_line() {
            let fields = Fields::Line { line: &self.text[range], commas: &self.commas };
            return Ok(Some(Record { line, fields }));
        }
        self.read_with_core(line)
    }

    /// Consumes the next record if it is a whole line of checked text without quotes, and
    /// its terminator; returns where the line is in `text`, its commas in `commas`.
    fn quote_free_line(&mut self) -> Option<Range<usize>> {
        let text = self.text.as_bytes();
        if self.quote < self.text_pos {
            self.quote = memchr(b'"', &text[self.text_pos..]).map_or(usize::MAX, |i| self.text_pos + i);
        }
        let rest = &text[self.text_pos..];
        let (len, consumed) = match scan_line(rest, &mut self.commas) {
            Line { len, .. } if self.text_pos + len > self.quote => return None,
            // One terminator is consumed with the record, as `csv_core` does: the `\n` of
            // a `\r\n` is left for the next.
            Line { len, terminated: true } => {
                self.line += u64::from(rest[len] == b'\n');
                (len, len + 1)
            }
            // The last line of the source, unterminated: whole only if nothing follows.
            Line { len, terminated: false } if self.eof && len > 0 && len == self.end - self.start => {
                (len, len)
            }
            Line { .. } => return None,
        };
        let range = self.text_pos..self.text_pos + len;
        self.consume(consumed);
        Some(range)
    }

    /// Reads the next record with `csv_core`, as `csv` does.
    fn read_with_core(&mut self, line: u64) -> io::Result<Option<Record<'_>>> {
        let (mut out_len, mut ends_len) = (0, 0);
        loop {
            let lines_before = self.core.line();
            let (result, read, written, ended) = self.core.read_record(
                &self.buf[self.start..self.end],
                &mut self.out[out_len..],
                &mut self.ends[ends_len..],
            );
            self.line += self.core.line() - lines_before;
            self.consume(read);
            out_len += written;
            ends_len += ended;
            match result {
                // At the end of the source the input stays empty: `csv_core` then ends the
                // record it is in, if any.
                ReadRecordResult::InputEmpty => {
                    self.fill()?;
                }
                ReadRecordResult::OutputFull => self.out.resize(self.out.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => {
                    let fields = Fields::Parsed { bytes: &self.out[..out_len], ends: &self.ends[..ends_len] };
                    return Ok(Some(Record { line, fields }));
                }
                ReadRecordResult::End => return Ok(None),
            }
        }
    }

    /// Puts in `text` the whole lines at the front of the unconsumed bytes (reading more
    /// first if they hold no line break yet), up to the first that is not UTF-8 (none, when
    /// it is the first: `csv_core` reads it).
    fn check_text(&mut self) -> io::Result<()> {
        let whole = loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(i) = memrchr2(b'\n', b'\r', pending) {
                break i + 1;
            }
            if self.eof {
                break pending.len();
            }
            self.fill()?;
        };
        let region = &self.buf[self.start..self.start + whole];
        let checked = if self.suspect == 0 {
            match simdutf8::basic::from_utf8(region) {
                Ok(text) => text,
                Err(_) => {
                    self.suspect = whole;
                    valid_lines(region)
                }
            }
        } else {
            valid_lines(&region[..whole.min(self.suspect)])
        };
        self.text.clear();
        self.text.push_str(checked);
        self.text_pos = 0;
        self.quote = memchr(b'"', self.text.as_bytes()).unwrap_or(usize::MAX);
        Ok(())
    }

    /// Marks `n` more bytes consumed.
    fn consume(&mut self, n: usize) {
        self.start += n;
        // Past the checked text (a record `csv_core` read beyond it), none of it is left.
        self.text_pos = (self.text_pos + n).min(self.text.len());
        self.suspect = self.suspect.saturating_sub(n);
    }

    /// Reads more of the source after the unconsumed bytes (moved to the front of the
    /// buffer, which doubles when they fill it). False at the end of the source.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        if !self.read_some()? {
            return Ok(false);
        }
        if !self.started {
            self.started = true;
            // Dropped when the source starts with it: what `csv_core` does with a file, whose
            // first read (its first input) holds all of the file up to 8 KiB.
            while self.end < BOM.len() && self.read_some()? {}
            if self.buf[..self.end].starts_with(BOM) {
                self.start = BOM.len();
            }
        }
        Ok(true)
    }

    /// One read of the source into the free end of the buffer; false (and `eof` set) when it
    /// has nothing more.
    fn read_some(&mut self) -> io::Result<bool> {
        let read = loop {
            match self.source.read(&mut self.buf[self.end..]) {
                Ok(read) => break read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        };
        self.end += read;
        self.eof = read == 0;
        Ok(read > 0)
    }
}

/// The longest run of whole lines at the front of `bytes` that is UTF-8; all of `bytes` when
/// it is UTF-8. Stops at the first bad byte.
fn valid_lines(bytes: &[u8]) -> &str {
    let valid = bytes.utf8_chunks().next().map_or("", |chunk| chunk.valid());
    if valid.len() == bytes.len() {
        return valid;
    }
    &valid[..valid.rfind(['\n', '\r']).map_or(0, |i| i + 1)]
}
