//! The winners file: the journal's view for people, a CSV with a header and one row per
//! winning bet, in commit order. Its format lives here only: the header, the rows of a batch,
//! and the repair that makes the file exactly the rows the journal holds.

use std::{
    fs::{self, OpenOptions},
    io::{self, Write},
    path::Path,
};

use protocol::Bet;

/// The winners file's header row.
pub(in crate::store) const HEADER: &str = "agency,first_name,last_name,document,birthdate";

/// The header line, as the file starts.
pub(in crate::store) fn header_line() -> Vec<u8> {
    format!("{HEADER}\n").into_bytes()
}

/// The CSV rows (csv quoting, dates as `YYYY-MM-DD`) for `winners` of `agency`.
pub(in crate::store) fn format_rows(agency: u32, winners: &[&Bet]) -> io::Result<Vec<u8>> {
    let mut writer = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    let agency = agency.to_string();
    for bet in winners {
        let date = bet.birthdate_bytes();
        writer.write_record([
            agency.as_bytes(),
            bet.first_name().as_bytes(),
            bet.last_name().as_bytes(),
            bet.document().as_bytes(),
            &date,
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
