//! The rules of sequencing and replay, written once: which batch of an agency comes next, which
//! one is a replay of a committed batch (and its original answer), when an agency may say it
//! is done, and the counts that follow. Pure state, no I/O and no lock: an engine holds a
//! [`Ledger`] under its own lock, asks it before writing and tells it after, and replays its
//! log through the same methods at start (the journal does both), so the rules a live batch
//! meets and the rules a recovered one meets cannot drift apart.

use protocol::Digest;

use super::{error::StoreError, replays::Recent};

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

/// What is committed for one agency, for an agency resuming its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// Its last committed batch (0: none).
    pub last_sequence: u64,
    /// Its counts.
    pub tally: Tally,
    /// The digest of every bet committed, in upload order ([`Digest::of_bets`] from 0): what
    /// the agency's own dataset must give for its first `tally.bets` bets.
    pub digest: Digest,
}

/// A committed batch, as kept for replays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its bets.
    pub bets: u64,
    /// The place of its first bet in the agency's upload (the bets committed before it).
    pub first_bet: u64,
    /// Positions of its winners, as answered.
    pub winners: Vec<u32>,
    /// Its content's digest, from `first_bet`.
    pub digest: Digest,
}

/// What to do with a batch, decided before its winners are computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The next batch of its agency: check it and commit it. Its first bet is bet
    /// `first_bet` of the agency's upload (what its digest is computed from).
    Fresh {
        /// The bets committed before it.
        first_bet: u64,
        /// The digest of the agency's last committed batch (zero before its first): the
        /// batch commits only on top of it ([`crate::store::CheckedBatch::after`]).
        after: Digest,
    },
    /// Already committed: answer with its original winners if the content is the same (its
    /// digest), store nothing.
    Replay(Committed),
}

/// Every agency's committed state: counts, and each committed batch's size and answer.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Index `agency - 1`.
    agencies: Vec<AgencyState>,
}

/// One agency's committed state.
#[derive(Debug, Clone, Default)]
struct AgencyState {
    tally: Tally,
    /// The sum of its committed batches' digests: the digest of all its bets.
    digest: Digest,
    /// The count of committed batches, and the last ones' bet counts and winner positions,
    /// so a replayed batch gets its original answer (and one of another size is refused);
    /// what is kept does not grow with the number of batches.
    results: Recent<Committed>,
}

impl AgencyState {
    fn last_sequence(&self) -> u64 {
        self.results.last_sequence()
    }
}

impl Ledger {
    /// A lottery among `agencies` agencies, numbered 1 to `agencies`, none of which has
    /// committed anything.
    #[must_use]
    pub fn new(agencies: u32) -> Ledger {
        Ledger { agencies: vec![AgencyState::default(); agencies as usize] }
    }

    /// Decides what to do with batch `sequence` of `agency` holding `bets` bets: a committed
    /// sequence is a replay (if it has the committed size), the next one is fresh, anything
    /// else is refused.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::NotTheCommittedBatch`],
    /// [`StoreError::ReplayExpired`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`].
    pub fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        let slot = self.slot(agency)?;
        let next = slot.last_sequence() + 1;
        if sequence >= 1 && sequence < next {
            let Some(committed) = slot.results.get(sequence) else {
                let oldest = slot.results.oldest_kept();
                return Err(StoreError::ReplayExpired { agency, sequence, oldest });
            };
            if committed.bets != bets {
                return Err(StoreError::NotTheCommittedBatch {
                    agency,
                    sequence,
                    committed: committed.bets,
                    got: bets,
                });
            }
            return Ok(Admission::Replay(committed.clone()));
        }
        if slot.tally.done {
            return Err(StoreError::AgencyFinished(agency));
        }
        if sequence != next {
            return Err(StoreError::OutOfSequence { agency, expected: next, got: sequence });
        }
        let after = slot.results.get(next - 1).map(|last| last.digest).unwrap_or_default();
        Ok(Admission::Fresh { first_bet: slot.tally.bets, after })
    }

    /// Counts batch `sequence` of `agency` as committed, with its answer `winners` and its
    /// content's `digest`. Only the next batch may be applied: a replay here (a second record
    /// of a committed batch) is refused like any batch out of sequence.
    ///
    /// # Errors
    /// As [`Ledger::admit`], and [`StoreError::OutOfSequence`] for a committed sequence.
    pub fn apply_batch(
        &mut self,
        agency: u32,
        sequence: u64,
        bets: u64,
        winners: Vec<u32>,
        digest: Digest,
    ) -> Result<(), StoreError> {
        let Admission::Fresh { first_bet, .. } = self.admit(agency, sequence, bets)? else {
            let expected = self.slot(agency)?.last_sequence() + 1;
            return Err(StoreError::OutOfSequence { agency, expected, got: sequence });
        };
        let slot = self.slot_mut(agency)?;
        slot.tally.bets += bets;
        slot.tally.winners += winners.len() as u64;
        slot.digest = slot.digest.plus(digest);
        slot.results.push(Committed { bets, first_bet, winners, digest });
        Ok(())
    }

    /// What to answer a batch that came under a committed sequence: the original winners if
    /// it holds the same bets (`digest`), else a conflict: another upload under the same
    /// agency and sequence, never merged.
    ///
    /// # Errors
    /// [`StoreError::Conflict`].
    pub fn replay(
        agency: u32,
        sequence: u64,
        committed: Committed,
        digest: Digest,
    ) -> Result<Vec<u32>, StoreError> {
        if committed.digest == digest {
            Ok(committed.winners)
        } else {
            Err(StoreError::Conflict { agency, sequence })
        }
    }

    /// Decides whether `agency` may say it is done after `batches` batches: only once, and
    /// only with the count it committed.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`] when `batches` is not the count committed.
    pub fn admit_done(&self, agency: u32, batches: u64) -> Result<(), StoreError> {
        let slot = self.slot(agency)?;
        if slot.tally.done {
            return Err(StoreError::AgencyFinished(agency));
        }
        if slot.last_sequence() != batches {
            return Err(StoreError::OutOfSequence { agency, expected: slot.last_sequence(), got: batches });
        }
        Ok(())
    }

    /// Marks `agency` done after `batches` batches; returns its final tally.
    ///
    /// # Errors
    /// As [`Ledger::admit_done`].
    pub fn apply_done(&mut self, agency: u32, batches: u64) -> Result<Tally, StoreError> {
        self.admit_done(agency, batches)?;
        let slot = self.slot_mut(agency)?;
        slot.tally.done = true;
        Ok(slot.tally)
    }

    /// `agency`'s counts.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`].
    pub fn tally(&self, agency: u32) -> Result<Tally, StoreError> {
        self.slot(agency).map(|s| s.tally)
    }

    /// Every agency's counts, agency 1 first.
    #[must_use]
    pub fn tallies(&self) -> Vec<Tally> {
        self.agencies.iter().map(|s| s.tally).collect()
    }

    /// `agency`'s last committed batch and counts.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`].
    pub fn resume(&self, agency: u32) -> Result<Resume, StoreError> {
        self.slot(agency).map(|s| Resume {
            last_sequence: s.last_sequence(),
            tally: s.tally,
            digest: s.digest,
        })
    }

    /// The total of winners if every agency is done, else how many are not.
    #[must_use]
    pub fn progress(&self) -> Progress {
        let pending = self.agencies.iter().filter(|s| !s.tally.done).count();
        if pending == 0 {
            Progress::Complete { winners: self.agencies.iter().map(|s| s.tally.winners).sum() }
        } else {
            // At most the number of agencies, which is a u32.
            Progress::Pending { agencies: pending as u32 }
        }
    }

    /// Counts across every agency: batches committed, bets, winners, agencies done (for the
    /// line an engine logs when it opens).
    #[must_use]
    pub fn totals(&self) -> (u64, u64, u64, usize) {
        self.agencies.iter().fold((0, 0, 0, 0), |(batches, bets, winners, done), s| {
            (
                batches + s.last_sequence(),
                bets + s.tally.bets,
                winners + s.tally.winners,
                done + usize::from(s.tally.done),
            )
        })
    }

    fn slot(&self, agency: u32) -> Result<&AgencyState, StoreError> {
        agency
            .checked_sub(1)
            .and_then(|i| self.agencies.get(i as usize))
            .ok_or(StoreError::UnknownAgency { agency, agencies: self.agencies.len() as u32 })
    }

    fn slot_mut(&mut self, agency: u32) -> Result<&mut AgencyState, StoreError> {
        let agencies = self.agencies.len() as u32;
        agency
            .checked_sub(1)
            .and_then(|i| self.agencies.get_mut(i as usize))
            .ok_or(StoreError::UnknownAgency { agency, agencies })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agencies_are_numbered_from_one() {
        let ledger = Ledger::new(3);
        for agency in [0, 4, u32::MAX] {
            assert!(matches!(ledger.admit(agency, 1, 1), Err(StoreError::UnknownAgency { agencies: 3, .. })));
            assert!(matches!(ledger.resume(agency), Err(StoreError::UnknownAgency { .. })));
        }
        assert!(matches!(ledger.admit(3, 1, 1).unwrap(), Admission::Fresh { .. }));
    }

    #[test]
    fn batches_apply_in_sequence_and_replay_with_their_answer() {
        let mut ledger = Ledger::new(1);
        ledger.apply_batch(1, 1, 10, vec![3], Digest::default()).unwrap();
        assert!(matches!(ledger.admit(1, 1, 10).unwrap(), Admission::Replay(c) if c.winners == vec![3]));
        assert!(matches!(
            ledger.admit(1, 1, 11),
            Err(StoreError::NotTheCommittedBatch { committed: 10, .. })
        ));
        assert!(matches!(ledger.admit(1, 3, 1), Err(StoreError::OutOfSequence { expected: 2, got: 3, .. })));
        // A second record of a committed batch is out of sequence, not a replay.
        assert!(matches!(
            ledger.apply_batch(1, 1, 10, vec![3], Digest::default()),
            Err(StoreError::OutOfSequence { expected: 2, got: 1, .. })
        ));
        assert_eq!(ledger.tally(1).unwrap(), Tally { bets: 10, winners: 1, done: false });
    }

    #[test]
    fn done_takes_the_committed_count_once_and_closes_the_agency() {
        let mut ledger = Ledger::new(2);
        ledger.apply_batch(1, 1, 4, vec![], Digest::default()).unwrap();
        assert!(matches!(
            ledger.apply_done(1, 2),
            Err(StoreError::OutOfSequence { expected: 1, got: 2, .. })
        ));
        assert_eq!(ledger.apply_done(1, 1).unwrap(), Tally { bets: 4, winners: 0, done: true });
        assert!(matches!(ledger.apply_done(1, 1), Err(StoreError::AgencyFinished(1))));
        assert!(matches!(ledger.admit(1, 2, 1), Err(StoreError::AgencyFinished(1))));
        assert_eq!(ledger.progress(), Progress::Pending { agencies: 1 });
        ledger.apply_done(2, 0).unwrap();
        assert_eq!(ledger.progress(), Progress::Complete { winners: 0 });
        assert_eq!(ledger.totals(), (1, 4, 0, 2));
    }
}
