//! The `server` binary: the central of the lottery.
//!
//! Usage: `server [CONFIG.ini]`. Settings come from the optional INI file, overridden by the
//! environment; see `server::config`. SIGTERM or SIGINT stops it gracefully (exit 0).

use std::{path::PathBuf, process::ExitCode, thread};

use server::{logging, Config, Server};
use signal_hook::{
    consts::{SIGINT, SIGTERM},
    iterator::Signals,
};

fn main() -> ExitCode {
    let path = std::env::args_os().nth(1).map(PathBuf::from);
    if path.as_deref().is_some_and(|p| p == "-h" || p == "--help") {
        println!("usage: server [CONFIG.ini]\nSettings: the INI file's [DEFAULT] section, overridden by environment variables of the same names.");
        return ExitCode::SUCCESS;
    }
    let config = match Config::load(path.as_deref(), |key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.logging_level);
    log::info!("action: config | result: success | {}", config.describe());

    // Installed before binding, so a signal is never lost between the two.
    let mut signals = match Signals::new([SIGTERM, SIGINT]) {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("action: install_signal_handler | result: fail | error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::bind(&config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("action: start | result: fail | error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = server.shutdown_handle();
    let signal_handle = signals.handle();
    let watcher = thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let name = if signal == SIGTERM { "SIGTERM" } else { "SIGINT" };
            log::info!("action: signal | result: success | signal: {name}");
            shutdown.trigger();
        }
    });

    let result = server.run();
    signal_handle.close();
    if watcher.join().is_err() {
        log::error!("action: join_signal_thread | result: fail");
    }
    match result {
        Ok(()) => {
            log::info!("action: exit | result: success");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("action: exit | result: fail | error: {e}");
            ExitCode::FAILURE
        }
    }
}
