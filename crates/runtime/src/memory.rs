//! The process's peak memory as the kernel keeps it: the high-water mark of its resident set
//! since it started (`VmHWM` in `/proc/self/status`, Linux). An agency logs it as it exits, so
//! a run's memory is read from the logs with no wrapper around the process; the mark belongs
//! to the program itself, not to whatever started it (which `wait4`'s `ru_maxrss` inherits
//! from the parent's memory at `fork`).

use std::fs;

/// The peak resident set in KiB, or `None` where `/proc/self/status` has no `VmHWM`.
#[must_use]
pub fn peak_kib() -> Option<u64> {
    parse_hwm(&fs::read_to_string("/proc/self/status").ok()?)
}

fn parse_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_is_read_from_the_status_file() {
        let status = "Name:\tclient\nVmPeak:\t  12000 kB\nVmHWM:\t    3890 kB\nVmRSS:\t    3000 kB\n";
        assert_eq!(parse_hwm(status), Some(3890));
        assert_eq!(parse_hwm("Name:\tclient\n"), None);
    }

    #[test]
    fn this_process_has_a_mark_at_least_its_present_size() {
        let status = fs::read_to_string("/proc/self/status").expect("Linux");
        let rss: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|l| l.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmRSS");
        let peak = peak_kib().expect("VmHWM");
        assert!(peak >= rss && rss > 0, "peak {peak} KiB, resident {rss} KiB");
    }
}
