//! An agency whose central stops answering gives up on time: its timeout bounds each attempt,
//! its retry budget bounds the waits, its last line states the time really spent, and a
//! timeout is reported as one. The central here is a listener that never accepts: the
//! kernel completes the connection, and nothing ever answers.

use std::{net::TcpListener, process::Command, time::Duration, time::Instant};

use testkit::{datasets, process::LoggedChild};

#[test]
fn an_agency_whose_central_never_answers_gives_up_on_time_and_says_so() {
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind a listener that never accepts");
    let dir = tempfile::Builder::new().prefix("client-cut-off-").tempdir().expect("a scratch directory");
    let data = dir.path().join("dataset.csv");
    datasets::write(&data, &datasets::generate(5, 10)).expect("write a dataset");
    let started = Instant::now();
    let mut client = LoggedChild::spawn(
        Command::new(testkit::central::binary("client"))
            .env_clear()
            .env("CLI_ID", "1")
            .env("CLI_SERVER_ADDRESS", silent.local_addr().expect("its address").to_string())
            .env("CLI_DATA_PATH", &data)
            .env("CLI_SERVER_TIMEOUT", "1s")
            .env("CLI_RETRY_INITIAL", "200ms")
            .env("CLI_RETRY_MAX", "400ms")
            .env("CLI_RETRY_TOTAL", "1s"),
    );
    // Waits of 200 + 400 + 400 ms, and four attempts of one second each: about 5 s.
    let status = client.wait_exit(Duration::from_secs(60)).expect("the agency gives up");
    let wall = started.elapsed();
    assert_eq!(status.code(), Some(1), "{}", client.transcript());
    let line = client.wait_for(&["result: fail", "gave up after"], Duration::ZERO).expect("a give-up line");
    assert!(line.contains("timed out after 1s"), "a timeout said as one: {line}");
    assert!(!line.contains("os error 11"), "{line}");
    let stated: f64 = line
        .split("gave up after ")
        .nth(1)
        .and_then(|rest| rest.split(" in ").nth(1))
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or_else(|| panic!("no elapsed time in {line}"));
    assert!(stated >= 4.0, "four one-second attempts and a second of waits: {line}");
    assert!(stated <= wall.as_secs_f64() + 0.1, "stated {stated}s, measured {wall:?}: {line}");
    assert!(wall < Duration::from_secs(20), "gave up after {wall:?}");
}
