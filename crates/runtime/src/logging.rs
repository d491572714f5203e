//! Log output in the course's shape: `YYYY-MM-DD HH:MM:SS.mmm+HH:MM LEVEL    message`, one
//! line each. The milliseconds order the lines of processes that log within one second; the
//! UTC offset makes a host's lines (local time) and a container's (UTC, with no time zone
//! data in an image FROM scratch) comparable: one format everywhere, each instant unambiguous.
//!
//! Lines that matter to a reader or a script are written as
//! `action: NAME | result: success|fail|in_progress | key: value | ...`.
//!
//! The level comes from the binary's own setting (the course's `LOGGING_LEVEL`, or the
//! agency's `CLI_LOG_LEVEL`); `RUST_LOG`, when set, is read on top of it with env_logger's
//! syntax, as Rust users expect: a bare level there (`RUST_LOG=debug`) wins over the setting,
//! and `target=level` directives (`RUST_LOG=server=debug`) refine it for those modules only.

use std::io::Write;

use log::LevelFilter;

/// The variable read on top of the binary's own level setting.
pub const RUST_LOG: &str = "RUST_LOG";

/// The timestamp's format (chrono's): date, time with milliseconds, UTC offset.
pub const TIMESTAMP: &str = "%Y-%m-%d %H:%M:%S%.3f%:z";

/// Sends log records at `level` or more severe to standard error, stamped in local time,
/// with `RUST_LOG`'s directives (when set and not blank) applied over `level`. Calling it
/// again (as tests may) leaves the first logger in place.
pub fn init(level: LevelFilter) {
    let _already_set = builder(level, std::env::var(RUST_LOG).ok().as_deref()).try_init();
}

/// The logger [`init`] installs, with `rust_log` standing for the variable's value.
fn builder(level: LevelFilter, rust_log: Option<&str>) -> env_logger::Builder {
    let mut builder = env_logger::Builder::new();
    builder.filter_level(level);
    // Parsed after `filter_level`: a bare level in it replaces that default directive.
    if let Some(spec) = rust_log.filter(|spec| !spec.trim().is_empty()) {
        builder.parse_filters(spec);
    }
    builder.format(|out, record| {
        writeln!(out, "{} {:<8} {}", chrono::Local::now().format(TIMESTAMP), record.level(), record.args())
    });
    builder
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

    fn enabled(logger: &env_logger::Logger, target: &str, level: log::Level) -> bool {
        log::Log::enabled(logger, &log::Metadata::builder().target(target).level(level).build())
    }

    #[test]
    fn rust_log_is_read_over_the_level_setting() {
        use log::Level::{Debug, Info};
        let unset = builder(LevelFilter::Info, None).build();
        assert!(enabled(&unset, "server", Info) && !enabled(&unset, "server", Debug));
        let blank = builder(LevelFilter::Info, Some(" ")).build();
        assert_eq!(blank.filter(), LevelFilter::Info);
        let bare = builder(LevelFilter::Info, Some("warn")).build();
        assert!(!enabled(&bare, "server", Info), "a bare level in RUST_LOG wins");
        let module = builder(LevelFilter::Info, Some("server::handler=debug")).build();
        assert!(enabled(&module, "server::handler", Debug));
        assert!(!enabled(&module, "server::store", Debug), "other modules keep the setting");
        assert!(enabled(&module, "server::store", Info));
    }

    #[test]
    fn timestamps_carry_milliseconds_and_the_utc_offset() {
        let utc = chrono::DateTime::parse_from_rfc3339("2026-03-17T09:05:04.007Z").unwrap();
        assert_eq!(utc.format(TIMESTAMP).to_string(), "2026-03-17 09:05:04.007+00:00");
        let west = chrono::DateTime::parse_from_rfc3339("2026-03-17T06:05:04.2-03:00").unwrap();
        assert_eq!(west.format(TIMESTAMP).to_string(), "2026-03-17 06:05:04.200-03:00");
    }

    #[test]
    fn level_names_of_both_languages_are_understood() {
        assert_eq!(parse_level("warning"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("INFO"), Some(LevelFilter::Info));
        assert_eq!(parse_level(" debug "), Some(LevelFilter::Debug));
        assert_eq!(parse_level("critical"), Some(LevelFilter::Error));
        assert_eq!(parse_level("verbose"), None);
    }
}
