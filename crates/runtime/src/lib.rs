//! What the `server` and `client` binaries (and the tools beside them) share as processes,
//! apart from the protocol: the command line's `--help`, `--version` and usage errors
//! ([`cli`]), the course's log line format and level names ([`logging`]), errors for settings that do
//! not parse ([`settings`]), and the thread that turns SIGTERM or SIGINT into a graceful
//! stop ([`signals`]), rate-limited log lines ([`throttle`]) and the process's peak memory
//! ([`memory`]).

pub mod cli;
pub mod logging;
pub mod memory;
pub mod settings;
pub mod signals;
pub mod throttle;

/// Re-exported for [`throttled!`], which expands in other crates.
pub use log;
