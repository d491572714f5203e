//! Exactly once across crashes, with real processes on 127.0.0.1: the central killed with
//! SIGKILL over and over while five agencies upload, or the agencies killed and started again,
//! and in the end the winners file and every agency's lines are those of a run without
//! crashes (which is also checked against the winning rule computed independently).

mod common;

use std::{collections::BTreeMap, path::PathBuf, thread, time::Duration};

use common::{assert_success, expected_rows, fields_of, retrying_agency, Central};
use testkit::{
    datasets::{self, Rng},
    process::LoggedChild,
    reference::{self, Row},
};

/// Bets per agency: uneven, so agencies finish at different moments.
const SIZES: [usize; 5] = [3_000, 2_600, 2_200, 1_400, 90];

/// A real 1 ms check per bet: the uploads take a few seconds, long enough for the crashes to
/// land in the middle of them.
const CRASHY_ENV: [(&str, &str); 1] = [("SERVER_WINNER_DELAY_MS", "1")];

/// Batches of 23 bets; in the crashed runs the odd agencies keep four batches in flight, so
/// crashes also cut pipelines (held answers, a shared sync) short.
fn agency_env(id: u32, pipelined: bool) -> [(&'static str, &'static str); 2] {
    let window = if pipelined && id % 2 == 1 { "4" } else { "1" };
    [("CLI_BATCH_MAX_AMOUNT", "23"), ("CLI_BATCH_WINDOW", window)]
}

fn datasets() -> Vec<Vec<Row>> {
    SIZES.iter().zip(1u64..).map(|(&n, seed)| datasets::generate(700 + seed, n)).collect()
}

fn write_datasets(central: &Central, sets: &[Vec<Row>]) -> Vec<PathBuf> {
    (1u32..)
        .zip(sets)
        .map(|(id, rows)| {
            let path = central.dir.path().join(format!("dataset-{id}.csv"));
            datasets::write(&path, rows).expect("write a dataset");
            path
        })
        .collect()
}

/// What an agency said at the end: its summary fields and the total it was told.
#[derive(Debug, PartialEq, Eq)]
struct Said {
    summary: BTreeMap<String, String>,
    total: String,
}

fn said(client: &LoggedChild) -> Said {
    let summary = fields_of(client, &["action: agency_summary | result: success"]);
    let total = fields_of(client, &["action: total_winners | result: success"])["winners"].clone();
    Said { summary, total }
}

/// The same lottery without any crash: what each agency says, and the winners file.
fn crash_free(sets: &[Vec<Row>]) -> (Vec<Said>, Vec<String>) {
    let central = Central::start(5, &[]);
    let paths = write_datasets(&central, sets);
    let mut clients: Vec<LoggedChild> = (1u32..)
        .zip(&paths)
        .map(|(id, path)| retrying_agency(&central, id, path, &agency_env(id, false)))
        .collect();
    for client in &mut clients {
        assert_success(client);
    }
    (clients.iter().map(said).collect(), central.sorted_winner_rows())
}

/// Checks the crash-free run against the winning rule, then the crashed run against it.
fn assert_same_as_crash_free(
    sets: &[Vec<Row>],
    expected: &(Vec<Said>, Vec<String>),
    got: (Vec<Said>, Vec<String>),
) {
    let mut rows: Vec<String> = (1u32..).zip(sets).flat_map(|(id, rows)| expected_rows(id, rows)).collect();
    rows.sort();
    assert_eq!(expected.1, rows, "the crash-free run holds exactly the winners of the rule");
    let total: usize = sets.iter().map(|rows| reference::winners(rows).len()).sum();
    for (said, rows) in expected.0.iter().zip(sets) {
        assert_eq!(said.summary["bets"], rows.len().to_string());
        assert_eq!(said.summary["winners"], reference::winners(rows).len().to_string());
        assert_eq!(said.total, total.to_string());
    }
    assert_eq!(got.1.len(), expected.1.len(), "as many winner rows as without crashes");
    assert_eq!(got.1, expected.1, "the same winner rows, none lost and none twice");
    assert_eq!(got.0, expected.0, "every agency says what it says without crashes");
}

#[test]
fn the_central_killed_twenty_times_during_uploads_loses_and_duplicates_nothing() {
    let sets = datasets();
    let expected = crash_free(&sets);

    let mut central = Central::start(5, &CRASHY_ENV);
    let paths = write_datasets(&central, &sets);
    let mut clients: Vec<LoggedChild> = (1u32..)
        .zip(&paths)
        .map(|(id, path)| retrying_agency(&central, id, path, &agency_env(id, true)))
        .collect();
    let mut rng = Rng::new(2026);
    let mut recoveries = Vec::new();
    for round in 0..22 {
        // The moment of the crash, not a synchronisation: right as it listens (mid-resume),
        // or anywhere in the next 300 ms (mid-batch, mid-commit, mid-answer).
        let moment = if round % 4 == 0 { 0 } else { rng.below(300) };
        thread::sleep(Duration::from_millis(moment));
        central.crash();
        central.restart(&[]);
        let line = central
            .process
            .wait_for(&["action: store_open | result: success | mode: recovered"], common::PATIENCE);
        recoveries
            .push(line.unwrap_or_else(|| panic!("no recovery line:\n{}", central.process.transcript())));
    }
    for client in &mut clients {
        assert_success(client);
    }
    let mid_upload = recoveries.iter().filter(|l| !l.contains("agencies_done: 5")).count();
    assert!(
        mid_upload >= 10,
        "only {mid_upload} of 22 crashes hit before every agency was done:\n{recoveries:#?}"
    );
    let retried = clients
        .iter()
        .filter(|c| c.wait_for(&["action: retry | result: in_progress"], Duration::ZERO).is_some())
        .count();
    assert_eq!(retried, 5, "every agency lived through at least one crash");
    let got = (clients.iter().map(said).collect(), central.sorted_winner_rows());
    assert_same_as_crash_free(&sets, &expected, got);
}

#[test]
fn agencies_killed_and_restarted_mid_upload_finish_as_if_never_killed() {
    let sets = datasets();
    let expected = crash_free(&sets);

    let central = Central::start(5, &CRASHY_ENV);
    let paths = write_datasets(&central, &sets);
    let mut clients: Vec<LoggedChild> = (1u32..)
        .zip(&paths)
        .map(|(id, path)| retrying_agency(&central, id, path, &agency_env(id, true)))
        .collect();
    let mut rng = Rng::new(4);
    let mut killed_mid_upload = 0;
    for round in 0..20 {
        let i = round % 4; // The four long uploads; agency 5 is done at once.
        thread::sleep(Duration::from_millis(rng.below(150)));
        let uploading = clients[i].wait_for(&["action: agency_summary"], Duration::ZERO).is_none();
        clients[i].sigkill();
        let _ = clients[i].wait_exit(common::PATIENCE).expect("a killed agency exits");
        killed_mid_upload += usize::from(uploading);
        let id = i as u32 + 1;
        clients[i] = retrying_agency(&central, id, &paths[i], &agency_env(id, true));
    }
    assert!(killed_mid_upload >= 10, "only {killed_mid_upload} of 20 kills hit an upload");
    for client in &mut clients {
        assert_success(client);
    }
    let resumed = clients[..4]
        .iter()
        .filter(|c| c.wait_for(&["action: resume | result: success"], Duration::ZERO).is_some())
        .count();
    assert_eq!(resumed, 4, "each restarted agency resumed where the central said");
    let got = (clients.iter().map(said).collect(), central.sorted_winner_rows());
    assert_same_as_crash_free(&sets, &expected, got);
}
