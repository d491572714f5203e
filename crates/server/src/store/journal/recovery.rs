//! Opening the journal engine's two files at start: a new lottery when there is no journal, else the
//! previous one rebuilt from its journal.
//!
//! The journal is the truth; the winners file is its view (the header, then every committed
//! batch's rows in commit order). Recovery reads the journal up to its first torn record and
//! cuts that tail off, replays every whole record into per-agency state, then makes the
//! winners file exactly the rows the journal holds: rows of a batch that was appended but
//! never committed are cut off, and a file that lost rows (or was replaced) is rewritten.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use protocol::Digest;

use super::record::{self, Record};
use crate::store::{
    error::StoreError,
    ledger::Ledger,
    winners_file::{self, WinnersFormat},
};

/// The engine's files, open for appending, and the state they hold.
#[derive(Debug)]
pub(super) struct Opened {
    pub winners: File,
    pub winners_len: u64,
    pub journal: File,
    pub journal_len: u64,
    pub ledger: Ledger,
}

/// Why the files cannot be opened.
#[derive(Debug)]
pub(super) enum OpenError {
    /// A file cannot be created, read, written or synced.
    Io(io::Error),
    /// The journal cannot be used: not a journal, damaged beyond a torn tail, or of another
    /// lottery. The text says which and what to do.
    Unusable(String),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(e) => write!(f, "{e}"),
            OpenError::Unusable(reason) => write!(f, "{reason}"),
        }
    }
}

/// The journal's path: the winners file's, with `.journal` appended.
#[must_use]
pub(super) fn journal_path(winners: &Path) -> PathBuf {
    let mut name = winners.as_os_str().to_owned();
    name.push(".journal");
    PathBuf::from(name)
}

/// Opens the store's files for a lottery among `agencies` agencies: recovers the previous
/// lottery if its journal is there, else starts a new one. Logs one line saying which.
///
/// # Errors
/// When a file cannot be read, written or synced, when the journal is not one, or when it
/// was written for another number of agencies.
pub(super) fn open(path: &Path, agencies: u32, format: WinnersFormat) -> Result<Opened, OpenError> {
    let journal = journal_path(path);
    if journal.exists() {
        recover(path, &journal, agencies, format)
    } else {
        create(path, &journal, agencies, format)
    }
}

fn create(
    path: &Path,
    journal_path: &Path,
    agencies: u32,
    format: WinnersFormat,
) -> Result<Opened, OpenError> {
    let header = format.header_line();
    let previous = fs::metadata(path).map_or(0, |m| m.len());
    if previous > header.len() as u64 {
        log::warn!(
            "action: store_open | result: in_progress | path: {} | replaced_bytes: {previous} | note: a new lottery replaces the previous winners file",
            path.display()
        );
    }
    let mut winners = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    winners.write_all(&header)?;
    winners.sync_all()?;
    // The journal appears whole or not at all: written aside, synced, renamed into place,
    // and the rename synced. A crash before the rename leaves no journal, so the next start
    // is a new lottery again, as it should be.
    let mut first = record::MAGIC.to_vec();
    first.extend(Record::Header { agencies }.encode());
    let mut aside = journal_path.as_os_str().to_owned();
    aside.push(".new");
    let aside = PathBuf::from(aside);
    let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(&aside)?;
    file.write_all(&first)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&aside, journal_path)?;
    sync_dir(journal_path)?;
    log::info!(
        "action: store_open | result: success | mode: new | path: {} | journal: {} | agencies: {agencies}",
        path.display(),
        journal_path.display()
    );
    Ok(Opened {
        winners: append_to(path)?,
        winners_len: header.len() as u64,
        journal: append_to(journal_path)?,
        journal_len: first.len() as u64,
        ledger: Ledger::new(agencies),
    })
}

fn recover(
    path: &Path,
    journal_path: &Path,
    agencies: u32,
    format: WinnersFormat,
) -> Result<Opened, OpenError> {
    let bytes = fs::read(journal_path)?;
    let scan = record::scan(&bytes).map_err(|e| invalid(format!("{}: {e}", journal_path.display())))?;
    if scan.agencies != agencies {
        return Err(invalid(format!(
            "{} holds a lottery among {} agencies but SERVER_AGENCIES is {agencies}; \
             delete {} and {} to start a new lottery",
            journal_path.display(),
            scan.agencies,
            path.display(),
            journal_path.display()
        )));
    }
    let (ledger, view) = replay(journal_path, scan.records, agencies, format)?;
    let discarded = bytes.len() as u64 - scan.valid_len;
    let journal = append_to(journal_path)?;
    if discarded > 0 {
        journal.set_len(scan.valid_len)?;
        journal.sync_all()?;
        log::warn!(
            "action: journal_repair | result: success | path: {} | discarded_bytes: {discarded} | note: a torn last record, never acknowledged",
            journal_path.display()
        );
    }
    winners_file::repair(path, &view)?;
    let (batches, bets, winners, done) = ledger.totals();
    log::info!(
        "action: store_open | result: success | mode: recovered | path: {} | journal: {} | agencies: {agencies} | \
         batches: {batches} | bets: {bets} | winners: {winners} | agencies_done: {done}",
        path.display(),
        journal_path.display()
    );
    Ok(Opened {
        winners: append_to(path)?,
        winners_len: view.len() as u64,
        journal,
        journal_len: scan.valid_len,
        ledger,
    })
}

/// The journal's records replayed through the same rules a live batch meets (`Ledger`): a
/// whole record that breaks them is corruption, not a crash, and stops the start. Returns the
/// ledger and the winners file the records make.
fn replay(
    journal_path: &Path,
    records: Vec<(Record, u64)>,
    agencies: u32,
    format: WinnersFormat,
) -> Result<(Ledger, Vec<u8>), OpenError> {
    let mut ledger = Ledger::new(agencies);
    let mut view = format.header_line();
    for (i, (record, _)) in records.into_iter().enumerate() {
        let broken = |what: &str| invalid(format!("{} record {}: {what}", journal_path.display(), i + 1));
        let refused = |e: StoreError, what: &str| match e {
            StoreError::UnknownAgency { .. } => broken("unknown agency"),
            _ => broken(what),
        };
        match record {
            Record::Batch { agency, sequence, bets, digest, winners, rows } => {
                ledger
                    .apply_batch(agency, sequence, bets, winners, Digest::from_bytes(digest))
                    .map_err(|e| refused(e, "batch out of sequence"))?;
                view.extend_from_slice(&format.view(&rows)?);
            }
            Record::Done { agency, batches } => {
                ledger.apply_done(agency, batches).map_err(|e| refused(e, "done out of sequence"))?;
            }
            Record::Header { .. } => return Err(broken("a second header")),
        }
    }
    Ok((ledger, view))
}

fn append_to(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).open(path)
}

/// Syncs the directory holding `path`, so a rename into it survives a power cut.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

fn invalid(message: String) -> OpenError {
    OpenError::Unusable(message)
}
