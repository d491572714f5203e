//! The journal engine: the winners file, its journal, and the ledger, behind one lock.
//!
//! The only owner of both files and of the `Mutex` that guards them. A batch commits by
//! appending its rows to the winners file and one record to the journal (`record.rs`), then
//! syncing the journal; only then is it answered. The journal is the truth (a crash at any
//! instant leaves a batch's rows, its sequence and its counts all committed or all not), the
//! winners file its view (`store/winners_file.rs`), repaired from it at start (`recovery.rs`).
//!
//! Appending and syncing are separate steps so syncs group across connections: the append
//! happens under the lock ([`Engine::stage`], which returns a ticket holding the journal
//! offset reached), the sync after it is released ([`Engine::make_durable`]), and one
//! `fdatasync` covers every batch appended before it started, whichever connection appended
//! it. How a connection holds its answers meanwhile is `held_answers.rs`'s business.
//!
//! An append goes to memory first: each file's pending bytes leave in one `write` before the
//! next sync (or once [`WRITE_AT`] of them gather), so a sync's group costs two writes, not
//! two per batch. When that write fails (a full disk), the appends are written one by one, as
//! many as fit; the first that does not and all after it stay pending, nothing of them in the
//! files (what part got there is cut off), so none of them is answered and a later sync, once
//! the disk takes writes again, writes them whole: an agency retrying its batch then gets
//! the original answer.
//!
//! Rows are formatted and winners decided (the slow part) before the lock is taken, and no
//! network I/O ever happens under it.

mod record;
mod recovery;

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, MutexGuard,
    },
    time::Instant,
};

use self::{record::Record, recovery::OpenError as RecoveryError};
use super::{
    engine::{CheckedBatch, Engine, Settled, Staged, Ticket},
    error::{OpenError, StoreError},
    ledger::{Admission, Ledger, Progress, Resume, Tally},
    winners_file::{self, WinnersFormat},
};
use crate::metrics::SyncTimer;

/// Journal bytes pending in memory past which a stage writes them out before adding its own
/// (about 150 batches of 100 bets): what a sync's group leaves in one write, bounded.
const WRITE_AT: usize = 64 * 1024;

/// The winners file, the journal and the ledger. Shared by every connection through the
/// service's `Arc<dyn Engine>`.
#[derive(Debug)]
pub(super) struct Journal {
    /// A std `Mutex`, not a reader-writer lock: every operation is short, most of them write,
    /// and a plain mutex keeps the one invariant (files and ledger agree) obvious.
    inner: Mutex<Inner>,
    /// Journal bytes known to be on disk. Its own lock, never held with `inner`: the thread
    /// that holds it syncs for everyone appended so far while the others wait, then find
    /// their record already covered (group commit).
    durable: Mutex<u64>,
    /// A second handle to the journal, so a sync needs no `inner` lock.
    journal_sync: File,
    /// Set when a sync fails (see [`StoreError::Broken`]).
    broken: AtomicBool,
    /// How the winners file writes each winner (the journal always keeps CSV rows).
    format: WinnersFormat,
    path: PathBuf,
    /// Where each shared sync's time is observed.
    timer: SyncTimer,
}

#[derive(Debug)]
struct Inner {
    winners: File,
    /// Bytes of the winners file's rows, those still pending included.
    winners_len: u64,
    journal: File,
    /// Bytes of the journal's whole records, those still pending included: where a ticket
    /// points.
    journal_len: u64,
    /// Rows appended and not yet written to the winners file.
    pending_rows: Vec<u8>,
    /// Records appended and not yet written to the journal.
    pending_records: Vec<u8>,
    /// Where each pending append ends in `pending_rows` and `pending_records`, in order.
    pending_ends: Vec<(usize, usize)>,
    ledger: Ledger,
}

/// Why pending bytes could not be written: the write's error, and whether what part of
/// them reached a file could be cut off again.
#[derive(Debug)]
struct WriteFailed {
    error: io::Error,
    cut: bool,
}

impl Journal {
    /// Opens the engine at `path` (the winners file; the journal is beside it) for a lottery
    /// among `agencies` agencies: recovers the lottery its journal holds, or starts a new one
    /// when there is no journal. Logs one line saying which, and what was recovered.
    ///
    /// # Errors
    /// [`OpenError::Files`] when a file cannot be created, read, written or synced;
    /// [`OpenError::Recover`] when the journal is damaged beyond a torn last record, or
    /// holds a lottery among another number of agencies. The central must not start then.
    pub(super) fn open(path: &Path, agencies: u32, format: WinnersFormat) -> Result<Journal, OpenError> {
        let failed = |e: RecoveryError| match e {
            RecoveryError::Io(source) => OpenError::Files { path: path.to_owned(), source },
            RecoveryError::Unusable(reason) => OpenError::Recover { path: path.to_owned(), reason },
        };
        let opened = recovery::open(path, agencies, format).map_err(failed)?;
        let journal_sync = opened.journal.try_clone().map_err(|e| failed(RecoveryError::Io(e)))?;
        Ok(Journal {
            durable: Mutex::new(opened.journal_len),
            journal_sync,
            inner: Mutex::new(Inner {
                winners: opened.winners,
                winners_len: opened.winners_len,
                journal: opened.journal,
                journal_len: opened.journal_len,
                pending_rows: Vec::new(),
                pending_ends: Vec::new(),
                pending_records: Vec::new(),
                ledger: opened.ledger,
            }),
            broken: AtomicBool::new(false),
            format,
            path: path.to_owned(),
            timer: SyncTimer::default(),
        })
    }

    /// The same engine, observing each shared sync into `timer`.
    pub(super) fn timed(self, timer: SyncTimer) -> Journal {
        Journal { timer, ..self }
    }

    /// Stages and syncs in one step: durable when it returns. The service stages and syncs
    /// apart (so syncs are shared); this one-step form is for the engine's own tests.
    #[cfg(test)]
    fn commit(&self, batch: &CheckedBatch<'_>) -> Result<Vec<u32>, StoreError> {
        let staged = self.stage(batch)?;
        self.make_durable(&[staged.ticket])?;
        Ok(staged.winners)
    }

    /// Makes the journal durable at least up to byte `end`, syncing only if no other thread
    /// already did: one `fdatasync` covers every record appended before it started.
    fn sync_through(&self, end: u64) -> Result<(), StoreError> {
        self.check_broken()?;
        // Written out before syncing: everything up to `target` is then in the file, so the
        // sync below covers it.
        let target = {
            let mut inner = self.lock();
            self.write_pending(&mut inner)?;
            inner.journal_len
        };
        self.sync_to(end, target)
    }

    /// After a write that stopped short: syncs what did reach the journal (the appends that
    /// fit) and returns how far it is durable, so the batches it holds can be answered.
    fn sync_written(&self) -> Result<u64, StoreError> {
        self.check_broken()?;
        let written = {
            let inner = self.lock();
            inner.journal_len - inner.pending_records.len() as u64
        };
        self.sync_to(written, written)?;
        Ok(written)
    }

    /// Makes the journal durable at least up to `end` with one `fdatasync`, unless another
    /// thread's already covered it; `target` is what the journal file holds now.
    fn sync_to(&self, end: u64, target: u64) -> Result<(), StoreError> {
        let mut durable = self.durable.lock().expect("durable lock poisoned: a sync panicked");
        if *durable >= end {
            return Ok(());
        }
        let started = Instant::now();
        let synced = self.journal_sync.sync_data();
        self.timer.observe(started);
        if let Err(e) = synced {
            // Linux may drop the dirty pages of a failed fsync: what is on disk is unknown,
            // so take no more changes until a restart recovers from the journal.
            self.broken.store(true, Ordering::SeqCst);
            log::error!("action: store_sync | result: fail | error: {e} | note: the store takes nothing more until restarted");
            return Err(StoreError::Io(e));
        }
        *durable = (*durable).max(target);
        Ok(())
    }

    /// Writes what is pending to both files under the held lock; on failure it stays
    /// pending, and the engine is marked broken only if a partial write could not be cut off.
    fn write_pending(&self, inner: &mut Inner) -> Result<(), StoreError> {
        inner.write_pending().map_err(|WriteFailed { error, cut }| {
            if !cut {
                self.broken.store(true, Ordering::SeqCst);
            }
            StoreError::Io(error)
        })
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

impl Engine for Journal {
    fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        let (admission, covered) = {
            let inner = self.lock();
            (inner.ledger.admit(agency, sequence, bets)?, inner.journal_len)
        };
        if let Admission::Replay(_) = admission {
            // The original may have been appended by another connection and not synced yet.
            self.sync_through(covered)?;
        }
        Ok(admission)
    }

    fn stage(&self, batch: &CheckedBatch<'_>) -> Result<Staged, StoreError> {
        self.check_broken()?;
        let CheckedBatch { agency, sequence, bets, .. } = *batch;
        let rows = winners_file::format_rows(agency, &batch.winning_bets).map_err(StoreError::Io)?;
        let bytes =
            record::encode_batch(agency, sequence, bets, batch.digest.to_bytes(), &batch.winners, &rows);
        let view = self.format.lines(&rows, &batch.winning_bets);
        let mut inner = self.lock();
        let (winners, replayed) = match inner.ledger.admit(agency, sequence, bets)? {
            // Committed meanwhile (by another connection): the same bets get its answer.
            Admission::Replay(committed) => {
                (Ledger::replay(agency, sequence, committed, batch.digest)?, true)
            }
            Admission::Fresh { .. } => {
                if inner.pending_records.len() >= WRITE_AT {
                    // Before this batch is added: a failure refuses it with nothing kept.
                    self.write_pending(&mut inner)?;
                }
                inner.append(&view, &bytes);
                inner.ledger.apply_batch(agency, sequence, bets, batch.winners.clone(), batch.digest)?;
                (batch.winners.clone(), false)
            }
        };
        Ok(Staged { winners, ticket: Ticket::at(inner.journal_len), replayed })
    }

    /// One sync covers them all: the journal decided each batch when it staged it. If the
    /// write before it stops short (a full disk), the batches it did write are synced and
    /// answered, the others refused.
    fn make_durable(&self, tickets: &[Ticket]) -> Result<Vec<Settled>, StoreError> {
        let end = tickets.iter().map(|t| t.position()).max().unwrap_or_default();
        let short = match self.sync_through(end) {
            Ok(()) => return Ok(tickets.iter().map(|_| Settled::AsStaged).collect()),
            Err(StoreError::Io(short)) if !self.broken.load(Ordering::SeqCst) => short,
            Err(e) => return Err(e),
        };
        let durable = self.sync_written()?;
        Ok(tickets
            .iter()
            .map(|t| {
                if t.position() <= durable {
                    Settled::AsStaged
                } else {
                    Settled::Refused(StoreError::Io(io::Error::new(short.kind(), short.to_string())))
                }
            })
            .collect())
    }

    fn finish_agency(&self, agency: u32, batches: u64) -> Result<(Tally, Progress), StoreError> {
        self.check_broken()?;
        let mut inner = self.lock();
        inner.ledger.admit_done(agency, batches)?;
        // Rare (once per agency), so synced right here under the lock: "done" is never seen
        // by a winners query before it is on disk.
        let bytes = Record::Done { agency, batches }.encode();
        // The batches before it are written first, so a failure leaves only the record to
        // take back.
        self.write_pending(&mut inner)?;
        inner.append(&[], &bytes);
        if let Err(e) = self.write_pending(&mut inner) {
            inner.take_back_last();
            return Err(e);
        }
        if let Err(e) = inner.journal.sync_data() {
            // As in `sync_through`: after a failed sync the disk's content is unknown.
            self.broken.store(true, Ordering::SeqCst);
            log::error!("action: store_sync | result: fail | error: {e} | note: the store takes nothing more until restarted");
            return Err(StoreError::Io(e));
        }
        let tally = inner.ledger.apply_done(agency, batches)?;
        Ok((tally, inner.ledger.progress()))
    }

    fn resume(&self, agency: u32) -> Result<Resume, StoreError> {
        self.check_broken()?;
        let (resume, covered) = {
            let inner = self.lock();
            (inner.ledger.resume(agency)?, inner.journal_len)
        };
        self.sync_through(covered)?;
        Ok(resume)
    }

    fn tally(&self, agency: u32) -> Result<Tally, StoreError> {
        self.lock().ledger.tally(agency)
    }

    fn progress(&self) -> Result<Progress, StoreError> {
        Ok(self.lock().ledger.progress())
    }

    fn agencies(&self) -> Result<Vec<Tally>, StoreError> {
        Ok(self.lock().ledger.tallies())
    }

    /// Ready while no sync has failed and the journal can still be opened for writing where
    /// it lives: a folder removed, made read-only or a full file system's refusal shows here
    /// before a batch meets it. No lock is taken, so a probe never waits behind a sync.
    fn ready(&self) -> Result<(), StoreError> {
        self.check_broken()?;
        OpenOptions::new()
            .append(true)
            .open(recovery::journal_path(&self.path))
            .map(drop)
            .map_err(StoreError::Io)
    }

    /// Syncs both files one last time: the point where a shutdown logs the store closed.
    /// Every answered batch is already in the synced journal; this makes the winners file
    /// (the view, synced lazily) durable too.
    fn close(&self) -> Result<(), StoreError> {
        let mut inner = self.lock();
        self.write_pending(&mut inner)?;
        inner.journal.sync_all().and_then(|()| inner.winners.sync_all()).map_err(StoreError::Io)
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

impl Inner {
    /// Appends rows for the winners file and a record for the journal, pending: neither
    /// written nor synced yet. Both lengths move.
    fn append(&mut self, rows: &[u8], record: &[u8]) {
        self.pending_rows.extend_from_slice(rows);
        self.pending_records.extend_from_slice(record);
        self.pending_ends.push((self.pending_rows.len(), self.pending_records.len()));
        self.winners_len += rows.len() as u64;
        self.journal_len += record.len() as u64;
    }

    /// Takes back the last append, still pending.
    fn take_back_last(&mut self) {
        self.pending_ends.pop();
        let (rows, records) = self.pending_ends.last().copied().unwrap_or_default();
        self.winners_len -= (self.pending_rows.len() - rows) as u64;
        self.journal_len -= (self.pending_records.len() - records) as u64;
        self.pending_rows.truncate(rows);
        self.pending_records.truncate(records);
    }

    /// Writes the pending rows, then the pending records, one write each (the rows first:
    /// the journal never holds a record whose rows are not in the winners file). If that
    /// fails, both files are cut back and the appends are written one by one, as many as
    /// the disk takes (a file size limit or a nearly full disk still stores what fits);
    /// the first that fails and all after it stay pending, nothing of them in the files.
    fn write_pending(&mut self) -> Result<(), WriteFailed> {
        if self.pending_ends.is_empty() {
            return Ok(());
        }
        let rows_at = self.winners_len - self.pending_rows.len() as u64;
        let records_at = self.journal_len - self.pending_records.len() as u64;
        let whole = self
            .winners
            .write_all(&self.pending_rows)
            .and_then(|()| self.journal.write_all(&self.pending_records));
        if whole.is_ok() {
            self.clear_pending(self.pending_ends.len());
            return Ok(());
        }
        self.cut_back(rows_at, records_at)?;
        let mut written = 0;
        let (mut rows_from, mut records_from) = (0, 0);
        for &(rows_end, records_end) in &self.pending_ends {
            let one = self
                .winners
                .write_all(&self.pending_rows[rows_from..rows_end])
                .and_then(|()| self.journal.write_all(&self.pending_records[records_from..records_end]));
            if let Err(error) = one {
                let (rows_cut, records_cut) = (rows_at + rows_from as u64, records_at + records_from as u64);
                let cut = self.cut_back(rows_cut, records_cut).is_ok();
                self.clear_pending(written);
                return Err(WriteFailed { error, cut });
            }
            written += 1;
            (rows_from, records_from) = (rows_end, records_end);
        }
        self.clear_pending(written);
        Ok(())
    }

    /// Cuts both files back to `rows` and `records` bytes, dropping what part of pending
    /// bytes a failed write left in them.
    fn cut_back(&mut self, rows: u64, records: u64) -> Result<(), WriteFailed> {
        self.winners.set_len(rows).and_then(|()| self.journal.set_len(records)).map_err(|error| {
            log::error!(
                "action: store_rollback | result: fail | error: {error} | note: the store takes nothing more until restarted"
            );
            WriteFailed { error, cut: false }
        })
    }

    /// Forgets the first `appends` pending appends, written now; the rest stay pending.
    fn clear_pending(&mut self, appends: usize) {
        let Some(&(rows, records)) = appends.checked_sub(1).and_then(|last| self.pending_ends.get(last))
        else {
            return;
        };
        self.pending_rows.drain(..rows);
        self.pending_records.drain(..records);
        self.pending_ends.drain(..appends);
        for end in &mut self.pending_ends {
            *end = (end.0 - rows, end.1 - records);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, thread};

    use protocol::Bet;
    use tempfile::TempDir;

    use super::{recovery::journal_path, *};

    /// A fresh directory (removed when the test ends) and the winners file's path in it.
    fn temp_path() -> (TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("winners.csv");
        (dir, path)
    }

    /// The checked batch `sequence` of `agency`: `bets` bets, `winners` winning at `positions`.
    fn checked<'a>(
        agency: u32,
        sequence: u64,
        bets: u64,
        positions: Vec<u32>,
        winners: &'a [Bet],
    ) -> CheckedBatch<'a> {
        // A stand-in for the digest of the batch's bets: the same for the same batch.
        let digest = protocol::Digest::of_bets(sequence * 1_000_000 + bets, winners);
        CheckedBatch {
            agency,
            sequence,
            bets,
            first_bet: 0,
            digest,
            after: protocol::Digest::default(),
            winners: positions,
            winning_bets: winners.iter().map(Bet::as_ref).collect(),
        }
    }

    fn bet(first: &str, last: &str, doc: &str) -> Bet {
        Bet::new(first.into(), last.into(), doc.into(), "1990-12-31").unwrap()
    }

    /// Commits a batch whose winners are `winners`, at positions 0, 1, ...
    fn commit(store: &Journal, agency: u32, sequence: u64, bets: u64, winners: &[Bet]) -> Vec<u32> {
        let positions = (0..winners.len() as u32).collect();
        store.commit(&checked(agency, sequence, bets, positions, winners)).unwrap()
    }

    #[test]
    fn rows_are_csv_with_header_and_quoting() {
        let (_dir, path) = temp_path();
        let store = Journal::open(&path, 2, WinnersFormat::Csv).unwrap();
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
        let (_dir, path) = temp_path();
        let store = Journal::open(&path, 3, WinnersFormat::Csv).unwrap();
        for agency in [0, 4, u32::MAX] {
            assert!(matches!(store.admit(agency, 1, 1), Err(StoreError::UnknownAgency { agencies: 3, .. })));
            assert!(matches!(store.resume(agency), Err(StoreError::UnknownAgency { .. })));
        }
        assert!(matches!(store.admit(3, 1, 1).unwrap(), Admission::Fresh { .. }));
    }

    #[test]
    fn progress_counts_pending_agencies_then_totals_winners() {
        let (_dir, path) = temp_path();
        let store = Journal::open(&path, 2, WinnersFormat::Csv).unwrap();
        assert_eq!(store.progress().unwrap(), Progress::Pending { agencies: 2 });
        commit(&store, 1, 1, 5, &[bet("A", "B", "1")]);
        assert_eq!(
            store.finish_agency(1, 1).unwrap(),
            (Tally { bets: 5, winners: 1, done: true }, Progress::Pending { agencies: 1 })
        );
        assert_eq!(store.progress().unwrap(), Progress::Pending { agencies: 1 });
        commit(&store, 2, 1, 3, &[bet("C", "D", "2"), bet("E", "F", "3")]);
        assert!(matches!(
            store.finish_agency(2, 2),
            Err(StoreError::OutOfSequence { agency: 2, expected: 1, got: 2 })
        ));
        assert_eq!(store.finish_agency(2, 1).unwrap().1, Progress::Complete { winners: 3 });
        assert_eq!(store.progress().unwrap(), Progress::Complete { winners: 3 });
    }

    #[test]
    fn a_finished_agency_takes_no_more_bets_and_cannot_finish_twice() {
        let (_dir, path) = temp_path();
        let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
        store.finish_agency(1, 0).unwrap();
        assert!(matches!(store.admit(1, 1, 1), Err(StoreError::AgencyFinished(1))));
        assert!(matches!(store.finish_agency(1, 0), Err(StoreError::AgencyFinished(1))));
    }

    #[test]
    fn a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice() {
        let (_dir, path) = temp_path();
        let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
        let positions = vec![4, 9];
        let winners = [bet("A", "B", "1"), bet("C", "D", "2")];
        store.commit(&checked(1, 1, 12, positions.clone(), &winners)).unwrap();
        let before = std::fs::read(&path).unwrap();
        assert!(
            matches!(store.admit(1, 1, 12).unwrap(), Admission::Replay(c) if c.winners == positions.clone())
        );
        assert!(matches!(
            store.admit(1, 1, 13),
            Err(StoreError::NotTheCommittedBatch { agency: 1, sequence: 1, committed: 12, got: 13 })
        ));
        // Even a commit of the same sequence (a duplicate racing the original) only replays.
        assert_eq!(store.commit(&checked(1, 1, 12, vec![0, 1], &winners)).unwrap(), positions);
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
        let (_dir, path) = temp_path();
        let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
        let file_len = |p: &Path| std::fs::metadata(p).unwrap().len();
        let before = (file_len(&path), file_len(&journal_path(&path)));
        let mut last = 0;
        for sequence in 1..=3 {
            let winners = [bet("A", "B", &sequence.to_string())];
            let staged = store.stage(&checked(1, sequence, 5, vec![2], &winners)).unwrap();
            assert_eq!(staged.winners, vec![2]);
            assert!(staged.ticket.position() > last, "each batch ends further into the journal");
            last = staged.ticket.position();
        }
        assert_eq!(store.tally(1).unwrap(), Tally { bets: 15, winners: 3, done: false });
        // Pending in memory until the sync: its group leaves in one write per file.
        assert_eq!((file_len(&path), file_len(&journal_path(&path))), before);
        store.make_durable(&[Ticket::at(last)]).unwrap();
        assert_eq!(*store.durable.lock().unwrap(), last);
        assert_eq!(file_len(&journal_path(&path)), last);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1 + 3);
    }

    #[test]
    fn close_writes_and_syncs_what_is_still_pending() {
        let (_dir, path) = temp_path();
        {
            let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
            store.stage(&checked(1, 1, 5, vec![0], &[bet("A", "B", "1")])).unwrap();
            store.close().unwrap();
        }
        let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
        assert_eq!(store.resume(1).unwrap().last_sequence, 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }

    #[test]
    fn concurrent_batches_never_tear_rows() {
        let (_dir, path) = temp_path();
        let store = Arc::new(Journal::open(&path, 4, WinnersFormat::Csv).unwrap());
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
        let (_dir, path) = temp_path();
        {
            let store = Journal::open(&path, 2, WinnersFormat::Csv).unwrap();
            commit(&store, 1, 1, 10, &[bet("A", "B", "1")]);
            commit(&store, 1, 2, 10, &[]);
            commit(&store, 2, 1, 4, &[bet("C", "D", "2")]);
            store.finish_agency(2, 1).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let store = Journal::open(&path, 2, WinnersFormat::Csv).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), before);
        assert_eq!(
            store.resume(1).map(|r| (r.last_sequence, r.tally)).unwrap(),
            (2, Tally { bets: 20, winners: 1, done: false })
        );
        assert_eq!(
            store.resume(2).map(|r| (r.last_sequence, r.tally)).unwrap(),
            (1, Tally { bets: 4, winners: 1, done: true })
        );
        assert!(matches!(store.admit(1, 1, 10).unwrap(), Admission::Replay(c) if c.winners == vec![0]));
        commit(&store, 1, 3, 1, &[bet("E", "F", "3")]);
        assert_eq!(store.finish_agency(1, 3).unwrap().1, Progress::Complete { winners: 3 });
    }

    #[test]
    fn a_torn_last_record_is_discarded_with_its_rows_wherever_the_cut_falls() {
        let (_dir, path) = temp_path();
        let journal = journal_path(&path);
        let (one_batch, winners_one) = {
            let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
            commit(&store, 1, 1, 10, &[bet("A", "B", "1")]);
            (std::fs::read(&journal).unwrap(), std::fs::read(&path).unwrap())
        };
        let (two_batches, winners_two) = {
            let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
            commit(&store, 1, 2, 10, &[bet("C", "D", "2"), bet("E", "F", "3")]);
            (std::fs::read(&journal).unwrap(), std::fs::read(&path).unwrap())
        };
        for cut in one_batch.len()..two_batches.len() {
            // The crash left batch 2's rows whole in the winners file, its record torn.
            std::fs::write(&journal, &two_batches[..cut]).unwrap();
            std::fs::write(&path, &winners_two).unwrap();
            let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
            assert_eq!(store.resume(1).unwrap().last_sequence, 1, "cut at {cut}");
            assert_eq!(std::fs::read(&journal).unwrap(), one_batch, "cut at {cut}");
            assert_eq!(std::fs::read(&path).unwrap(), winners_one, "cut at {cut}");
        }
        // Without the tear, the same files keep both batches.
        std::fs::write(&journal, &two_batches).unwrap();
        let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
        assert_eq!(store.tally(1).unwrap(), Tally { bets: 20, winners: 3, done: false });
    }

    #[test]
    fn a_lost_winners_file_is_rebuilt_from_the_journal() {
        let (_dir, path) = temp_path();
        {
            let store = Journal::open(&path, 1, WinnersFormat::Csv).unwrap();
            commit(&store, 1, 1, 3, &[bet("A", "B", "1")]);
        }
        let before = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        drop(Journal::open(&path, 1, WinnersFormat::Csv).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
        std::fs::write(&path, "agency,first_name,last_name,document,birthdate\n9,X,Y,1,2000-01-01\n")
            .unwrap();
        drop(Journal::open(&path, 1, WinnersFormat::Csv).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn the_course_format_is_rendered_from_the_journal_and_may_change_between_starts() {
        let (_dir, path) = temp_path();
        {
            let store = Journal::open(&path, 1, WinnersFormat::Course).unwrap();
            commit(&store, 1, 1, 3, &[bet("Ana", "Díaz", "1")]);
            commit(&store, 1, 2, 3, &[bet("Luz", "Pérez", "2")]);
        }
        let course = "Full name: Ana Díaz | Document: 1 | Date of Birth: 31/12/1990\n\
                      Full name: Luz Pérez | Document: 2 | Date of Birth: 31/12/1990\n";
        assert_eq!(std::fs::read_to_string(&path).unwrap(), course);
        // The same lottery, started again with the CSV view: the file is rebuilt as CSV.
        drop(Journal::open(&path, 1, WinnersFormat::Csv).unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "agency,first_name,last_name,document,birthdate\n1,Ana,Díaz,1,1990-12-31\n1,Luz,Pérez,2,1990-12-31\n"
        );
        drop(Journal::open(&path, 1, WinnersFormat::Course).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), course);
    }

    #[test]
    fn a_journal_of_another_number_of_agencies_is_refused() {
        let (_dir, path) = temp_path();
        drop(Journal::open(&path, 3, WinnersFormat::Csv).unwrap());
        let err = Journal::open(&path, 5, WinnersFormat::Csv).unwrap_err();
        assert!(err.to_string().contains("among 3 agencies but SERVER_AGENCIES is 5"), "{err}");
    }

    #[test]
    fn a_file_that_cannot_be_created_is_an_error() {
        assert!(Journal::open(Path::new("/nonexistent-dir/winners.csv"), 1, WinnersFormat::Csv).is_err());
    }
}
