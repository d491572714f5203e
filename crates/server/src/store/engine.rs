//! The face of the store: the [`Engine`] trait every engine implements, the checked batch it
//! is given, and the commit [`Ticket`] it hands back. Nothing here knows an engine.
//!
//! The contract every engine keeps: a batch's rows, its sequence and its counts are committed
//! all or nothing; an answer that reveals a batch as committed (its result after
//! [`Engine::make_durable`], a replay from [`Engine::admit`], a resume point) is given only
//! once it is durable; `finish_agency` is durable before any caller can see it. A batch is
//! committed only on top of the batch it was admitted after ([`CheckedBatch::after`]), so
//! an engine that decides at commit time, after the connection has staged the next batches
//! (the database), never lays one upload's batch on another's.

use protocol::Digest;

use super::{
    error::StoreError,
    ledger::{Admission, Committed, Ledger, Progress, Resume, Tally},
};

/// What the lottery needs from storage. Every method is callable from many connection threads
/// at once.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Decides batch `sequence` of `agency` (with `bets` bets) before its winners are
    /// computed: refuse, replay, or fresh. A replay is durable when it returns.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`], [`StoreError::NotTheCommittedBatch`], and the engine's
    /// own failures ([`StoreError::Io`], [`StoreError::Broken`]).
    fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError>;

    /// The answer to batch `sequence` of `agency` that [`Engine::admit`] found `committed`:
    /// its committed winners if it holds the same bets (`digest`, from the committed first
    /// bet), else a conflict: another upload under the same agency and sequence, never merged.
    /// The rule is the ledger's, the same for every engine.
    ///
    /// # Errors
    /// [`StoreError::Conflict`].
    fn replay(
        &self,
        agency: u32,
        sequence: u64,
        committed: Committed,
        digest: Digest,
    ) -> Result<Vec<u32>, StoreError> {
        Ledger::replay(agency, sequence, committed, digest)
    }

    /// Records a checked batch (counts, winners' rows, its sequence) all or nothing, or queues
    /// it to be. Returns the winner positions to answer with (the original ones if the same
    /// batch was committed meanwhile, e.g. by another connection) and a [`Ticket`]; the answer
    /// may be sent only after [`Engine::make_durable`] with that ticket, and as it says.
    ///
    /// # Errors
    /// As [`Engine::admit`]; after a failure nothing of the batch is kept.
    fn stage(&self, batch: &CheckedBatch<'_>) -> Result<Staged, StoreError>;

    /// Makes the batches staged under `tickets` durable (the journal: one shared `fdatasync`
    /// to the latest; the database: the commit of each one's group) and gives, for each in
    /// order, what its answer is: as staged, or what the commit decided instead (an engine
    /// that decides only at commit time, after the connection staged more, learns there that
    /// another connection or central committed the batch first, or that it breaks a rule).
    ///
    /// # Errors
    /// [`StoreError::Io`] when none of them can be made durable, [`StoreError::Broken`] after
    /// an earlier failure: then nothing of them is acknowledged.
    fn make_durable(&self, tickets: &[Ticket]) -> Result<Vec<Settled>, StoreError>;

    /// Marks `agency` done after `batches` batches, durably; returns its final tally and the
    /// progress right after (exactly one caller sees the lottery complete).
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`] when `batches` is not the count committed, and the
    /// engine's own failures.
    fn finish_agency(&self, agency: u32, batches: u64) -> Result<(Tally, Progress), StoreError>;

    /// What is committed for `agency` (durable when it returns).
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], and the engine's own failures.
    fn resume(&self, agency: u32) -> Result<Resume, StoreError>;

    /// One agency's counts.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], and the engine's own failures.
    fn tally(&self, agency: u32) -> Result<Tally, StoreError>;

    /// Every agency's counts, agency 1 first: what the status page shows. Committed state
    /// only; with several centrals on one store, all of theirs.
    ///
    /// # Errors
    /// The engine's own failures (a database may be unreachable).
    fn agencies(&self) -> Result<Vec<Tally>, StoreError>;

    /// Whether the store can take a batch now, answered within about a second: the journal's
    /// file can be opened for writing and no sync has failed; the database answers a query.
    ///
    /// # Errors
    /// Why not: [`StoreError::Broken`] after a failed sync, [`StoreError::Io`] otherwise.
    fn ready(&self) -> Result<(), StoreError>;

    /// The total if every agency is done, else how many are pending; committed state only.
    ///
    /// # Errors
    /// The engine's own failures (a database may be unreachable).
    fn progress(&self) -> Result<Progress, StoreError>;

    /// Asks to be told the lottery's total, once, the moment it completes, through this
    /// central or any other sharing the store; `completed` is called from a thread of the
    /// engine's (right away if it is complete already), never after [`Engine::close`]. The
    /// lottery calls it once, at start. Nothing by default: an engine only one central uses
    /// learns every completion from its own [`Engine::finish_agency`].
    fn on_completion(&self, completed: Box<dyn FnOnce(u64) + Send>) {
        let _ = completed;
    }

    /// The central's stop is forcing connections closed: calls waiting on storage that may not
    /// answer (a database that stopped answering) return now with an error, which
    /// acknowledges nothing; what they sent may still commit, and is then a replay. Nothing by
    /// default (an engine whose calls always end soon).
    fn interrupt(&self) {}

    /// Last sync at shutdown, after every connection is done.
    ///
    /// # Errors
    /// [`StoreError::Io`] when the last sync fails.
    fn close(&self) -> Result<(), StoreError>;

    /// Where the data lives, for log lines (today the winners file's path).
    fn location(&self) -> String;
}

/// A batch that passed validation and the winner check, ready to store.
#[derive(Debug)]
pub struct CheckedBatch<'a> {
    /// Its agency.
    pub agency: u32,
    /// Its sequence within the agency's upload.
    pub sequence: u64,
    /// How many bets it held.
    pub bets: u64,
    /// The place of its first bet in the agency's upload (the `first_bet`
    /// [`Admission::Fresh`] gave).
    pub first_bet: u64,
    /// The digest of its bets from `first_bet` on: a replay is answered only for the same
    /// bets.
    pub digest: protocol::Digest,
    /// The digest of the batch it was admitted after (the `after` [`Admission::Fresh`] gave;
    /// zero for an agency's first batch): it commits only on top of that one.
    pub after: protocol::Digest,
    /// Positions of its winners in the batch, as answered.
    pub winners: Vec<u32>,
    /// The winning bets themselves, in the order of `winners`: what the winners' rows hold.
    pub winning_bets: Vec<protocol::BetRef<'a>>,
}

/// What [`Engine::stage`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// Positions of the batch's winners, to answer with once durable.
    pub winners: Vec<u32>,
    /// What [`Engine::make_durable`] must cover before the answer goes out.
    pub ticket: Ticket,
    /// Whether the batch was committed already (by another connection, meanwhile) and
    /// nothing was stored now: the answer is that commit's, and it is counted as a replay.
    pub replayed: bool,
}

/// What [`Engine::make_durable`] says of one staged batch.
#[derive(Debug)]
pub enum Settled {
    /// Durable as staged: its answer stands.
    AsStaged,
    /// Committed before (by another connection or central) with the same bets, so nothing
    /// was stored now: answered with that commit's winners, counted as a replay.
    Replayed(Vec<u32>),
    /// Refused at its commit (a rule the commit found broken, or the commit failed): nothing
    /// of it is kept.
    Refused(StoreError),
}

/// An opaque commit ticket: what must be durable before an answer goes out. The journal keeps
/// the byte offset its sync must reach, the database the batch's place in its commit queue;
/// callers only hold tickets and hand them back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// A ticket for position `at` in an engine's commit order (the journal: a byte offset;
    /// 0, the default: nothing to wait for). Only engines make tickets.
    pub(in crate::store) fn at(at: u64) -> Ticket {
        Ticket(at)
    }

    /// The position this ticket stands for; only the engine that made it reads it.
    pub(in crate::store) fn position(self) -> u64 {
        self.0
    }
}
