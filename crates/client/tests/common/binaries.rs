//! The lottery as real processes only: the `server` binary (which a test can SIGKILL and
//! start again on the same port and files) and `client` binaries.
//!
//! The `server` binary is not this package's, so cargo gives no `CARGO_BIN_EXE_server`; it
//! sits beside `client` in the target directory, built by the same `cargo test --workspace`
//! (`make test`). Run alone (`cargo test -p client`), build it first: `cargo build --bins`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
};

use testkit::{process::LoggedChild, TempDir};

use super::PATIENCE;

/// The `server` binary next to this package's `client` binary.
pub fn server_binary() -> PathBuf {
    let client = Path::new(env!("CARGO_BIN_EXE_client"));
    let server = client.with_file_name(format!("server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server.exists(),
        "{} is missing: build it first (`cargo build --bins`, or run `make test`)",
        server.display()
    );
    server
}

/// A central process with its own directory; restartable on the same port and files.
pub struct CentralProcess {
    pub process: LoggedChild,
    pub addr: SocketAddr,
    pub dir: TempDir,
    env: Vec<(String, String)>,
}

impl CentralProcess {
    /// Starts `server` for `agencies` agencies on 127.0.0.1 and a free port, no simulated
    /// delay, with `extra` on top.
    pub fn start(agencies: u32, extra: &[(&str, &str)]) -> CentralProcess {
        let dir = TempDir::new("central-process");
        let mut env = vec![
            ("SERVER_IP".to_owned(), "127.0.0.1".to_owned()),
            ("SERVER_AGENCIES".to_owned(), agencies.to_string()),
            ("SERVER_WINNER_DELAY_MS".to_owned(), "0".to_owned()),
            ("SERVER_STORAGE_PATH".to_owned(), dir.join("winners.csv").display().to_string()),
        ];
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let process = spawn(&env, 0, &[]);
        let addr = process.listening_address(PATIENCE);
        CentralProcess { process, addr, dir, env }
    }

    /// Kills the central with SIGKILL (a crash) and waits for it to be gone.
    pub fn crash(&mut self) {
        self.process.sigkill();
        self.process.wait_exit(PATIENCE).expect("a killed central exits");
    }

    /// Starts the central again on the same port and files, `wrapper` (such as `prlimit`
    /// and its arguments) before the binary if not empty; waits until it listens.
    pub fn restart(&mut self, wrapper: &[&str]) {
        self.process = spawn(&self.env, self.addr.port(), wrapper);
        let addr = self.process.listening_address(PATIENCE);
        assert_eq!(addr, self.addr, "the central came back on another address");
    }

    /// Starts the central once more on the same port and files with `extra` settings on
    /// top, without waiting for it to listen (it may refuse to start).
    pub fn spawn_again(&self, extra: &[(&str, &str)]) -> LoggedChild {
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        spawn(&env, self.addr.port(), &[])
    }

    /// Stops the central with SIGTERM and waits for its exit, which must be a success.
    pub fn stop(&mut self) {
        self.process.sigterm();
        let status = self.process.wait_exit(PATIENCE).expect("the central exits");
        assert!(status.success(), "{status:?}\n{}", self.process.transcript());
    }

    /// A connection with timeouts, so a bug fails the test instead of hanging it.
    pub fn connect(&self) -> protocol::Connection<std::net::TcpStream> {
        let stream = std::net::TcpStream::connect(self.addr).expect("connect to the central");
        stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("set a write timeout");
        protocol::Connection::new(stream)
    }

    /// The winners file.
    pub fn winners_path(&self) -> PathBuf {
        self.dir.join("winners.csv")
    }

    /// The winners file's rows, header excluded, sorted.
    pub fn winner_rows(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.winners_path()).expect("read the winners file");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("agency,first_name,last_name,document,birthdate"));
        let mut rows: Vec<String> = lines.map(str::to_owned).collect();
        rows.sort();
        rows
    }

    /// Starts agency `id` over `data` against this central, retrying fast, with `extra` on
    /// top.
    pub fn agency(&self, id: u32, data: &Path, extra: &[(&str, &str)]) -> LoggedChild {
        let fast_retries = [
            ("CLI_SERVER_TIMEOUT", "10s"),
            ("CLI_RETRY_INITIAL", "10ms"),
            ("CLI_RETRY_MAX", "200ms"),
            ("CLI_RETRY_TOTAL", "40s"),
        ];
        super::spawn_agency(self.addr, id, data, &[&fast_retries[..], extra].concat())
    }
}

/// The `server` binary as a command, run through `wrapper` (`prlimit --fsize=N`, say) when
/// it is not empty, with an empty environment.
pub fn server_command(wrapper: &[&str]) -> Command {
    let server = server_binary();
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

fn spawn(env: &[(String, String)], port: u16, wrapper: &[&str]) -> LoggedChild {
    let mut command = server_command(wrapper);
    command.envs(env.iter().map(|(k, v)| (k, v))).env("SERVER_PORT", port.to_string());
    LoggedChild::spawn(&mut command)
}
