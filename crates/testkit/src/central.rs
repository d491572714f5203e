//! The one launcher of a central for tests: the real `server` binary on 127.0.0.1 and a free
//! port, with its own scratch directory, restartable on the same port and files, and crashable
//! (SIGKILL). Also the real `client` binary as an agency against it.
//!
//! The binaries are found beside the running test executable in cargo's target directory
//! (`target/debug/deps/TEST` → `target/debug/server`): `cargo test --workspace` builds them;
//! a single test crate run alone (`cargo test -p e2e`) needs `cargo build --bins` first.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use protocol::{Connection, Request, Response};
use tempfile::TempDir;

use crate::{
    datasets,
    process::LoggedChild,
    reference::{Row, WINNERS_HEADER},
};

/// Long enough for a loaded machine, short enough that a hang fails the test.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// A `server` process with its own directory (the winners file, datasets a test writes).
#[derive(Debug)]
pub struct Central {
    /// The running process (replaced by [`Central::restart`]).
    pub process: LoggedChild,
    /// Where it listens; the same across restarts.
    pub addr: SocketAddr,
    /// Its scratch directory, removed when the test ends.
    pub dir: TempDir,
    env: Vec<(String, String)>,
}

/// One agency's counts as the central reports them (`Resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Bets stored.
    pub bets: u64,
    /// Of those, winners.
    pub winners: u64,
    /// Whether the agency said it is done.
    pub done: bool,
}

impl Central {
    /// Starts `server` for `agencies` agencies on 127.0.0.1 and a free port, no simulated
    /// delay, with `extra` settings on top; waits until it listens.
    ///
    /// # Panics
    /// When it cannot start or does not listen within [`PATIENCE`].
    #[must_use]
    pub fn start(agencies: u32, extra: &[(&str, &str)]) -> Central {
        let dir = tempfile::Builder::new().prefix("central-").tempdir().expect("create a scratch directory");
        let mut env = vec![
            ("SERVER_IP".to_owned(), "127.0.0.1".to_owned()),
            ("SERVER_AGENCIES".to_owned(), agencies.to_string()),
            ("SERVER_WINNER_DELAY_MS".to_owned(), "0".to_owned()),
            ("SERVER_STORAGE_PATH".to_owned(), dir.path().join("winners.csv").display().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let process = spawn(&env, 0, &[]);
        let addr = process.listening_address(PATIENCE);
        Central { process, addr, dir, env }
    }

    /// Kills the central with SIGKILL (a crash) and waits for it to be gone.
    ///
    /// # Panics
    /// When it does not exit.
    pub fn crash(&mut self) {
        self.process.sigkill();
        self.process.wait_exit(PATIENCE).expect("a killed central exits");
    }

    /// Starts the central again on the same port and files, `wrapper` (such as `prlimit`
    /// and its arguments) before the binary if not empty; waits until it listens.
    ///
    /// # Panics
    /// When it does not listen again on the same address.
    pub fn restart(&mut self, wrapper: &[&str]) {
        self.process = spawn(&self.env, self.addr.port(), wrapper);
        let addr = self.process.listening_address(PATIENCE);
        assert_eq!(addr, self.addr, "the central came back on another address");
    }

    /// Starts the central once more on the same port and files with `extra` settings on
    /// top, without waiting for it to listen (it may refuse to start).
    #[must_use]
    pub fn spawn_again(&self, extra: &[(&str, &str)]) -> LoggedChild {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        spawn(&env, self.addr.port(), &[])
    }

    /// Stops the central with SIGTERM and waits for its exit, which must be a success.
    ///
    /// # Panics
    /// When it does not exit, or exits with a failure.
    pub fn stop(&mut self) {
        self.process.sigterm();
        let status = self.process.wait_exit(PATIENCE).expect("the central exits");
        assert!(status.success(), "{status:?}\n{}", self.process.transcript());
    }

    /// A connection with timeouts, so a bug fails the test instead of hanging it.
    ///
    /// # Panics
    /// When it cannot connect.
    #[must_use]
    pub fn connect(&self) -> Connection<TcpStream> {
        Connection::new(self.raw())
    }

    /// A raw socket with read and write timeouts.
    ///
    /// # Panics
    /// When it cannot connect.
    #[must_use]
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect to the central");
        stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("set a write timeout");
        stream
    }

    /// `agency`'s counts, asked over the wire (`Resume`): what is committed and durable.
    ///
    /// # Panics
    /// When the central does not answer with `Resumed`.
    #[must_use]
    pub fn tally(&self, agency: u32) -> Tally {
        match self.connect().call(&Request::Resume { agency }) {
            Ok(Response::Resumed { bets, winners, done, .. }) => Tally { bets, winners, done },
            other => panic!("Resume for agency {agency}: {other:?}"),
        }
    }

    /// The winners file.
    #[must_use]
    pub fn winners_path(&self) -> PathBuf {
        self.dir.path().join("winners.csv")
    }

    /// The winners file's rows in file order, header excluded (checked).
    ///
    /// # Panics
    /// When the file cannot be read or its header is not the winners file's.
    #[must_use]
    pub fn winner_rows(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.winners_path()).expect("read the winners file");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(WINNERS_HEADER));
        lines.map(str::to_owned).collect()
    }

    /// The winners file's rows, header excluded, sorted.
    #[must_use]
    pub fn sorted_winner_rows(&self) -> Vec<String> {
        let mut rows = self.winner_rows();
        rows.sort();
        rows
    }

    /// Writes `rows` as agency `id`'s dataset in this central's directory.
    ///
    /// # Panics
    /// When the file cannot be written.
    #[must_use]
    pub fn dataset(&self, id: u32, rows: &[Row]) -> PathBuf {
        let path = self.dir.path().join(format!("dataset-{id}.csv"));
        datasets::write(&path, rows).expect("write a dataset");
        path
    }

    /// Starts agency `id` over `data` against this central, with `env` on top of
    /// [`spawn_agency`]'s.
    #[must_use]
    pub fn agency(&self, id: u32, data: &Path, env: &[(&str, &str)]) -> LoggedChild {
        spawn_agency(self.addr, id, data, env)
    }
}

/// Starts the real `client` as agency `id` over `data` against `addr`, asking for the total
/// every 50 ms, with `env` on top, in an empty environment.
#[must_use]
pub fn spawn_agency(addr: SocketAddr, id: u32, data: &Path, env: &[(&str, &str)]) -> LoggedChild {
    let mut command = Command::new(binary("client"));
    command
        .env_clear()
        .env("CLI_ID", id.to_string())
        .env("CLI_SERVER_ADDRESS", addr.to_string())
        .env("CLI_DATA_PATH", data)
        .env("CLI_WINNERS_RETRY_PERIOD", "50ms")
        .envs(env.iter().copied());
    LoggedChild::spawn(&mut command)
}

/// The `server` binary as a command, run through `wrapper` (`prlimit --fsize=N`, say) when
/// it is not empty, with an empty environment.
#[must_use]
pub fn server_command(wrapper: &[&str]) -> Command {
    let server = binary("server");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&server);
            command
        }
        None => Command::new(&server),
    };
    command.env_clear();
    command
}

/// The workspace binary `name`, beside the running test executable's directory.
///
/// # Panics
/// When it has not been built.
#[must_use]
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("the test runs from cargo's target directory");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it first (`cargo build --bins`, or run `cargo test --workspace`)",
        path.display()
    );
    path
}

fn spawn(env: &[(String, String)], port: u16, wrapper: &[&str]) -> LoggedChild {
    let mut command = server_command(wrapper);
    command.envs(env.iter().map(|(k, v)| (k, v))).env("SERVER_PORT", port.to_string());
    LoggedChild::spawn(&mut command)
}
