//! The journal's record format: checksummed, length-prefixed records, and the scan that reads
//! them back and stops at the first torn one. Bytes only: no files, no locks (the engine owns those).
//!
//! Layout: the 8-byte magic `LOTJRNL2`, then records. A record is a `u32` body length, a
//! `u32` CRC-32 (IEEE) of the body, then the body; every integer big-endian. The body's
//! first byte is its kind:
//!
//! | kind | body after the kind byte |
//! |---|---|
//! | 0 header | `u32` agencies expected |
//! | 1 batch | `u32` agency, `u64` sequence, `u64` bets, 16 bytes: the digest of its bets (`protocol::Digest`), `u32` w, w × `u32` winner positions, `u32` r, r bytes: the batch's winner rows exactly as appended to the winners file |
//! | 2 done | `u32` agency, `u64` batches |
//!
//! The first record is always the header. A crash can tear only the last record (the file
//! is append-only); the scan reports where the last whole, checksum-valid record ends, and
//! the engine cuts the file back there at start.

use std::fmt;

/// The file's first bytes; a version bump changes the last digit. Version 2 keeps each
/// batch's content digest.
pub const MAGIC: &[u8; 8] = b"LOTJRNL2";

/// The first version's magic: a journal without content digests, which this version cannot
/// continue (its batches could not be checked by content).
pub const MAGIC_V1: &[u8; 8] = b"LOTJRNL1";

/// Bytes before a record's body: length and checksum.
const RECORD_HEAD: usize = 8;

/// No honest record comes near this (a batch's rows are a few KiB); a longer length is a
/// torn or corrupt prefix, not a reason to read gigabytes.
const MAX_BODY: u32 = 16 << 20;

/// One entry of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The lottery's parameters; first in the file.
    Header {
        /// Agencies taking part.
        agencies: u32,
    },
    /// One committed batch.
    Batch {
        /// Its agency.
        agency: u32,
        /// Its sequence within the agency's upload.
        sequence: u64,
        /// Bets it held.
        bets: u64,
        /// The digest of its bets (`protocol::Digest::to_bytes`), from its first bet's place
        /// in the agency's upload.
        digest: [u8; 16],
        /// Positions of its winners in the batch, as answered.
        winners: Vec<u32>,
        /// Its rows of the winners file, byte for byte.
        rows: Vec<u8>,
    },
    /// An agency's `AgencyDone`.
    Done {
        /// The agency.
        agency: u32,
        /// Batches it said it sent.
        batches: u64,
    },
}

/// Why a journal cannot be used at all (as opposed to a torn tail, which is cut off).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// The file does not start with [`MAGIC`].
    NotAJournal,
    /// The file is a journal of the first version, without content digests.
    OldVersion,
    /// The first record is missing, torn, or not a header.
    NoHeader,
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unreadable::NotAJournal => write!(f, "not a lottery journal (bad magic bytes)"),
            Unreadable::OldVersion => write!(
                f,
                "a journal of an earlier version, without the batches' content digests: finish its \
                 lottery with that version, or delete it and its winners file to start a new one"
            ),
            Unreadable::NoHeader => write!(f, "the journal's header record is missing or damaged"),
        }
    }
}

/// What a scan found.
#[derive(Debug)]
pub struct Scan {
    /// Agencies, from the header.
    pub agencies: u32,
    /// The whole records after the header, in order, each with the offset where it ends.
    pub records: Vec<(Record, u64)>,
    /// Where the last whole record ends: the file's length once a torn tail is cut off.
    pub valid_len: u64,
}

impl Record {
    /// The record as it goes into the file: length, checksum, body.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Record::Header { agencies } => {
                let mut body = vec![0];
                body.extend_from_slice(&agencies.to_be_bytes());
                frame(&body)
            }
            Record::Batch { agency, sequence, bets, digest, winners, rows } => {
                encode_batch(*agency, *sequence, *bets, *digest, winners, rows)
            }
            Record::Done { agency, batches } => {
                let mut body = vec![2];
                body.extend_from_slice(&agency.to_be_bytes());
                body.extend_from_slice(&batches.to_be_bytes());
                frame(&body)
            }
        }
    }
}

/// A batch record as it goes into the file, from borrowed parts (what
/// `Record::Batch { .. }.encode()` gives, without building the record).
#[must_use]
pub fn encode_batch(
    agency: u32,
    sequence: u64,
    bets: u64,
    digest: [u8; 16],
    winners: &[u32],
    rows: &[u8],
) -> Vec<u8> {
    let mut body = Vec::with_capacity(1 + 4 + 8 + 8 + 16 + 4 + 4 * winners.len() + 4 + rows.len());
    body.push(1);
    body.extend_from_slice(&agency.to_be_bytes());
    body.extend_from_slice(&sequence.to_be_bytes());
    body.extend_from_slice(&bets.to_be_bytes());
    body.extend_from_slice(&digest);
    body.extend_from_slice(&(winners.len() as u32).to_be_bytes());
    for w in winners {
        body.extend_from_slice(&w.to_be_bytes());
    }
    body.extend_from_slice(&(rows.len() as u32).to_be_bytes());
    body.extend_from_slice(rows);
    frame(&body)
}

/// Length, checksum, body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_HEAD + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(body).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads a whole journal file's bytes: the header, then records up to the first one that is
/// incomplete, fails its checksum or does not parse.
///
/// # Errors
/// [`Unreadable`] when the magic or the header record is not there.
pub fn scan(bytes: &[u8]) -> Result<Scan, Unreadable> {
    if bytes.starts_with(&MAGIC_V1[..]) {
        return Err(Unreadable::OldVersion);
    }
    let rest = bytes.strip_prefix(&MAGIC[..]).ok_or(Unreadable::NotAJournal)?;
    let mut reader = Reader { bytes: rest, pos: 0 };
    let agencies = match reader.record() {
        Some(Record::Header { agencies }) => agencies,
        _ => return Err(Unreadable::NoHeader),
    };
    let mut records = Vec::new();
    let mut valid_len = (MAGIC.len() + reader.pos) as u64;
    while let Some(record) = reader.record() {
        valid_len = (MAGIC.len() + reader.pos) as u64;
        records.push((record, valid_len));
    }
    Ok(Scan { agencies, records, valid_len })
}

/// A cursor over the records after the magic.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    /// The next whole, valid record, advancing past it; `None` (not advancing) otherwise.
    fn record(&mut self) -> Option<Record> {
        let head = self.bytes.get(self.pos..self.pos + RECORD_HEAD)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let sum = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_BODY {
            return None;
        }
        let start = self.pos + RECORD_HEAD;
        let body = self.bytes.get(start..start + len as usize)?;
        if crc32(body) != sum {
            return None;
        }
        let record = parse(body)?;
        self.pos = start + len as usize;
        Some(record)
    }
}

fn parse(body: &[u8]) -> Option<Record> {
    let mut b = Fields(body);
    let record = match b.u8()? {
        0 => Record::Header { agencies: b.u32()? },
        1 => {
            let agency = b.u32()?;
            let sequence = b.u64()?;
            let bets = b.u64()?;
            let digest: [u8; 16] = b.take(16)?.try_into().ok()?;
            let count = b.u32()? as usize;
            // Each position takes 4 bytes: a count beyond what remains is corrupt.
            if count > b.0.len() / 4 {
                return None;
            }
            let winners = (0..count).map(|_| b.u32()).collect::<Option<Vec<u32>>>()?;
            let rows_len = b.u32()? as usize;
            let rows = b.take(rows_len)?.to_vec();
            Record::Batch { agency, sequence, bets, digest, winners, rows }
        }
        2 => Record::Done { agency: b.u32()?, batches: b.u64()? },
        _ => return None,
    };
    // A body with bytes left over was not written by `encode`.
    b.0.is_empty().then_some(record)
}

/// Big-endian fields read off the front of a body.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes)
    }
}

/// CRC-32 (IEEE 802.3, reflected, the one of zip and Ethernet).
#[must_use]
pub fn crc32(bytes: &[u8]) -> u32 {
    // Eight bytes at a time through eight tables ("slicing-by-8"), not a byte at a time: a
    // byte's table lookup waits for the one before, and the byte loop was about 3% of the
    // central's time over a million-bet upload. Eight lookups of a word are independent.
    let mut crc = !0u32;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let low = crc ^ u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        let high = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        let byte = |value: u32, shift: u32| usize::from((value >> shift) as u8);
        crc = CRC32_TABLES[7][byte(low, 0)]
            ^ CRC32_TABLES[6][byte(low, 8)]
            ^ CRC32_TABLES[5][byte(low, 16)]
            ^ CRC32_TABLES[4][byte(low, 24)]
            ^ CRC32_TABLES[3][byte(high, 0)]
            ^ CRC32_TABLES[2][byte(high, 8)]
            ^ CRC32_TABLES[1][byte(high, 16)]
            ^ CRC32_TABLES[0][byte(high, 24)];
    }
    for &byte in words.remainder() {
        crc = (crc >> 8) ^ CRC32_TABLES[0][usize::from((crc as u8) ^ byte)];
    }
    !crc
}

/// Tables for [`crc32`], built when compiling: the first is the CRC-32 (IEEE, reflected,
/// polynomial `0xedb88320`) of every byte value; table `k` is the CRC of a byte followed by
/// `k` zero bytes, so eight bytes are folded in with one lookup each.
const CRC32_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xedb8_8320 & mask);
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let previous = tables[k - 1][i];
            tables[k][i] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(records: &[Record]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(Record::Header { agencies: 3 }.encode());
        for r in records {
            bytes.extend(r.encode());
        }
        bytes
    }

    fn batch(sequence: u64) -> Record {
        Record::Batch {
            agency: 2,
            sequence,
            bets: 100,
            digest: [sequence as u8; 16],
            winners: vec![3, 50],
            rows: "2,Ana,Díaz,1,2000-01-31\n2,\"O\"\"B\",X,2,2000-01-01\n".into(),
        }
    }

    #[test]
    fn a_journal_of_the_first_version_is_refused_with_what_to_do() {
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend(Record::Header { agencies: 3 }.encode());
        assert_eq!(scan(&bytes).unwrap_err(), Unreadable::OldVersion);
        assert!(Unreadable::OldVersion.to_string().contains("delete it"));
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        // Every length around the eight-byte steps, against the bitwise definition.
        let bitwise = |bytes: &[u8]| {
            let mut crc = !0u32;
            for &byte in bytes {
                crc ^= u32::from(byte);
                for _ in 0..8 {
                    crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
                }
            }
            !crc
        };
        let bytes: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..bytes.len() {
            assert_eq!(crc32(&bytes[..len]), bitwise(&bytes[..len]), "{len} bytes");
            assert_eq!(crc32(&bytes[len..]), bitwise(&bytes[len..]), "from {len}");
        }
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"The quick brown fox jumps over the lazy dog"), 0x414f_a339);
    }

    #[test]
    fn records_read_back_as_written() {
        let records = [batch(1), batch(2), Record::Done { agency: 2, batches: 2 }];
        let bytes = journal(&records);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.agencies, 3);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        let read: Vec<Record> = scan.records.into_iter().map(|(r, _)| r).collect();
        assert_eq!(read, records);
    }

    #[test]
    fn a_last_record_cut_at_any_byte_is_discarded_and_the_rest_kept() {
        let whole = journal(&[batch(1), batch(2)]);
        let first_end = journal(&[batch(1)]).len();
        for cut in first_end..whole.len() {
            let scan = scan(&whole[..cut]).unwrap();
            assert_eq!(scan.records.len(), 1, "cut at {cut}");
            assert_eq!(scan.valid_len, first_end as u64, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_bit_in_the_last_record_fails_its_checksum() {
        let whole = journal(&[batch(1), batch(2)]);
        let first_end = journal(&[batch(1)]).len();
        for i in first_end..whole.len() {
            let mut bytes = whole.clone();
            bytes[i] ^= 0x10;
            let scan = scan(&bytes).unwrap();
            assert_eq!(scan.valid_len, first_end as u64, "flip at {i}");
        }
    }

    #[test]
    fn a_file_without_magic_or_header_is_unreadable() {
        assert_eq!(scan(b"agency,first_name").unwrap_err(), Unreadable::NotAJournal);
        assert_eq!(scan(MAGIC).unwrap_err(), Unreadable::NoHeader);
        let mut bytes = MAGIC.to_vec();
        bytes.extend(batch(1).encode());
        assert_eq!(scan(&bytes).unwrap_err(), Unreadable::NoHeader);
    }
}
