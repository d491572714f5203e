//! The `client` binary: one agency of the lottery.
//!
//! Usage: `client [CONFIG.yaml]` (also `--help`, `--version`). Settings come from the optional
//! YAML file, overridden by the environment; see `client::config`. SIGTERM or SIGINT stops it gracefully (exit 0).
//! Exit status: 0 when its work is done (or it was stopped), 1 when it failed, 2 for a bad
//! setting.

use std::{path::PathBuf, process::ExitCode};

use client::{
    agency::{self, Outcome},
    endpoint::Endpoint,
    stop::CUT_OFF_AFTER,
    Config, Stop,
};
use runtime::{cli::Program, logging, signals::SignalWatcher};

const PROGRAM: Program = Program {
    name: "client",
    version: env!("CARGO_PKG_VERSION"),
    usage: "usage: client [CONFIG.yaml]",
    about: "One agency of the lottery: sends its dataset (or exercise 5's bet from NOMBRE, APELLIDO,
DOCUMENTO and NACIMIENTO) to the central, then asks for the total winners. Settings: the YAML
file, overridden by CLI_* environment variables (CLI_ID, CLI_SERVER_ADDRESS, ...); RUST_LOG,
when set, is applied over CLI_LOG_LEVEL. SIGTERM or SIGINT stops it gracefully.

Exit status: 0 when its work is done (or it was stopped), 1 when it failed, 2 for a bad
setting or command line.",
};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = PROGRAM.answer_help_listing(&args, &runtime::settings::help(client::config::SETTINGS))
    {
        return code;
    }
    let path = match PROGRAM.positionals(args, 1) {
        Ok(args) => args.into_iter().next().map(PathBuf::from),
        Err(code) => return code,
    };
    let config = match Config::load(path.as_deref(), |key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    let endpoint = match Endpoint::from_config(&config) {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_level);
    log::info!("action: config | result: success | {}", config.describe());
    for warning in client::config::environment_warnings() {
        log::warn!("action: config | result: warning | {warning}");
    }

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

    let result = agency::run(&config, &endpoint, &stop);
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
