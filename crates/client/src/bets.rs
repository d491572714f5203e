//! An agency's dataset: a CSV file without header, one bet a row
//! (`first_name,last_name,document,birthdate`), read as a stream.
//!
//! Rows that are not valid bets are logged as `path:line: reason`, skipped and counted;
//! only an unreadable file stops the reading.

use std::{
    fmt,
    fs::File,
    path::{Path, PathBuf},
};

use csv::{ByteRecord, ReaderBuilder};
use protocol::{Bet, InvalidBet};

/// Reads valid bets from a dataset, one at a time.
#[derive(Debug)]
pub struct Dataset {
    reader: csv::Reader<File>,
    path: PathBuf,
    record: ByteRecord,
    skipped: u64,
}

/// A dataset that could not be read.
#[derive(Debug)]
pub struct DatasetError {
    path: PathBuf,
    source: csv::Error,
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
        let reader = ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(path)
            .map_err(|source| DatasetError { path: path.to_owned(), source })?;
        Ok(Dataset { reader, path: path.to_owned(), record: ByteRecord::new(), skipped: 0 })
    }

    /// The next valid bet, or `None` at the end of the file. Invalid rows on the way are
    /// logged and counted in [`Dataset::skipped`].
    ///
    /// # Errors
    /// When reading the file fails.
    pub fn next_bet(&mut self) -> Result<Option<Bet>, DatasetError> {
        loop {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => return Ok(None),
                Ok(true) => {}
                Err(source) => return Err(DatasetError { path: self.path.clone(), source }),
            }
            match parse_row(&self.record) {
                Ok(bet) => return Ok(Some(bet)),
                Err(reason) => {
                    let line = self.record.position().map_or(0, csv::Position::line);
                    log::warn!(
                        "action: read_bet | result: fail | error: {}:{line}: {reason}",
                        self.path.display()
                    );
                    self.skipped += 1;
                }
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
#[derive(Debug)]
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

fn parse_row(record: &ByteRecord) -> Result<Bet, RowError> {
    if record.len() != 4 {
        return Err(RowError::Invalid(InvalidBet::FieldCount(record.len())));
    }
    // One UTF-8 check of the row's four fields together (a check per field cost more than
    // the bytes), then each field taken from it at its range: `get` also refuses a field that
    // ends inside a character, so every field is UTF-8 by itself, as when each was checked
    // alone. A row that is not UTF-8 is checked field by field, to name the field.
    let Ok(row) = std::str::from_utf8(record.as_slice()) else {
        let bad = (0..4).find(|&i| std::str::from_utf8(&record[i]).is_err()).unwrap_or(0);
        return Err(RowError::NotUtf8(bad + 1));
    };
    let field = |i: usize| -> Result<&str, RowError> {
        record.range(i).and_then(|range| row.get(range)).ok_or(RowError::NotUtf8(i + 1))
    };
    Bet::from_fields(field(0)?, field(1)?, field(2)?, field(3)?).map_err(RowError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dataset holding `bytes`. The file is unlinked at once: the open dataset keeps
    /// reading it, and nothing is left behind in the temp dir.
    fn dataset(bytes: &[u8]) -> Dataset {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        Dataset::open(file.path()).unwrap()
    }

    fn all(mut d: Dataset) -> (Vec<Bet>, u64) {
        let mut bets = Vec::new();
        while let Some(bet) = d.next_bet().unwrap() {
            bets.push(bet);
        }
        (bets, d.skipped())
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
        let bet = d.next_bet().unwrap().unwrap();
        assert_eq!(bet.document(), "2");
        assert_eq!(d.skipped(), 1);
        assert!(d.next_bet().unwrap().is_none());
        assert_eq!(d.skipped(), 2);
        let record = |bytes: &[u8]| {
            let mut reader = ReaderBuilder::new().has_headers(false).from_reader(bytes);
            let mut record = ByteRecord::new();
            assert!(reader.read_byte_record(&mut record).unwrap());
            record
        };
        let reason = |bytes: &[u8]| parse_row(&record(bytes)).unwrap_err().to_string();
        assert_eq!(reason(b"Ana\xc3,\xb1ez,1,2000-01-01"), "field 1 is not valid UTF-8");
        assert_eq!(reason(b"Ana,Diaz,3,2000\xff01-01"), "field 4 is not valid UTF-8");
        assert_eq!(reason(b"Ana,D\xffaz,3,2000-01-01"), "field 2 is not valid UTF-8");
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
}
