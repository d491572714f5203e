//! A real child process with its output captured line by line, so a test can wait for a log
//! line or for the exit, each with a deadline, instead of sleeping.

use std::{
    io::{self, BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc::{self, Receiver, RecvTimeoutError},
        Arc, Condvar, Mutex,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// Lines printed so far, on either stream, with a condition variable signalled on each.
#[derive(Debug, Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running child whose stdout and stderr are collected. A thread waits for its exit and
/// reports it on a channel, so waiting with a deadline needs no polling. Dropping it kills
/// the child if it is still running and joins every thread.
#[derive(Debug)]
pub struct LoggedChild {
    pid: u32,
    exited: Receiver<io::Result<ExitStatus>>,
    /// Set by the waiting thread once the child is reaped (its pid may then be reused).
    reaped: Arc<AtomicBool>,
    output: Arc<Output>,
    threads: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl LoggedChild {
    /// Starts `command` with stdin closed and both output streams captured.
    ///
    /// # Panics
    /// When the program cannot be started.
    #[must_use]
    pub fn spawn(command: &mut Command) -> LoggedChild {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let output = Arc::new(Output::default());
        let mut threads = Vec::new();
        if let Some(out) = child.stdout.take() {
            threads.push(collect(out, Arc::clone(&output)));
        }
        if let Some(err) = child.stderr.take() {
            threads.push(collect(err, Arc::clone(&output)));
        }
        let pid = child.id();
        let (report, exited) = mpsc::channel();
        let reaped = Arc::new(AtomicBool::new(false));
        let reaper = Arc::clone(&reaped);
        threads.push(thread::spawn(move || {
            let status = child.wait();
            reaper.store(true, Ordering::SeqCst);
            let _ = report.send(status);
        }));
        LoggedChild { pid, exited, reaped, output, threads, status: None }
    }

    /// The child's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Every line printed so far.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.output.lines.lock().expect("output lock").clone()
    }

    /// All output so far as one text, for failure messages.
    #[must_use]
    pub fn transcript(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits up to `timeout` for a line containing every one of `needles`; returns it.
    #[must_use]
    pub fn wait_for(&self, needles: &[&str], timeout: Duration) -> Option<String> {
        self.wait_for_line(|line| needles.iter().all(|n| line.contains(n)), timeout)
    }

    /// Waits up to `timeout` for a line for which `wanted` holds; returns it.
    #[must_use]
    pub fn wait_for_line(&self, wanted: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().expect("output lock");
        loop {
            if let Some(line) = lines.iter().find(|l| wanted(l)) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self.output.grew.wait_timeout(lines, left).expect("output lock").0;
        }
    }

    /// Sends SIGTERM, unless the child has already ended by itself.
    ///
    /// # Panics
    /// When `kill` fails on a child that is still running.
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// Sends SIGKILL: the child ends at once, with no chance to clean up (a crash). Nothing is
    /// sent to a child that already ended by itself.
    ///
    /// # Panics
    /// When `kill` fails on a child that is still running.
    pub fn sigkill(&self) {
        self.signal("-KILL");
    }

    /// A child that exits on its own may be reaped just before `kill` runs, which then fails;
    /// that is an ended child, not a failure. Once reaped its pid is not signalled again.
    fn signal(&self, which: &str) {
        if self.reaped.load(Ordering::SeqCst) {
            return;
        }
        if signal(self.pid, which) {
            return;
        }
        // `kill` failed: the child is gone, unless something is wrong. Its reaping is being
        // recorded by the waiting thread right now.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.reaped.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline, "kill {which} {} failed on a running child", self.pid);
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running. Once it
    /// has exited, its output has been read to the end.
    ///
    /// # Panics
    /// When the child's status cannot be read.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.exited.recv_timeout(timeout) {
                Ok(status) => self.status = Some(status.expect("read the child's exit status")),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => panic!("the waiting thread ended without a status"),
            }
            // The pipes close with the process: let the readers drain them.
            for thread in self.threads.drain(..) {
                let _ = thread.join();
            }
        }
        self.status
    }

    /// Waits for a line `action: accept_connections ... address: HOST:PORT` and returns that
    /// address: where a central started on port 0 listens.
    ///
    /// # Panics
    /// When no such line appears within `timeout`.
    #[must_use]
    pub fn listening_address(&self, timeout: Duration) -> SocketAddr {
        let line = self
            .wait_for(&["action: accept_connections"], timeout)
            .unwrap_or_else(|| panic!("the central did not start listening:\n{}", self.transcript()));
        field(&line, "address").and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no address in {line}"))
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        if self.status.is_none() && self.exited.try_recv().is_err() {
            // Still running (its status has not been reported): end it.
            let _ = Command::new("kill").args(["-KILL", &self.pid.to_string()]).status();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A figure of process `pid` from `/proc/PID/status` (`VmRSS`, `VmHWM`, `VmSize` in KiB;
/// `Threads`).
///
/// # Panics
/// When the process or the figure is not there (a test asking for it has a bug).
#[must_use]
pub fn proc_status(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {status}"))
}

/// The value of `key` in a log line of the form `... | key: value | ...`.
#[must_use]
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split(" | ").find_map(|part| {
        let part = part.rsplit_once("action: ").map_or(part, |(_, action)| action);
        part.strip_prefix(key)?.strip_prefix(": ").map(str::trim)
    })
}

fn collect(stream: impl Read + Send + 'static, output: Arc<Output>) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            output.lines.lock().expect("output lock").push(line);
            output.grew.notify_all();
        }
    })
}

/// Whether `kill` succeeded.
fn signal(pid: u32, which: &str) -> bool {
    Command::new("kill")
        .args([which, &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("run kill")
        .success()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_log_lines() {
        let line = "2026-01-01 10:00:00 INFO     action: agency_summary | result: success | agency: 1 | winner_rate: 6.03%";
        assert_eq!(field(line, "action"), None, "the action is not a key: value pair of its own");
        assert_eq!(field(line, "result"), Some("success"));
        assert_eq!(field(line, "agency"), Some("1"));
        assert_eq!(field(line, "winner_rate"), Some("6.03%"));
        assert_eq!(field(line, "winners"), None);
    }

    #[test]
    fn output_is_awaited_and_the_exit_seen() {
        let mut child = LoggedChild::spawn(Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"]));
        assert_eq!(child.wait_for(&["two"], Duration::from_secs(10)).as_deref(), Some("two"));
        assert_eq!(child.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()), Some(3));
        assert_eq!(child.lines().len(), 2);
        assert_eq!(child.wait_for(&["three"], Duration::from_millis(10)), None);
    }
}
