//! The processes of a run and what they tell of themselves.
//!
//! Peak memory: the central runs under GNU time (`/usr/bin/time -f %M`), which reports the
//! kernel's own high-water mark of the resident set (`ru_maxrss` from `wait4`) once the
//! process has ended. The agencies run without it and log their own mark as they exit (`VmHWM`,
//! `peak_memory_kib` on the exit line): GNU time costs about a millisecond of CPU per
//! process, 0.2 s over 200 agencies, inside the measured wall; and reaping them here with
//! `wait4` would not do, since at `exec` the kernel keeps in `ru_maxrss` the peak of the
//! memory the process had before, which for a process spawned from this harness is the
//! harness's own peak.
//!
//! CPU time tells whether a run was bound by the two cores or by waiting (the disk's syncs,
//! round trips). The central's comes from GNU time (user + system, in hundredths); the
//! agencies' is the rest of what this process's children used during the run, read from
//! `/proc/self/stat` before and after: GNU time truncates each process's figure to a
//! hundredth, which over 200 agencies would lose up to 4 s.

use std::{
    fs::{self, File},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use crate::gate::Gate;

/// How long the central may take to listen, and a process to stop once asked.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// GNU time, from the Debian package `time`.
pub const GNU_TIME: &str = "/usr/bin/time";

/// Kills `pid` with SIGKILL, if it still runs.
pub fn kill(pid: u32) {
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

/// `bin` under GNU time, its output (both streams) in `DIR/NAME.log`, its peak RSS (KiB) and
/// CPU seconds (user, system) in `DIR/NAME.rss`.
pub fn timed(bin: &Path, dir: &Path, name: &str) -> Result<Command, String> {
    let mut command = Command::new(GNU_TIME);
    command.args(["-f", "%M %U %S", "-o"]).arg(dir.join(format!("{name}.rss"))).arg(bin).stdin(Stdio::null());
    logged(command, dir, name)
}

/// `bin` with no wrapper, started once `gate` opens, its output (both streams) in
/// `DIR/NAME.log`.
pub fn held(gate: &Gate, bin: &Path, dir: &Path, name: &str) -> Result<Command, String> {
    let command = gate.hold(bin).map_err(|e| format!("{name}: the start line: {e}"))?;
    logged(command, dir, name)
}

/// `command` with its output (both streams) in `DIR/NAME.log`.
fn logged(mut command: Command, dir: &Path, name: &str) -> Result<Command, String> {
    let log = File::create(dir.join(format!("{name}.log"))).map_err(|e| format!("{name}.log: {e}"))?;
    let out = log.try_clone().map_err(|e| format!("{name}.log: {e}"))?;
    command.stdout(out).stderr(log);
    Ok(command)
}

/// The peak RSS (KiB) and CPU time GNU time wrote for `name`, from the last line (a signal
/// would add a line before it).
pub fn usage(dir: &Path, name: &str) -> Result<(u64, Duration), String> {
    let path = dir.join(format!("{name}.rss"));
    let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_usage(&text).ok_or_else(|| format!("{}: not \"KiB user sys\": {text:?}", path.display()))
}

fn parse_usage(text: &str) -> Option<(u64, Duration)> {
    let mut words = text.lines().last()?.split_whitespace();
    let rss = words.next()?.parse().ok()?;
    let user: f64 = words.next()?.parse().ok()?;
    let system: f64 = words.next()?.parse().ok()?;
    Some((rss, Duration::try_from_secs_f64(user + system).ok()?))
}

/// CPU time (user + system) used so far by the children this process has waited for, and
/// by the children they waited for: fields 16 and 17 of `/proc/self/stat`, in clock ticks of
/// 1/100 s (Linux's `USER_HZ`), summed by the kernel from exact figures.
pub fn children_cpu() -> Result<Duration, String> {
    let stat = fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    parse_children_cpu(&stat).ok_or_else(|| format!("/proc/self/stat: no cutime and cstime in {stat:?}"))
}

fn parse_children_cpu(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces; the fields after it start at field 3.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// A started process, under GNU time or not, killed if dropped still running.
#[derive(Debug)]
pub struct Process {
    child: Child,
    name: String,
    /// Whether `child` is GNU time, the program its only child.
    timed: bool,
}

impl Process {
    /// Starts `command` (built by [`timed`] or [`held`]); `name` is for messages.
    pub fn start(command: &mut Command, name: &str) -> Result<Process, String> {
        let timed = command.get_program() == GNU_TIME;
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", command.get_program().to_string_lossy()))?;
        Ok(Process { child, name: name.to_owned(), timed })
    }

    /// The program's pid, while it runs (under GNU time, its only child).
    pub fn program_pid(&self) -> Result<u32, String> {
        let pid = self.child.id();
        if !self.timed {
            return Ok(pid);
        }
        let path = format!("/proc/{pid}/task/{pid}/children");
        let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        text.split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{}: no child in {path}", self.name))
    }

    /// Waits for the process (GNU time, hence the program under it) to exit.
    pub fn wait(&mut self) -> Result<ExitStatus, String> {
        self.child.wait().map_err(|e| format!("{}: {e}", self.name))
    }

    /// The exit status if the process has exited, without waiting.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child.try_wait().map_err(|e| format!("{}: {e}", self.name))
    }

    /// Sends SIGTERM to the program (not to GNU time, which would die without reporting) and
    /// waits for both to exit.
    pub fn stop(&mut self) -> Result<ExitStatus, String> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let program = self.program_pid()?;
        let sent = Command::new("kill").args(["-TERM", &program.to_string()]).status();
        if !sent.is_ok_and(|s| s.success()) {
            return Err(format!("cannot signal {} (pid {program})", self.name));
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not stop within {PATIENCE:?} of SIGTERM", self.name));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            if let Ok(program) = self.program_pid() {
                let _ = Command::new("kill").args(["-KILL", &program.to_string()]).status();
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gnu_time_reports_are_read() {
        assert_eq!(parse_usage("2644 0.75 1.25\n"), Some((2644, Duration::from_secs(2))));
        assert_eq!(
            parse_usage("Command terminated by signal 9\n2644 0.00 0.50\n"),
            Some((2644, Duration::from_millis(500)))
        );
        assert_eq!(parse_usage("2644\n"), None);
    }

    #[test]
    fn children_cpu_is_read_from_proc_stat() {
        let stat = "42 (bench (x)) S 1 42 42 0 -1 4194304 10 20 0 0 5 6 150 75 20 0 1 0 100 0 0";
        assert_eq!(parse_children_cpu(stat), Some(Duration::from_millis(2250)));
        assert_eq!(parse_children_cpu("42 (bench) S 1"), None);
        assert!(children_cpu().is_ok());
    }
}
