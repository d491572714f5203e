//! What each of the `server` binary's commands does once its settings are read: serve (the
//! central), `healthcheck` (the container's probe) and `export-winners`. Each returns the
//! process's exit status; `main.rs` keeps only the command line.

use std::{path::Path, process::ExitCode, time::Duration};

use runtime::signals::{self, SignalWatcher};

use crate::{healthcheck as probe, store, Config, Server};

/// How long the health check waits to connect, and then for the echo.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs the central until SIGTERM or SIGINT stops it: 0 after a graceful stop, 1 when it
/// cannot start or fails.
#[must_use]
pub fn serve(config: &Config) -> ExitCode {
    // Before the store opens: a write past a file size limit must fail, not kill the central.
    if let Err(e) = signals::survive_file_size_limit() {
        log::error!("action: install_signal_handler | result: fail | error: {e}");
        return ExitCode::FAILURE;
    }
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("action: start | result: fail | error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Until the watcher is installed a signal ends the process outright, which loses
    // nothing: no connection has been accepted yet.
    let shutdown = server.shutdown_handle();
    let watcher = match SignalWatcher::start(move || shutdown.trigger()) {
        Ok(watcher) => watcher,
        Err(e) => {
            log::error!("action: install_signal_handler | result: fail | error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = server.run();
    watcher.stop();
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

/// Asks the central `config` describes, on this host, for an echo: 0 when it answers, 1 when
/// not. One line on standard output either way (the container's health log).
#[must_use]
pub fn healthcheck(config: &Config) -> ExitCode {
    match probe::probe(config, HEALTHCHECK_TIMEOUT) {
        Ok(address) => {
            println!("action: healthcheck | result: success | address: {address}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("action: healthcheck | result: fail | error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the winners file from the database to `out`: 0 when written, 1 when the database
/// or the file fails, 2 when no database is set.
#[must_use]
pub fn export_winners(config: &Config, out: &Path) -> ExitCode {
    let Some(database) = config.database() else {
        log::error!("action: export_winners | result: fail | error: SERVER_DATABASE_URL names no database");
        return ExitCode::from(2);
    };
    match store::export_winners(&database, config.agencies, config.winners_format, out) {
        Ok((rows, database)) => {
            log::info!(
                "action: export_winners | result: success | database: {database} | path: {} | winners: {rows}",
                out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("action: export_winners | result: fail | path: {} | error: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}
