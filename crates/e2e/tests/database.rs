//! Exactly once with the database engine, with real processes on 127.0.0.1: centrals
//! (`SERVER_DATABASE_URL`) killed with SIGKILL mid-upload and started again on the same
//! database, two centrals on one database at once with agencies moving between them, the
//! same batch sent to both at the same moment, and the database itself restarted mid-upload.
//! After each, every agency's summary and total, and the winners `server export-winners`
//! writes from the database, are those of the winning rule computed independently
//! (`testkit::reference`).
//!
//! The agency takes one address (`CLI_SERVER_ADDRESS`) and tries every address its name
//! resolves to, in order; on loopback no name resolves to two centrals, so an agency "moves"
//! here the way an operator (or an orchestrator) moves it: it is stopped while its central is
//! down and started again with the other central's address, and resumes from what the
//! database committed. A name resolving to every central (a swarm's `dnsrr` service) makes
//! the same move without the restart.
//!
//! Each test starts its own PostgreSQL (`testkit::postgres::Cluster`); where the server's
//! binaries are missing it prints a SKIPPED line, and fails under `CI=true`.

mod common;

use std::{
    sync::{Arc, Barrier},
    thread,
    time::{Duration, Instant},
};

use common::{assert_opened_database, assert_success, fields_of, retrying_agency, wire, Central, PATIENCE};
use protocol::{ErrorKind, Request, Response, WireBet};
use testkit::{
    central::server_command,
    datasets::{self, Rng},
    postgres::Cluster,
    process::{field, LoggedChild},
    reference::{self, Row, WINNERS_HEADER},
};

/// Bets per agency: uneven, so agencies finish at different moments, and long enough at the
/// central's 1 ms a bet that failures land in the middle of the uploads.
const SIZES: [usize; 5] = [6_000, 5_200, 4_400, 2_800, 90];

const AGENCIES: u32 = SIZES.len() as u32;

/// A real 1 ms check per bet, so uploads take seconds.
const DELAY: (&str, &str) = ("SERVER_WINNER_DELAY_MS", "1");

/// A new cluster and a new database in it, or `None` (after the SKIPPED line) without
/// PostgreSQL's binaries.
fn database(test: &str) -> Option<(Cluster, String)> {
    let cluster = Cluster::start(test)?;
    let url = cluster.create_database(test);
    Some((cluster, url))
}

/// A central for [`AGENCIES`] agencies on the database at `url`, with `extra` on top.
fn central(url: &str, extra: &[(&str, &str)]) -> Central {
    let central = Central::start(AGENCIES, &[&[("SERVER_DATABASE_URL", url)][..], extra].concat());
    assert_opened_database(&central);
    central
}

fn datasets() -> Vec<Vec<Row>> {
    SIZES.iter().zip(1u64..).map(|(&n, seed)| datasets::generate(900 + seed, n)).collect()
}

/// Batches of 23 bets; odd agencies keep four batches in flight, so failures also cut
/// pipelines short.
fn agency_env(id: u32) -> [(&'static str, &'static str); 2] {
    [("CLI_BATCH_MAX_AMOUNT", "23"), ("CLI_BATCH_WINDOW", if id % 2 == 1 { "4" } else { "1" })]
}

/// Starts agency `id` (1-based) against `central`.
fn start_agency(central: &Central, id: u32, paths: &[std::path::PathBuf]) -> LoggedChild {
    retrying_agency(central, id, &paths[id as usize - 1], &agency_env(id))
}

/// Waits for an upload progress line of agency `id` showing at least `bets` acknowledged.
fn wait_progress(agency: &LoggedChild, id: u32, bets: u64) {
    let progress = format!("action: upload | result: in_progress | agency: {id} | batches:");
    let reached = agency.wait_for_line(
        |line| {
            line.contains(&progress) && field(line, "bets").and_then(|b| b.parse::<u64>().ok()) >= Some(bets)
        },
        PATIENCE,
    );
    assert!(reached.is_some(), "agency {id} never reached {bets} bets:\n{}", agency.transcript());
}

/// Whether agency `client` has not yet logged its summary (its upload is not over).
fn uploading(client: &LoggedChild) -> bool {
    client.wait_for(&["action: agency_summary"], Duration::ZERO).is_none()
}

/// Waits until `client` has logged a retry (it met the failure).
fn wait_retry(client: &LoggedChild, what: &str) {
    assert!(
        client.wait_for(&["action: retry | result: in_progress"], PATIENCE).is_some(),
        "{what}: the agency never retried:\n{}",
        client.transcript()
    );
}

/// Kills `client` (whose central is gone) and starts agency `id` again against `to`: the
/// move to another central.
fn move_agency(client: &mut LoggedChild, id: u32, to: &Central, paths: &[std::path::PathBuf]) {
    client.sigkill();
    let _ = client.wait_exit(PATIENCE).expect("a killed agency exits");
    *client = start_agency(to, id, paths);
}

/// What `server export-winners` writes from the database at `url`.
fn export(url: &str) -> String {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let out = dir.path().join("winners.csv");
    let output = server_command(&[])
        .arg("export-winners")
        .arg(&out)
        .env("SERVER_DATABASE_URL", url)
        .env("SERVER_AGENCIES", AGENCIES.to_string())
        .output()
        .expect("run server export-winners");
    assert!(
        output.status.success(),
        "export-winners failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(&out).expect("read the exported winners")
}

/// Every agency ends with its own bets and winners and the total of all, and the database's
/// winners are exactly the rule's, each once, in the journal's order (agency, then dataset
/// order).
fn assert_exact(sets: &[Vec<Row>], clients: &mut [LoggedChild], url: &str) {
    let total: usize = sets.iter().map(|rows| reference::winners(rows).len()).sum();
    for ((client, rows), id) in clients.iter_mut().zip(sets).zip(1u32..) {
        assert_success(client);
        let summary = fields_of(client, &["action: agency_summary | result: success"]);
        assert_eq!(summary["bets"], rows.len().to_string(), "agency {id}'s bets");
        assert_eq!(summary["winners"], reference::winners(rows).len().to_string(), "agency {id}'s winners");
        let told = fields_of(client, &["action: total_winners | result: success"]);
        assert_eq!(told["winners"], total.to_string(), "the total agency {id} was told");
    }
    let mut expected = format!("{WINNERS_HEADER}\n");
    for (id, rows) in (1u32..).zip(sets) {
        for row in reference::winner_rows(id, rows) {
            expected.push_str(&row);
            expected.push('\n');
        }
    }
    let exported = export(url);
    assert_eq!(exported.lines().count(), total + 1, "as many winners as the rule gives, none twice");
    assert_eq!(exported, expected, "the winners of the rule, each once");
}

#[test]
fn a_central_killed_mid_upload_and_started_again_on_the_database_ends_exact() {
    let Some((_cluster, url)) = database("db_central_killed") else { return };
    let sets = datasets();
    let mut central = central(&url, &[DELAY]);
    let paths: Vec<_> = (1u32..).zip(&sets).map(|(id, rows)| central.dataset(id, rows)).collect();
    let mut clients: Vec<LoggedChild> = (1..=AGENCIES).map(|id| start_agency(&central, id, &paths)).collect();

    // First crash well into the upload, then four more at random moments (right as it
    // listens, mid-batch, mid-commit, mid-answer), each followed by a new central on the
    // same port and database.
    wait_progress(&clients[0], 1, 1_000);
    let mut rng = Rng::new(13);
    let mut mid_upload = 0;
    for round in 0..5 {
        if round > 0 {
            // The moment of the crash, not a synchronisation.
            thread::sleep(Duration::from_millis(rng.below(400)));
        }
        mid_upload += usize::from(uploading(&clients[0]));
        central.crash();
        central.restart(&[]);
        assert!(
            central
                .process
                .wait_for(
                    &["action: store_open | result: success | mode: recovered", "engine: postgres"],
                    PATIENCE
                )
                .is_some(),
            "the new central did not recover the lottery from the database:\n{}",
            central.process.transcript()
        );
    }
    assert!(mid_upload >= 3, "only {mid_upload} of 5 crashes hit agency 1's upload");
    for (i, client) in clients.iter().enumerate().take(4) {
        wait_retry(client, &format!("agency {}", i + 1));
    }
    assert_exact(&sets, &mut clients, &url);
}

#[test]
fn two_centrals_on_one_database_with_agencies_moving_between_them_end_exact() {
    let Some((_cluster, url)) = database("db_two_centrals") else { return };
    let sets = datasets();
    let mut a = central(&url, &[DELAY]);
    let mut b = central(&url, &[DELAY]);
    let paths: Vec<_> = (1u32..).zip(&sets).map(|(id, rows)| a.dataset(id, rows)).collect();
    // Round-robin: odd agencies on A, even ones on B, all at once on one database.
    let mut clients: Vec<LoggedChild> =
        (1..=AGENCIES).map(|id| start_agency(if id % 2 == 1 { &a } else { &b }, id, &paths)).collect();

    // A dies mid-upload: its agencies meet the failure, then move to B and resume there.
    wait_progress(&clients[0], 1, 1_000);
    wait_progress(&clients[1], 2, 1_000);
    a.crash();
    for id in [1, 3, 5] {
        let client = &mut clients[id as usize - 1];
        wait_retry(client, &format!("agency {id} after A's crash"));
        move_agency(client, id, &b, &paths);
    }
    for id in [1, 3] {
        assert!(
            clients[id - 1].wait_for(&["action: resume | result: success"], PATIENCE).is_some(),
            "agency {id} did not resume on B:\n{}",
            clients[id - 1].transcript()
        );
    }

    // A comes back on its port and database; then B dies mid-upload and every agency moves to
    // A: the two even ones for the first time, the odd ones back.
    a.restart(&[]);
    wait_progress(&clients[1], 2, 3_000);
    assert!(uploading(&clients[0]) && uploading(&clients[1]), "B must die mid-upload");
    b.crash();
    for (i, client) in clients.iter_mut().enumerate() {
        let id = i as u32 + 1;
        wait_retry(client, &format!("agency {id} after B's crash"));
        move_agency(client, id, &a, &paths);
    }
    for id in [1, 2, 3] {
        assert!(
            clients[id - 1].wait_for(&["action: resume | result: success"], PATIENCE).is_some(),
            "agency {id} did not resume on A:\n{}",
            clients[id - 1].transcript()
        );
    }
    assert_exact(&sets, &mut clients, &url);
}

/// Sends `request` on one connection to each central at the same moment and returns both
/// answers.
fn both_at_once(a: &Central, b: &Central, request: &Request) -> [Response; 2] {
    let start = Arc::new(Barrier::new(2));
    let calls: Vec<_> = [a.connect(), b.connect()]
        .into_iter()
        .map(|mut conn| {
            let (start, request) = (Arc::clone(&start), request.clone());
            thread::spawn(move || {
                start.wait();
                conn.call(&request).unwrap_or_else(|e| panic!("{request:?} failed: {e}"))
            })
        })
        .collect();
    let mut answers = calls.into_iter().map(|call| call.join().expect("a caller thread"));
    [answers.next().expect("A's answer"), answers.next().expect("B's answer")]
}

#[test]
fn the_same_batch_on_two_centrals_at_the_same_moment_commits_once_with_equal_answers() {
    let Some((_cluster, url)) = database("db_same_batch") else { return };
    // No simulated delay: the two commits race as closely as the machine lets them.
    let a = central(&url, &[]);
    let b = central(&url, &[]);
    let rows = datasets::generate(77, 40 * 25);
    let batches: Vec<&[Row]> = rows.chunks(25).collect();
    let mut sequence = 0;
    for batch in &batches {
        sequence += 1;
        let bets: Vec<WireBet> = batch.iter().map(|[f, l, d, b]| wire(f, l, d, b)).collect();
        let expected: Vec<u32> = batch
            .iter()
            .enumerate()
            .filter(|(_, row)| reference::winners(std::slice::from_ref(*row)).len() == 1)
            .map(|(i, _)| i as u32)
            .collect();
        let answers = both_at_once(&a, &b, &Request::BetBatch { agency: 1, sequence, bets: bets.into() });
        assert_eq!(answers[0], answers[1], "batch {sequence}: both centrals answer the same");
        assert_eq!(answers[0], Response::BatchResult { sequence, winners: expected }, "batch {sequence}");
    }
    let winners = reference::winners(&rows).len() as u64;
    for central in [&a, &b] {
        let tally = central.tally(1);
        assert_eq!(
            (tally.bets, tally.winners, tally.done),
            (rows.len() as u64, winners, false),
            "committed once"
        );
    }

    // The done, at the same moment on both: one is acknowledged, the other finds it done.
    let mut answers = both_at_once(&a, &b, &Request::AgencyDone { agency: 1, batches: sequence }).to_vec();
    answers.sort_by_key(|r| matches!(r, Response::Error { .. }));
    assert_eq!(answers[0], Response::Ack, "{answers:?}");
    assert!(
        matches!(answers[1], Response::Error { kind: ErrorKind::AgencyFinished, .. }),
        "the second done is refused as finished: {answers:?}"
    );
    let mut expected = format!("{WINNERS_HEADER}\n");
    for row in reference::winner_rows(1, &rows) {
        expected.push_str(&row);
        expected.push('\n');
    }
    assert_eq!(export(&url), expected, "each winner stored once");
}

#[test]
fn the_database_restarted_mid_upload_gives_storage_refusals_and_the_lottery_ends_exact() {
    let Some((mut cluster, url)) = database("db_restarted") else { return };
    let sets = datasets();
    let mut central = central(&url, &[DELAY]);
    let paths: Vec<_> = (1u32..).zip(&sets).map(|(id, rows)| central.dataset(id, rows)).collect();
    let mut clients: Vec<LoggedChild> = (1..=AGENCIES).map(|id| start_agency(&central, id, &paths)).collect();

    wait_progress(&clients[0], 1, 1_000);
    assert!(uploading(&clients[0]), "the database must go down mid-upload");
    cluster.stop();
    // Down until the agencies have been refused for it: the central stays up and says why.
    let refused = "error: the central refused (storage)";
    for (i, client) in clients.iter().enumerate().take(4) {
        assert!(
            client.wait_for(&["action: retry | result: in_progress", refused], PATIENCE).is_some(),
            "agency {} was not refused for storage:\n{}",
            i + 1,
            client.transcript()
        );
    }
    cluster.restart();
    assert_exact(&sets, &mut clients, &url);
    assert!(central.process.wait_exit(Duration::ZERO).is_none(), "the central lived through the outage");
    central.stop();
}

#[test]
fn a_password_from_its_file_opens_the_database_and_reaches_no_log() {
    let Some((_cluster, url)) = database("password_file") else { return };
    let dir = tempfile::tempdir().expect("a scratch directory");
    let file = dir.path().join("database.password");
    let secret = "f1le-s3cret-9d2c";
    std::fs::write(&file, format!("{secret}\n")).expect("write the password file");
    let file = file.to_str().expect("a UTF-8 path");
    // The test cluster trusts loopback, so any password opens it: what this shows is that the
    // file is taken, and that neither the settings nor the store's lines carry its contents.
    let mut central = central(&url, &[("SERVER_DATABASE_PASSWORD_FILE", file)]);
    let config =
        central.process.wait_for(&["action: config | result: success"], PATIENCE).expect("a config line");
    assert!(config.contains(&format!("database_password_file: {file}")), "{config}");
    central.stop();
    assert!(!central.process.transcript().contains(secret), "{}", central.process.transcript());

    // The password in the URL and in a file: which one counts would be a guess, so neither.
    let with_password = url.replacen("postgres@", "postgres:other@", 1);
    let (mut refused, _dir) = {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let mut command = server_command(&[]);
        command
            .env_clear()
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("SERVER_STORAGE_PATH", dir.path().join("winners.csv"))
            .env("SERVER_DATABASE_URL", &with_password)
            .env("SERVER_DATABASE_PASSWORD_FILE", file);
        (LoggedChild::spawn(&mut command), dir)
    };
    assert_eq!(refused.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1), "{}", refused.transcript());
    assert!(
        refused
            .wait_for(&["action: start | result: fail", "carries a password too"], Duration::ZERO)
            .is_some(),
        "{}",
        refused.transcript()
    );
    assert!(!refused.transcript().contains(secret) && !refused.transcript().contains(":other@"));
}

/// How soon after the last `AgencyDone` commits on one central a total query held on another
/// must be answered: the notification's round trip, far below the hold.
const PUSHED_WITHIN: Duration = Duration::from_millis(200);

#[test]
fn a_total_held_on_one_central_arrives_the_moment_the_last_agency_finishes_on_another() {
    let Some((_cluster, url)) = database("db_total_pushed") else { return };
    let start = || {
        let central = Central::start(2, &[("SERVER_DATABASE_URL", url.as_str())]);
        assert!(
            central.process.wait_for(&["action: store_open | result: success"], PATIENCE).is_some(),
            "{}",
            central.process.transcript()
        );
        central
    };
    let (mut a, mut b) = (start(), start());
    let mut first = a.connect();
    let bets = vec![common::winning_bet(), common::losing_bet(), common::winning_bet()];
    assert!(matches!(
        common::call(&mut first, Request::BetBatch { agency: 1, sequence: 1, bets: bets.into() }),
        Response::BatchResult { .. }
    ));
    assert_eq!(common::call(&mut first, Request::AgencyDone { agency: 1, batches: 1 }), Response::Ack);

    // Held on A for several seconds, while agency 2 is still loading through B.
    let hold = Duration::from_secs(8);
    let mut asker = a.connect();
    let held = thread::spawn(move || {
        let asked = Instant::now();
        let hold_ms = u32::try_from(hold.as_millis()).expect("a hold fits");
        let answer = common::call(&mut asker, Request::AwaitWinners { agency: 1, hold_ms });
        (answer, Instant::now(), asked)
    });
    // The moment agency 2 finishes, not a synchronisation: the query is held by then.
    thread::sleep(Duration::from_millis(300));
    let mut second = b.connect();
    assert_eq!(common::call(&mut second, Request::AgencyDone { agency: 2, batches: 0 }), Response::Ack);
    let done_at = Instant::now();
    let (answer, answered_at, asked) = held.join().expect("the asking thread");
    assert_eq!(answer, Response::Total { winners: 2 });
    assert!(
        answered_at.duration_since(asked) >= Duration::from_millis(300),
        "held while agency 2 was loading, not answered at once"
    );
    let after = answered_at.saturating_duration_since(done_at);
    eprintln!("the total reached central A {after:?} after agency 2's done was acknowledged on B");
    assert!(
        after < PUSHED_WITHIN,
        "A learnt the total {after:?} after B's done, not at once (the hold was {hold:?})"
    );
    a.stop();
    b.stop();
}

/// The bound on a central's stop with its database frozen: the force-close at 700 ms, then
/// every database call ends at once.
const STOP_WITH_FROZEN_DATABASE_WITHIN: Duration = Duration::from_millis(1_200);

#[test]
fn a_central_whose_database_hangs_stops_within_a_second_and_nothing_acknowledged_is_lost() {
    let Some((mut cluster, url)) = database("db_frozen") else { return };
    let sets = datasets();
    let mut central = central(&url, &[DELAY]);
    let paths: Vec<_> = (1u32..).zip(&sets).map(|(id, rows)| central.dataset(id, rows)).collect();
    let mut clients: Vec<LoggedChild> = (1..=AGENCIES).map(|id| start_agency(&central, id, &paths)).collect();

    wait_progress(&clients[0], 1, 1_000);
    assert!(uploading(&clients[0]), "the database must hang mid-upload");
    cluster.freeze();
    // Batches keep coming and block on the frozen database: every agency sends one within a
    // batch's check (23 bets at 1 ms), so half a second leaves calls in flight.
    thread::sleep(Duration::from_millis(500));
    central.process.sigterm();
    let stopping = Instant::now();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    let took = stopping.elapsed();
    eprintln!("the central stopped {took:?} after SIGTERM with its database frozen");
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(
        took < STOP_WITH_FROZEN_DATABASE_WITHIN,
        "stopping with a frozen database took {took:?}:\n{}",
        central.process.transcript()
    );
    assert!(
        central.process.wait_for(&["action: force_close | result: success"], Duration::ZERO).is_some(),
        "connections were blocked on the database when the stop forced them closed:\n{}",
        central.process.transcript()
    );

    cluster.thaw();
    central.restart(&[]);
    assert_exact(&sets, &mut clients, &url);
    central.stop();
}

/// A connection pipelines batches 1 to 3 of agency 1, and while their group waits for the
/// agency's row lock another upload under the same id commits its own batch 1. Batch 1 is
/// then a conflict, the two staged behind it are refused too (nothing of this upload is laid
/// on the other's batch), the central closes the connection, and the database holds only the
/// other upload's batch.
#[test]
fn batches_pipelined_behind_a_conflict_are_refused_and_the_connection_closed() {
    let Some((cluster, url)) = database("db_pipelined_conflict") else { return };
    let a = central(&url, &[]);
    let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let mut other = other.transaction().unwrap();
    other.execute("SELECT 1 FROM agencies WHERE agency = 1 FOR UPDATE", &[]).unwrap();
    let mut conn = a.connect();
    let batches: Vec<Request> = (1..=3u64)
        .map(|sequence| Request::BetBatch {
            agency: 1,
            sequence,
            bets: vec![wire("Ana", "Pérez", &(30_000_000 + sequence).to_string(), "1990-01-31")].into(),
        })
        .collect();
    conn.write_messages(&batches).unwrap();
    let deadline = Instant::now() + PATIENCE;
    while cluster.psql(&url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'") != "1" {
        assert!(Instant::now() < deadline, "the central's group never waited on the agency's lock");
        thread::sleep(Duration::from_millis(10));
    }
    // The other upload's batch 1: one bet, other content (another digest).
    let outcome: String = other
        .query_one(
            "SELECT o_outcome FROM lottery_stage(1, 1, 1, $1, $2, '{}', '{}', '{}', '{}', '{}')",
            &[&vec![9u8; 16], &vec![0u8; 16]],
        )
        .unwrap()
        .get(0);
    assert_eq!(outcome, "fresh");
    other.commit().unwrap();
    let kinds: Vec<ErrorKind> = (0..3)
        .map(|_| match conn.read_message::<Response>() {
            Ok(Some(Response::Error { kind, .. })) => kind,
            other => panic!("expected a refusal, got {other:?}"),
        })
        .collect();
    assert_eq!(kinds, [ErrorKind::Conflict, ErrorKind::Conflict, ErrorKind::OutOfSequence]);
    assert!(matches!(conn.read_message::<Response>(), Ok(None) | Err(_)), "closed after a conflict");
    assert_eq!(cluster.psql(&url, "SELECT last_sequence, bets FROM agencies WHERE agency = 1"), "1|1");
}
