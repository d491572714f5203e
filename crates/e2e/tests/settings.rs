//! Every setting of both binaries at the bounds of its range and just past them, with the
//! real `server` and `client`: inside, the binary starts; outside, it exits 2 with a line
//! naming the key, the value and the range, before any file is created; never a crash.
//!
//! The `client` binary sits beside `server` in the target directory (see `hostile_peers.rs`).

mod common;

use std::{os::unix::process::ExitStatusExt, path::PathBuf, process::Command};

use common::PATIENCE;
use testkit::process::LoggedChild;

/// The `client` binary next to this package's `server` binary.
fn client_binary() -> PathBuf {
    testkit::central::binary("client")
}

/// The central with `env` on top of a loopback address, a free port and a fresh directory.
fn server(env: &[(&str, &str)]) -> (LoggedChild, tempfile::TempDir) {
    let dir = tempfile::Builder::new().prefix("server-settings-").tempdir().expect("a scratch directory");
    let mut command = Command::new(testkit::central::binary("server"));
    command
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("SERVER_STORAGE_PATH", dir.path().join("winners.csv"))
        .envs(env.iter().copied());
    (LoggedChild::spawn(&mut command), dir)
}

/// An agency with `env` on top of an id, a central that is not there and a dataset that does
/// not exist.
fn client(env: &[(&str, &str)]) -> LoggedChild {
    let mut command = Command::new(client_binary());
    command
        .env_clear()
        .env("CLI_ID", "1")
        .env("CLI_SERVER_ADDRESS", "127.0.0.1:1")
        .env("CLI_DATA_PATH", "/nonexistent/dataset.csv")
        .envs(env.iter().copied());
    LoggedChild::spawn(&mut command)
}

/// Checks a refused setting: exit 2, a line with the key, the value and a range.
fn assert_refused(mut process: LoggedChild, key: &str, value: &str) {
    let status = process.wait_exit(PATIENCE).unwrap_or_else(|| panic!("{key}={value}: still running"));
    assert_eq!(status.code(), Some(2), "{key}={value}:\n{}", process.transcript());
    let line = process
        .wait_for(&["action: config | result: fail", key], std::time::Duration::ZERO)
        .unwrap_or_else(|| panic!("{key}={value}: no line naming the key:\n{}", process.transcript()));
    assert!(line.contains(&format!("{value:?}")) || line.contains(value), "{key}={value}: {line}");
    assert!(line.contains(" from ") && line.contains(" to "), "{key}={value}: no range in {line}");
}

/// (key, values in range, values past it, settings that must come along).
type Case =
    (&'static str, &'static [&'static str], &'static [&'static str], &'static [(&'static str, &'static str)]);

const SERVER_CASES: &[Case] = &[
    ("SERVER_PORT", &["0"], &["-1", "65536"], &[]),
    ("SERVER_LISTEN_BACKLOG", &["1", "65535"], &["0", "65536"], &[]),
    ("SERVER_AGENCIES", &["1", "10000"], &["0", "10001", "4294967295"], &[]),
    ("SERVER_WINNER_DELAY_MS", &["0", "1000"], &["-1", "1001"], &[]),
    ("SERVER_MAX_CONNECTIONS", &["1", "4096"], &["0", "16385"], &[]),
    ("SERVER_IDLE_TIMEOUT_SECS", &["1", "86400"], &["0", "86401", "18446744073709551616"], &[]),
    (
        "SERVER_MAX_FRAME_BYTES",
        &["64", "67108864"],
        &["63", "67108865"],
        &[("SERVER_MEMORY_BUDGET_MIB", "4096")],
    ),
    ("SERVER_FRAME_TIMEOUT_SECS", &["1", "3600"], &["0", "3601"], &[]),
    ("SERVER_MEMORY_BUDGET_MIB", &["1", "4096"], &["0", "4097"], &[("SERVER_MAX_FRAME_BYTES", "64")]),
];

const CLIENT_CASES: &[Case] = &[
    ("CLI_ID", &["1", "10000"], &["0", "10001"], &[]),
    ("CLI_SERVER_TIMEOUT", &["1ms", "1h"], &["0", "1h1ms", "18446744073709551615s", "5000000000h"], &[]),
    ("CLI_BATCH_MAX_AMOUNT", &["1", "512"], &["0", "513"], &[]),
    ("CLI_BATCH_WINDOW", &["1", "256"], &["0", "257"], &[]),
    ("CLI_WINNERS_RETRY_PERIOD", &["1ms", "1h"], &["0", "1h1ms", "18446744073709551615s"], &[]),
    ("CLI_RETRY_INITIAL", &["1ms", "1h"], &["0", "1h1ms", "18446744073709551615s"], &[]),
    ("CLI_RETRY_MAX", &["1ms", "1h"], &["0", "1h1ms", "18446744073709551615s"], &[]),
    ("CLI_RETRY_TOTAL", &["1ms", "24h"], &["0", "24h1ms", "18446744073709551615s"], &[]),
];

#[test]
fn every_server_setting_is_taken_within_its_range_and_refused_past_it() {
    for &(key, inside, outside, company) in SERVER_CASES {
        for value in inside {
            let mut env = company.to_vec();
            env.push((key, value));
            let (mut process, _dir) = server(&env);
            let _ = process.listening_address(PATIENCE);
            process.sigterm();
            let status = process.wait_exit(PATIENCE).expect("the central exits");
            assert!(status.success(), "{key}={value}: {status:?}\n{}", process.transcript());
        }
        for value in outside {
            let mut env = company.to_vec();
            env.push((key, value));
            let (process, dir) = server(&env);
            assert_refused(process, key, value);
            let created: Vec<_> = std::fs::read_dir(dir.path()).expect("read the directory").collect();
            assert!(created.is_empty(), "{key}={value}: files created: {created:?}");
        }
    }
}

#[test]
fn settings_the_central_cannot_use_are_refused_before_any_file() {
    for (env, key) in [
        (&[("LOGGING_LEVEL", "LOUD")][..], "LOGGING_LEVEL"),
        (&[("SERVER_STORAGE_PATH", " ")][..], "SERVER_STORAGE_PATH"),
        // Each in range, but the largest frame could never fit the budget.
        (&[("SERVER_MEMORY_BUDGET_MIB", "1")][..], "SERVER_MEMORY_BUDGET_MIB"),
        (&[("SERVER_WINNERS_FORMAT", "json")][..], "SERVER_WINNERS_FORMAT"),
        // A certificate without its key, or the other way round.
        (&[("SERVER_TLS_CERT", "/config/tls.crt")][..], "SERVER_TLS_KEY"),
        (&[("SERVER_TLS_KEY", "/config/tls.key")][..], "SERVER_TLS_CERT"),
    ] {
        let (mut process, dir) = server(env);
        assert_eq!(process.wait_exit(PATIENCE).and_then(|s| s.code()), Some(2), "{env:?}");
        assert!(process
            .wait_for(&["action: config | result: fail", key], std::time::Duration::ZERO)
            .is_some());
        assert_eq!(std::fs::read_dir(dir.path()).expect("read the directory").count(), 0, "{env:?}");
    }
}

#[test]
fn credentials_the_central_cannot_read_stop_it_before_any_file() {
    for env in [
        &[("SERVER_AGENCY_KEYS", "/nonexistent/agencies.pub")][..],
        &[("SERVER_TLS_CERT", "/nonexistent/tls.crt"), ("SERVER_TLS_KEY", "/nonexistent/tls.key")],
    ] {
        let (mut process, dir) = server(env);
        assert_eq!(process.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1), "{env:?}");
        let line = process
            .wait_for(
                &["action: start | result: fail", "cannot load the credentials"],
                std::time::Duration::ZERO,
            )
            .unwrap_or_else(|| panic!("{env:?}:\n{}", process.transcript()));
        assert!(line.contains("/nonexistent/"), "{line}");
        assert_eq!(std::fs::read_dir(dir.path()).expect("read the directory").count(), 0, "{env:?}");
    }
}

#[test]
fn a_database_password_file_the_central_cannot_read_stops_it_naming_the_key_and_path() {
    // Read before any connection to the database is tried: no database needs to answer.
    let (mut process, _dir) = server(&[
        ("SERVER_DATABASE_URL", "postgres://lottery@127.0.0.1:1/lottery"),
        ("SERVER_DATABASE_PASSWORD_FILE", "/nonexistent/database.password"),
    ]);
    assert_eq!(process.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1), "{}", process.transcript());
    let line = process
        .wait_for(
            &[
                "action: start | result: fail",
                "SERVER_DATABASE_PASSWORD_FILE",
                "/nonexistent/database.password",
            ],
            std::time::Duration::ZERO,
        )
        .unwrap_or_else(|| panic!("no line naming the key and the path:\n{}", process.transcript()));
    assert!(line.contains("cannot read"), "{line}");
}

#[test]
fn an_agency_whose_key_or_authority_cannot_be_read_is_refused_at_start() {
    for (var, value, key) in [
        ("CLI_KEY", "/nonexistent/agency-1.key", "credentials.key"),
        ("CLI_TLS_CA", "/nonexistent/ca.crt", "tls.ca"),
    ] {
        let mut process = client(&[(var, value)]);
        let status = process.wait_exit(PATIENCE).expect("it exits");
        assert_eq!(status.code(), Some(2), "{var}:\n{}", process.transcript());
        assert!(
            process
                .wait_for(&["action: config | result: fail", key, value], std::time::Duration::ZERO)
                .is_some(),
            "{var}:\n{}",
            process.transcript()
        );
    }
}

#[test]
fn every_client_setting_is_taken_within_its_range_and_refused_past_it() {
    for &(key, inside, outside, company) in CLIENT_CASES {
        for value in inside {
            let mut env = company.to_vec();
            env.push((key, value));
            let mut process = client(&env);
            assert!(
                process.wait_for(&["action: config | result: success"], PATIENCE).is_some(),
                "{key}={value}:\n{}",
                process.transcript()
            );
            // Past its settings it retries or fails on what is missing; stopped, it ends (by
            // the signal itself if it comes before the agency watches for it).
            process.sigterm();
            let status =
                process.wait_exit(PATIENCE).unwrap_or_else(|| panic!("{key}={value}: still running"));
            let ended = matches!(status.code(), Some(0 | 1)) || status.signal() == Some(15);
            assert!(ended, "{key}={value}: {status:?}\n{}", process.transcript());
            assert!(!process.transcript().contains("panicked"), "{key}={value}:\n{}", process.transcript());
        }
        for value in outside {
            let mut env = company.to_vec();
            env.push((key, value));
            assert_refused(client(&env), key, value);
        }
    }
}
