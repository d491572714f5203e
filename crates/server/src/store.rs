//! The store: the winners file and the per-agency tallies, behind one lock.
//!
//! The only owner of the winners file and of the `Mutex` that guards it. A batch's rows and
//! its counts change in the same critical section, so the tallies never count a winner the
//! file does not hold, and rows of concurrent batches never interleave. The lock is held for
//! the append and the disk sync only: rows are formatted before taking it, winners are decided
//! (the slow part) before that, and no network I/O ever happens under it.

use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard},
};

use protocol::Bet;

/// The winners file's header row.
pub const HEADER: &str = "agency,first_name,last_name,document,birthdate";

/// One agency's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Bets stored.
    pub bets: u64,
    /// Of those, winners.
    pub winners: u64,
    /// Whether the agency said it has sent everything.
    pub done: bool,
}

/// Where the lottery stands, for the winners query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Every agency is done: the winners of all of them.
    Complete {
        /// Winning bets across all agencies.
        winners: u64,
    },
    /// Agencies still loading.
    Pending {
        /// How many have not said they are done.
        agencies: u32,
    },
}

/// Why the store refused.
#[derive(Debug)]
pub enum StoreError {
    /// Agencies are numbered 1 to the configured count.
    UnknownAgency {
        /// The number given.
        agency: u32,
        /// How many agencies there are.
        agencies: u32,
    },
    /// The agency already said it was done.
    AgencyFinished(u32),
    /// Writing or syncing the file failed; the file was cut back, nothing was counted.
    Io(io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnknownAgency { agency, agencies } => {
                write!(f, "agency {agency} is not one of the {agencies} agencies (1 to {agencies})")
            }
            StoreError::AgencyFinished(agency) => write!(f, "agency {agency} already finished sending bets"),
            StoreError::Io(e) => write!(f, "cannot write the winners file: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// The winners file and the tallies. Shared by every connection through an `Arc`.
#[derive(Debug)]
pub struct Store {
    /// A std `Mutex`, not a reader-writer lock: every operation is short, most of them write,
    /// and a plain mutex keeps the one invariant (file and tallies agree) obvious.
    inner: Mutex<Inner>,
    path: PathBuf,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Bytes of the file that hold whole, acknowledged rows; a failed append is cut back to it.
    len: u64,
    /// Index `agency - 1`.
    tallies: Vec<Tally>,
}

impl Store {
    /// Creates (or empties) the winners file at `path`, writes the header and syncs it, for a
    /// lottery among `agencies` agencies.
    ///
    /// # Errors
    /// When the file cannot be created, written or synced; the central must not start then.
    pub fn create(path: &Path, agencies: u32) -> io::Result<Store> {
        let previous = std::fs::metadata(path).map_or(0, |m| m.len());
        if previous > HEADER.len() as u64 + 1 {
            log::warn!(
                "action: store_open | result: in_progress | path: {} | replaced_bytes: {previous} | note: a new lottery replaces the previous winners file",
                path.display()
            );
        }
        let mut file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
        file.write_all(format!("{HEADER}\n").as_bytes())?;
        file.sync_all()?;
        let len = file.metadata()?.len();
        Ok(Store {
            inner: Mutex::new(Inner { file, len, tallies: vec![Tally::default(); agencies as usize] }),
            path: path.to_owned(),
        })
    }

    /// The winners file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Refuses early a batch the store would refuse anyway, before its winners are computed.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`] or [`StoreError::AgencyFinished`].
    pub fn check_open(&self, agency: u32) -> Result<(), StoreError> {
        self.lock().tally_mut(agency).and_then(|t| {
            if t.done {
                Err(StoreError::AgencyFinished(agency))
            } else {
                Ok(())
            }
        })
    }

    /// Stores one batch of `agency`: appends its `winners` to the file, syncs it to disk, and
    /// only then counts the batch's `bets` and winners. All or nothing.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`], or [`StoreError::Io`]
    /// after which the file is as it was before the call.
    pub fn record_batch<'a>(
        &self,
        agency: u32,
        bets: usize,
        winners: impl ExactSizeIterator<Item = &'a Bet>,
    ) -> Result<(), StoreError> {
        let won = winners.len() as u64;
        let rows = format_rows(agency, winners).map_err(StoreError::Io)?;
        let mut inner = self.lock();
        let open = inner.tally_mut(agency)?;
        if open.done {
            return Err(StoreError::AgencyFinished(agency));
        }
        if !rows.is_empty() {
            inner.append(&rows).map_err(StoreError::Io)?;
        }
        let tally = inner.tally_mut(agency)?;
        tally.bets += bets as u64;
        tally.winners += won;
        Ok(())
    }

    /// Marks `agency` done; returns its final tally and where the lottery stands right after,
    /// both read under the same lock (so exactly one caller sees the lottery complete).
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`] or [`StoreError::AgencyFinished`].
    pub fn finish_agency(&self, agency: u32) -> Result<(Tally, Progress), StoreError> {
        let mut inner = self.lock();
        let tally = inner.tally_mut(agency)?;
        if tally.done {
            return Err(StoreError::AgencyFinished(agency));
        }
        tally.done = true;
        let tally = *tally;
        Ok((tally, inner.progress()))
    }

    /// The total of winners if every agency is done, else how many are not.
    #[must_use]
    pub fn progress(&self) -> Progress {
        self.lock().progress()
    }

    /// One agency's tally.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`].
    pub fn tally(&self, agency: u32) -> Result<Tally, StoreError> {
        self.lock().tally_mut(agency).map(|t| *t)
    }

    /// Syncs the file one last time. Every acknowledged batch was already synced; this is the
    /// belt to those braces, and the point where a shutdown logs the store closed.
    ///
    /// # Errors
    /// When the final sync fails.
    pub fn sync(&self) -> io::Result<()> {
        self.lock().file.sync_all()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a bug in this file (the critical
        // sections call no user code); the tallies it guards could then disagree with the
        // file, so stopping loudly beats answering with them.
        self.inner.lock().expect("store lock poisoned: winners file and tallies may disagree")
    }
}

impl Inner {
    fn progress(&self) -> Progress {
        let pending = self.tallies.iter().filter(|t| !t.done).count();
        if pending == 0 {
            Progress::Complete { winners: self.tallies.iter().map(|t| t.winners).sum() }
        } else {
            // At most the number of agencies, which is a u32.
            Progress::Pending { agencies: pending as u32 }
        }
    }

    fn tally_mut(&mut self, agency: u32) -> Result<&mut Tally, StoreError> {
        let agencies = self.tallies.len() as u32;
        agency
            .checked_sub(1)
            .and_then(|i| self.tallies.get_mut(i as usize))
            .ok_or(StoreError::UnknownAgency { agency, agencies })
    }

    /// Appends whole rows and syncs them; on failure cuts the file back to its last good length
    /// so a refused batch leaves no partial rows behind.
    fn append(&mut self, rows: &[u8]) -> io::Result<()> {
        let written = self.file.write_all(rows).and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.len += rows.len() as u64;
                Ok(())
            }
            Err(e) => {
                if let Err(cut) = self.file.set_len(self.len) {
                    log::error!(
                        "action: store_rollback | result: fail | error: {cut} | note: the winners file may end in a partial row"
                    );
                }
                Err(e)
            }
        }
    }
}

/// The CSV rows (csv quoting, dates as `YYYY-MM-DD`) for `winners` of `agency`.
fn format_rows<'a>(agency: u32, winners: impl Iterator<Item = &'a Bet>) -> io::Result<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("store-test-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("winners.csv")
    }

    fn bet(first: &str, last: &str, doc: &str) -> Bet {
        Bet::new(first.into(), last.into(), doc.into(), "1990-12-31").unwrap()
    }

    #[test]
    fn rows_are_csv_with_header_and_quoting() {
        let path = temp_path("rows");
        let store = Store::create(&path, 2).unwrap();
        let winners = [bet("Ana, María", "O\"Brien", "1"), bet("Joaquín", "Saldaña", "22")];
        store.record_batch(2, 10, winners.iter()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "agency,first_name,last_name,document,birthdate\n\
             2,\"Ana, María\",\"O\"\"Brien\",1,1990-12-31\n\
             2,Joaquín,Saldaña,22,1990-12-31\n"
        );
        assert_eq!(store.tally(2).unwrap(), Tally { bets: 10, winners: 2, done: false });
    }

    #[test]
    fn agencies_are_numbered_from_one() {
        let store = Store::create(&temp_path("numbers"), 3).unwrap();
        for agency in [0, 4, u32::MAX] {
            assert!(matches!(
                store.record_batch(agency, 1, std::iter::empty()),
                Err(StoreError::UnknownAgency { agencies: 3, .. })
            ));
        }
        assert!(store.record_batch(3, 1, std::iter::empty()).is_ok());
    }

    #[test]
    fn progress_counts_pending_agencies_then_totals_winners() {
        let store = Store::create(&temp_path("progress"), 2).unwrap();
        assert_eq!(store.progress(), Progress::Pending { agencies: 2 });
        store.record_batch(1, 5, [bet("A", "B", "1")].iter()).unwrap();
        assert_eq!(
            store.finish_agency(1).unwrap(),
            (Tally { bets: 5, winners: 1, done: true }, Progress::Pending { agencies: 1 })
        );
        assert_eq!(store.progress(), Progress::Pending { agencies: 1 });
        store.record_batch(2, 3, [bet("C", "D", "2"), bet("E", "F", "3")].iter()).unwrap();
        assert_eq!(store.finish_agency(2).unwrap().1, Progress::Complete { winners: 3 });
        assert_eq!(store.progress(), Progress::Complete { winners: 3 });
    }

    #[test]
    fn a_finished_agency_takes_no_more_bets_and_cannot_finish_twice() {
        let store = Store::create(&temp_path("finished"), 1).unwrap();
        store.finish_agency(1).unwrap();
        assert!(matches!(store.check_open(1), Err(StoreError::AgencyFinished(1))));
        assert!(matches!(store.record_batch(1, 1, std::iter::empty()), Err(StoreError::AgencyFinished(1))));
        assert!(matches!(store.finish_agency(1), Err(StoreError::AgencyFinished(1))));
    }

    #[test]
    fn concurrent_batches_never_tear_rows() {
        let path = temp_path("concurrent");
        let store = Arc::new(Store::create(&path, 4).unwrap());
        let threads: Vec<_> = (1..=4)
            .map(|agency| {
                let store = Arc::clone(&store);
                thread::spawn(move || {
                    for batch in 0..50 {
                        let winners: Vec<Bet> = (0..7)
                            .map(|i| {
                                bet("Nombre Largo De Prueba", "Fornerón", &format!("{agency}{batch:03}{i}"))
                            })
                            .collect();
                        store.record_batch(agency, 20, winners.iter()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + 4 * 50 * 7);
        for line in &lines[1..] {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 5, "{line}");
            assert!(fields[3].starts_with(fields[0]), "row of agency {} holds {line}", fields[0]);
        }
        for agency in 1..=4 {
            assert_eq!(store.tally(agency).unwrap(), Tally { bets: 1000, winners: 350, done: false });
        }
    }

    #[test]
    fn a_file_that_cannot_be_created_is_an_error() {
        assert!(Store::create(Path::new("/nonexistent-dir/winners.csv"), 1).is_err());
    }
}
