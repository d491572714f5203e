//! One behaviour suite for every engine: each behaviour in `behaviour.rs` is written once
//! against the `Engine` face, and `engine_suite!` runs all of them against each engine it is
//! given (a [`Harness`] that opens it). A new engine gets every test by adding one line to the
//! `engine_suite!` call below. What only one engine has is tested beside it (the database
//! engine's in `database.rs` here, the journal's files in `journal/`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod behaviour;
mod database;

use std::{sync::Arc, time::Duration};

use protocol::{Bet, Digest};
use tempfile::TempDir;
use testkit::postgres::Cluster;

use super::{
    journal::Journal, memory::Memory, postgres::Postgres, Admission, CheckedBatch, DatabaseSettings, Engine,
    Settled, StoreError, WinnersFormat,
};

/// Generous: the machine running the tests may be busy.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Opens one engine for one test, and says what it stored.
trait Harness: Sized {
    /// A new, empty store for `agencies` agencies, named after `test`; `None` when this
    /// machine cannot run the engine (no PostgreSQL binaries, outside CI: the cluster says so).
    fn open(test: &str, agencies: u32) -> Option<Self>;
    /// The engine under test.
    fn engine(&self) -> &dyn Engine;
    /// Another central on the same store; the same engine where a store has one central only.
    fn another(&self) -> Arc<dyn Engine>;
    /// Winners' rows the store holds, where it can say (a winner stored twice shows here).
    fn stored_rows(&self) -> Option<u64>;
}

/// The journal in a scratch folder, removed when the test ends.
struct JournalHarness {
    dir: TempDir,
    engine: Arc<Journal>,
}

impl Harness for JournalHarness {
    fn open(_test: &str, agencies: u32) -> Option<Self> {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let path = dir.path().join("winners.csv");
        let engine = Arc::new(Journal::open(&path, agencies, WinnersFormat::Csv).expect("open the journal"));
        Some(JournalHarness { dir, engine })
    }
    fn engine(&self) -> &dyn Engine {
        &*self.engine
    }
    fn another(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }
    fn stored_rows(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.dir.path().join("winners.csv")).unwrap();
        Some(text.lines().count() as u64 - 1)
    }
}

/// A throwaway PostgreSQL cluster with one database for the test.
struct PostgresHarness {
    cluster: Cluster,
    url: String,
    agencies: u32,
    engine: Postgres,
}

impl Harness for PostgresHarness {
    fn open(test: &str, agencies: u32) -> Option<Self> {
        let cluster = Cluster::start(test)?;
        let url = cluster.create_database(test);
        let settings =
            DatabaseSettings { url: url.clone(), password_file: None, pool_size: 4, timeout: TIMEOUT };
        let engine = Postgres::open(&settings, agencies).expect("open the engine");
        Some(PostgresHarness { cluster, url, agencies, engine })
    }
    fn engine(&self) -> &dyn Engine {
        &self.engine
    }
    fn another(&self) -> Arc<dyn Engine> {
        let settings =
            DatabaseSettings { url: self.url.clone(), password_file: None, pool_size: 4, timeout: TIMEOUT };
        Arc::new(Postgres::open(&settings, self.agencies).expect("a second central"))
    }
    fn stored_rows(&self) -> Option<u64> {
        Some(self.cluster.psql(&self.url, "SELECT count(*) FROM winners").parse().unwrap())
    }
}

/// The in-memory engine: nothing on disk to look at.
struct MemoryHarness(Arc<Memory>);

impl Harness for MemoryHarness {
    fn open(_test: &str, agencies: u32) -> Option<Self> {
        Some(MemoryHarness(Arc::new(Memory::new(agencies))))
    }
    fn engine(&self) -> &dyn Engine {
        &*self.0
    }
    fn another(&self) -> Arc<dyn Engine> {
        self.0.clone()
    }
    fn stored_rows(&self) -> Option<u64> {
        None
    }
}

/// Every behaviour, as one `#[test]` each, for each `name: Harness` pair given.
macro_rules! engine_suite {
    ($($name:ident: $harness:ty),* $(,)?) => {$(
        mod $name {
            use super::{behaviour, Harness};

            fn open(test: &str, agencies: u32) -> Option<$harness> {
                <$harness as Harness>::open(test, agencies)
            }

            #[test]
            fn agencies_are_numbered_from_one() {
                let Some(h) = open("numbers", 3) else { return };
                behaviour::agencies_are_numbered_from_one(h.engine());
            }

            #[test]
            fn progress_counts_pending_agencies_then_totals_winners() {
                let Some(h) = open("progress", 2) else { return };
                behaviour::progress_counts_pending_agencies_then_totals_winners(h.engine());
            }

            #[test]
            fn a_finished_agency_takes_no_more_bets_and_cannot_finish_twice() {
                let Some(h) = open("finished", 2) else { return };
                behaviour::a_finished_agency_takes_no_more_bets_and_cannot_finish_twice(h.engine());
            }

            #[test]
            fn a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice() {
                let Some(h) = open("replay", 1) else { return };
                behaviour::a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice(h.engine());
                if let Some(rows) = h.stored_rows() {
                    assert_eq!(rows, 2, "the batch's two winners, once");
                }
            }

            #[test]
            fn another_batch_under_a_committed_sequence_is_a_conflict() {
                let Some(h) = open("conflict", 1) else { return };
                behaviour::another_batch_under_a_committed_sequence_is_a_conflict(h.engine());
            }

            #[test]
            fn agencies_lists_every_tally_in_order_and_the_store_is_ready() {
                let Some(h) = open("agencies", 3) else { return };
                behaviour::agencies_lists_every_tally_in_order_and_the_store_is_ready(h.engine());
            }

            #[test]
            fn resume_says_what_is_committed() {
                let Some(h) = open("resume", 2) else { return };
                behaviour::resume_says_what_is_committed(h.engine());
            }

            #[test]
            fn one_batch_sent_at_once_many_times_commits_once() {
                let Some(h) = open("same_batch", 2) else { return };
                behaviour::one_batch_sent_at_once_many_times_commits_once(&[h.engine()]);
                let winners = h.engine().tally(1).unwrap().winners;
                assert!(h.stored_rows().is_none_or(|rows| rows == winners));
            }

            #[test]
            fn two_centrals_sending_one_batch_at_once_commit_it_once() {
                let Some(h) = open("two_centrals_same", 2) else { return };
                let another = h.another();
                behaviour::one_batch_sent_at_once_many_times_commits_once(&[h.engine(), &*another]);
                let winners = h.engine().tally(1).unwrap().winners;
                assert!(h.stored_rows().is_none_or(|rows| rows == winners));
            }

            #[test]
            fn two_centrals_racing_agencies_commit_each_batch_once() {
                let Some(h) = open("two_centrals_race", 3) else { return };
                let another = h.another();
                behaviour::agencies_racing_with_duplicates_commit_each_batch_once(&[h.engine(), &*another]);
                let total: u64 = (1..=3).map(|a| h.engine().tally(a).unwrap().winners).sum();
                assert!(h.stored_rows().is_none_or(|rows| rows == total));
            }

            #[test]
            fn exactly_one_finish_sees_the_lottery_complete() {
                let Some(h) = open("finish_race", behaviour::RACING_AGENCIES) else { return };
                let another = h.another();
                behaviour::exactly_one_finish_sees_the_lottery_complete(&[h.engine(), &*another]);
            }
        }
    )*};
}

engine_suite! {
    journal: super::JournalHarness,
    postgres: super::PostgresHarness,
    memory: super::MemoryHarness,
}

/// Stages and makes durable: what the service does before it answers. The batch is staged
/// after what `admit` says is the agency's last batch, as the service stages it. Returns its
/// winners and whether it was a replay of a batch committed before.
fn settle(engine: &dyn Engine, batch: &CheckedBatch<'_>) -> Result<(Vec<u32>, bool), StoreError> {
    let mut batch =
        CheckedBatch { winning_bets: batch.winning_bets.clone(), winners: batch.winners.clone(), ..*batch };
    if let Ok(Admission::Fresh { first_bet, after }) = engine.admit(batch.agency, batch.sequence, batch.bets)
    {
        (batch.first_bet, batch.after) = (first_bet, after);
    }
    let staged = engine.stage(&batch)?;
    let mut settled = engine.make_durable(&[staged.ticket])?;
    match settled.pop() {
        Some(Settled::AsStaged) => Ok((staged.winners, staged.replayed)),
        Some(Settled::Replayed(winners)) => Ok((winners, true)),
        Some(Settled::Refused(e)) => Err(e),
        None => panic!("make_durable said nothing of the batch"),
    }
}

/// [`settle`]'s winners.
fn commit_batch(engine: &dyn Engine, batch: &CheckedBatch<'_>) -> Result<Vec<u32>, StoreError> {
    settle(engine, batch).map(|(winners, _)| winners)
}

fn bet(first: &str, last: &str, doc: &str) -> Bet {
    Bet::new(first.into(), last.into(), doc.into(), "1990-12-31").unwrap()
}

/// A batch of `bets` bets whose winners are `winners`, at `positions`.
fn batch<'a>(
    agency: u32,
    sequence: u64,
    bets: u64,
    positions: &[u32],
    winners: &'a [Bet],
) -> CheckedBatch<'a> {
    CheckedBatch {
        agency,
        sequence,
        bets,
        first_bet: 0,
        digest: content(sequence, bets, winners),
        after: Digest::default(),
        winners: positions.to_vec(),
        winning_bets: winners.iter().map(Bet::as_ref).collect(),
    }
}

/// A stand-in for the digest of a batch's bets (the tests give only its winners): the same for
/// the same batch, another for other bets.
fn content(sequence: u64, bets: u64, winners: &[Bet]) -> Digest {
    Digest::of_bets(sequence * 1_000_000 + bets, winners)
}

/// Commits a batch whose winners are `winners`, at positions 0, 1, ...
fn commit(engine: &dyn Engine, agency: u32, sequence: u64, bets: u64, winners: &[Bet]) -> Vec<u32> {
    let positions: Vec<u32> = (0..winners.len() as u32).collect();
    commit_batch(engine, &batch(agency, sequence, bets, &positions, winners)).unwrap()
}
