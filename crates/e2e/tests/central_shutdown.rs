//! The central's graceful stop, on the real binary: SIGTERM and SIGINT close everything,
//! join every thread, keep the batch in flight, and exit 0 quickly.

mod common;

use std::{
    io::Read,
    time::{Duration, Instant},
};

use common::{call, losing_bet, winning_bet, Central, PATIENCE};
use protocol::{Request, Response};

/// The bound for a stop with idle connections open.
const STOP_WITHIN: Duration = Duration::from_secs(1);

fn assert_closing_lines(central: &Central, signal: &str) {
    for needles in [
        &["action: signal | result: success", signal][..],
        &["action: shutdown | result: in_progress"],
        &["action: close_listener | result: success"],
        &["action: join_connections | result: success"],
        &["action: close_store | result: success"],
        &["action: exit | result: success"],
    ] {
        assert!(
            central.process.wait_for(needles, Duration::ZERO).is_some(),
            "no line with {needles:?} in:\n{}",
            central.process.transcript()
        );
    }
}

#[test]
fn sigterm_with_100_idle_connections_exits_zero_within_a_second() {
    let mut central = Central::start(2, &[]);
    let mut connections: Vec<_> = (0..100).map(|_| central.connect()).collect();
    // An answered echo proves each connection has its own thread waiting on it.
    for (i, conn) in connections.iter_mut().enumerate() {
        let bytes = format!("idle {i}").into_bytes();
        assert_eq!(call(conn, Request::Echo(bytes.clone())), Response::Echo(bytes));
    }
    let started = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(took < STOP_WITHIN, "stopping took {took:?}");
    assert_closing_lines(&central, "SIGTERM");
    assert!(central.process.wait_for(&["open_connections: 100"], Duration::ZERO).is_some());
    let closed = central
        .process
        .lines()
        .iter()
        .filter(|l| l.contains("action: close_connection") && l.contains("reason: shutdown"))
        .count();
    assert_eq!(closed, 100, "each connection's close is logged");
    for conn in &mut connections {
        assert_eq!(conn.read_message::<Response>().expect("a clean close"), None, "every socket is closed");
    }
}

#[test]
fn sigint_stops_it_the_same_way() {
    let mut central = Central::start(2, &[]);
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-INT", &central.process.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < STOP_WITHIN);
    assert_closing_lines(&central, "SIGINT");
}

#[test]
fn sigterm_lets_the_batch_in_flight_finish_be_stored_and_answered() {
    // 15 bets at 20 ms each: the batch takes about 300 ms to check, within the stop's grace.
    let mut central = Central::start(2, &[("SERVER_WINNER_DELAY_MS", "20"), ("LOGGING_LEVEL", "DEBUG")]);
    let mut conn = central.connect();
    let mut bets = vec![losing_bet(); 15];
    bets[7] = winning_bet();
    bets[11] = winning_bet();
    conn.write_message(&Request::BetBatch { agency: 1, sequence: 1, bets: bets.into() }).unwrap();
    central
        .process
        .wait_for(&["action: batch_received", "sequence: 1"], PATIENCE)
        .expect("the central starts on the batch");
    central.process.sigterm();
    let answer = conn.read_message::<Response>().expect("an answer").expect("not a close");
    assert_eq!(answer, Response::BatchResult { sequence: 1, winners: vec![7, 11] });
    assert_eq!(conn.read_message::<Response>().unwrap(), None, "then the connection closes");
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert_eq!(central.winner_rows(), vec!["1,Kiara Valentina,Basile,32250087,1987-05-17"; 2]);
    assert_closing_lines(&central, "SIGTERM");
}

#[test]
fn sigterm_abandons_a_batch_whose_check_would_outlast_the_stop() {
    // 400 bets at 20 ms each: 8 s of checking, far past the stop's second.
    let mut central = Central::start(2, &[("SERVER_WINNER_DELAY_MS", "20"), ("LOGGING_LEVEL", "DEBUG")]);
    let mut conn = central.connect();
    let mut bets = vec![losing_bet(); 400];
    bets[3] = winning_bet();
    conn.write_message(&Request::BetBatch { agency: 1, sequence: 1, bets: bets.into() }).unwrap();
    central
        .process
        .wait_for(&["action: batch_received", "sequence: 1"], PATIENCE)
        .expect("the central starts on the batch");
    let started = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(took < STOP_WITHIN, "stopping took {took:?}\n{}", central.process.transcript());
    assert!(
        conn.read_message::<Response>().map_or(true, |answer| answer.is_none()),
        "the abandoned batch is not answered"
    );
    assert!(central.winner_rows().is_empty(), "nothing of it is stored");
    assert!(central.process.wait_for(&["abandoned unstored"], Duration::ZERO).is_some());
    assert_closing_lines(&central, "SIGTERM");
}

#[test]
fn requests_already_sent_are_not_processed_once_the_stop_begins() {
    // One slow batch (300 ms), then 50 more already in the socket behind it: the first is
    // finished and answered, the others are dropped unanswered and unstored.
    let mut central = Central::start(2, &[("SERVER_WINNER_DELAY_MS", "20"), ("LOGGING_LEVEL", "DEBUG")]);
    let mut conn = central.connect();
    let mut first = vec![losing_bet(); 15];
    first[2] = winning_bet();
    conn.write_message(&Request::BetBatch { agency: 1, sequence: 1, bets: first.into() }).unwrap();
    for sequence in 2..=51 {
        conn.write_message(&Request::BetBatch { agency: 1, sequence, bets: vec![winning_bet(); 10].into() })
            .unwrap();
    }
    central
        .process
        .wait_for(&["action: batch_received", "sequence: 1"], PATIENCE)
        .expect("the central starts on the first batch");
    let started = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(started.elapsed() < STOP_WITHIN, "stopping took {:?}", started.elapsed());
    assert_eq!(
        conn.read_message::<Response>().expect("an answer"),
        Some(Response::BatchResult { sequence: 1, winners: vec![2] })
    );
    // Then the close: a clean one, or a reset since the central leaves requests unread.
    let after = conn.read_message::<Response>();
    assert!(!matches!(after, Ok(Some(_))), "nothing is answered after it: {after:?}");
    assert_eq!(central.winner_rows(), vec!["1,Kiara Valentina,Basile,32250087,1987-05-17"]);
}

#[test]
fn a_peer_that_never_reads_its_answers_cannot_hold_the_stop() {
    let mut central = Central::start(2, &[]);
    let stream = central.raw();
    // Echoes of 1 MiB less a little, sent until the central, unable to write its answers to a
    // peer that does not read, stops reading too: then this side's write times out.
    stream.set_write_timeout(Some(Duration::from_millis(300))).expect("set a write timeout");
    let mut conn = protocol::Connection::new(stream);
    let payload = vec![0x5a; (1 << 20) - 64];
    let mut sent = 0;
    loop {
        match conn.write_message(&Request::Echo(payload.clone())) {
            Ok(()) => sent += 1,
            Err(e) if e.is_timeout() => break,
            Err(e) => panic!("writing echo {sent}: {e}"),
        }
        assert!(sent < 1000, "the central never stopped reading");
    }
    let started = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(
        took < STOP_WITHIN,
        "stopping took {took:?} with {sent} echoes unread\n{}",
        central.process.transcript()
    );
    assert_closing_lines(&central, "SIGTERM");
}

#[test]
fn a_winners_file_that_cannot_be_created_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = testkit::process::LoggedChild::spawn(
        std::process::Command::new(testkit::central::binary("server"))
            .env_clear()
            .env("SERVER_PORT", "0")
            .env("SERVER_STORAGE_PATH", dir.path().join("missing-dir/winners.csv")),
    );
    let status = process.wait_exit(PATIENCE).expect("the central exits");
    assert_eq!(status.code(), Some(1));
    let line =
        process.wait_for(&["action: start | result: fail"], Duration::ZERO).expect("a start failure line");
    assert!(line.contains("cannot open winners file"), "{line}");
    assert!(process.wait_for(&["accept_connections"], Duration::ZERO).is_none(), "it never listened");
}

#[test]
fn a_bad_setting_is_refused_with_exit_status_2() {
    let mut process = testkit::process::LoggedChild::spawn(
        std::process::Command::new(testkit::central::binary("server")).env_clear().env("SERVER_PORT", "http"),
    );
    assert_eq!(process.wait_exit(PATIENCE).and_then(|s| s.code()), Some(2));
    assert!(process.wait_for(&["action: config | result: fail", "SERVER_PORT"], Duration::ZERO).is_some());
}

#[test]
fn a_socket_closed_by_shutdown_reads_end_of_stream() {
    let mut central = Central::start(2, &[]);
    let mut raw = central.raw();
    // Make sure the connection is served before stopping.
    let mut conn = central.connect();
    assert_eq!(call(&mut conn, Request::Echo(vec![1])), Response::Echo(vec![1]));
    central.process.sigterm();
    let mut buf = [0u8; 1];
    assert_eq!(raw.read(&mut buf).expect("a clean close"), 0);
    assert!(central.process.wait_exit(PATIENCE).expect("exits").success());
}

#[test]
fn a_previous_winners_file_is_replaced_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("winners.csv");
    let header = "agency,first_name,last_name,document,birthdate\n";
    let previous = format!("{header}1,Ana,Díaz,1,2000-01-31\n");
    std::fs::write(&path, &previous).unwrap();
    let mut process = testkit::process::LoggedChild::spawn(
        std::process::Command::new(testkit::central::binary("server"))
            .env_clear()
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("SERVER_STORAGE_PATH", &path),
    );
    let _ = process.listening_address(PATIENCE);
    let replaced = format!("replaced_bytes: {}", previous.len());
    let warning = process.wait_for(&["action: store_open", &replaced], Duration::ZERO);
    assert!(warning.is_some(), "{}", process.transcript());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), header);
    process.sigterm();
    assert!(process.wait_exit(PATIENCE).expect("exits").success());
}
