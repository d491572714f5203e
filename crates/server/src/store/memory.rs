//! An engine that keeps the lottery in memory only: the ledger behind one lock, nothing on
//! disk, every change durable the moment it is made (there is no disk to wait for). It is
//! the smallest thing that keeps the `Engine` contract, so the behaviour suite runs on it and
//! tests of the layers above can use it; a central never opens it.

use std::sync::{Mutex, MutexGuard};

use super::{
    engine::{CheckedBatch, Engine, Settled, Staged, Ticket},
    error::StoreError,
    ledger::{Admission, Ledger, Progress, Resume, Tally},
};

/// The ledger alone.
#[derive(Debug)]
pub(crate) struct Memory {
    /// Every operation is one short critical section over the ledger.
    ledger: Mutex<Ledger>,
}

impl Memory {
    /// An empty lottery among `agencies` agencies.
    pub(crate) fn new(agencies: u32) -> Memory {
        Memory { ledger: Mutex::new(Ledger::new(agencies)) }
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        // Only a bug in the ledger could panic under this lock; a test should see it.
        self.ledger.lock().expect("memory engine lock poisoned")
    }
}

impl Engine for Memory {
    fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        self.lock().admit(agency, sequence, bets)
    }

    fn stage(&self, batch: &CheckedBatch<'_>) -> Result<Staged, StoreError> {
        let CheckedBatch { agency, sequence, bets, digest, .. } = *batch;
        let mut ledger = self.lock();
        let (winners, replayed) = match ledger.admit(agency, sequence, bets)? {
            Admission::Replay(committed) => (Ledger::replay(agency, sequence, committed, digest)?, true),
            Admission::Fresh { .. } => {
                ledger.apply_batch(agency, sequence, bets, batch.winners.clone(), digest)?;
                (batch.winners.clone(), false)
            }
        };
        Ok(Staged { winners, ticket: Ticket::default(), replayed })
    }

    fn make_durable(&self, tickets: &[Ticket]) -> Result<Vec<Settled>, StoreError> {
        Ok(tickets.iter().map(|_| Settled::AsStaged).collect())
    }

    fn finish_agency(&self, agency: u32, batches: u64) -> Result<(Tally, Progress), StoreError> {
        let mut ledger = self.lock();
        ledger.admit_done(agency, batches)?;
        let tally = ledger.apply_done(agency, batches)?;
        Ok((tally, ledger.progress()))
    }

    fn resume(&self, agency: u32) -> Result<Resume, StoreError> {
        self.lock().resume(agency)
    }

    fn tally(&self, agency: u32) -> Result<Tally, StoreError> {
        self.lock().tally(agency)
    }

    fn agencies(&self) -> Result<Vec<Tally>, StoreError> {
        Ok(self.lock().tallies())
    }

    fn ready(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn progress(&self) -> Result<Progress, StoreError> {
        Ok(self.lock().progress())
    }

    fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn location(&self) -> String {
        "memory".to_owned()
    }
}
