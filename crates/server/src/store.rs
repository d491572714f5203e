//! The store: the winners file, its journal, and the per-agency state, behind one lock.
//!
//! The only owner of both files and of the `Mutex` that guards them. A batch commits by
//! appending its rows to the winners file and one record to the journal (`journal.rs`), then
//! syncing the journal; only then is it answered. The journal is the truth (a crash at any
//! instant leaves a batch's rows, its sequence and its counts all committed or all not), the
//! winners file its view, repaired from it at start (`recovery.rs`).
//!
//! Appending and syncing are separate steps so syncs group: the append happens under the
//! lock, the sync after it is released, and one `fdatasync` covers every batch appended
//! before it started (group commit). An answer that reveals a batch as committed (its result,
//! a replay, a resume) is sent only after a sync that covers it.
//!
//! Rows are formatted and winners decided (the slow part) before the lock is taken, and no
//! network I/O ever happens under it.

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
};

use protocol::Bet;

pub use crate::tally::{Admission, Progress, Resume, Staged, StoreError, Tally};
use crate::{journal::Record, recovery, tally::AgencyState};

/// The winners file's header row.
pub const HEADER: &str = "agency,first_name,last_name,document,birthdate";

/// The winners file, the journal and the per-agency state. Shared by every connection
/// through an `Arc`.
#[derive(Debug)]
pub struct Store {
    /// A std `Mutex`, not a reader-writer lock: every operation is short, most of them write,
    /// and a plain mutex keeps the one invariant (files and state agree) obvious.
    inner: Mutex<Inner>,
    /// Journal bytes known to be on disk. Its own lock, never held with `inner`: the thread
    /// that holds it syncs for everyone appended so far while the others wait, then find
    /// their record already covered (group commit).
    durable: Mutex<u64>,
    /// A second handle to the journal, so a sync needs no `inner` lock.
    journal_sync: File,
    /// Set when a sync fails (see [`StoreError::Broken`]).
    broken: AtomicBool,
    path: PathBuf,
}

#[derive(Debug)]
struct Inner {
    winners: File,
    /// Bytes of the winners file that hold committed rows; a failed append is cut back to it.
    winners_len: u64,
    journal: File,
    /// Bytes of the journal that hold whole records.
    journal_len: u64,
    /// Index `agency - 1`.
    agencies: Vec<AgencyState>,
}

impl Store {
    /// Opens the store at `path` (the winners file; the journal is beside it) for a lottery
    /// among `agencies` agencies: recovers the lottery its journal holds, or starts a new one
    /// when there is no journal. Logs one line saying which, and what was recovered.
    ///
    /// # Errors
    /// When a file cannot be created, read, written or synced, when the journal is damaged
    /// beyond a torn last record, or when it holds a lottery among another number of
    /// agencies; the central must not start then.
    pub fn open(path: &Path, agencies: u32) -> io::Result<Store> {
        let opened = recovery::open(path, agencies)?;
        let journal_sync = opened.journal.try_clone()?;
        Ok(Store {
            durable: Mutex::new(opened.journal_len),
            journal_sync,
            inner: Mutex::new(Inner {
                winners: opened.winners,
                winners_len: opened.winners_len,
                journal: opened.journal,
                journal_len: opened.journal_len,
                agencies: opened.agencies,
            }),
            broken: AtomicBool::new(false),
            path: path.to_owned(),
        })
    }

    /// The winners file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decides what to do with batch `sequence` of `agency` before its winners are computed:
    /// refuse it, replay it, or check and commit it.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`] (a batch past the next one), [`StoreError::Broken`].
    pub fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        let (admission, covered) = {
            let mut inner = self.lock();
            let len = inner.journal_len;
            (inner.admit(agency, sequence, bets)?, len)
        };
        if let Admission::Replay(_) = admission {
            // The original may have been appended by another connection and not synced yet.
            self.sync_through(covered)?;
        }
        Ok(admission)
    }

    /// Commits batch `sequence` of `agency`: `bets` bets, of which `winners` (at `positions`
    /// in the batch) won. Returns the positions to answer with: these, or the original ones
    /// if the batch was committed meanwhile by another connection. All or nothing, and
    /// durable when it returns: [`Store::stage_batch`] then [`Store::make_durable`].
    ///
    /// The service stages and syncs apart (so syncs are shared); this one-step form is for
    /// the store's own tests.
    ///
    /// # Errors
    /// As [`Store::stage_batch`] and [`Store::make_durable`].
    #[cfg(test)]
    pub fn commit_batch<'a>(
        &self,
        agency: u32,
        sequence: u64,
        bets: u64,
        positions: Vec<u32>,
        winners: impl Iterator<Item = &'a Bet>,
    ) -> Result<Vec<u32>, StoreError> {
        let staged = self.stage_batch(agency, sequence, bets, positions, winners)?;
        self.make_durable(staged.durable_at)?;
        Ok(staged.winners)
    }

    /// Appends batch `sequence` of `agency` to both files and counts it, without waiting
    /// for the disk: the answer may be sent only after [`Store::make_durable`] with the
    /// returned offset. Several staged batches then share one sync.
    ///
    /// # Errors
    /// As [`Store::admit`], and [`StoreError::Io`] after which nothing of the batch is kept.
    pub fn stage_batch<'a>(
        &self,
        agency: u32,
        sequence: u64,
        bets: u64,
        positions: Vec<u32>,
        winners: impl Iterator<Item = &'a Bet>,
    ) -> Result<Staged, StoreError> {
        self.check_broken()?;
        let rows = format_rows(agency, winners).map_err(StoreError::Io)?;
        let record = Record::Batch { agency, sequence, bets, winners: positions, rows };
        let bytes = record.encode();
        let Record::Batch { winners: positions, rows, .. } = record else {
            unreachable!("built as a batch record just above")
        };
        let mut inner = self.lock();
        let winners = match inner.admit(agency, sequence, bets)? {
            Admission::Replay(original) => original,
            Admission::Fresh => {
                if let Err(e) = inner.append(&rows, &bytes) {
                    if inner.rollback().is_err() {
                        self.broken.store(true, Ordering::SeqCst);
                    }
                    return Err(StoreError::Io(e));
                }
                let slot = inner.slot(agency)?;
                slot.tally.bets += bets;
                slot.tally.winners += positions.len() as u64;
                slot.results.push((bets, positions.clone()));
                positions
            }
        };
        Ok(Staged { winners, durable_at: inner.journal_len })
    }

    /// Makes the journal durable at least up to byte `end` (a [`Staged::durable_at`]),
    /// syncing only if no other thread already did: one `fdatasync` covers every batch
    /// appended before it started, whichever connection appended it (group commit).
    ///
    /// # Errors
    /// [`StoreError::Io`] when the sync fails (the store is then [`StoreError::Broken`]).
    pub fn make_durable(&self, end: u64) -> Result<(), StoreError> {
        self.sync_through(end)
    }

    /// Marks `agency` done after its `batches` batches, durably; returns its final tally and
    /// where the lottery stands right after, both read under the same lock (so exactly one
    /// caller sees the lottery complete).
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`] when `batches` is not the count committed,
    /// [`StoreError::Io`], [`StoreError::Broken`].
    pub fn finish_agency(&self, agency: u32, batches: u64) -> Result<(Tally, Progress), StoreError> {
        self.check_broken()?;
        let mut inner = self.lock();
        let slot = inner.slot(agency)?;
        if slot.tally.done {
            return Err(StoreError::AgencyFinished(agency));
        }
        if slot.last_sequence() != batches {
            return Err(StoreError::OutOfSequence { agency, expected: slot.last_sequence(), got: batches });
        }
        // Rare (once per agency), so synced right here under the lock: "done" is never seen
        // by a winners query before it is on disk.
        let bytes = Record::Done { agency, batches }.encode();
        if let Err(e) = inner.append(&[], &bytes) {
            if inner.rollback().is_err() {
                self.broken.store(true, Ordering::SeqCst);
            }
            return Err(StoreError::Io(e));
        }
        if let Err(e) = inner.journal.sync_data() {
            // As in `sync_through`: after a failed sync the disk's content is unknown.
            self.broken.store(true, Ordering::SeqCst);
            log::error!("action: store_sync | result: fail | error: {e} | note: the store takes nothing more until restarted");
            return Err(StoreError::Io(e));
        }
        let slot = inner.slot(agency)?;
        slot.tally.done = true;
        let tally = slot.tally;
        Ok((tally, inner.progress()))
    }

    /// What is committed for `agency`, durable when it returns.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::Broken`], or [`StoreError::Io`] when the
    /// sync fails.
    pub fn resume(&self, agency: u32) -> Result<Resume, StoreError> {
        self.check_broken()?;
        let (resume, covered) = {
            let mut inner = self.lock();
            let len = inner.journal_len;
            let slot = inner.slot(agency)?;
            (Resume { last_sequence: slot.last_sequence(), tally: slot.tally }, len)
        };
        self.sync_through(covered)?;
        Ok(resume)
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
        self.lock().slot(agency).map(|s| s.tally)
    }

    /// Syncs both files one last time: the point where a shutdown logs the store closed.
    /// Every answered batch is already in the synced journal; this makes the winners file
    /// (the view, synced lazily) durable too.
    ///
    /// # Errors
    /// When a sync fails.
    pub fn sync(&self) -> io::Result<()> {
        let inner = self.lock();
        inner.journal.sync_all()?;
        inner.winners.sync_all()
    }

    /// Makes the journal durable at least up to byte `end`, syncing only if no other thread
    /// already did.
    fn sync_through(&self, end: u64) -> Result<(), StoreError> {
        self.check_broken()?;
        // Read before syncing: everything up to `target` is already written, so the sync
        // below covers it. The guard is dropped at the end of the statement.
        let target = self.lock().journal_len;
        let mut durable = self.durable.lock().expect("durable lock poisoned: a sync panicked");
        if *durable >= end {
            return Ok(());
        }
        if let Err(e) = self.journal_sync.sync_data() {
            // Linux may drop the dirty pages of a failed fsync: what is on disk is unknown,
            // so take no more changes until a restart recovers from the journal.
            self.broken.store(true, Ordering::SeqCst);
            log::error!("action: store_sync | result: fail | error: {e} | note: the store takes nothing more until restarted");
            return Err(StoreError::Io(e));
        }
        *durable = (*durable).max(target);
        Ok(())
    }

    fn check_broken(&self) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            Err(StoreError::Broken)
        } else {
            Ok(())
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock can only come from a bug in this file (the critical
        // sections call no user code); the state it guards could then disagree with the
        // files, so stopping loudly beats answering with it.
        self.inner.lock().expect("store lock poisoned: files and tallies may disagree")
    }
}

impl Inner {
    fn admit(&mut self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        let slot = self.slot(agency)?;
        let next = slot.last_sequence() + 1;
        if sequence >= 1 && sequence < next {
            let Some((committed, positions)) = slot.results.get(sequence) else {
                let oldest = slot.results.oldest_kept();
                return Err(StoreError::ReplayExpired { agency, sequence, oldest });
            };
            if *committed != bets {
                return Err(StoreError::NotTheCommittedBatch {
                    agency,
                    sequence,
                    committed: *committed,
                    got: bets,
                });
            }
            return Ok(Admission::Replay(positions.clone()));
        }
        if slot.tally.done {
            return Err(StoreError::AgencyFinished(agency));
        }
        if sequence != next {
            return Err(StoreError::OutOfSequence { agency, expected: next, got: sequence });
        }
        Ok(Admission::Fresh)
    }

    fn progress(&self) -> Progress {
        let pending = self.agencies.iter().filter(|s| !s.tally.done).count();
        if pending == 0 {
            Progress::Complete { winners: self.agencies.iter().map(|s| s.tally.winners).sum() }
        } else {
            // At most the number of agencies, which is a u32.
            Progress::Pending { agencies: pending as u32 }
        }
    }

    fn slot(&mut self, agency: u32) -> Result<&mut AgencyState, StoreError> {
        let agencies = self.agencies.len() as u32;
        agency
            .checked_sub(1)
            .and_then(|i| self.agencies.get_mut(i as usize))
            .ok_or(StoreError::UnknownAgency { agency, agencies })
    }

    /// Appends rows to the winners file and a record to the journal; not synced. On success
    /// both lengths move; on failure the caller rolls back.
    fn append(&mut self, rows: &[u8], record: &[u8]) -> io::Result<()> {
        if !rows.is_empty() {
            self.winners.write_all(rows)?;
        }
        self.journal.write_all(record)?;
        self.winners_len += rows.len() as u64;
        self.journal_len += record.len() as u64;
        Ok(())
    }

    /// Cuts both files back to their last good lengths, so a refused batch leaves nothing
    /// behind.
    fn rollback(&mut self) -> io::Result<()> {
        let cut =
            self.winners.set_len(self.winners_len).and_then(|()| self.journal.set_len(self.journal_len));
        if let Err(e) = &cut {
            log::error!(
                "action: store_rollback | result: fail | error: {e} | note: the store takes nothing more until restarted"
            );
        }
        cut
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
    use crate::recovery::journal_path;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("store-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("winners.csv")
    }

    fn bet(first: &str, last: &str, doc: &str) -> Bet {
        Bet::new(first.into(), last.into(), doc.into(), "1990-12-31").unwrap()
    }

    /// Commits a batch whose winners are `winners`, at positions 0, 1, ...
    fn commit(store: &Store, agency: u32, sequence: u64, bets: u64, winners: &[Bet]) -> Vec<u32> {
        let positions = (0..winners.len() as u32).collect();
        store.commit_batch(agency, sequence, bets, positions, winners.iter()).unwrap()
    }

    #[test]
    fn rows_are_csv_with_header_and_quoting() {
        let path = temp_path("rows");
        let store = Store::open(&path, 2).unwrap();
        let winners = [bet("Ana, María", "O\"Brien", "1"), bet("Joaquín", "Saldaña", "22")];
        assert_eq!(commit(&store, 2, 1, 10, &winners), vec![0, 1]);
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
        let store = Store::open(&temp_path("numbers"), 3).unwrap();
        for agency in [0, 4, u32::MAX] {
            assert!(matches!(store.admit(agency, 1, 1), Err(StoreError::UnknownAgency { agencies: 3, .. })));
            assert!(matches!(store.resume(agency), Err(StoreError::UnknownAgency { .. })));
        }
        assert_eq!(store.admit(3, 1, 1).unwrap(), Admission::Fresh);
    }

    #[test]
    fn progress_counts_pending_agencies_then_totals_winners() {
        let store = Store::open(&temp_path("progress"), 2).unwrap();
        assert_eq!(store.progress(), Progress::Pending { agencies: 2 });
        commit(&store, 1, 1, 5, &[bet("A", "B", "1")]);
        assert_eq!(
            store.finish_agency(1, 1).unwrap(),
            (Tally { bets: 5, winners: 1, done: true }, Progress::Pending { agencies: 1 })
        );
        assert_eq!(store.progress(), Progress::Pending { agencies: 1 });
        commit(&store, 2, 1, 3, &[bet("C", "D", "2"), bet("E", "F", "3")]);
        assert!(matches!(
            store.finish_agency(2, 2),
            Err(StoreError::OutOfSequence { agency: 2, expected: 1, got: 2 })
        ));
        assert_eq!(store.finish_agency(2, 1).unwrap().1, Progress::Complete { winners: 3 });
        assert_eq!(store.progress(), Progress::Complete { winners: 3 });
    }

    #[test]
    fn a_finished_agency_takes_no_more_bets_and_cannot_finish_twice() {
        let store = Store::open(&temp_path("finished"), 1).unwrap();
        store.finish_agency(1, 0).unwrap();
        assert!(matches!(store.admit(1, 1, 1), Err(StoreError::AgencyFinished(1))));
        assert!(matches!(store.finish_agency(1, 0), Err(StoreError::AgencyFinished(1))));
    }

    #[test]
    fn a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice() {
        let path = temp_path("replay");
        let store = Store::open(&path, 1).unwrap();
        let positions = vec![4, 9];
        let winners = [bet("A", "B", "1"), bet("C", "D", "2")];
        store.commit_batch(1, 1, 12, positions.clone(), winners.iter()).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert_eq!(store.admit(1, 1, 12).unwrap(), Admission::Replay(positions.clone()));
        assert!(matches!(
            store.admit(1, 1, 13),
            Err(StoreError::NotTheCommittedBatch { agency: 1, sequence: 1, committed: 12, got: 13 })
        ));
        // Even a commit of the same sequence (a duplicate racing the original) only replays.
        assert_eq!(store.commit_batch(1, 1, 12, vec![0, 1], winners.iter()).unwrap(), positions);
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(store.tally(1).unwrap(), Tally { bets: 12, winners: 2, done: false });
        assert!(matches!(
            store.admit(1, 3, 12),
            Err(StoreError::OutOfSequence { agency: 1, expected: 2, got: 3 })
        ));
        assert!(matches!(store.admit(1, 0, 12), Err(StoreError::OutOfSequence { .. })));
    }

    #[test]
    fn staged_batches_count_at_once_and_one_sync_makes_them_all_durable() {
        let path = temp_path("staged");
        let store = Store::open(&path, 1).unwrap();
        let mut last = 0;
        for sequence in 1..=3 {
            let winners = [bet("A", "B", &sequence.to_string())];
            let staged = store.stage_batch(1, sequence, 5, vec![2], winners.iter()).unwrap();
            assert_eq!(staged.winners, vec![2]);
            assert!(staged.durable_at > last, "each batch ends further into the journal");
            last = staged.durable_at;
        }
        assert_eq!(store.tally(1).unwrap(), Tally { bets: 15, winners: 3, done: false });
        store.make_durable(last).unwrap();
        assert_eq!(*store.durable.lock().unwrap(), last);
        assert_eq!(std::fs::metadata(journal_path(&path)).unwrap().len(), last);
    }

    #[test]
    fn concurrent_batches_never_tear_rows() {
        let path = temp_path("concurrent");
        let store = Arc::new(Store::open(&path, 4).unwrap());
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
                        commit(&store, agency, batch + 1, 20, &winners);
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
    fn a_reopened_store_resumes_where_it_stopped() {
        let path = temp_path("reopen");
        {
            let store = Store::open(&path, 2).unwrap();
            commit(&store, 1, 1, 10, &[bet("A", "B", "1")]);
            commit(&store, 1, 2, 10, &[]);
            commit(&store, 2, 1, 4, &[bet("C", "D", "2")]);
            store.finish_agency(2, 1).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let store = Store::open(&path, 2).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(
            store.resume(1).unwrap(),
            Resume { last_sequence: 2, tally: Tally { bets: 20, winners: 1, done: false } }
        );
        assert_eq!(
            store.resume(2).unwrap(),
            Resume { last_sequence: 1, tally: Tally { bets: 4, winners: 1, done: true } }
        );
        assert_eq!(store.admit(1, 1, 10).unwrap(), Admission::Replay(vec![0]));
        commit(&store, 1, 3, 1, &[bet("E", "F", "3")]);
        assert_eq!(store.finish_agency(1, 3).unwrap().1, Progress::Complete { winners: 3 });
    }

    #[test]
    fn a_torn_last_record_is_discarded_with_its_rows_wherever_the_cut_falls() {
        let path = temp_path("torn");
        let journal = journal_path(&path);
        let (one_batch, winners_one) = {
            let store = Store::open(&path, 1).unwrap();
            commit(&store, 1, 1, 10, &[bet("A", "B", "1")]);
            (std::fs::read(&journal).unwrap(), std::fs::read(&path).unwrap())
        };
        let (two_batches, winners_two) = {
            let store = Store::open(&path, 1).unwrap();
            commit(&store, 1, 2, 10, &[bet("C", "D", "2"), bet("E", "F", "3")]);
            (std::fs::read(&journal).unwrap(), std::fs::read(&path).unwrap())
        };
        for cut in one_batch.len()..two_batches.len() {
            // The crash left batch 2's rows whole in the winners file, its record torn.
            std::fs::write(&journal, &two_batches[..cut]).unwrap();
            std::fs::write(&path, &winners_two).unwrap();
            let store = Store::open(&path, 1).unwrap();
            assert_eq!(store.resume(1).unwrap().last_sequence, 1, "cut at {cut}");
            assert_eq!(std::fs::read(&journal).unwrap(), one_batch, "cut at {cut}");
            assert_eq!(std::fs::read(&path).unwrap(), winners_one, "cut at {cut}");
        }
        // Without the tear, the same files keep both batches.
        std::fs::write(&journal, &two_batches).unwrap();
        let store = Store::open(&path, 1).unwrap();
        assert_eq!(store.tally(1).unwrap(), Tally { bets: 20, winners: 3, done: false });
    }

    #[test]
    fn a_lost_winners_file_is_rebuilt_from_the_journal() {
        let path = temp_path("rebuild");
        {
            let store = Store::open(&path, 1).unwrap();
            commit(&store, 1, 1, 3, &[bet("A", "B", "1")]);
        }
        let before = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        drop(Store::open(&path, 1).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::write(&path, "agency,first_name,last_name,document,birthdate\n9,X,Y,1,2000-01-01\n")
            .unwrap();
        drop(Store::open(&path, 1).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_journal_of_another_number_of_agencies_is_refused() {
        let path = temp_path("agencies");
        drop(Store::open(&path, 3).unwrap());
        let err = Store::open(&path, 5).unwrap_err();
        assert!(err.to_string().contains("among 3 agencies but SERVER_AGENCIES is 5"), "{err}");
    }

    #[test]
    fn a_file_that_cannot_be_created_is_an_error() {
        assert!(Store::open(Path::new("/nonexistent-dir/winners.csv"), 1).is_err());
    }
}
