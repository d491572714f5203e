//! A throwaway PostgreSQL server for tests: a fresh cluster (`initdb`) in a temporary
//! folder, listening on loopback on a free port, with trust authentication for the user
//! `postgres`; stopped (fast shutdown) and removed on drop. Each test makes its own database
//! in it ([`Cluster::create_database`]).
//!
//! The server's binaries are found through `pg_config --bindir`, else under
//! `/usr/lib/postgresql/*/bin`, else on `PATH`. Where there are none, [`Cluster::start`]
//! says so loudly and returns `None` so the test can end; with `CI=true` it fails the test
//! instead, as the Docker check does.
//!
//! PostgreSQL refuses to run as root; run as root (as CI does), the cluster's files belong
//! to the `postgres` system user (or `nobody`) and its programs run as that user through
//! `setpriv`.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::atomic::{AtomicU32, Ordering},
};

use tempfile::TempDir;

/// A running PostgreSQL server of its own.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    /// Holds `data` (the cluster) and `run` (its socket and log).
    dir: TempDir,
    port: u16,
    /// The user the server runs as, when this process is root.
    run_as: Option<User>,
    running: bool,
    /// Its processes are stopped with SIGSTOP ([`Cluster::freeze`]).
    frozen: bool,
}

#[derive(Debug, Clone)]
struct User {
    uid: u32,
    gid: u32,
}

impl Cluster {
    /// Makes and starts a new cluster, or returns `None` after printing
    /// `SKIPPED: no PostgreSQL binaries` when the server is not installed.
    ///
    /// # Panics
    /// When the binaries are missing and `CI=true`, or when the cluster cannot be made or
    /// started (with its log).
    #[must_use]
    pub fn start(test: &str) -> Option<Cluster> {
        let Some(bin) = binaries() else {
            let message = format!(
                "SKIPPED: no PostgreSQL binaries (initdb, pg_ctl): {test} did not run; \
                 install Debian's `postgresql` to run it"
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{message} (CI=true makes this a failure)");
            eprintln!("{message}");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("pg-cluster-").tempdir().expect("a scratch directory");
        let run_as = if is_root() { Some(unprivileged_user()) } else { None };
        for sub in ["data", "run"] {
            let path = dir.path().join(sub);
            std::fs::create_dir(&path).expect("create the cluster's folder");
            if let Some(user) = &run_as {
                std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))
                    .expect("chown the cluster's folder");
            }
        }
        let mut cluster = Cluster { bin, dir, port: 0, run_as, running: false, frozen: false };
        let data = cluster.data();
        let out = cluster.run(Command::new(cluster.bin.join("initdb")).arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]));
        assert!(out.status.success(), "initdb failed:\n{}", text(&out));
        // A free port, found by binding it; another process may take it before the server
        // does, so a failed start tries another.
        for attempt in 1..=5 {
            cluster.port = free_port();
            if cluster.try_start() {
                return Some(cluster);
            }
            eprintln!("postgres did not start on port {} (attempt {attempt}), trying another", cluster.port);
        }
        panic!("postgres did not start:\n{}", cluster.log());
    }

    /// A new, empty database, named after `name` and a counter; returns its URL.
    ///
    /// # Panics
    /// When `createdb` fails.
    #[must_use]
    pub fn create_database(&self, name: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let db: String = format!("{name}_{n}")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", &db])
            .output()
            .expect("run createdb");
        assert!(out.status.success(), "createdb {db} failed:\n{}", text(&out));
        self.url(&db)
    }

    /// The URL of database `db` of this cluster.
    #[must_use]
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The port it listens on, on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` in database `db` with `psql` and returns its unaligned, tuples-only output.
    ///
    /// # Panics
    /// When `psql` fails.
    #[must_use]
    pub fn psql(&self, db_url: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db_url, "-c", sql])
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql failed on {sql}:\n{}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server (fast shutdown: open connections are ended, what is committed
    /// stays), as a database restart or outage would.
    ///
    /// # Panics
    /// When `pg_ctl stop` fails.
    pub fn stop(&mut self) {
        let data = self.data();
        let out = self.run(
            Command::new(self.bin.join("pg_ctl")).arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]),
        );
        assert!(out.status.success(), "pg_ctl stop failed:\n{}", text(&out));
        self.running = false;
    }

    /// Starts the stopped server again, on the same port.
    ///
    /// # Panics
    /// When it does not start.
    pub fn restart(&mut self) {
        assert!(self.try_start(), "postgres did not start again:\n{}", self.log());
    }

    /// Freezes the server: SIGSTOP to the postmaster, then to every process it started
    /// (backends, checkpointer, WAL writer). Its sockets stay open and the kernel still
    /// accepts connections, but nothing answers: a database that hangs, as a stalled host
    /// or a stuck disk leaves it. [`Cluster::thaw`] (or drop) lets it go on.
    ///
    /// # Panics
    /// When the postmaster's pid cannot be read or `kill` fails.
    pub fn freeze(&mut self) {
        let postmaster = self.postmaster_pid();
        signal(&[postmaster], "-STOP");
        // Stopped first, so it starts no process the list below would miss.
        signal(&children(postmaster), "-STOP");
        self.frozen = true;
    }

    /// Lets a frozen server go on (SIGCONT to the same processes).
    ///
    /// # Panics
    /// When `kill` fails.
    pub fn thaw(&mut self) {
        let postmaster = self.postmaster_pid();
        signal(&children(postmaster), "-CONT");
        signal(&[postmaster], "-CONT");
        self.frozen = false;
    }

    /// The postmaster's pid: the first line of `postmaster.pid` in the data folder.
    fn postmaster_pid(&self) -> u32 {
        let file = std::fs::read_to_string(self.data().join("postmaster.pid")).expect("read postmaster.pid");
        file.lines().next().and_then(|line| line.trim().parse().ok()).expect("a pid in postmaster.pid")
    }

    /// The server's log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("run").join("log")).unwrap_or_default()
    }

    fn try_start(&mut self) -> bool {
        let data = self.data();
        let run = self.dir.path().join("run");
        let options = format!("-h 127.0.0.1 -p {} -k {} -c max_connections=200", self.port, run.display());
        let out = self.run(
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(run.join("log"))
                .args(["-w", "-t", "120", "-o", &options, "start"]),
        );
        self.running = out.status.success();
        self.running
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs `command` as the cluster's user.
    fn run(&self, command: &mut Command) -> Output {
        let mut command = match &self.run_as {
            None => std::mem::replace(command, Command::new("true")),
            Some(user) => {
                let mut wrapped = Command::new("setpriv");
                wrapped
                    .arg(format!("--reuid={}", user.uid))
                    .arg(format!("--regid={}", user.gid))
                    .arg("--clear-groups")
                    .arg(command.get_program())
                    .args(command.get_args());
                wrapped
            }
        };
        // A folder the user can read, so its programs do not warn about the current one.
        command
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.frozen {
            self.thaw();
        }
        if self.running {
            let data = self.data();
            let _ = self.run(
                Command::new(self.bin.join("pg_ctl")).arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]),
            );
        }
    }
}

/// The folder holding `initdb` and `pg_ctl`, if PostgreSQL's server is installed.
#[must_use]
pub fn binaries() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_server(&dir) {
            return Some(dir);
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, dir)| has_server(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|dir| has_server(dir))
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// The `postgres` system user if there is one (Debian's package makes it), else `nobody`.
fn unprivileged_user() -> User {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let find = |name: &str| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&name) && fields.len() > 3)
                .then(|| Some(User { uid: fields[2].parse().ok()?, gid: fields[3].parse().ok()? }))
                .flatten()
        })
    };
    find("postgres").or_else(|| find("nobody")).expect("no postgres or nobody user to run the server as")
}

/// Sends `which` (`-STOP`, `-CONT`) to `pids` with `kill`.
fn signal(pids: &[u32], which: &str) {
    if pids.is_empty() {
        return;
    }
    let out =
        Command::new("kill").arg(which).args(pids.iter().map(u32::to_string)).output().expect("run kill");
    assert!(out.status.success(), "kill {which} {pids:?} failed:\n{}", text(&out));
}

/// The processes whose parent is `parent`, from `/proc/*/stat` (the field after the
/// command's closing parenthesis, then the state, is the parent's pid).
fn children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == parent).then_some(pid)
        })
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("find a free port")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
