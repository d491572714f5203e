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
    // 30 bets at 20 ms each: the batch takes about 600 ms to check.
    let mut central = Central::start(2, &[("SERVER_WINNER_DELAY_MS", "20"), ("LOGGING_LEVEL", "DEBUG")]);
    let mut conn = central.connect();
    let mut bets = vec![losing_bet(); 30];
    bets[7] = winning_bet();
    bets[21] = winning_bet();
    conn.write_message(&Request::BetBatch { agency: 1, sequence: 1, bets }).unwrap();
    central
        .process
        .wait_for(&["action: batch_received", "sequence: 1"], PATIENCE)
        .expect("the central starts on the batch");
    central.process.sigterm();
    let answer = conn.read_message::<Response>().expect("an answer").expect("not a close");
    assert_eq!(answer, Response::BatchResult { sequence: 1, winners: vec![7, 21] });
    assert_eq!(conn.read_message::<Response>().unwrap(), None, "then the connection closes");
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert_eq!(central.winner_rows(), vec!["1,Kiara Valentina,Basile,32250087,1987-05-17"; 2]);
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
