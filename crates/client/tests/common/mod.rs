//! A real central in this process (on 127.0.0.1, port 0) and real `client` processes.

#![allow(dead_code)] // Each test file uses its own share of these helpers.

pub mod binaries;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    thread::JoinHandle,
    time::Duration,
};

use server::{service::Central as Lottery, Config, Server, ShutdownHandle};
use testkit::{
    process::{field, LoggedChild},
    reference::{self, Row},
    TempDir,
};

/// Long enough for a loaded machine, short enough that a hang fails the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A central running on a thread of the test, stopped and joined on drop.
pub struct Central {
    pub addr: SocketAddr,
    pub lottery: Arc<Lottery>,
    pub dir: TempDir,
    shutdown: ShutdownHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Central {
    /// A central for `agencies` agencies, checking each bet at `delay`.
    pub fn start(agencies: u32, delay: Duration) -> Central {
        let dir = TempDir::new("client-it");
        let config = Config {
            ip: "127.0.0.1".into(),
            port: 0,
            agencies,
            storage_path: dir.join("winners.csv"),
            winner_delay: delay,
            ..Config::default()
        };
        let server = Server::bind(&config).expect("bind the central");
        let addr = server.local_addr().expect("the central's address");
        let lottery = server.central();
        let shutdown = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run());
        Central { addr, lottery, dir, shutdown, thread: Some(thread) }
    }

    /// The winners file's rows, header excluded, sorted.
    pub fn winner_rows(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.lottery.store().path()).expect("read the winners file");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("agency,first_name,last_name,document,birthdate"));
        let mut rows: Vec<String> = lines.map(str::to_owned).collect();
        rows.sort();
        rows
    }

    /// Writes `rows` as agency `id`'s dataset in this central's directory.
    pub fn dataset(&self, id: u32, rows: &[Row]) -> PathBuf {
        let path = self.dir.join(&format!("dataset-{id}.csv"));
        testkit::datasets::write(&path, rows).expect("write a dataset");
        path
    }

    /// Starts agency `id` over `data`, with `extra` environment on top.
    pub fn agency(&self, id: u32, data: &Path, extra: &[(&str, &str)]) -> LoggedChild {
        spawn_agency(self.addr, id, data, &[&[("CLI_SERVER_TIMEOUT", "20s")][..], extra].concat())
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("the central's thread").expect("the central stops cleanly");
            }
        }
    }
}

/// Waits for a client to exit and asserts it succeeded.
/// Starts the real `client` as agency `id` over `data` against `addr`, asking for the total
/// every 50 ms, with `env` on top.
pub fn spawn_agency(addr: SocketAddr, id: u32, data: &Path, env: &[(&str, &str)]) -> LoggedChild {
    let mut command = Command::new(env!("CARGO_BIN_EXE_client"));
    command
        .env_clear()
        .env("CLI_ID", id.to_string())
        .env("CLI_SERVER_ADDRESS", addr.to_string())
        .env("CLI_DATA_PATH", data)
        .env("CLI_WINNERS_RETRY_PERIOD", "50ms")
        .envs(env.iter().copied());
    LoggedChild::spawn(&mut command)
}

pub fn assert_success(client: &mut LoggedChild) {
    let status =
        client.wait_exit(PATIENCE).unwrap_or_else(|| panic!("still running:\n{}", client.transcript()));
    assert!(status.success(), "{status:?}\n{}", client.transcript());
}

/// The `key: value` fields of the first line with all of `needles`, already printed.
pub fn fields_of(client: &LoggedChild, needles: &[&str]) -> BTreeMap<String, String> {
    let line = client
        .wait_for(needles, Duration::ZERO)
        .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{}", client.transcript()));
    ["agency", "bets", "skipped", "winners", "winner_rate", "agencies_pending"]
        .iter()
        .filter_map(|key| field(&line, key).map(|v| ((*key).to_owned(), v.to_owned())))
        .collect()
}

/// The winners file rows `agency`'s `rows` must produce, as the central writes them.
pub fn expected_rows(agency: u32, rows: &[Row]) -> Vec<String> {
    reference::winner_rows(agency, rows)
}
