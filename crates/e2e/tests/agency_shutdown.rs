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

/// Between two total queries: the central held the first for 1 s (half the agency's 2 s
/// timeout), so the agency is in its own wait for the rest of its 30 s period.
#[test]
fn sigterm_while_waiting_for_the_total_exits_zero_within_a_second() {
    let mut central = Central::start(2, &[]);
    let mut client = agency(
        &central,
        1,
        &central.dataset(1, &datasets::generate(5, 100)),
        &[("CLI_WINNERS_RETRY_PERIOD", "30s"), ("CLI_SERVER_TIMEOUT", "2s")],
    );
    assert!(client
        .wait_for(&["action: total_winners | result: in_progress", "agencies_pending: 1"], PATIENCE)
        .is_some());
    assert_stops_gracefully(&mut client);
    assert_stopped_waiting_for_the_total(&client);
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

/// During a total query the central holds (up to 10 s here): the agency's stop cuts it off.
#[test]
fn sigterm_during_a_held_total_query_exits_zero_within_a_second() {
    let mut central = Central::start(2, &[]);
    let mut client = agency(
        &central,
        1,
        &central.dataset(1, &datasets::generate(5, 100)),
        &[("CLI_WINNERS_RETRY_PERIOD", "30s")],
    );
    assert!(client.wait_for(&["action: agency_summary | result: success"], PATIENCE).is_some());
    // The query is sent right after the summary line; let it reach the central's hold.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        client.wait_for(&["action: total_winners"], Duration::ZERO).is_none(),
        "still held:\n{}",
        client.transcript()
    );
    assert_stops_gracefully(&mut client);
    assert_stopped_waiting_for_the_total(&client);
    central.stop();
}

/// The agency's lines after a stop while it waited for the total.
fn assert_stopped_waiting_for_the_total(client: &LoggedChild) {
    for needles in [
        &["action: signal | result: success | signal: SIGTERM"][..],
        &["action: shutdown | result: success | agency: 1 | stage: winners_query"],
        &["action: exit | result: success | agency: 1 | outcome: stopped"],
    ] {
        assert!(client.wait_for(needles, Duration::ZERO).is_some(), "{needles:?}:\n{}", client.transcript());
    }
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
    // Every batch the agency saw acknowledged is stored; nothing more, unless the stop had to
    // cut a connection with answers still owed (those batches may be stored unacknowledged,
    // and a restarted agency would get them replayed).
    let sent: u64 = testkit::process::field(&line, "batches_sent").unwrap().parse().unwrap();
    let tally = central.tally(1);
    assert!(sent > 0);
    if client.wait_for(&["action: cut_off"], Duration::ZERO).is_some() {
        assert!(tally.bets >= sent * 10, "{tally:?}, {sent} batches acknowledged");
    } else {
        assert_eq!(tally.bets, sent * 10);
    }
    assert!(!tally.done);
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

/// A central that answers `Resume` (nothing committed) and then reads every batch and
/// answers none: an agency waiting for answers that never come. The receiver hears of the
/// first batch; the thread returns how many came.
fn silent_central() -> (std::net::SocketAddr, std::thread::JoinHandle<usize>, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let (first_batch, heard) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("the agency connects");
        stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
        let mut conn = protocol::Connection::new(stream);
        let mut batches = 0;
        while let Ok(Some(request)) = conn.read_message::<protocol::Request>() {
            match request {
                protocol::Request::Resume { .. } => conn
                    .write_message(&protocol::Response::Resumed {
                        last_sequence: 0,
                        bets: 0,
                        winners: 0,
                        done: false,
                        digest: [0; 16],
                    })
                    .expect("answer Resume"),
                _ => {
                    batches += 1;
                    let _ = first_batch.send(());
                }
            }
        }
        batches
    });
    (addr, thread, heard)
}

#[test]
fn sigterm_while_answers_are_owed_by_a_silent_central_exits_zero_within_a_second() {
    let (addr, central, first_batch) = silent_central();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let data = dir.path().join("dataset-1.csv");
    datasets::write(&data, &datasets::generate(8, 2_000)).unwrap();
    let mut client = testkit::central::spawn_agency(
        addr,
        1,
        &data,
        &[("CLI_SERVER_TIMEOUT", "60s"), ("CLI_BATCH_MAX_AMOUNT", "10")],
    );
    first_batch.recv_timeout(PATIENCE).unwrap_or_else(|_| panic!("no batch came:\n{}", client.transcript()));
    assert_stops_gracefully(&mut client);
    for needles in [
        &["action: cut_off | result: success | connections: 1"][..],
        &["action: shutdown | result: success | agency: 1 | stage: upload | batches_sent: 0 | bets_sent: 0"],
        &["action: close_connection | result: success | agency: 1"],
        &["action: exit | result: success | agency: 1 | outcome: stopped"],
    ] {
        assert!(client.wait_for(needles, Duration::ZERO).is_some(), "{needles:?}:\n{}", client.transcript());
    }
    assert!(central.join().expect("the silent central") > 0, "the agency had batches in flight");
}

#[test]
fn sigterm_while_waiting_to_retry_exits_zero_within_a_second() {
    // Nothing listens here: the agency waits between attempts to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let data = dir.path().join("dataset-1.csv");
    datasets::write(&data, &datasets::generate(9, 10)).unwrap();
    let mut client = testkit::central::spawn_agency(
        closed,
        1,
        &data,
        &[("CLI_RETRY_INITIAL", "20s"), ("CLI_RETRY_MAX", "20s"), ("CLI_RETRY_TOTAL", "60s")],
    );
    assert!(
        client.wait_for(&["action: retry | result: in_progress"], PATIENCE).is_some(),
        "{}",
        client.transcript()
    );
    assert_stops_gracefully(&mut client);
    assert!(client
        .wait_for(
            &["action: shutdown | result: success | agency: 1 | stage: upload | batches_sent: 0"],
            Duration::ZERO
        )
        .is_some());
}
