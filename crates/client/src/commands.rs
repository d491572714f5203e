//! What the `client` binary does once its settings are read: runs the agency until its work
//! is done or a signal stops it, and returns the process's exit status; `main.rs` keeps only
//! the command line and the settings.

use std::process::ExitCode;

use runtime::signals::SignalWatcher;

use crate::{
    agency::{self, Outcome},
    endpoint::Endpoint,
    stop::CUT_OFF_AFTER,
    Config, Stop,
};

/// Runs the agency: 0 when its work is done (or it was stopped), 1 when it failed.
#[must_use]
pub fn run(config: &Config, endpoint: &Endpoint) -> ExitCode {
    let stop = Stop::new();
    let watcher = {
        let stop = stop.clone();
        // On the signal thread: flag the stop, then give the answers owed a moment before
        // cutting the connections that would hold the agency longer.
        match SignalWatcher::start(move || {
            stop.request();
            let cut = stop.cut_off(CUT_OFF_AFTER);
            if cut > 0 {
                log::info!("action: cut_off | result: success | connections: {cut}");
            }
        }) {
            Ok(watcher) => watcher,
            Err(e) => {
                log::error!("action: install_signal_handler | result: fail | error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let result = agency::run(config, endpoint, &stop);
    stop.finish();
    watcher.stop();
    match result {
        Ok(outcome) => {
            let how = if outcome == Outcome::Done { "done" } else { "stopped" };
            // The peak memory last, once nothing more will be allocated (what `make bench`
            // reads as the agency's RSS).
            let peak =
                runtime::memory::peak_kib().map(|k| format!(" | peak_memory_kib: {k}")).unwrap_or_default();
            log::info!("action: exit | result: success | agency: {} | outcome: {how}{peak}", config.id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("action: {} | result: fail | agency: {} | error: {e}", e.action(), config.id);
            ExitCode::FAILURE
        }
    }
}
