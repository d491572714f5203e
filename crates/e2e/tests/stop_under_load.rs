//! Exercise 4 under load: the central stopped with SIGTERM while five agencies pipeline their
//! batches at the course's 1 ms a bet, at several moments of the lottery; each stop takes
//! under a second and exits 0, the central is started again on the same files, the agencies
//! resume on their own, and the lottery ends exact.

mod common;

use std::time::{Duration, Instant};

use common::{assert_success, fields_of, retrying_agency, Central, PATIENCE};
use testkit::{datasets, process::LoggedChild, reference};

const STOP_WITHIN: Duration = Duration::from_secs(1);

/// Stops the central with SIGTERM, asserts it exits 0 within [`STOP_WITHIN`] with its closing
/// lines, and starts it again on the same port and files.
fn stop_and_restart(central: &mut Central, moment: &str) {
    let started = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    let took = started.elapsed();
    assert!(status.success(), "{moment}: {status:?}\n{}", central.process.transcript());
    assert!(took < STOP_WITHIN, "{moment}: stopping took {took:?}\n{}", central.process.transcript());
    for needles in [
        &["action: close_listener | result: success"][..],
        &["action: join_connections | result: success"],
        &["action: close_store | result: success"],
        &["action: exit | result: success"],
    ] {
        assert!(
            central.process.wait_for(needles, Duration::ZERO).is_some(),
            "{moment}: no {needles:?} in:\n{}",
            central.process.transcript()
        );
    }
    central.restart(&[]);
}

/// Waits for an upload progress line of agency `id` showing at least `bets` acknowledged.
fn wait_progress(agency: &LoggedChild, id: u32, bets: u64) {
    let progress = format!("action: upload | result: in_progress | agency: {id} | batches:");
    let reached = agency.wait_for_line(
        |line| {
            line.contains(&progress)
                && testkit::process::field(line, "bets").and_then(|b| b.parse::<u64>().ok()) >= Some(bets)
        },
        PATIENCE,
    );
    assert!(reached.is_some(), "agency {id} never reached {bets} bets:\n{}", agency.transcript());
}

#[test]
fn sigterm_mid_upload_and_mid_queries_stops_within_a_second_and_the_lottery_ends_exact() {
    let mut central = Central::start(5, &[("SERVER_WINNER_DELAY_MS", "1")]);
    // Four agencies of 2 500 bets (2.5 s of checks each) and one of 6 000: the four reach
    // the total queries while the fifth still uploads.
    let sizes = [2_500, 2_500, 2_500, 2_500, 6_000];
    let datasets: Vec<_> =
        (1..=5u32).map(|id| datasets::generate(40 + u64::from(id), sizes[id as usize - 1])).collect();
    let mut agencies: Vec<LoggedChild> = (1..=5u32)
        .map(|id| {
            let path = central.dataset(id, &datasets[id as usize - 1]);
            retrying_agency(&central, id, &path, &[])
        })
        .collect();

    // Early in the upload: every agency has batches in flight.
    wait_progress(&agencies[0], 1, 1);
    stop_and_restart(&mut central, "early upload");

    // Late: the four small agencies are done and asking for the total, the fifth is well
    // into its upload.
    for (i, agency) in agencies.iter().enumerate().take(4) {
        assert!(
            agency.wait_for(&["action: total_winners | result: in_progress"], PATIENCE).is_some(),
            "agency {} never asked for the total:\n{}",
            i + 1,
            agency.transcript()
        );
    }
    wait_progress(&agencies[4], 5, 4_000);
    stop_and_restart(&mut central, "late upload, total queries");

    let expected: Vec<Vec<String>> =
        (1..=5u32).map(|id| reference::winner_rows(id, &datasets[id as usize - 1])).collect();
    let total: usize = expected.iter().map(Vec::len).sum();
    for (i, agency) in agencies.iter_mut().enumerate() {
        assert_success(agency);
        let summary = fields_of(agency, &["action: agency_summary"]);
        assert_eq!(summary["bets"], sizes[i].to_string(), "agency {}", i + 1);
        assert_eq!(summary["winners"], expected[i].len().to_string(), "agency {}", i + 1);
        let answer = fields_of(agency, &["action: total_winners | result: success"]);
        assert_eq!(answer["winners"], total.to_string(), "agency {}", i + 1);
        assert!(
            agency.wait_for(&["action: resume | result: success"], Duration::ZERO).is_some(),
            "agency {} resumed",
            i + 1
        );
    }
    let mut rows: Vec<String> = expected.into_iter().flatten().collect();
    rows.sort();
    assert_eq!(central.sorted_winner_rows(), rows, "every winner stored once");
    central.stop();
}
