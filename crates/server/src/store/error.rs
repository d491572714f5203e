//! Why storage refuses a request: the lottery's rules (an unknown agency, a batch out of
//! sequence...) and the engine's own failures (I/O, a store broken by a failed sync).

use std::{error::Error, fmt, io};

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
    /// A batch came under a committed sequence with other bets than the committed batch's:
    /// another upload under the same agency (a copied configuration, say). Never merged.
    Conflict {
        /// The agency.
        agency: u32,
        /// The sequence.
        sequence: u64,
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
            StoreError::Conflict { agency, sequence } => write!(
                f,
                "agency {agency}: batch {sequence} is committed with other bets than these; \
                 is another agency uploading with the same id?"
            ),
            StoreError::Io(e) => write!(f, "cannot write the winners file or its journal: {e}"),
            StoreError::Broken => {
                write!(f, "the store failed to sync earlier; it takes nothing until the central restarts")
            }
        }
    }
}

impl Error for StoreError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a store cannot be opened: the central must not start then.
#[derive(Debug)]
pub enum OpenError {
    /// The store's files cannot be created, read, written or synced.
    Files {
        /// The winners file.
        path: std::path::PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The store holds a lottery it cannot continue: a damaged journal, or one among another
    /// number of agencies. The reason says what to do.
    Recover {
        /// The winners file.
        path: std::path::PathBuf,
        /// What is wrong, and what to do about it.
        reason: String,
    },
    /// The database cannot be reached, or holds a lottery the central cannot continue; the
    /// message says which.
    Database(io::Error),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Files { path, source } => {
                write!(f, "cannot open winners file {}: {source}", path.display())
            }
            OpenError::Recover { path, reason } => {
                write!(f, "cannot open winners file {}: {reason}", path.display())
            }
            OpenError::Database(source) => write!(f, "cannot open the database: {source}"),
        }
    }
}

impl Error for OpenError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            OpenError::Files { source, .. } | OpenError::Database(source) => Some(source),
            OpenError::Recover { .. } => None,
        }
    }
}
