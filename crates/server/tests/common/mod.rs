//! Starting the real `server` binary for a test, and talking to it.

#![allow(dead_code)] // Each test file uses its own share of these helpers.

use std::{
    net::{SocketAddr, TcpStream},
    path::PathBuf,
    process::Command,
    time::Duration,
};

use protocol::{Connection, Request, Response, WireBet};
use testkit::{process::LoggedChild, TempDir};

/// Long enough for a loaded machine, short enough that a hang fails the test.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A `server` process on 127.0.0.1 and an ephemeral port, with its own winners file.
pub struct Central {
    pub process: LoggedChild,
    pub addr: SocketAddr,
    pub winners_path: PathBuf,
    _dir: TempDir,
}

impl Central {
    /// Starts the binary with `env` on top of: port 0, loopback, no simulated delay, two agencies.
    pub fn start(env: &[(&str, &str)]) -> Central {
        let dir = TempDir::new("server-it");
        let winners_path = dir.join("winners.csv");
        let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
        command
            .env_clear()
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", "0")
            .env("SERVER_WINNER_DELAY_MS", "0")
            .env("SERVER_AGENCIES", "2")
            .env("SERVER_STORAGE_PATH", &winners_path);
        for (key, value) in env {
            command.env(key, value);
        }
        let process = LoggedChild::spawn(&mut command);
        let addr = process.listening_address(PATIENCE);
        Central { process, addr, winners_path, _dir: dir }
    }

    /// A connection with timeouts, so a bug fails the test instead of hanging it.
    pub fn connect(&self) -> Connection<TcpStream> {
        let stream = TcpStream::connect(self.addr).expect("connect to the central");
        stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("set a write timeout");
        Connection::new(stream)
    }

    /// A raw socket with timeouts.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to the central");
        stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
        stream
    }

    /// The winners file's rows, header excluded.
    pub fn winner_rows(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.winners_path).expect("read the winners file");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("agency,first_name,last_name,document,birthdate"));
        lines.map(str::to_owned).collect()
    }
}

/// A bet that wins (its FNV-1a hash is divisible by 17).
pub fn winning_bet() -> WireBet {
    wire("Kiara Valentina", "Basile", "32250087", "1987-05-17")
}

/// A bet that loses.
pub fn losing_bet() -> WireBet {
    wire("Santiago Lionel", "Lorca", "30904465", "1999-03-17")
}

pub fn wire(first: &str, last: &str, document: &str, birthdate: &str) -> WireBet {
    WireBet {
        first_name: first.into(),
        last_name: last.into(),
        document: document.into(),
        birthdate: birthdate.into(),
    }
}

/// Sends a request and returns the answer, failing the test on a transport error.
pub fn call(conn: &mut Connection<TcpStream>, request: Request) -> Response {
    conn.call(&request).unwrap_or_else(|e| panic!("{request:?} failed: {e}"))
}
