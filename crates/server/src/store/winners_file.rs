//! The winners file: the journal's view for people, one line per winning bet, in commit
//! order. Its formats live here only: the header, the rows of a batch, and the repair that
//! makes the file exactly the rows the journal holds.
//!
//! Two formats (`SERVER_WINNERS_FORMAT`): `csv`, the default, a header and one CSV row per
//! winner with its agency (`1,Ana,Díaz,30123456,1990-01-31`), which parses unambiguously; and
//! `course`, the lines of the course's own `persist_winners` helper (`Full name: Ana Díaz |
//! Document: 30123456 | Date of Birth: 31/01/1990`, no header, no agency), for comparing with
//! the course's reference. The journal always keeps the CSV rows; the file is rendered from
//! them in the chosen format, so the format may change between two starts of one lottery.

use std::{
    borrow::Cow,
    fs::{self, OpenOptions},
    io::{self, Write},
    path::Path,
};

use protocol::BetRef;

/// The winners file's header row.
pub(in crate::store) const HEADER: &str = "agency,first_name,last_name,document,birthdate";

/// How the winners file writes each winner.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WinnersFormat {
    /// A header, then `agency,first_name,last_name,document,birthdate` rows (CSV quoting,
    /// dates `YYYY-MM-DD`).
    #[default]
    Csv,
    /// The course's `persist_winners` lines: `Full name: <first> <last> | Document:
    /// <document> | Date of Birth: <dd/mm/YYYY>`, no header.
    Course,
}

impl WinnersFormat {
    /// The format named `csv` or `course` (any case).
    #[must_use]
    pub fn parse(name: &str) -> Option<WinnersFormat> {
        match name.trim().to_ascii_lowercase().as_str() {
            "csv" => Some(WinnersFormat::Csv),
            "course" => Some(WinnersFormat::Course),
            _ => None,
        }
    }

    /// Its name, as the setting says it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            WinnersFormat::Csv => "csv",
            WinnersFormat::Course => "course",
        }
    }

    /// What the file starts with.
    pub(in crate::store) fn header_line(self) -> Vec<u8> {
        match self {
            WinnersFormat::Csv => format!("{HEADER}\n").into_bytes(),
            WinnersFormat::Course => Vec::new(),
        }
    }

    /// The file's lines for a batch being stored: its `csv_rows` ([`format_rows`] of
    /// `winners`) as they are, or the course's lines rendered from the checked bets
    /// themselves.
    pub(in crate::store) fn lines<'a>(self, csv_rows: &'a [u8], winners: &[BetRef<'_>]) -> Cow<'a, [u8]> {
        match self {
            WinnersFormat::Csv => Cow::Borrowed(csv_rows),
            WinnersFormat::Course => Cow::Owned(
                winners
                    .iter()
                    .flat_map(|bet| {
                        course_line(bet.first_name(), bet.last_name(), bet.document(), bet.birthdate_str())
                            .into_bytes()
                    })
                    .collect(),
            ),
        }
    }

    /// The file's lines for `csv_rows` as the journal keeps them (rows as [`format_rows`]
    /// makes them): what recovery rebuilds the file from, where no checked bet is at hand.
    pub(in crate::store) fn view<'a>(self, csv_rows: &'a [u8]) -> io::Result<Cow<'a, [u8]>> {
        match self {
            WinnersFormat::Csv => Ok(Cow::Borrowed(csv_rows)),
            WinnersFormat::Course => {
                let mut reader = csv::ReaderBuilder::new().has_headers(false).from_reader(csv_rows);
                let mut out = Vec::with_capacity(csv_rows.len() * 2);
                for record in reader.records() {
                    let record = record.map_err(io::Error::other)?;
                    let field = |i: usize| record.get(i).unwrap_or_default();
                    out.extend(course_line(field(1), field(2), field(3), field(4)).into_bytes());
                }
                Ok(Cow::Owned(out))
            }
        }
    }
}

/// One line of the course's `persist_winners`; `date` is `YYYY-MM-DD`.
pub(in crate::store) fn course_line(first: &str, last: &str, document: &str, date: &str) -> String {
    let mut parts = date.splitn(3, '-');
    let (year, month, day) =
        (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    format!("Full name: {first} {last} | Document: {document} | Date of Birth: {day}/{month}/{year}\n")
}

/// The csv writer's staging buffer in [`format_rows`]: any size writes the same bytes.
const ROWS_BUFFER: usize = 512;

/// The CSV rows (csv quoting, dates as `YYYY-MM-DD`) for `winners` of `agency`.
pub(in crate::store) fn format_rows(agency: u32, winners: &[BetRef<'_>]) -> io::Result<Vec<u8>> {
    // The writer's own buffer only stages bytes for the `Vec`; csv's default (8 KiB, zeroed
    // for every batch) was 6% of the central's instructions, where a batch's few winners
    // take a few hundred bytes.
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .buffer_capacity(ROWS_BUFFER)
        .from_writer(Vec::with_capacity(winners.len() * 64));
    let agency = agency.to_string();
    for bet in winners {
        writer.write_record([
            agency.as_bytes(),
            bet.first_name().as_bytes(),
            bet.last_name().as_bytes(),
            bet.document().as_bytes(),
            bet.birthdate_str().as_bytes(),
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error())
}

/// Makes the winners file hold exactly `view`: cuts off rows the journal does not hold (a
/// batch appended but never committed), or rewrites the file if it lost or changed rows.
pub(in crate::store) fn repair(path: &Path, view: &[u8]) -> io::Result<()> {
    let current = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    if current.starts_with(view) {
        if current.len() > view.len() {
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(view.len() as u64)?;
            file.sync_all()?;
            log::info!(
                "action: winners_repair | result: success | path: {} | discarded_bytes: {} | note: rows of a batch never acknowledged",
                path.display(),
                current.len() - view.len()
            );
        }
        return Ok(());
    }
    let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    file.write_all(view)?;
    file.sync_all()?;
    log::warn!(
        "action: winners_repair | result: success | path: {} | rewritten_bytes: {} | note: the winners file did not match the journal and was rebuilt from it",
        path.display(),
        view.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_course_format_is_the_course_helpers_line() {
        let bets = [
            BetRef::new("Ana María", "Díaz", "30123456", "1990-01-31").unwrap(),
            BetRef::new("Joe, Jr", "O\"Brien", "1", "2001-12-02").unwrap(),
        ];
        let rows = format_rows(7, &bets).unwrap();
        assert_eq!(WinnersFormat::Csv.view(&rows).unwrap(), rows.as_slice());
        assert_eq!(
            String::from_utf8(WinnersFormat::Course.view(&rows).unwrap().into_owned()).unwrap(),
            "Full name: Ana María Díaz | Document: 30123456 | Date of Birth: 31/01/1990\n\
             Full name: Joe, Jr O\"Brien | Document: 1 | Date of Birth: 02/12/2001\n"
        );
        assert!(WinnersFormat::Course.header_line().is_empty());
        assert_eq!(WinnersFormat::parse("COURSE"), Some(WinnersFormat::Course));
        assert_eq!(WinnersFormat::parse("json"), None);
    }

    #[test]
    fn rows_longer_than_the_writers_buffer_are_written_whole() {
        let (first, last) = ("\"Ñ,".repeat(64), "a\"".repeat(128));
        let bets = [
            BetRef::new(&first, &last, "30123456", "1990-01-31").unwrap(),
            BetRef::new("Ana", &last, "1", "2001-12-02").unwrap(),
        ];
        let mut expected = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
        for bet in &bets {
            expected
                .write_record(["7", bet.first_name(), bet.last_name(), bet.document(), bet.birthdate_str()])
                .unwrap();
        }
        let expected = expected.into_inner().unwrap();
        assert!(expected.len() > 2 * ROWS_BUFFER);
        assert_eq!(format_rows(7, &bets).unwrap(), expected);
    }
}
