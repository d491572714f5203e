//! Log output in the course's shape: `YYYY-MM-DD HH:MM:SS LEVEL    message`, one line each.
//!
//! Lines that matter to a reader or a script are written as
//! `action: NAME | result: success|fail|in_progress | key: value | ...`.

use std::io::Write;

use log::LevelFilter;

/// Sends log records at `level` or more severe to standard error, stamped in local time.
/// Calling it again (as tests may) leaves the first logger in place.
pub fn init(level: LevelFilter) {
    let _already_set = env_logger::Builder::new()
        .filter_level(level)
        .format(|out, record| {
            writeln!(
                out,
                "{} {:<8} {}",
                chrono::Local::now().format("%Y-%m-%d %H:%M:%S"),
                record.level(),
                record.args()
            )
        })
        .try_init();
}

/// Parses the course's level names (Python's and Go's), in any case.
#[must_use]
pub fn parse_level(value: &str) -> Option<LevelFilter> {
    match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some(LevelFilter::Trace),
        "DEBUG" => Some(LevelFilter::Debug),
        "INFO" => Some(LevelFilter::Info),
        "WARN" | "WARNING" => Some(LevelFilter::Warn),
        "ERROR" | "CRITICAL" | "FATAL" => Some(LevelFilter::Error),
        "OFF" => Some(LevelFilter::Off),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_names_of_both_languages_are_understood() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("INFO"), Some(LevelFilter::Info));
        assert_eq!(parse_level(" debug "), Some(LevelFilter::Debug));
        assert_eq!(parse_level("critical"), Some(LevelFilter::Error));
        assert_eq!(parse_level("verbose"), None);
    }
}
