//! A start line for the agencies: every agency is started first as a shell that waits on one
//! pipe and then `exec`s the agency; closing the pipe's write end releases them all at once.
//!
//! Started one after the other and timed from the first, 200 agencies spent most of a run's
//! wall in this harness's own process creation (0.45 s of 0.6 s), paced by the share of the
//! two cores the harness got while the agencies already started, the central and the
//! database took the rest: a central that cost more CPU showed up mostly as slower starting.
//! Agencies live on machines of their own; behind the gate they start as they would,
//! together, and the wall counts their `exec`, their work, and nothing of the harness.
//!
//! The waiting shells' own CPU time (about a millisecond each) is read before the gate opens
//! ([`Gate::open`]), so the agencies' CPU figure can leave it out.

use std::{
    fs,
    io::{self, PipeReader, PipeWriter},
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The shell every held agency starts as: it reads its standard input (the gate's pipe)
/// until the end, then becomes the agency, with no input.
const HOLD: &str = "while read -r _; do :; done; exec \"$0\" \"$@\" </dev/null";

/// How long the processes held may take to reach the gate.
const REACH: Duration = Duration::from_secs(30);

/// One pipe: agencies held wait on its read end until its write end closes.
#[derive(Debug)]
pub struct Gate {
    read: PipeReader,
    write: PipeWriter,
}

impl Gate {
    /// A closed gate.
    ///
    /// # Errors
    /// When the pipe cannot be made.
    pub fn new() -> io::Result<Gate> {
        // Both ends close-on-exec: no process started inherits the write end.
        let (read, write) = io::pipe()?;
        Ok(Gate { read, write })
    }

    /// A command that starts `program` once the gate opens; its environment, output and the
    /// like are set on it as on `Command::new(program)`.
    ///
    /// # Errors
    /// When the pipe's read end cannot be shared with one more process.
    pub fn hold(&self, program: &Path) -> io::Result<Command> {
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(HOLD).arg(program).stdin(Stdio::from(self.read.try_clone()?));
        Ok(command)
    }

    /// Waits until every process in `pids` (started from [`Gate::hold`]'s commands) waits at
    /// the gate, opens it, and returns the instant it opened and the CPU time they used until
    /// then.
    ///
    /// # Errors
    /// When one of them ends, or does not reach the gate in time.
    pub fn open(self, pids: &[u32]) -> Result<(Instant, Duration), String> {
        let deadline = Instant::now() + REACH;
        let mut used = Duration::ZERO;
        for &pid in pids {
            loop {
                match waiting(pid)? {
                    Some(cpu) => {
                        used += cpu;
                        break;
                    }
                    None if Instant::now() > deadline => {
                        return Err(format!("process {pid} did not reach the start line within {REACH:?}"))
                    }
                    None => thread::sleep(Duration::from_millis(1)),
                }
            }
        }
        let opened = Instant::now();
        drop(self.write);
        Ok((opened, used))
    }
}

/// The CPU time `pid` has used, if it is asleep in a read of a pipe (its shell at the gate);
/// `None` while it is still on its way there.
fn waiting(pid: u32) -> Result<Option<Duration>, String> {
    let read = |name: &str| {
        let path = format!("/proc/{pid}/{name}");
        fs::read_to_string(&path).map_err(|e| format!("{path}: {e} (did the process end?)"))
    };
    if !read("wchan")?.contains("pipe_read") {
        return Ok(None);
    }
    // Nanoseconds on the CPU, exact (unlike the tick counts of `stat`).
    let schedstat = read("schedstat")?;
    let nanos = schedstat.split_whitespace().next().and_then(|n| n.parse().ok());
    nanos
        .map(|n| Some(Duration::from_nanos(n)))
        .ok_or_else(|| format!("/proc/{pid}/schedstat: {schedstat:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_process_runs_only_once_the_gate_opens() {
        let mark = std::env::temp_dir().join(format!("bench-gate-{}", std::process::id()));
        let _ = fs::remove_file(&mark);
        let gate = Gate::new().unwrap();
        let mut command = gate.hold(Path::new("/usr/bin/touch")).unwrap();
        command.arg(&mark);
        let mut child = command.spawn().unwrap();
        thread::sleep(Duration::from_millis(100));
        assert!(!mark.exists(), "it ran before the gate opened");
        let (_, used) = gate.open(&[child.id()]).unwrap();
        assert!(used > Duration::ZERO && used < Duration::from_secs(1), "{used:?}");
        assert!(child.wait().unwrap().success());
        assert!(mark.exists(), "it ran once the gate opened");
        fs::remove_file(&mark).unwrap();
    }
}
