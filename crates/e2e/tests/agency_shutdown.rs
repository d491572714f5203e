//! The agency's graceful stop, on the real binary: SIGTERM ends the upload after the batch in
//! flight, or the wait for the total at once, closes the socket, logs it, and exits 0.

mod common;

use std::time::{Duration, Instant};

use common::{agency, Central, PATIENCE};
use testkit::{datasets, process::LoggedChild};

const STOP_WITHIN: Duration = Duration::from_secs(1);

/// Sends SIGTERM and checks the agency exits 0 within [`STOP_WITHIN`].
fn assert_stops_gracefully(client: &mut LoggedChild) {
    let started = Instant::now();
    client.sigterm();
    let status = client.wait_exit(PATIENCE).expect("the agency exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}\n{}", client.transcript());
    assert!(took < STOP_WITHIN, "stopping took {took:?}");
}

#[test]
fn sigterm_while_waiting_for_the_total_exits_zero_within_a_second() {
    let mut central = Central::start(2, &[]);
    let mut client = agency(
        &central,
        1,
        &central.dataset(1, &datasets::generate(5, 100)),
        &[("CLI_WINNERS_RETRY_PERIOD", "30s")],
    );
    assert!(client
        .wait_for(&["action: total_winners | result: in_progress", "agencies_pending: 1"], PATIENCE)
        .is_some());
    assert_stops_gracefully(&mut client);
    for needles in [
        &["action: signal | result: success | signal: SIGTERM"][..],
        &["action: shutdown | result: success | agency: 1 | stage: winners_query"],
        &["action: exit | result: success | agency: 1 | outcome: stopped"],
    ] {
        assert!(client.wait_for(needles, Duration::ZERO).is_some(), "{needles:?}:\n{}", client.transcript());
    }
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn sigterm_during_the_upload_stops_after_the_batch_in_flight() {
    // 10 bets a batch at 3 ms a bet: about 30 ms a batch, 6 s for the whole dataset.
    let mut central = Central::start(1, &[("SERVER_WINNER_DELAY_MS", "3")]);
    let mut client = agency(
        &central,
        1,
        &central.dataset(1, &datasets::generate(6, 2_000)),
        &[("CLI_BATCH_MAX_AMOUNT", "10")],
    );
    assert!(
        client.wait_for(&["action: upload | result: in_progress", "batches:"], PATIENCE).is_some(),
        "{}",
        client.transcript()
    );
    assert_stops_gracefully(&mut client);
    let line = client
        .wait_for(&["action: shutdown | result: success | agency: 1 | stage: upload"], Duration::ZERO)
        .unwrap_or_else(|| panic!("{}", client.transcript()));
    assert!(client
        .wait_for(&["action: close_connection | result: success | agency: 1"], Duration::ZERO)
        .is_some());
    assert!(client.wait_for(&["action: agency_summary"], Duration::ZERO).is_none(), "it did not finish");
    // Every batch the agency saw acknowledged is stored, and nothing more.
    let sent: u64 = testkit::process::field(&line, "batches_sent").unwrap().parse().unwrap();
    let tally = central.tally(1);
    assert!(sent > 0);
    assert_eq!(tally.bets, sent * 10);
    assert!(!tally.done);
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}
