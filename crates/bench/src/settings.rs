//! What to run and how often, from the environment (`make bench` passes it through).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BENCH_RUNS` | 5 | runs of each fast scenario; the table shows medians |
//! | `BENCH_DELAY_RUNS` | 2 | runs of the 1 ms scenario (about 27 s each) |
//! | `BENCH_QUICK` | unset | `1`: one run of each fast scenario, the 1 ms one skipped |
//! | `BENCH_ONLY` | every scenario | comma-separated names: `course,many,single,delay` (the journal), `single-http` (`single` with the HTTP listener on, scraped each second), `db-course,db-course-3,db-many,db-many-3` (the database engine, 1 or 3 centrals), `copy` (PostgreSQL's own `COPY`) |
//! | `BENCH_RETRY_PERIOD` | `2s` | the agencies' `CLI_WINNERS_RETRY_PERIOD`: how long the central may hold each total query; it answers the moment the lottery completes, through any central |
//! | `BENCH_IMAGES` | `tp0-server:latest tp0-client:latest` | Docker images whose size to report |
//! | `BENCH_RUN_DIR` | `target/bench/runs` | where each run's logs and winners file go; a tmpfs there makes the syncs free, a control that shows what they cost |

use std::path::PathBuf;

/// The benchmark's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Runs of each scenario without the simulated delay.
    pub runs: usize,
    /// Runs of the scenario with the 1 ms simulated delay (0: skipped).
    pub delay_runs: usize,
    /// Scenario names to run; empty means all.
    pub only: Vec<String>,
    /// The agencies' pause between two winners queries: the most an agency that finished
    /// early waits, after the last agency is done, to learn the total.
    pub retry_period: String,
    /// Docker images to report the size of.
    pub images: Vec<String>,
    /// Where the runs' files go, instead of `target/bench/runs`.
    pub run_dir: Option<PathBuf>,
}

impl Settings {
    /// Reads the settings through `var` (the environment, or a map in tests).
    ///
    /// # Errors
    /// A message naming the variable whose value is not a count.
    pub fn load(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
        let count = |key: &str, default: usize| match var(key) {
            Some(v) => v.trim().parse().map_err(|_| format!("{key}={v:?} is not a count")),
            None => Ok(default),
        };
        let quick = var("BENCH_QUICK").is_some_and(|v| v == "1");
        let words = |v: String, sep: char| -> Vec<String> {
            v.split(sep).map(str::trim).filter(|w| !w.is_empty()).map(String::from).collect()
        };
        Ok(Settings {
            runs: count("BENCH_RUNS", if quick { 1 } else { 5 })?.max(1),
            delay_runs: count("BENCH_DELAY_RUNS", if quick { 0 } else { 2 })?,
            only: var("BENCH_ONLY").map(|v| words(v, ',')).unwrap_or_default(),
            retry_period: var("BENCH_RETRY_PERIOD").unwrap_or_else(|| "2s".into()),
            run_dir: var("BENCH_RUN_DIR").filter(|v| !v.is_empty()).map(PathBuf::from),
            images: words(
                var("BENCH_IMAGES").unwrap_or_else(|| "tp0-server:latest tp0-client:latest".into()),
                ' ',
            ),
        })
    }

    /// Whether the scenario called `name` is to run.
    #[must_use]
    pub fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|n| n == name)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        Settings::load(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_quick_mode() {
        let s = load(&[]).unwrap();
        assert_eq!((s.runs, s.delay_runs, s.retry_period.as_str()), (5, 2, "2s"));
        assert!(s.wants("delay"));
        let s = load(&[("BENCH_QUICK", "1")]).unwrap();
        assert_eq!((s.runs, s.delay_runs), (1, 0));
        let s = load(&[("BENCH_QUICK", "1"), ("BENCH_DELAY_RUNS", "1")]).unwrap();
        assert_eq!(s.delay_runs, 1);
    }

    #[test]
    fn a_subset_and_bad_counts() {
        let s = load(&[("BENCH_ONLY", "course, single")]).unwrap();
        assert!(s.wants("course") && s.wants("single") && !s.wants("many"));
        assert!(load(&[("BENCH_RUNS", "five")]).unwrap_err().contains("BENCH_RUNS"));
    }
}
