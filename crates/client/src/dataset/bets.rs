//! An agency's dataset: a CSV file without header, one bet a row
//! (`first_name,last_name,document,birthdate`), read as a stream.
//!
//! Rows that are not valid bets are logged as `path:line: reason`, skipped and counted;
//! only an unreadable file stops the reading. Valid rows are handed out borrowed
//! ([`Dataset::next_row`]): the upload copies their fields straight into a batch, with no
//! allocation a row.

use std::{
    fmt,
    fs::File,
    io,
    path::{Path, PathBuf},
};

use protocol::{BetRef, InvalidBet};

use super::records::{Fields, Records, CHUNK};

/// Reads valid bets from a dataset, one at a time.
#[derive(Debug)]
pub struct Dataset {
    records: Records<File>,
    path: PathBuf,
    skipped: u64,
}

/// What the next row of a dataset is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row<'a> {
    /// A valid bet.
    Bet(BetRef<'a>),
    /// A row that is not a valid bet: already logged and counted in [`Dataset::skipped`].
    Skipped,
    /// The end of the file.
    End,
}

/// A dataset that could not be read.
#[derive(Debug)]
pub struct DatasetError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for DatasetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot read dataset {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for DatasetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl Dataset {
    /// Opens the dataset at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn open(path: &Path) -> Result<Dataset, DatasetError> {
        let fail = |source| DatasetError { path: path.to_owned(), source };
        let file = File::open(path).map_err(fail)?;
        // A directory opens on Linux and fails only at the first read; say it at once (Docker
        // makes one where a mounted file was missing).
        if file.metadata().map_err(fail)?.is_dir() {
            return Err(fail(io::Error::other("it is a directory, not a CSV file")));
        }
        Ok(Dataset { records: Records::new(file, CHUNK), path: path.to_owned(), skipped: 0 })
    }

    /// The next row: a valid bet, borrowed until the next call; a row skipped (logged and
    /// counted in [`Dataset::skipped`]); or the end of the file.
    ///
    /// # Errors
    /// When reading the file fails.
    pub fn next_row(&mut self) -> Result<Row<'_>, DatasetError> {
        let record = match self.records.next() {
            Ok(Some(record)) => record,
            Ok(None) => return Ok(Row::End),
            Err(source) => return Err(DatasetError { path: self.path.clone(), source }),
        };
        match parse_row(record.fields) {
            Ok(bet) => Ok(Row::Bet(bet)),
            Err(reason) => {
                log::warn!(
                    "action: read_bet | result: fail | error: {}:{}: {reason}",
                    self.path.display(),
                    record.line
                );
                self.skipped += 1;
                Ok(Row::Skipped)
            }
        }
    }

    /// Rows skipped so far because they were not valid bets.
    #[must_use]
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// Why a row is not a bet.
#[derive(Debug, PartialEq, Eq)]
enum RowError {
    Invalid(InvalidBet),
    NotUtf8(usize),
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::Invalid(e) => e.fmt(f),
            RowError::NotUtf8(field) => write!(f, "field {field} is not valid UTF-8"),
        }
    }
}

fn parse_row(fields: Fields<'_>) -> Result<BetRef<'_>, RowError> {
    match fields {
        Fields::Line { line, commas } => parse_line(line, commas),
        Fields::Parsed { bytes, ends } => parse_parsed(bytes, ends),
    }
}

/// A line of text without quotes: its fields are its parts between commas.
fn parse_line<'a>(line: &'a str, commas: &[usize]) -> Result<BetRef<'a>, RowError> {
    let &[a, b, c] = commas else {
        return Err(RowError::Invalid(InvalidBet::FieldCount(commas.len() + 1)));
    };
    // Commas are ASCII, so every cut is between two characters.
    BetRef::new(&line[..a], &line[a + 1..b], &line[b + 1..c], &line[c + 1..]).map_err(RowError::Invalid)
}

/// A record `csv_core` read: its fields' bytes are not checked yet.
fn parse_parsed<'a>(bytes: &'a [u8], ends: &[usize]) -> Result<BetRef<'a>, RowError> {
    if ends.len() != 4 {
        return Err(RowError::Invalid(InvalidBet::FieldCount(ends.len())));
    }
    let range = |i: usize| if i == 0 { 0 } else { ends[i - 1] }..ends[i];
    // One UTF-8 check of the row's four fields together, then each field taken from it at
    // its range: `get` also refuses a field that ends inside a character, so every field is
    // UTF-8 by itself, as when each was checked alone. A row that is not UTF-8 is checked
    // field by field, to name the field.
    let Ok(row) = std::str::from_utf8(bytes) else {
        let bad = (0..4).find(|&i| std::str::from_utf8(&bytes[range(i)]).is_err()).unwrap_or(0);
        return Err(RowError::NotUtf8(bad + 1));
    };
    let field = |i: usize| -> Result<&str, RowError> { row.get(range(i)).ok_or(RowError::NotUtf8(i + 1)) };
    BetRef::new(field(0)?, field(1)?, field(2)?, field(3)?).map_err(RowError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    use csv::{ByteRecord, ReaderBuilder};
    use protocol::{Bet, WireBet};

    /// A dataset holding `bytes`. The file is unlinked at once: the open dataset keeps
    /// reading it, and nothing is left behind in the temp dir.
    fn dataset(bytes: &[u8]) -> Dataset {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        Dataset::open(file.path()).unwrap()
    }

    /// The next valid bet, with its own strings.
    fn next_bet(d: &mut Dataset) -> Option<Bet> {
        loop {
            match d.next_row().unwrap() {
                Row::Bet(bet) => return Some(Bet::from(bet)),
                Row::Skipped => {}
                Row::End => return None,
            }
        }
    }

    fn all(mut d: Dataset) -> (Vec<Bet>, u64) {
        let mut bets = Vec::new();
        while let Some(bet) = next_bet(&mut d) {
            bets.push(bet);
        }
        (bets, d.skipped())
    }

    /// What a row came to: its four fields, or the line and reason it was skipped with.
    type Outcome = Result<[String; 4], (u64, String)>;

    fn owned(bet: BetRef<'_>) -> [String; 4] {
        [bet.first_name(), bet.last_name(), bet.document(), bet.birthdate_str()].map(str::to_owned)
    }

    /// The rows of `records` as the dataset takes them.
    fn outcomes<R: std::io::Read>(mut records: Records<R>) -> Vec<Outcome> {
        let mut seen = Vec::new();
        while let Some(record) = records.next().unwrap() {
            seen.push(parse_row(record.fields).map(owned).map_err(|e| (record.line, e.to_string())));
        }
        seen
    }

    /// The rows of `bytes` as the agency took them before it read chunks itself: the `csv`
    /// crate's records, configured as then, each checked whole by `Bet::from_fields`.
    fn reference(source: impl std::io::Read) -> Vec<Outcome> {
        let mut reader = ReaderBuilder::new().has_headers(false).flexible(true).from_reader(source);
        let mut record = ByteRecord::new();
        let mut seen = Vec::new();
        while reader.read_byte_record(&mut record).unwrap() {
            let line = record.position().map_or(0, csv::Position::line);
            let outcome = if record.len() != 4 {
                Err(RowError::Invalid(InvalidBet::FieldCount(record.len())))
            } else if let Ok(row) = std::str::from_utf8(record.as_slice()) {
                let field = |i: usize| {
                    record.range(i).and_then(|range| row.get(range)).ok_or(RowError::NotUtf8(i + 1))
                };
                match (field(0), field(1), field(2), field(3)) {
                    (Ok(a), Ok(b), Ok(c), Ok(d)) => Bet::from_fields(a, b, c, d)
                        .map(WireBet::from)
                        .map(|w| [w.first_name, w.last_name, w.document, w.birthdate])
                        .map_err(RowError::Invalid),
                    (a, b, c, d) => {
                        Err([a.err(), b.err(), c.err(), d.err()].into_iter().flatten().next().unwrap())
                    }
                }
            } else {
                let bad = (0..4).find(|&i| std::str::from_utf8(&record[i]).is_err()).unwrap_or(0);
                Err(RowError::NotUtf8(bad + 1))
            };
            seen.push(outcome.map_err(|e| (line, e.to_string())));
        }
        seen
    }

    /// Rows that are not bets for every reason there is, and rows that are, in every form.
    const MIXED: &[u8] = b"Santiago Lionel,Lorca,30904465,1999-03-17\n\
        Ana,D\xffaz,6,2000-01-01\n\
        Ana,Diaz,7,2000-01-01,extra\n\
        Ana,Diaz,5\n\
        \"Ana, Mar\xc3\xada\",Salda\xc3\xb1a,1,2000-02-29\n\
        Ana,Diaz,1,2000-02-30\n\
        ,Diaz,2,2000-01-01\n\
        \"Ana\",Diaz,x3,2000-01-01\n\
        \n\n\
        Ana\xc3,\xb1ez,1,2000-01-01\r\n\
        \"Ana \"\"la\"\" \xff\",Diaz,3,2000-01-01\r\
        \"Ana\nMar\xc3\xada\",D\xc3\xadaz,4,2001-01-31\n\
        Ana \"la\",Diaz,3,2000-01-01\n\
        \xef\xbb\xbfAna,Diaz,8,2000-12-31\n\
        Tiago Nicol\xc3\xa1s,Fornero\xcc\x81n,34407251,2001-08-29";

    #[test]
    fn bad_rows_in_a_file_are_skipped_with_the_line_and_reason_they_always_had() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, MIXED).unwrap();
        let seen = outcomes(Records::new(File::open(file.path()).unwrap(), CHUNK));
        assert_eq!(seen, reference(MIXED));
        let reasons: Vec<_> = seen.iter().filter_map(|o| o.as_ref().err()).collect();
        let line = |n: u64, reason: &str| (n, reason.to_owned());
        assert_eq!(
            reasons,
            [
                &line(2, "field 2 is not valid UTF-8"),
                &line(3, "expected 4 fields (first_name,last_name,document,birthdate), found 5"),
                &line(4, "expected 4 fields (first_name,last_name,document,birthdate), found 3"),
                &line(6, "birthdate \"2000-02-30\" is not a real date written YYYY-MM-DD"),
                &line(7, "first_name is empty"),
                &line(8, "document \"x3\" is not 1 to 32 ASCII digits"),
                &line(9, "field 1 is not valid UTF-8"),
                &line(11, "field 1 is not valid UTF-8"),
            ]
        );
        let (bets, skipped) = all(dataset(MIXED));
        assert_eq!(skipped, 8);
        let names: Vec<_> = bets.iter().map(|b| (b.first_name(), b.document())).collect();
        assert_eq!(
            names,
            [
                ("Santiago Lionel", "30904465"),
                ("Ana, María", "1"),
                ("Ana\nMaría", "4"),
                ("Ana \"la\"", "3"),
                ("\u{feff}Ana", "8"),
                ("Tiago Nicolás", "34407251")
            ]
        );
    }

    #[test]
    fn a_byte_order_mark_at_the_start_is_dropped() {
        let (bets, skipped) =
            all(dataset(b"\xef\xbb\xbfAna,Diaz,1,2000-01-01\n\xef\xbb\xbfAna,Diaz,2,2000-01-01\n"));
        assert_eq!(skipped, 0);
        assert_eq!(bets[0].first_name(), "Ana");
        assert_eq!(bets[1].first_name(), "\u{feff}Ana");
    }

    #[test]
    fn reads_the_course_format_with_accents_and_quotes() {
        let (bets, skipped) = all(dataset(
            "Santiago Lionel,Lorca,30904465,1999-03-17\nTiago Nicolás,Fornerón,34407251,2001-08-29\n\"Ana, María\",Saldaña,1,2000-02-29".as_bytes(),
        ));
        assert_eq!(skipped, 0);
        assert_eq!(bets.len(), 3);
        assert_eq!(bets[1].last_name(), "Fornerón");
        assert_eq!(bets[2].first_name(), "Ana, María");
    }

    #[test]
    fn invalid_rows_are_skipped_and_counted() {
        let mut bytes =
            b"Ana,Diaz,1,2000-01-01\n,Diaz,2,2000-01-01\nAna,Diaz,x3,2000-01-01\nAna,Diaz,4,2000-02-30\n"
                .to_vec();
        bytes.extend_from_slice(
            b"Ana,Diaz,5\nAna,D\xffaz,6,2000-01-01\nAna,Diaz,7,2000-01-01,extra\nAna,Diaz,8,2000-01-01\n",
        );
        let (bets, skipped) = all(dataset(&bytes));
        assert_eq!(skipped, 6);
        assert_eq!(bets.iter().map(Bet::document).collect::<Vec<_>>(), ["1", "8"]);
    }

    #[test]
    fn a_field_not_utf8_by_itself_is_named() {
        // "ñ" is c3 b1, cut by the comma: the row's bytes without it would be UTF-8.
        let mut d =
            dataset(b"Ana\xc3,\xb1ez,1,2000-01-01\nAna,Diaz,2,2000-01-01\nAna,Diaz,3,2000\xff01-01\n");
        let bet = next_bet(&mut d).unwrap();
        assert_eq!(bet.document(), "2");
        assert_eq!(d.skipped(), 1);
        assert!(next_bet(&mut d).is_none());
        assert_eq!(d.skipped(), 2);
        let reason = |bytes: &[u8]| outcomes(Records::new(bytes, CHUNK))[0].clone().unwrap_err().1;
        assert_eq!(reason(b"Ana\xc3,\xb1ez,1,2000-01-01"), "field 1 is not valid UTF-8");
        assert_eq!(reason(b"Ana,Diaz,3,2000\xff01-01"), "field 4 is not valid UTF-8");
        assert_eq!(reason(b"Ana,D\xffaz,3,2000-01-01"), "field 2 is not valid UTF-8");
        assert_eq!(reason(b"\"Ana\xc3\",\xb1ez,1,2000-01-01"), "field 1 is not valid UTF-8");
    }

    #[test]
    fn rows_come_as_borrowed_bets_skips_and_the_end() {
        let mut d = dataset(b"Ana,Diaz,1,2000-01-01\nAna,Diaz,2\n");
        assert!(matches!(d.next_row().unwrap(), Row::Bet(bet) if bet.document() == "1"));
        assert_eq!(d.next_row().unwrap(), Row::Skipped);
        assert_eq!(d.next_row().unwrap(), Row::End);
        assert_eq!(d.next_row().unwrap(), Row::End);
        assert_eq!(d.skipped(), 1);
    }

    #[test]
    fn an_empty_file_has_no_bets() {
        assert_eq!(all(dataset(b"")).0.len(), 0);
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = Dataset::open(Path::new("/nonexistent/dataset-9.csv")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/dataset-9.csv"), "{err}");
    }

    /// A reader that gives at most `step` bytes a read: chunk edges everywhere.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Pseudo-random bytes drawn from the pieces rows are made of, good and bad.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        const PIECES: &[&[u8]] = &[
            b"Ana",
            b"Mar\xc3\xada",
            b"1",
            b"42",
            b"2000-02-29",
            b"1999-02-29",
            b"2001-08-29",
            b",",
            b",",
            b",",
            b",",
            b"\n",
            b"\n",
            b"\r\n",
            b"\r",
            b"\"",
            b"\"\"",
            b" ",
            b"\xff",
            b"\xc3",
            b"\xb1",
            b"\xef\xbb\xbf",
            b"x",
            b"",
            b"\t",
        ];
        let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let mut bytes = Vec::new();
        while bytes.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.extend_from_slice(PIECES[(state % PIECES.len() as u64) as usize]);
        }
        bytes
    }

    /// Mostly well-formed rows, some broken: what a real dataset with mistakes looks like.
    fn rows(seed: u64, count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        for i in 0..count {
            let line = format!("Nombre {i},Pérez,{},2000-0{}-2{}\n", 30_000_000 + i, i % 9 + 1, i % 10);
            bytes.extend_from_slice(line.as_bytes());
            if (i as u64 + seed).is_multiple_of(7) {
                bytes.extend_from_slice(&noise(seed + i as u64, 12));
                bytes.push(b'\n');
            }
        }
        bytes
    }

    #[test]
    fn every_row_is_taken_or_skipped_as_the_csv_crate_had_it() {
        for seed in 0..400u64 {
            let bytes = if seed.is_multiple_of(2) { noise(seed, 200) } else { rows(seed, 40) };
            // `csv` read files: its first input held the file's first 8 KiB.
            let expected = reference(&bytes[..]);
            for (chunk, step) in [(CHUNK, usize::MAX), (1, 1), (7, 3), (16, 64), (64, 5), (200, 1000)] {
                let seen = outcomes(Records::new(Trickle { bytes: &bytes, step }, chunk));
                assert_eq!(
                    seen,
                    expected,
                    "seed {seed}, chunk {chunk}, step {step}: {:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
    }
}
