//! The `client` binary: one agency of the lottery.
//!
//! Usage: `client [CONFIG.yaml]`. Settings come from the optional YAML file, overridden by the
//! environment; see `client::config`. SIGTERM or SIGINT stops it gracefully (exit 0).
//! Exit status: 0 when its work is done (or it was stopped), 1 when it failed, 2 for a bad
//! setting.

use std::{path::PathBuf, process::ExitCode};

use client::{
    agency::{self, Outcome},
    stop::CUT_OFF_AFTER,
    Config, Stop,
};
use runtime::{logging, signals::SignalWatcher};

fn main() -> ExitCode {
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    if path.as_deref().is_some_and(|p| p == "-h" || p == "--help") {
        println!("usage: client [CONFIG.yaml]\nSettings: the YAML file, overridden by CLI_* environment variables.");
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(path.as_deref(), |key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_level);
    log::info!("action: config | result: success | {}", config.describe());

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

    let result = agency::run(&config, &stop);
    stop.finish();
    watcher.stop();
    match result {
        Ok(outcome) => {
            let how = if outcome == Outcome::Done { "done" } else { "stopped" };
            log::info!("action: exit | result: success | agency: {} | outcome: {how}", config.id);
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("action: {} | result: fail | agency: {} | error: {e}", e.action(), config.id);
            ExitCode::FAILURE
        }
    }
}
