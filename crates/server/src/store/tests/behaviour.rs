//! What every engine must do, written once against the `Engine` face: each function is one
//! behaviour, run for every engine by `engine_suite!` in `mod.rs`.

use std::{sync::Barrier, thread};

use protocol::Bet;

use super::{batch, bet, commit, commit_batch, content, settle};
use crate::store::{Admission, Engine, Progress, StoreError, Tally};

pub(super) fn agencies_are_numbered_from_one(engine: &dyn Engine) {
    for agency in [0, 4, u32::MAX] {
        assert!(matches!(engine.admit(agency, 1, 1), Err(StoreError::UnknownAgency { agencies: 3, .. })));
        assert!(matches!(engine.resume(agency), Err(StoreError::UnknownAgency { .. })));
        assert!(matches!(engine.tally(agency), Err(StoreError::UnknownAgency { .. })));
        assert!(matches!(engine.finish_agency(agency, 0), Err(StoreError::UnknownAgency { .. })));
        assert!(matches!(
            commit_batch(engine, &batch(agency, 1, 1, &[], &[])),
            Err(StoreError::UnknownAgency { .. })
        ));
    }
    assert!(matches!(engine.admit(3, 1, 1).unwrap(), Admission::Fresh { .. }));
    assert!(matches!(engine.admit(1, 1, 1).unwrap(), Admission::Fresh { .. }));
}

pub(super) fn progress_counts_pending_agencies_then_totals_winners(engine: &dyn Engine) {
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

pub(super) fn a_finished_agency_takes_no_more_bets_and_cannot_finish_twice(engine: &dyn Engine) {
    commit(engine, 1, 1, 4, &[]);
    engine.finish_agency(1, 1).unwrap();
    assert!(matches!(engine.admit(1, 2, 1), Err(StoreError::AgencyFinished(1))));
    assert!(matches!(commit_batch(engine, &batch(1, 2, 1, &[], &[])), Err(StoreError::AgencyFinished(1))));
    assert!(matches!(engine.finish_agency(1, 1), Err(StoreError::AgencyFinished(1))));
    // Its committed batch still replays: the agency may not have had the answer.
    assert!(matches!(engine.admit(1, 1, 4).unwrap(), Admission::Replay(c) if c.winners.is_empty()));
    engine.finish_agency(2, 0).unwrap();
    assert!(matches!(engine.admit(2, 1, 1), Err(StoreError::AgencyFinished(2))));
}

pub(super) fn a_committed_batch_is_replayed_with_its_answer_and_not_stored_twice(engine: &dyn Engine) {
    let winners = [bet("A", "B", "1"), bet("C", "D", "2")];
    let first = settle(engine, &batch(1, 1, 12, &[4, 9], &winners)).unwrap();
    assert_eq!(first, (vec![4, 9], false));
    assert!(matches!(engine.admit(1, 1, 12).unwrap(), Admission::Replay(c) if c.winners == vec![4, 9]));
    assert!(matches!(
        engine.admit(1, 1, 13),
        Err(StoreError::NotTheCommittedBatch { agency: 1, sequence: 1, committed: 12, got: 13 })
    ));
    assert!(matches!(
        commit_batch(engine, &batch(1, 1, 13, &[0], &winners[..1])),
        Err(StoreError::NotTheCommittedBatch { agency: 1, sequence: 1, committed: 12, got: 13 })
    ));
    // Even a commit of the same sequence (a duplicate racing the original) only replays, and
    // says so: it is not counted as stored.
    let again = settle(engine, &batch(1, 1, 12, &[0, 1], &winners)).unwrap();
    assert_eq!(again, (vec![4, 9], true));
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 12, winners: 2, done: false });
    assert!(matches!(
        engine.admit(1, 3, 12),
        Err(StoreError::OutOfSequence { agency: 1, expected: 2, got: 3 })
    ));
    assert!(matches!(
        commit_batch(engine, &batch(1, 3, 12, &[], &[])),
        Err(StoreError::OutOfSequence { agency: 1, expected: 2, got: 3 })
    ));
    assert!(matches!(engine.admit(1, 0, 12), Err(StoreError::OutOfSequence { .. })));
    assert!(matches!(
        commit_batch(engine, &batch(1, 0, 12, &[], &[])),
        Err(StoreError::OutOfSequence { .. })
    ));
    assert!(matches!(engine.admit(1, 2, 12).unwrap(), Admission::Fresh { .. }));
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 12, winners: 2, done: false });
}

pub(super) fn resume_says_what_is_committed(engine: &dyn Engine) {
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
/// exactly one commits (and only it says it was not a replay), and every one answers with that
/// one's winners.
pub(super) fn one_batch_sent_at_once_many_times_commits_once(engines: &[&dyn Engine]) {
    const THREADS: usize = 16;
    let start = Barrier::new(THREADS);
    let staged: Vec<(Vec<u32>, bool)> = thread::scope(|s| {
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
                    settle(engine, &batch(1, 1, 50, &positions, &winners)).unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(staged.iter().filter(|(_, replayed)| !replayed).count(), 1, "stored by one: {staged:?}");
    let answers: Vec<Vec<u32>> = staged.into_iter().map(|(winners, _)| winners).collect();
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
pub(super) fn agencies_racing_with_duplicates_commit_each_batch_once(engines: &[&dyn Engine]) {
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

/// Agencies in [`exactly_one_finish_sees_the_lottery_complete`]: enough that, on engines
/// that commit dones in groups, a group holds several of them.
pub(super) const RACING_AGENCIES: u32 = 24;

/// Agencies finishing at once, through two centrals where the engine has them: exactly one
/// of them sees the lottery complete, with the total; every other one sees it pending.
pub(super) fn exactly_one_finish_sees_the_lottery_complete(engines: &[&dyn Engine]) {
    for agency in 1..=RACING_AGENCIES {
        commit(engines[0], agency, 1, 10, &[bet("A", "B", &agency.to_string())]);
    }
    let start = Barrier::new(RACING_AGENCIES as usize);
    let seen: Vec<Progress> = thread::scope(|s| {
        let workers: Vec<_> = (1..=RACING_AGENCIES)
            .map(|agency| {
                let engine = engines[agency as usize % engines.len()];
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    let (tally, progress) = engine.finish_agency(agency, 1).unwrap();
                    assert_eq!(tally, Tally { bets: 10, winners: 1, done: true }, "agency {agency}");
                    progress
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let complete: Vec<_> = seen.iter().filter(|p| matches!(p, Progress::Complete { .. })).collect();
    assert_eq!(complete, [&Progress::Complete { winners: u64::from(RACING_AGENCIES) }], "{seen:?}");
    assert!(seen
        .iter()
        .all(|p| matches!(p, Progress::Complete { .. } | Progress::Pending { agencies: 1.. })));
    let total = Progress::Complete { winners: u64::from(RACING_AGENCIES) };
    assert_eq!(engines[1 % engines.len()].progress().unwrap(), total);
}

/// Other bets under a committed sequence are a conflict, never merged; the digest the
/// central reports is the sum of its batches'.
pub(super) fn another_batch_under_a_committed_sequence_is_a_conflict(engine: &dyn Engine) {
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

pub(super) fn agencies_lists_every_tally_in_order_and_the_store_is_ready(engine: &dyn Engine) {
    assert_eq!(engine.agencies().unwrap(), vec![Tally::default(); 3]);
    commit(engine, 2, 1, 7, &[bet("A", "B", "1")]);
    commit(engine, 3, 1, 4, &[]);
    engine.finish_agency(3, 1).unwrap();
    assert_eq!(
        engine.agencies().unwrap(),
        vec![
            Tally::default(),
            Tally { bets: 7, winners: 1, done: false },
            Tally { bets: 4, winners: 0, done: true },
        ]
    );
    for agency in 1..=3 {
        assert_eq!(engine.agencies().unwrap()[agency as usize - 1], engine.tally(agency).unwrap());
    }
    engine.ready().unwrap();
}
