//! Opening the store's two files at start: a new lottery when there is no journal, else the
//! previous one rebuilt from its journal.
//!
//! The journal is the truth; the winners file is its view (the header, then every committed
//! batch's rows in commit order). Recovery reads the journal up to its first torn record and
//! cuts that tail off, replays every whole record into per-agency state, then makes the
//! winners file exactly the rows the journal holds: rows of a batch that was appended but
//! never committed are cut off, and a file that lost rows (or was replaced) is rewritten.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

use crate::{
    journal::{self, Record},
    store::HEADER,
    tally::AgencyState,
};

/// The store's files, open for appending, and the state they hold.
#[derive(Debug)]
pub(crate) struct Opened {
    pub winners: File,
    pub winners_len: u64,
    pub journal: File,
    pub journal_len: u64,
    pub agencies: Vec<AgencyState>,
}

/// The journal's path: the winners file's, with `.journal` appended.
#[must_use]
pub fn journal_path(winners: &Path) -> PathBuf {
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
pub(crate) fn open(path: &Path, agencies: u32) -> io::Result<Opened> {
    let journal = journal_path(path);
    if journal.exists() {
        recover(path, &journal, agencies)
    } else {
        create(path, &journal, agencies)
    }
}

fn create(path: &Path, journal_path: &Path, agencies: u32) -> io::Result<Opened> {
    let previous = fs::metadata(path).map_or(0, |m| m.len());
    if previous > HEADER.len() as u64 + 1 {
        log::warn!(
            "action: store_open | result: in_progress | path: {} | replaced_bytes: {previous} | note: a new lottery replaces the previous winners file",
            path.display()
        );
    }
    let mut winners = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
    winners.write_all(format!("{HEADER}\n").as_bytes())?;
    winners.sync_all()?;
    // The journal appears whole or not at all: written aside, synced, renamed into place,
    // and the rename synced. A crash before the rename leaves no journal, so the next start
    // is a new lottery again, as it should be.
    let mut first = journal::MAGIC.to_vec();
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
        winners_len: HEADER.len() as u64 + 1,
        journal: append_to(journal_path)?,
        journal_len: first.len() as u64,
        agencies: vec![AgencyState::default(); agencies as usize],
    })
}

fn recover(path: &Path, journal_path: &Path, agencies: u32) -> io::Result<Opened> {
    let bytes = fs::read(journal_path)?;
    let scan = journal::scan(&bytes).map_err(|e| invalid(format!("{}: {e}", journal_path.display())))?;
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
    let mut state = vec![AgencyState::default(); agencies as usize];
    let mut view = format!("{HEADER}\n").into_bytes();
    let (mut batches, mut bets, mut winners) = (0u64, 0u64, 0u64);
    for (i, (record, _)) in scan.records.into_iter().enumerate() {
        let broken = |what: &str| invalid(format!("{} record {}: {what}", journal_path.display(), i + 1));
        match record {
            Record::Batch { agency, sequence, bets: count, winners: positions, rows } => {
                let slot = slot(&mut state, agency).ok_or_else(|| broken("unknown agency"))?;
                if slot.tally.done || sequence != slot.last_sequence() + 1 {
                    return Err(broken("batch out of sequence"));
                }
                slot.tally.bets += count;
                slot.tally.winners += positions.len() as u64;
                (batches, bets, winners) = (batches + 1, bets + count, winners + positions.len() as u64);
                slot.results.push((count, positions));
                view.extend_from_slice(&rows);
            }
            Record::Done { agency, batches: count } => {
                let slot = slot(&mut state, agency).ok_or_else(|| broken("unknown agency"))?;
                if slot.tally.done || count != slot.last_sequence() {
                    return Err(broken("done out of sequence"));
                }
                slot.tally.done = true;
            }
            Record::Header { .. } => return Err(broken("a second header")),
        }
    }
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
    repair_view(path, &view)?;
    let done = state.iter().filter(|s| s.tally.done).count();
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
        agencies: state,
    })
}

/// Makes the winners file hold exactly `view`: cuts off rows the journal does not hold (a
/// batch appended but never committed), or rewrites the file if it lost or changed rows.
fn repair_view(path: &Path, view: &[u8]) -> io::Result<()> {
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

fn slot(state: &mut [AgencyState], agency: u32) -> Option<&mut AgencyState> {
    agency.checked_sub(1).and_then(|i| state.get_mut(i as usize))
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

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
