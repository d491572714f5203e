//! What the store knows and answers, apart from how it keeps it: an agency's tally and
//! committed batches, where the lottery stands, what to do with an incoming batch, a batch
//! staged for a shared sync, and why the store refuses.

use std::{fmt, io};

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

/// What the store has committed for one agency, for an agency resuming its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Its last committed batch (0: none).
    pub last_sequence: u64,
    /// Its counts.
    pub tally: Tally,
}

/// What to do with a batch, decided before its winners are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The next batch of its agency: check it and commit it.
    Fresh,
    /// Already committed: answer with these winner positions, store nothing.
    Replay(Vec<u32>),
}

/// A batch appended but not yet known to be on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// Positions of its winners, to answer with once durable.
    pub winners: Vec<u32>,
    /// The journal offset a sync must reach before the answer.
    pub durable_at: u64,
}

/// One agency's committed state, rebuilt from the journal at start.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgencyState {
    pub tally: Tally,
    /// The count of committed batches, and the last ones' bet counts and winner positions,
    /// so a replayed batch gets its original answer (and one of another size is refused).
    pub results: crate::replays::Recent,
}

impl AgencyState {
    pub fn last_sequence(&self) -> u64 {
        self.results.last_sequence()
    }
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
    /// A batch skipped ahead of the next expected one, or `AgencyDone` counted other batches
    /// than were committed.
    OutOfSequence {
        /// The agency.
        agency: u32,
        /// What the store expected (the next batch, or the batches committed).
        expected: u64,
        /// What it got.
        got: u64,
    },
    /// A batch with a committed sequence came again with another number of bets: it is not
    /// the batch that was committed.
    NotTheCommittedBatch {
        /// The agency.
        agency: u32,
        /// The sequence.
        sequence: u64,
        /// Bets of the committed batch.
        committed: u64,
        /// Bets of this one.
        got: u64,
    },
    /// A committed batch came again, but it is older than the answers kept for replays.
    ReplayExpired {
        /// The agency.
        agency: u32,
        /// The sequence.
        sequence: u64,
        /// The oldest sequence whose answer is kept.
        oldest: u64,
    },
    /// Writing or syncing a file failed; the files were cut back, nothing was counted.
    Io(io::Error),
    /// An earlier sync failed, so what is on disk is uncertain: the store refuses every
    /// change until a restart recovers from the journal.
    Broken,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::UnknownAgency { agency, agencies } => {
                write!(f, "agency {agency} is not one of the {agencies} agencies (1 to {agencies})")
            }
            StoreError::AgencyFinished(agency) => write!(f, "agency {agency} already finished sending bets"),
            StoreError::OutOfSequence { agency, expected, got } => {
                write!(f, "agency {agency}: expected batch count {expected}, got {got}")
            }
            StoreError::NotTheCommittedBatch { agency, sequence, committed, got } => write!(
                f,
                "agency {agency}: batch {sequence} was committed with {committed} bets, this one has {got}"
            ),
            StoreError::ReplayExpired { agency, sequence, oldest } => write!(
                f,
                "agency {agency}: batch {sequence} is committed, but only the answers from batch {oldest} on are kept for replays"
            ),
            StoreError::Io(e) => write!(f, "cannot write the winners file or its journal: {e}"),
            StoreError::Broken => {
                write!(f, "the store failed to sync earlier; it takes nothing until the central restarts")
            }
        }
    }
}

impl std::error::Error for StoreError {}
