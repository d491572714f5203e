//! What only the database engine has: exactly-once across centrals sharing one database, a
//! database restart mid-use, the pool's bounds, the winners export, and the cost of a commit.
//! Each test starts a throwaway PostgreSQL cluster of its own (`testkit::postgres`).

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Barrier,
    },
    thread,
    time::{Duration, Instant},
};

use protocol::Bet;
use testkit::postgres::Cluster;

use super::{batch, bet, commit, commit_batch, content, TIMEOUT};
use crate::store::{
    postgres::{DatabaseSettings, Postgres},
    Admission, CheckedBatch, Engine, Progress, Settled, StoreError, Tally, WinnersFormat,
};

fn settings(url: &str, pool_size: usize) -> DatabaseSettings {
    DatabaseSettings { url: url.to_owned(), password_file: None, pool_size, timeout: TIMEOUT }
}

/// A cluster, and an engine on a new database of it for `agencies` agencies.
fn engine(test: &str, agencies: u32) -> Option<(Cluster, String, Postgres)> {
    let cluster = Cluster::start(test)?;
    let url = cluster.create_database(test);
    let engine = Postgres::open(&settings(&url, 4), agencies).expect("open the engine");
    Some((cluster, url, engine))
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

/// Stages `batch` as the service does (after what `admit` says) without waiting for its
/// commit; returns its ticket.
fn stage_only(engine: &dyn Engine, batch: &CheckedBatch<'_>) -> crate::store::Ticket {
    let Admission::Fresh { first_bet, after } =
        engine.admit(batch.agency, batch.sequence, batch.bets).unwrap()
    else {
        panic!("batch {} of agency {} is not the next", batch.sequence, batch.agency)
    };
    let batch = CheckedBatch {
        first_bet,
        after,
        winners: batch.winners.clone(),
        winning_bets: batch.winning_bets.clone(),
        ..*batch
    };
    engine.stage(&batch).unwrap().ticket
}

/// What `make_durable` said of each batch: "as staged", "replayed", or the refusal's message.
fn said(settled: &[Settled]) -> Vec<String> {
    settled
        .iter()
        .map(|s| match s {
            Settled::AsStaged => "as staged".to_owned(),
            Settled::Replayed(_) => "replayed".to_owned(),
            Settled::Refused(e) => e.to_string(),
        })
        .collect()
}

/// A connection stages the batches its agency pipelined before any of them commits: they
/// commit in one group, in order. When another upload under the same agency takes the
/// sequence first, the batch there is a conflict and every batch staged behind it is refused,
/// whether it commits in the same group or a later one: nothing of this upload is laid on the
/// other's batches.
#[test]
fn batches_staged_behind_a_refused_one_are_never_laid_on_another_upload() {
    let Some((_cluster, url, ours)) = engine("chain", 3) else { return };
    let theirs = Postgres::open(&settings(&url, 2), 3).unwrap();
    let good = [bet("A", "B", "1")];
    let other = [bet("X", "Y", "9")];
    // Pipelined: three batches staged, then one wait; one group commits them all.
    let tickets: Vec<_> = (1..=3).map(|s| stage_only(&ours, &batch(1, s, 10, &[0], &good))).collect();
    assert_eq!(said(&ours.make_durable(&tickets).unwrap()), ["as staged"; 3]);
    assert_eq!(ours.tally(1).unwrap(), Tally { bets: 30, winners: 3, done: false });

    // Same group: this central expects batch 1 of agency 2 next, but another upload takes it
    // first (through another central) with other bets.
    let one = stage_only(&ours, &batch(2, 1, 10, &[0], &good));
    let two = stage_only(&ours, &batch(2, 2, 10, &[0], &good));
    let three = stage_only(&ours, &batch(2, 3, 10, &[0], &good));
    commit_batch(&theirs, &batch(2, 1, 10, &[0], &other)).unwrap();
    let conflict = StoreError::Conflict { agency: 2, sequence: 1 }.to_string();
    let out_of_sequence = StoreError::OutOfSequence { agency: 2, expected: 2, got: 3 }.to_string();
    assert_eq!(
        said(&ours.make_durable(&[one, two, three]).unwrap()),
        [conflict.clone(), conflict, out_of_sequence]
    );
    assert_eq!(ours.tally(2).unwrap(), Tally { bets: 10, winners: 1, done: false });

    // A later group: batch 1 of agency 3 is refused in one group (led by another agency's
    // wait), and batch 2, staged behind it before the refusal was known, commits later.
    let one = stage_only(&ours, &batch(3, 1, 10, &[0], &good));
    commit_batch(&theirs, &batch(3, 1, 10, &[0], &other)).unwrap();
    let led = stage_only(&ours, &batch(1, 4, 10, &[0], &good));
    assert_eq!(said(&ours.make_durable(&[led]).unwrap()), ["as staged"]);
    let two = stage_only(&ours, &batch(3, 2, 10, &[0], &good));
    let conflict = StoreError::Conflict { agency: 3, sequence: 1 }.to_string();
    assert_eq!(said(&ours.make_durable(&[one, two]).unwrap()), [conflict.clone(), conflict]);
    assert_eq!(ours.tally(3).unwrap(), Tally { bets: 10, winners: 1, done: false });
}

#[test]
fn a_warmed_up_engine_holds_every_connection_ready_and_has_written_nothing() {
    let Some(cluster) = Cluster::start("warm") else { return };
    let url = cluster.create_database("warm");
    let engine = Postgres::open(&settings(&url, 2), 2).unwrap();
    let open = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'lottery-central'";
    // Opening alone (what the export does) keeps only the connection it read the lottery on
    // (the schema's own, closed, may take a moment to leave the list).
    let deadline = Instant::now() + TIMEOUT;
    while cluster.psql(&url, open) != "1" {
        assert!(Instant::now() < deadline, "opening left {} connections", cluster.psql(&url, open));
        thread::sleep(Duration::from_millis(10));
    }
    let engine = engine.warm_up();
    // The pool's 2 and the groups' 1, before any agency asked for anything.
    assert_eq!(cluster.psql(&url, open), "3");
    // The warm-up staged agency 1's first batch and marked it done, and rolled both back:
    // nothing is written, and the same batch and done commit as ever.
    assert_eq!(cluster.psql(&url, "SELECT count(*) FROM batches"), "0");
    assert_eq!(
        cluster.psql(&url, "SELECT last_sequence, bets, winners, done FROM agencies WHERE agency = 1"),
        "0|0|0|f"
    );
    let winners = [bet("A", "B", "1")];
    assert_eq!(commit_batch(&engine, &batch(1, 1, 10, &[3], &winners)).unwrap(), vec![3]);
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 10, winners: 1, done: false });
    let (tally, _) = engine.finish_agency(1, 1).unwrap();
    assert_eq!(tally, Tally { bets: 10, winners: 1, done: true });
    assert_eq!(cluster.psql(&url, open), "3");
}

#[test]
fn the_engine_never_opens_more_connections_than_its_pool_and_its_groups() {
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
    // The pool's 2, and the one the batch groups commit on.
    let most = most.load(Ordering::SeqCst);
    assert!((1..=3).contains(&most), "{most} connections open at once, over the pool's 2 and the groups' 1");
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
    let status = std::process::Command::new(testkit::central::binary("server"))
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
    let status = std::process::Command::new(testkit::central::binary("server"))
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
        &DatabaseSettings {
            url: url.clone(),
            password_file: None,
            pool_size: 1,
            timeout: Duration::from_millis(300),
        },
        1,
    )
    .unwrap();
    // Hold the agency's row lock from outside, so the pool's one connection waits in
    // `lottery_finish_group` (the agency's done); a second call then finds no free connection.
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
        let blocked = s.spawn(|| engine.finish_agency(1, 0));
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
        assert_eq!(blocked.join().unwrap().unwrap().0, Tally { bets: 0, winners: 0, done: true });
    });
}

/// The cost of a batch commit: `THREADS` agencies upload at once, one connection each, in
/// batches of 100 bets of which 6 win (about the lottery's rate). Printed for docs/performance.md;
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

/// Many agencies stage at once, so their batches share group commits; among them two break a
/// rule (a conflict, a batch out of sequence). Each of those is refused alone; every other
/// batch commits, once.
#[test]
fn a_batch_refused_inside_a_group_fails_alone() {
    let agencies = 16;
    let Some((_cluster, _url, engine)) = engine("group_refusal", agencies) else { return };
    let good = [bet("A", "B", "1")];
    commit_batch(&engine, &batch(1, 1, 10, &[0], &good)).unwrap();
    let start = Barrier::new(agencies as usize);
    let results: Vec<_> = thread::scope(|s| {
        let handles: Vec<_> = (1..=agencies)
            .map(|agency| {
                let (engine, start, good) = (&engine, &start, &good);
                s.spawn(move || {
                    start.wait();
                    match agency {
                        // Batch 1 again with other bets: a conflict.
                        1 => commit_batch(engine, &batch(1, 1, 10, &[0], &[bet("X", "Y", "9")])),
                        // Batch 2 before batch 1.
                        2 => commit_batch(engine, &batch(2, 2, 10, &[0], good)),
                        _ => commit_batch(engine, &batch(agency, 1, 10, &[0], good)),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(matches!(results[0], Err(StoreError::Conflict { agency: 1, sequence: 1 })), "{:?}", results[0]);
    assert!(
        matches!(results[1], Err(StoreError::OutOfSequence { agency: 2, expected: 1, got: 2 })),
        "{:?}",
        results[1]
    );
    for (i, result) in results.iter().enumerate().skip(2) {
        assert_eq!(result.as_ref().unwrap(), &vec![0], "agency {}", i + 1);
    }
    assert_eq!(engine.tally(1).unwrap(), Tally { bets: 10, winners: 1, done: false });
    assert_eq!(engine.tally(2).unwrap(), Tally { bets: 0, winners: 0, done: false });
    for agency in 3..=agencies {
        assert_eq!(engine.tally(agency).unwrap(), Tally { bets: 10, winners: 1, done: false });
    }
}

/// Two connections of one agency stage batches at once with many other agencies, so the group
/// may hold that agency twice: the same batch twice (one commit, both told its winners) and
/// the next batch beside it, staged after it as a pipelining connection stages it (committed
/// after it or refused as out of sequence, never lost).
#[test]
fn an_agency_twice_in_a_group_commits_each_batch_once() {
    let agencies = 16;
    let Some((_cluster, _url, engine)) = engine("group_twice", agencies) else { return };
    let good = [bet("A", "B", "1")];
    for _ in 0..20 {
        let start = Barrier::new(agencies as usize + 1);
        let next = engine.tally(1).unwrap().bets / 10 + 1;
        let results: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = (0..=agencies)
                .map(|i| {
                    let (engine, start, good) = (&engine, &start, &good);
                    s.spawn(move || {
                        let (agency, sequence) = match i {
                            0 | 1 => (1, next),
                            2 => (1, next + 1),
                            _ => (i - 1, engine.tally(i - 1).unwrap().bets / 10 + 1),
                        };
                        let mut staged = batch(agency, sequence, 10, &[0], good);
                        if i == 2 {
                            (staged.first_bet, staged.after) = (next * 10, content(next, 10, good));
                        }
                        start.wait();
                        commit_batch(engine, &staged)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results[0].as_ref().unwrap(), &vec![0]);
        assert_eq!(results[1].as_ref().unwrap(), &vec![0]);
        let second = match &results[2] {
            Ok(winners) => {
                assert_eq!(winners, &vec![0]);
                1
            }
            Err(StoreError::OutOfSequence { agency: 1, .. }) => 0,
            Err(e) => panic!("{e}"),
        };
        let tally = engine.tally(1).unwrap();
        assert_eq!(tally.bets, (next + second) * 10, "round of batch {next}");
        assert_eq!(tally.winners, next + second);
    }
}

/// A group of finishes is one statement: each agency gets its own outcome, decided by agency,
/// the same agency twice is done then finished, a refusal changes nothing beside it, and
/// each done sees the agencies left pending right after it (the total only once none is).
#[test]
fn a_group_of_finishes_decides_each_agency_alone() {
    let Some((cluster, url, engine)) = engine("finish_group", 3) else { return };
    commit_batch(&engine, &batch(1, 1, 10, &[0], &[bet("A", "B", "1")])).unwrap();
    commit_batch(&engine, &batch(2, 1, 10, &[], &[])).unwrap();
    let rows = cluster.psql(
        &url,
        "SELECT string_agg(concat_ws(':', o_index, o_outcome, coalesce(o_expected::text, '-'), \
             coalesce(o_bets::text, '-'), coalesce(o_winners::text, '-'), coalesce(o_pending::text, '-'), \
             coalesce(o_total::text, '-')), ' ' ORDER BY o_index) \
         FROM lottery_finish_group('{2,1,4,2,3}', '{1,1,1,1,5}')",
    );
    assert_eq!(
        rows,
        "1:done:-:10:0:1:- 2:done:-:10:1:2:- 3:unknown:-:-:-:-:- 4:finished:-:-:-:-:- \
         5:out_of_sequence:0:-:-:-:-"
    );
    assert_eq!(engine.tally(3).unwrap(), Tally::default(), "a refused finish changes nothing");
    let (tally, progress) = engine.finish_agency(3, 0).unwrap();
    assert_eq!(
        (tally, progress),
        (Tally { bets: 0, winners: 0, done: true }, Progress::Complete { winners: 1 })
    );
}
