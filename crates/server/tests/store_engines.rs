//! Both storage engines through the one `Engine` face: every store behaviour is one function
//! run against the journal (in a scratch folder) and against PostgreSQL (a throwaway cluster
//! per test, see `testkit::postgres`); then what only the database engine has: exactly-once
//! under concurrent and duplicate commits from two centrals, a database restart mid-use, the
//! pool's bounds, and the winners export.

// The behaviour functions are test code outside `#[test]` functions: as in the tests, a
// failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Barrier,
    },
    thread,
    time::{Duration, Instant},
};

use protocol::{Bet, Digest};
use server::{
    store::{
        self,
        postgres::{DatabaseSettings, Postgres},
        Admission, CheckedBatch, Engine, Progress, StoreError, Tally, WinnersFormat,
    },
    Config,
};
use testkit::postgres::Cluster;

/// Stages and makes durable: what the service does before it answers.
fn commit_batch(engine: &dyn Engine, batch: &CheckedBatch<'_>) -> Result<Vec<u32>, StoreError> {
    let staged = engine.stage(batch)?;
    engine.make_durable(staged.ticket)?;
    Ok(staged.winners)
}

/// Generous: the machine running the tests may be busy.
const TIMEOUT: Duration = Duration::from_secs(20);

fn settings(url: &str, pool_size: usize) -> DatabaseSettings {
    DatabaseSettings { url: url.to_owned(), pool_size, timeout: TIMEOUT }
}

/// A cluster, and an engine on a new database of it for `agencies` agencies.
fn engine(test: &str, agencies: u32) -> Option<(Cluster, String, Postgres)> {
    let cluster = Cluster::start(test)?;
    let url = cluster.create_database(test);
    let engine = Postgres::open(&settings(&url, 4), agencies).expect("open the engine");
    Some((cluster, url, engine))
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
        digest: content(sequence, bets, winners),
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

// ---- Behaviour, engine-independent --------------------------------------------------------

fn agencies_are_numbered_from_one(engine: &dyn Engine) {
    for agency in [0, 4, u32::MAX] {
        assert!(matches!(engine.admit(agency, 1, 1), Err(StoreError::UnknownAgency { agencies: 3, .. })));
        assert!(matches!(engine.resume(agency), Err(StoreError::UnknownAgency { .. })));
        assert!(matches!(engine.tally(agency), Err(StoreError::UnknownAgency { .. })));
        assert!(matches!(engine.finish_agency(agency, 0), Err(StoreError::UnknownAgency { .. })));
        assert!(matches!(
            engine.stage(&batch(agency, 1, 1, &[], &[])),
            Err(StoreError::UnknownAgency { .. })
        ));
    }
    assert!(matches!(engine.admit(3, 1, 1).unwrap(), Admission::Fresh { .. }));
    assert!(matches!(engine.admit(1, 1, 1).unwrap(), Admission::Fresh { .. }));
}

fn progress_counts_pending_agencies_then_totals_winners(engine: &dyn Engine) {
    assert_eq!(engine.progress().unwrap(), Progress::Pending { agencies: 2 });
    commit(engine, 1, 1, 5, &[bet("A", "B", "1")]);
    assert_eq!(
        engine.finish_agency(1, 1).unwrap(),
        (Tally { bets: 5, winners: 1, done: true }, Progress::Pending { agencies: 1 })
    );
    assert_eq!(engine.progress().unwrap(), Progress::Pending { agencies: 1 });
    commit(engine, 2, 1, 3, &[bet("C", "D", "2"), bet("E", "F", "3")]);
    assert!(matches!(
        engine.finish_agency(2, 2),
        Err(StoreError::OutOfSequence { agency: 2, expected: 1, got: 2 })
    ));
    assert_eq!(engine.finish_agency(2, 1).unwrap().1, Progress::Complete { winners: 3 });
    assert_eq!(engine.progress().unwrap(), Progress::Complete { winners: 3 });
}

fn a_finished_agency_takes_no_more_bets_and_cannot_finish_twice(engine: &dyn Engine) {
    commit(engine, 1, 1, 4, &[]);
    engine.finish_agency(1, 1).unwrap();
    assert!(matches!(engine.admit(1, 2, 1), Err(StoreError::AgencyFinished(1))));
    assert!(matches!(engine.stage(&batch(1, 2, 1, &[], &[])), Err(StoreError::AgencyFinished(1))));
    assert!(matches!(engine.finish_agency(1, 1), Err(StoreError::AgencyFinished(1))));
    // Its committed batch still replays: the agency may not have had the answer.
    assert!(matches!(engine.admit(1, 1, 4).unwrap(), Admission::Replay(c) if c.winners == vec![]));
    engine.finish_agency(2, 0).unwrap();
    assert!(matches!(engine.admit(2, 1, 1), Err(StoreError::AgencyFinished(2))));
}

fn a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice(engine: &dyn Engine) {
    let winners = [bet("A", "B", "1"), bet("C", "D", "2")];
    assert_eq!(commit_batch(engine, &batch(1, 1, 12, &[4, 9], &winners)).unwrap(), vec![4, 9]);
    assert!(matches!(engine.admit(1, 1, 12).unwrap(), Admission::Replay(c) if c.winners == vec![4, 9]));
    assert!(matches!(
        engine.admit(1, 1, 13),
        Err(StoreError::NotTheCommittedBatch { agency: 1, sequence: 1, committed: 12, got: 13 })
    ));
    assert!(matches!(
        engine.stage(&batch(1, 1, 13, &[0], &winners[..1])),
        Err(StoreError::NotTheCommittedBatch { agency: 1, sequence: 1, committed: 12, got: 13 })
    ));
    // Even a commit of the same sequence (a duplicate racing the original) only replays.
    assert_eq!(commit_batch(engine, &batch(1, 1, 12, &[0, 1], &winners)).unwrap(), vec![4, 9]);
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 12, winners: 2, done: false });
    assert!(matches!(
        engine.admit(1, 3, 12),
        Err(StoreError::OutOfSequence { agency: 1, expected: 2, got: 3 })
    ));
    assert!(matches!(
        engine.stage(&batch(1, 3, 12, &[], &[])),
        Err(StoreError::OutOfSequence { agency: 1, expected: 2, got: 3 })
    ));
    assert!(matches!(engine.admit(1, 0, 12), Err(StoreError::OutOfSequence { .. })));
    assert!(matches!(engine.stage(&batch(1, 0, 12, &[], &[])), Err(StoreError::OutOfSequence { .. })));
    assert!(matches!(engine.admit(1, 2, 12).unwrap(), Admission::Fresh { .. }));
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 12, winners: 2, done: false });
}

fn resume_says_what_is_committed(engine: &dyn Engine) {
    assert_eq!(engine.resume(1).map(|r| (r.last_sequence, r.tally)).unwrap(), (0, Tally::default()));
    commit(engine, 1, 1, 10, &[bet("A", "B", "1")]);
    commit(engine, 1, 2, 10, &[]);
    commit(engine, 2, 1, 4, &[bet("C", "D", "2")]);
    engine.finish_agency(2, 1).unwrap();
    assert_eq!(
        engine.resume(1).map(|r| (r.last_sequence, r.tally)).unwrap(),
        (2, Tally { bets: 20, winners: 1, done: false })
    );
    assert_eq!(
        engine.resume(2).map(|r| (r.last_sequence, r.tally)).unwrap(),
        (1, Tally { bets: 4, winners: 1, done: true })
    );
}

/// Many connections commit the same batch at the same moment, each with other winners:
/// exactly one commits, and every one answers with that one's winners.
fn one_batch_sent_at_once_many_times_commits_once(engines: &[&dyn Engine]) {
    const THREADS: usize = 16;
    let start = Barrier::new(THREADS);
    let answers: Vec<Vec<u32>> = thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let engine = engines[i % engines.len()];
                let start = &start;
                s.spawn(move || {
                    // The same bets from every thread (a batch sent again), each checked anew
                    // here with its own positions: whichever commits first is the answer.
                    let winners: Vec<Bet> = (0..3).map(|k| bet("Ana", "Pérez", &format!("{k}"))).collect();
                    let positions: Vec<u32> = (0..winners.len() as u32).map(|k| k + i as u32).collect();
                    start.wait();
                    commit_batch(engine, &batch(1, 1, 50, &positions, &winners)).unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| *a == answers[0]), "answers differ: {answers:?}");
    let committed = answers[0].len() as u64;
    for engine in engines {
        assert_eq!(engine.tally(1).unwrap(), Tally { bets: 50, winners: committed, done: false });
        assert_eq!(engine.resume(1).unwrap().last_sequence, 1);
    }
}

/// Several agencies upload at once through several connections (and engines), every batch
/// sent twice at the same moment: each batch commits once, in order, and both copies get the
/// same answer.
fn agencies_racing_with_duplicates_commit_each_batch_once(engines: &[&dyn Engine]) {
    const BATCHES: u64 = 30;
    thread::scope(|s| {
        for agency in 1..=3u32 {
            for copy in 0..2 {
                let engine = engines[copy % engines.len()];
                s.spawn(move || {
                    for sequence in 1..=BATCHES {
                        let winners: Vec<Bet> = (0..sequence % 4)
                            .map(|k| bet("Joaquín", "Saldaña", &format!("{agency}{sequence:03}{k}")))
                            .collect();
                        let positions: Vec<u32> = (0..winners.len() as u32).collect();
                        // The other copy may be a batch behind: that is the agency's own retry.
                        let answer = loop {
                            match commit_batch(engine, &batch(agency, sequence, 20, &positions, &winners)) {
                                Ok(answer) => break answer,
                                Err(StoreError::OutOfSequence { .. }) => thread::yield_now(),
                                Err(e) => panic!("agency {agency} batch {sequence}: {e}"),
                            }
                        };
                        assert_eq!(answer, positions);
                    }
                });
            }
        }
    });
    let per_agency_winners: u64 = (1..=BATCHES).map(|s| s % 4).sum();
    for agency in 1..=3 {
        assert_eq!(
            engines[0].resume(agency).map(|r| (r.last_sequence, r.tally)).unwrap(),
            (BATCHES, Tally { bets: 20 * BATCHES, winners: per_agency_winners, done: false })
        );
    }
}

/// Agencies finishing at once: exactly one of them sees the lottery complete, with the total.
fn exactly_one_finish_sees_the_lottery_complete(engines: &[&dyn Engine]) {
    for agency in 1..=3 {
        commit(engines[0], agency, 1, 10, &[bet("A", "B", &agency.to_string())]);
    }
    let start = Barrier::new(3);
    let seen: Vec<Progress> = thread::scope(|s| {
        let workers: Vec<_> = (1..=3u32)
            .map(|agency| {
                let engine = engines[agency as usize % engines.len()];
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    engine.finish_agency(agency, 1).unwrap().1
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let complete: Vec<_> = seen.iter().filter(|p| matches!(p, Progress::Complete { .. })).collect();
    assert_eq!(complete, [&Progress::Complete { winners: 3 }], "{seen:?}");
    assert_eq!(engines[1 % engines.len()].progress().unwrap(), Progress::Complete { winners: 3 });
}

/// Other bets under a committed sequence are a conflict, never merged; the digest the
/// central reports is the sum of its batches'.
fn another_batch_under_a_committed_sequence_is_a_conflict(engine: &dyn Engine) {
    let ours = [bet("Ana", "Díaz", "1")];
    let theirs = [bet("Otra", "Persona", "2")];
    commit(engine, 1, 1, 10, &ours);
    let conflict = commit_batch(engine, &batch(1, 1, 10, &[0], &theirs));
    assert!(matches!(conflict, Err(StoreError::Conflict { agency: 1, sequence: 1 })), "{conflict:?}");
    assert_eq!(commit(engine, 1, 1, 10, &ours), vec![0], "the same batch is still a replay");
    commit(engine, 1, 2, 5, &[]);
    let resume = engine.resume(1).unwrap();
    assert_eq!(resume.digest, content(1, 10, &ours).plus(content(2, 5, &[])));
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 15, winners: 1, done: false });
}

// ---- The journal engine -------------------------------------------------------------------

/// A journal engine for `agencies` agencies in a scratch folder (kept alive by the caller).
fn journal(agencies: u32) -> (tempfile::TempDir, std::sync::Arc<dyn Engine>) {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let config = Config { storage_path: dir.path().join("winners.csv"), agencies, ..Config::default() };
    let engine = store::open(&config).expect("open the journal");
    (dir, engine)
}

#[test]
fn journal_agencies_are_numbered_from_one() {
    let (_dir, engine) = journal(3);
    agencies_are_numbered_from_one(&*engine);
}

#[test]
fn journal_progress_counts_pending_agencies_then_totals_winners() {
    let (_dir, engine) = journal(2);
    progress_counts_pending_agencies_then_totals_winners(&*engine);
}

#[test]
fn journal_a_finished_agency_takes_no_more_bets_and_cannot_finish_twice() {
    let (_dir, engine) = journal(2);
    a_finished_agency_takes_no_more_bets_and_cannot_finish_twice(&*engine);
}

#[test]
fn journal_a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice() {
    let (dir, engine) = journal(1);
    a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice(&*engine);
    let rows = std::fs::read_to_string(dir.path().join("winners.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 2, "the header and the batch's two winners, once");
}

#[test]
fn journal_another_batch_under_a_committed_sequence_is_a_conflict() {
    let (_dir, engine) = journal(1);
    another_batch_under_a_committed_sequence_is_a_conflict(&*engine);
}

#[test]
fn journal_resume_says_what_is_committed() {
    let (_dir, engine) = journal(2);
    resume_says_what_is_committed(&*engine);
}

#[test]
fn journal_one_batch_sent_at_once_many_times_commits_once() {
    let (_dir, engine) = journal(2);
    one_batch_sent_at_once_many_times_commits_once(&[&*engine]);
}

#[test]
fn journal_agencies_racing_with_duplicates_commit_each_batch_once() {
    let (_dir, engine) = journal(3);
    agencies_racing_with_duplicates_commit_each_batch_once(&[&*engine, &*engine]);
}

#[test]
fn journal_exactly_one_finish_sees_the_lottery_complete() {
    let (_dir, engine) = journal(3);
    exactly_one_finish_sees_the_lottery_complete(&[&*engine, &*engine]);
}

// ---- The PostgreSQL engine ----------------------------------------------------------------

#[test]
fn postgres_agencies_are_numbered_from_one() {
    let Some((_cluster, _, engine)) = engine("numbers", 3) else { return };
    agencies_are_numbered_from_one(&engine);
}

#[test]
fn postgres_progress_counts_pending_agencies_then_totals_winners() {
    let Some((_cluster, _, engine)) = engine("progress", 2) else { return };
    progress_counts_pending_agencies_then_totals_winners(&engine);
}

#[test]
fn postgres_a_finished_agency_takes_no_more_bets_and_cannot_finish_twice() {
    let Some((_cluster, _, engine)) = engine("finished", 2) else { return };
    a_finished_agency_takes_no_more_bets_and_cannot_finish_twice(&engine);
}

#[test]
fn postgres_a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice() {
    let Some((cluster, url, engine)) = engine("replay", 1) else { return };
    a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice(&engine);
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM winners"), "2");
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM batches"), "1");
}

#[test]
fn postgres_another_batch_under_a_committed_sequence_is_a_conflict() {
    let Some((_cluster, _, engine)) = engine("conflict", 1) else { return };
    another_batch_under_a_committed_sequence_is_a_conflict(&engine);
}

#[test]
fn postgres_resume_says_what_is_committed() {
    let Some((_cluster, _, engine)) = engine("resume", 2) else { return };
    resume_says_what_is_committed(&engine);
}

#[test]
fn postgres_one_batch_sent_at_once_many_times_commits_once() {
    let Some((cluster, url, engine)) = engine("same_batch", 2) else { return };
    one_batch_sent_at_once_many_times_commits_once(&[&engine]);
    let winners = engine.tally(1).unwrap().winners;
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM winners"), winners.to_string());
}

#[test]
fn postgres_two_centrals_sending_one_batch_at_once_commit_it_once() {
    let Some((cluster, url, first)) = engine("two_centrals_same", 2) else { return };
    let second = Postgres::open(&settings(&url, 4), 2).unwrap();
    one_batch_sent_at_once_many_times_commits_once(&[&first, &second]);
    let winners = first.tally(1).unwrap().winners;
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM winners"), winners.to_string());
}

#[test]
fn postgres_two_centrals_racing_agencies_commit_each_batch_once() {
    let Some((cluster, url, first)) = engine("two_centrals_race", 3) else { return };
    let second = Postgres::open(&settings(&url, 4), 3).unwrap();
    agencies_racing_with_duplicates_commit_each_batch_once(&[&first, &second]);
    let total: u64 = (1..=3).map(|a| first.tally(a).unwrap().winners).sum();
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM winners"), total.to_string());
}

#[test]
fn postgres_exactly_one_finish_sees_the_lottery_complete() {
    let Some((_cluster, url, first)) = engine("finish_race", 3) else { return };
    let second = Postgres::open(&settings(&url, 4), 3).unwrap();
    exactly_one_finish_sees_the_lottery_complete(&[&first, &second]);
}

#[test]
fn a_central_whose_agency_moved_on_elsewhere_still_answers_right() {
    let Some((_cluster, url, first)) = engine("moved_on", 1) else { return };
    let second = Postgres::open(&settings(&url, 2), 1).unwrap();
    let winners = [bet("A", "B", "1")];
    assert_eq!(commit_batch(&first, &batch(1, 1, 10, &[3], &winners)).unwrap(), vec![3]);
    // The agency moves to the other central, which commits its next batch there.
    assert!(matches!(second.admit(1, 2, 10).unwrap(), Admission::Fresh { .. }));
    assert_eq!(commit_batch(&second, &batch(1, 2, 10, &[7], &winners)).unwrap(), vec![7]);
    // Back on the first central, which last saw batch 1: batch 2 is admitted on its stale
    // guess, but committing it answers with the original winners and stores nothing.
    assert!(matches!(first.admit(1, 2, 10).unwrap(), Admission::Fresh { .. }));
    assert_eq!(commit_batch(&first, &batch(1, 2, 10, &[0], &winners)).unwrap(), vec![7]);
    assert_eq!(first.tally(1).unwrap(), Tally { bets: 20, winners: 2, done: false });
    // Done on the other central: the first one's guess for batch 3 is refused at commit.
    second.finish_agency(1, 2).unwrap();
    assert!(matches!(commit_batch(&first, &batch(1, 3, 10, &[], &[])), Err(StoreError::AgencyFinished(1))));
    assert!(matches!(first.admit(1, 3, 10), Err(StoreError::AgencyFinished(1))));
}

#[test]
fn the_pool_never_opens_more_connections_than_its_size() {
    let Some(cluster) = Cluster::start("pool_bound") else { return };
    let url = cluster.create_database("pool_bound");
    let engine = Postgres::open(&settings(&url, 2), 8).unwrap();
    let most = AtomicU64::new(0);
    let running = AtomicU64::new(8);
    thread::scope(|s| {
        for agency in 1..=8u32 {
            let (engine, running) = (&engine, &running);
            s.spawn(move || {
                for sequence in 1..=20 {
                    commit_batch(engine, &batch(agency, sequence, 10, &[], &[])).unwrap();
                }
                running.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while running.load(Ordering::SeqCst) > 0 {
            let open: u64 = cluster
                .psql(
                    &url,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lottery-central'",
                )
                .parse()
                .unwrap();
            most.fetch_max(open, Ordering::SeqCst);
        }
    });
    let most = most.load(Ordering::SeqCst);
    assert!((1..=2).contains(&most), "{most} connections open at once, over the pool's 2");
    for agency in 1..=8 {
        assert_eq!(engine.tally(agency).unwrap().bets, 200);
    }
}

#[test]
fn a_reopened_database_goes_on_with_its_lottery_and_refuses_another_agency_count() {
    let Some((_cluster, url, engine)) = engine("reopen", 2) else { return };
    commit(&engine, 1, 1, 10, &[bet("A", "B", "1")]);
    engine.finish_agency(2, 0).unwrap();
    engine.close().unwrap();
    drop(engine);
    let again = Postgres::open(&settings(&url, 2), 2).unwrap();
    assert_eq!(
        again.resume(1).map(|r| (r.last_sequence, r.tally)).unwrap(),
        (1, Tally { bets: 10, winners: 1, done: false })
    );
    assert!(matches!(again.admit(1, 1, 10).unwrap(), Admission::Replay(c) if c.winners == vec![0]));
    assert_eq!(again.progress().unwrap(), Progress::Pending { agencies: 1 });
    let err = Postgres::open(&settings(&url, 2), 3).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("holds a lottery among 2 agencies but SERVER_AGENCIES is 3"), "{message}");
    assert!(!message.contains("password"), "{message}");
}

#[test]
fn centrals_starting_at_once_on_an_empty_database_all_start() {
    let Some(cluster) = Cluster::start("schema_race") else { return };
    let url = cluster.create_database("schema_race");
    let start = Barrier::new(6);
    thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                start.wait();
                Postgres::open(&settings(&url, 1), 4).unwrap()
            });
        }
    });
    assert_eq!(cluster.psql(&url, "SELECT agencies FROM lottery"), "4");
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM agencies"), "4");
}

#[test]
fn an_unreachable_database_is_a_clear_start_error() {
    let Some(cluster) = Cluster::start("unreachable") else { return };
    let url = cluster.url("no_such_database");
    let err = Postgres::open(&settings(&url, 1), 1).unwrap_err().to_string();
    assert!(err.contains("no_such_database") && err.contains("does not exist"), "{err}");
    let err = Postgres::open(&settings("postgres://postgres@127.0.0.1:1/x", 1), 1).unwrap_err().to_string();
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[test]
fn the_winners_export_is_the_journal_csv() {
    let Some((_cluster, _, engine)) = engine("export", 2) else { return };
    commit(&engine, 2, 1, 10, &[bet("Ana, María", "O\"Brien", "1"), bet("Joaquín", "Saldaña", "22")]);
    commit(&engine, 1, 1, 10, &[bet("Luz", "Díaz", "3")]);
    let mut out = Vec::new();
    assert_eq!(engine.export_winners(&mut out, WinnersFormat::Csv).unwrap(), 3);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "agency,first_name,last_name,document,birthdate\n\
         1,Luz,Díaz,3,1990-12-31\n\
         2,\"Ana, María\",\"O\"\"Brien\",1,1990-12-31\n\
         2,Joaquín,Saldaña,22,1990-12-31\n"
    );
    let mut out = Vec::new();
    assert_eq!(engine.export_winners(&mut out, WinnersFormat::Course).unwrap(), 3);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Full name: Luz Díaz | Document: 3 | Date of Birth: 31/12/1990\n\
         Full name: Ana, María O\"Brien | Document: 1 | Date of Birth: 31/12/1990\n\
         Full name: Joaquín Saldaña | Document: 22 | Date of Birth: 31/12/1990\n"
    );
}

#[test]
fn the_export_subcommand_writes_the_winners_file_from_the_database() {
    let Some((_cluster, url, engine)) = engine("export_cli", 2) else { return };
    commit(&engine, 1, 1, 10, &[bet("Ana, María", "O\"Brien", "1")]);
    let dir = tempfile::tempdir().expect("a scratch directory");
    let out = dir.path().join("winners.csv");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["export-winners", out.to_str().unwrap()])
        .env("SERVER_DATABASE_URL", &url)
        .env("SERVER_AGENCIES", "2")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "agency,first_name,last_name,document,birthdate\n1,\"Ana, María\",\"O\"\"Brien\",1,1990-12-31\n"
    );
    // Without a database there is nothing to export from: a setting error.
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_server"))
        .args(["export-winners", out.to_str().unwrap()])
        .env_remove("SERVER_DATABASE_URL")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(2));
}

#[test]
fn a_database_restart_mid_upload_refuses_then_recovers_and_loses_nothing() {
    let Some((mut cluster, url, engine)) = engine("restart", 2) else { return };
    let winners = [bet("A", "B", "1")];
    for sequence in 1..=5 {
        commit(&engine, 1, sequence, 10, &winners);
    }
    cluster.stop();
    // While the database is down every call is a storage error, and nothing is counted.
    let refused = commit_batch(&engine, &batch(1, 6, 10, &[0], &winners));
    assert!(matches!(refused, Err(StoreError::Io(_))), "{refused:?}");
    assert!(matches!(engine.tally(1), Err(StoreError::Io(_))));
    assert!(matches!(engine.finish_agency(2, 0), Err(StoreError::Io(_))));
    cluster.restart();
    // The agency retries: the pool makes new connections and the batch commits once.
    assert_eq!(commit_batch(&engine, &batch(1, 6, 10, &[0], &winners)).unwrap(), vec![0]);
    assert_eq!(commit_batch(&engine, &batch(1, 6, 10, &[0], &winners)).unwrap(), vec![0]);
    assert_eq!(
        engine.resume(1).map(|r| (r.last_sequence, r.tally)).unwrap(),
        (6, Tally { bets: 60, winners: 6, done: false })
    );
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM winners"), "6");
}

#[test]
fn agencies_uploading_through_a_database_restart_end_with_exact_counts() {
    const AGENCIES: u32 = 4;
    const BATCHES: u64 = 150;
    let Some((mut cluster, url, engine)) = engine("restart_upload", AGENCIES) else { return };
    let acknowledged = AtomicU64::new(0);
    let refused = AtomicU64::new(0);
    let winners_of = |agency: u32, sequence: u64| -> Vec<Bet> {
        (0..sequence % 3).map(|k| bet("Luz", "Núñez", &format!("{agency}{sequence:04}{k}"))).collect()
    };
    thread::scope(|s| {
        for agency in 1..=AGENCIES {
            let (engine, acknowledged, refused, winners_of) = (&engine, &acknowledged, &refused, &winners_of);
            s.spawn(move || {
                for sequence in 1..=BATCHES {
                    let winners = winners_of(agency, sequence);
                    let positions: Vec<u32> = (0..winners.len() as u32).collect();
                    // As an agency does: a `Storage` refusal is retried after a pause, the
                    // same batch again, until the database answers.
                    let deadline = Instant::now() + TIMEOUT * 3;
                    loop {
                        match engine.admit(agency, sequence, 10).and_then(|admission| match admission {
                            Admission::Fresh { .. } => {
                                commit_batch(engine, &batch(agency, sequence, 10, &positions, &winners))
                            }
                            Admission::Replay(original) => Ok(original.winners),
                        }) {
                            Ok(answer) => {
                                assert_eq!(answer, positions, "agency {agency} batch {sequence}");
                                acknowledged.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(StoreError::Io(_)) => {
                                refused.fetch_add(1, Ordering::SeqCst);
                                assert!(
                                    Instant::now() < deadline,
                                    "agency {agency} never got batch {sequence} in"
                                );
                                thread::sleep(Duration::from_millis(20)); // the agency's backoff
                            }
                            Err(e) => panic!("agency {agency} batch {sequence}: {e}"),
                        }
                    }
                }
            });
        }
        // Restart the database once the upload is well under way.
        let deadline = Instant::now() + TIMEOUT;
        while acknowledged.load(Ordering::SeqCst) < 100 {
            assert!(Instant::now() < deadline, "the upload did not get going");
            thread::yield_now();
        }
        cluster.stop();
        cluster.restart();
    });
    assert!(refused.load(Ordering::SeqCst) > 0, "the restart refused nothing: it happened after the upload");
    let mut expected_winners = 0;
    for agency in 1..=AGENCIES {
        let winners: u64 = (1..=BATCHES).map(|s| s % 3).sum();
        expected_winners += winners;
        assert_eq!(
            engine.resume(agency).map(|r| (r.last_sequence, r.tally)).unwrap(),
            (BATCHES, Tally { bets: 10 * BATCHES, winners, done: false })
        );
    }
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM winners"), expected_winners.to_string());
}

#[test]
fn a_restart_with_every_pooled_connection_dead_costs_no_refusal() {
    let Some((mut cluster, _, engine)) = engine("restart_idle", 1) else { return };
    // Fill the pool with connections, then kill them all with a restart while idle.
    thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| engine.tally(1).unwrap());
        }
    });
    cluster.stop();
    cluster.restart();
    // Each call finds dead connections first; it drops them and goes on with a new one.
    assert_eq!(commit_batch(&engine, &batch(1, 1, 10, &[], &[])).unwrap(), Vec::<u32>::new());
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 10, winners: 0, done: false });
}

#[test]
fn a_pool_checkout_waits_at_most_its_timeout() {
    let Some(cluster) = Cluster::start("pool_timeout") else { return };
    let url = cluster.create_database("pool_timeout");
    let engine = Postgres::open(
        &DatabaseSettings { url: url.clone(), pool_size: 1, timeout: Duration::from_millis(300) },
        1,
    )
    .unwrap();
    // Hold the agency's row lock from outside, so the engine's one connection waits in
    // `lottery_stage`; a second call then finds no free connection.
    let holder = Arc::new(Barrier::new(2));
    thread::scope(|s| {
        let held = {
            let holder = Arc::clone(&holder);
            let url = url.clone();
            s.spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                let mut tx = client.transaction().unwrap();
                tx.execute("SELECT 1 FROM agencies WHERE agency = 1 FOR UPDATE", &[]).unwrap();
                holder.wait(); // the lock is held
                holder.wait(); // the test is done with it
                tx.rollback().unwrap();
            })
        };
        holder.wait();
        let blocked = s.spawn(|| commit_batch(&engine, &batch(1, 1, 10, &[], &[])));
        // Wait until the engine's only connection is in use, waiting on the lock.
        let deadline = Instant::now() + TIMEOUT;
        while cluster.psql(&url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
            != "1"
        {
            assert!(Instant::now() < deadline, "the engine never waited on the lock");
            thread::yield_now();
        }
        let started = Instant::now();
        let err = engine.tally(1).unwrap_err();
        assert!(matches!(&err, StoreError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut), "{err:?}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        holder.wait();
        held.join().unwrap();
        assert_eq!(blocked.join().unwrap().unwrap(), Vec::<u32>::new());
    });
}

/// The cost of a batch commit: `THREADS` agencies upload at once, one connection each, in
/// batches of 100 bets of which 6 win (about the lottery's rate). Printed for the README;
/// asserts only that every batch committed.
#[test]
fn batch_commit_cost_is_measured() {
    let Some(cluster) = Cluster::start("cost") else { return };
    let threads: u32 = std::env::var("PG_COST_THREADS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let batches: u64 = std::env::var("PG_COST_BATCHES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let url = cluster.create_database("cost");
    let engine = Postgres::open(&settings(&url, threads as usize), threads).unwrap();
    let winners: Vec<Bet> = (0..6).map(|i| bet("Nombre Largo", "Fornerón", &format!("{i}0000000"))).collect();
    let positions: Vec<u32> = (0..6).map(|i| i * 16).collect();
    let started = Instant::now();
    thread::scope(|s| {
        for agency in 1..=threads {
            let (engine, winners, positions) = (&engine, &winners, &positions);
            s.spawn(move || {
                for sequence in 1..=batches {
                    assert!(matches!(engine.admit(agency, sequence, 100).unwrap(), Admission::Fresh { .. }));
                    let answer =
                        commit_batch(engine, &batch(agency, sequence, 100, positions, winners)).unwrap();
                    assert_eq!(&answer, positions);
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let total = u64::from(threads) * batches;
    for agency in 1..=threads {
        assert_eq!(engine.tally(agency).unwrap().bets, 100 * batches);
    }
    println!(
        "postgres batch commit: {threads} agencies x {batches} batches of 100 bets (6 winners): {:.1} ms, \
         {:.0} batches/s, {:.0} bets/s, {:.1} us per batch, {:.2} us per bet",
        elapsed.as_secs_f64() * 1e3,
        total as f64 / elapsed.as_secs_f64(),
        (total * 100) as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / total as f64,
        elapsed.as_secs_f64() * 1e6 / (total * 100) as f64,
    );
}
