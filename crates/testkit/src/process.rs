//! A real child process with its output captured line by line, so a test can wait for a log
//! line or for the exit, each with a deadline, instead of sleeping.

use std::{
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Condvar, Mutex},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

/// Lines printed so far, on either stream, with a condition variable signalled on each.
#[derive(Debug, Default)]
struct Output {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running child whose stdout and stderr are collected. Dropping it kills the child if it
/// is still running and joins the reader threads.
#[derive(Debug)]
pub struct LoggedChild {
    child: Child,
    output: Arc<Output>,
    readers: Vec<JoinHandle<()>>,
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
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, Arc::clone(&output)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(collect(err, Arc::clone(&output)));
        }
        LoggedChild {
            child,
            output,
            readers,
            status: None,
        }
    }

    /// The child's process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
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
        let deadline = Instant::now() + timeout;
        let mut lines = self.output.lines.lock().expect("output lock");
        loop {
            if let Some(line) = lines.iter().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Some(line.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            lines = self.output.grew.wait_timeout(lines, left).expect("output lock").0;
        }
    }

    /// Sends SIGTERM.
    ///
    /// # Panics
    /// When `kill` cannot be run.
    pub fn sigterm(&self) {
        signal(self.pid(), "-TERM");
    }

    /// Sends SIGKILL.
    ///
    /// # Panics
    /// When `kill` cannot be run.
    pub fn sigkill(&self) {
        signal(self.pid(), "-KILL");
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    ///
    /// # Panics
    /// When the child's status cannot be read.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.status {
                return Some(status);
            }
            if let Some(status) = self.child.try_wait().expect("read child status") {
                self.status = Some(status);
                // The pipes close with the process: let the readers drain them.
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Polling the exit status is the one wait std offers with a deadline.
            thread::sleep(Duration::from_millis(5));
        }
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
        field(&line, "address")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {line}"))
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
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

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid} failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_log_lines() {
        let line = "2026-01-01 10:00:00 INFO     action: agency_summary | result: success | agency: 1 | winner_rate: 6.03%";
        assert_eq!(
            field(line, "action"),
            None,
            "the action is not a key: value pair of its own"
        );
        assert_eq!(field(line, "result"), Some("success"));
        assert_eq!(field(line, "agency"), Some("1"));
        assert_eq!(field(line, "winner_rate"), Some("6.03%"));
        assert_eq!(field(line, "winners"), None);
    }

    #[test]
    fn output_is_awaited_and_the_exit_seen() {
        let mut child = LoggedChild::spawn(Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"]));
        assert_eq!(
            child.wait_for(&["two"], Duration::from_secs(10)).as_deref(),
            Some("two")
        );
        assert_eq!(
            child.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()),
            Some(3)
        );
        assert_eq!(child.lines().len(), 2);
        assert_eq!(child.wait_for(&["three"], Duration::from_millis(10)), None);
    }
}
