//! A central whose disk refuses: at start it says why and exits before accepting anything;
//! mid-run it refuses the batch with a `Storage` error, keeps nothing of it, and acknowledges
//! nothing it has not stored, so the agency (retrying, then restarted) ends with exact results.
//!
//! The disk failure is real, not simulated: the central runs under `prlimit --fsize`, so its
//! writes past that many bytes fail with `EFBIG` (and SIGXFSZ, which it survives).

mod common;

use std::{path::Path, process::Command, time::Duration};

use common::{assert_success, expected_rows, fields_of, retrying_agency, Central, PATIENCE};
use testkit::{central::server_command, datasets, process::LoggedChild, reference};

fn server(storage: &Path, wrapper: &[&str]) -> LoggedChild {
    let mut command = server_command(wrapper);
    command.env("SERVER_IP", "127.0.0.1").env("SERVER_PORT", "0").env("SERVER_STORAGE_PATH", storage);
    LoggedChild::spawn(&mut command)
}

fn assert_refuses_to_start(mut central: LoggedChild, reason: &str) {
    let status = central.wait_exit(PATIENCE).expect("the central exits");
    assert_eq!(status.code(), Some(1), "{}", central.transcript());
    let line =
        central.wait_for(&["action: start | result: fail"], Duration::ZERO).expect("a start failure line");
    assert!(line.contains("cannot open winners file") && line.contains(reason), "{line}");
    assert!(central.wait_for(&["accept_connections"], Duration::ZERO).is_none(), "it never listened");
}

#[test]
fn a_storage_path_that_is_a_directory_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    assert_refuses_to_start(server(dir.path(), &[]), "Is a directory");
}

#[test]
fn a_winners_file_that_cannot_be_written_at_start_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    // Not even the 47-byte header fits.
    assert_refuses_to_start(
        server(&dir.path().join("winners.csv"), &["prlimit", "--fsize=10"]),
        "File too large",
    );
}

#[test]
fn a_write_failure_mid_run_refuses_the_batch_and_nothing_unstored_is_acknowledged() {
    let mut central = Central::start(1, &[("LOGGING_LEVEL", "DEBUG")]);
    // Restart under a file size limit the journal reaches after a few dozen batches.
    central.crash();
    central.restart(&["prlimit", "--fsize=4000"]);
    let rows = datasets::generate(77, 1_500);
    let path = central.dir.path().join("dataset-1.csv");
    datasets::write(&path, &rows).unwrap();
    let retrying = [("CLI_BATCH_MAX_AMOUNT", "20"), ("CLI_RETRY_TOTAL", "1s")];
    let mut agency = retrying_agency(&central, 1, &path, &retrying);
    let status = agency.wait_exit(PATIENCE).expect("the agency gives up");
    assert_eq!(status.code(), Some(1), "{}", agency.transcript());
    let line = agency.wait_for(&["result: fail", "gave up after"], Duration::ZERO).expect("a give-up line");
    assert!(line.contains("the central refused (storage)") && line.contains("File too large"), "{line}");
    assert!(agency.wait_for(&["action: retry | result: in_progress", "storage"], Duration::ZERO).is_some());

    // What the central acknowledged: each stored batch logs `batch_stored` before its answer.
    let acknowledged = central.process.lines().iter().filter(|l| l.contains("action: batch_stored")).count();
    assert!(acknowledged > 10, "some batches fit before the limit: {acknowledged}");
    assert!(central
        .process
        .wait_for(&["action: bet_batch | result: fail", "kind: storage"], Duration::ZERO)
        .is_some());
    assert!(central.process.wait_exit(Duration::ZERO).is_none(), "the central is still up");

    // A restart without the limit recovers exactly the acknowledged batches.
    central.crash();
    central.restart(&[]);
    let recovered = format!("batches: {acknowledged} |");
    assert!(
        central
            .process
            .wait_for(&["action: store_open | result: success | mode: recovered", &recovered], PATIENCE)
            .is_some(),
        "{}",
        central.process.transcript()
    );
    let mut again = retrying_agency(&central, 1, &path, &retrying);
    assert_success(&mut again);
    let summary = fields_of(&again, &["action: agency_summary | result: success"]);
    assert_eq!(summary["bets"], rows.len().to_string());
    assert_eq!(summary["winners"], reference::winners(&rows).len().to_string());
    let mut expected = expected_rows(1, &rows);
    expected.sort();
    assert_eq!(central.sorted_winner_rows(), expected, "none lost, none twice");
}

#[test]
fn when_the_disk_takes_writes_again_the_retrying_agency_finishes_without_a_restart() {
    let mut central = Central::start(1, &[]);
    // A soft limit only, so it can be lifted while the central runs.
    central.crash();
    central.restart(&["prlimit", "--fsize=4000:unlimited"]);
    let rows = datasets::generate(78, 1_500);
    let path = central.dir.path().join("dataset-1.csv");
    datasets::write(&path, &rows).unwrap();
    let mut agency =
        retrying_agency(&central, 1, &path, &[("CLI_BATCH_MAX_AMOUNT", "20"), ("CLI_RETRY_MAX", "100ms")]);
    let refused =
        agency.wait_for(&["action: retry | result: in_progress", "the central refused (storage)"], PATIENCE);
    assert!(refused.is_some(), "{}", agency.transcript());
    let pid = central.process.pid().to_string();
    let lifted = Command::new("prlimit").args(["--pid", &pid, "--fsize=unlimited"]).status().unwrap();
    assert!(lifted.success());
    assert_success(&mut agency);
    let summary = fields_of(&agency, &["action: agency_summary | result: success"]);
    assert_eq!(summary["bets"], rows.len().to_string());
    assert_eq!(summary["winners"], reference::winners(&rows).len().to_string());
    let mut expected = expected_rows(1, &rows);
    expected.sort();
    assert_eq!(central.sorted_winner_rows(), expected, "none lost, none twice");
    assert!(central.process.wait_exit(Duration::ZERO).is_none(), "the same central all along");
}
