//! The `server` binary: the central of the lottery.
//!
//! Usage: `server [CONFIG.ini]` (also `--help`, `--version`). Settings come from the optional
//! INI file, overridden by the environment; see `server::config`. SIGTERM or SIGINT stops it gracefully (exit 0).
//! Exit status: 0 after a graceful stop, 1 when it cannot start or fails, 2 for a bad setting.
//!
//! `server healthcheck [CONFIG.ini]` asks the central those settings describe, on this host,
//! for an echo: exit 0 when it answers, 1 when not (the container's health check).
//!
//! `server export-winners [CONFIG.ini] OUT` writes the winners file (the same CSV the file
//! engine keeps) to OUT from the database `SERVER_DATABASE_URL` names: exit 0 when written,
//! 1 when the database or the file fails, 2 for a bad setting or no database.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use runtime::{
    cli::Program,
    logging,
    signals::{self, SignalWatcher},
};
use server::{healthcheck, store, Config, Server};

/// How long the health check waits to connect, and then for the echo.
const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);

const PROGRAM: Program = Program {
    name: "server",
    version: env!("CARGO_PKG_VERSION"),
    usage: "usage: server [healthcheck] [CONFIG.ini]\n       server export-winners [CONFIG.ini] OUT.csv",
    about: "The central of the lottery. Settings: the INI file's [DEFAULT] section, overridden by
environment variables of the same names (SERVER_PORT, SERVER_AGENCIES, LOGGING_LEVEL, ...);
RUST_LOG, when set, is applied over LOGGING_LEVEL. SIGTERM or SIGINT stops it gracefully.
`healthcheck` asks the central those settings describe for an echo instead;
`export-winners` writes the winners file from the database SERVER_DATABASE_URL names.

Exit status: 0 after a graceful stop, 1 when it cannot start or fails, 2 for a bad setting
or command line.",
};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = PROGRAM.answer_help_listing(&args, &runtime::settings::help(server::config::SETTINGS))
    {
        return code;
    }
    let mut args = match PROGRAM.positionals(args, 3) {
        Ok(args) => args.into_iter().peekable(),
        Err(code) => return code,
    };
    let healthcheck = args.next_if(|arg| arg == "healthcheck").is_some();
    let export = !healthcheck && args.next_if(|arg| arg == "export-winners").is_some();
    let rest: Vec<PathBuf> = args.map(PathBuf::from).collect();
    let (path, out) = match (export, <[PathBuf]>::len(&rest)) {
        (false, 0) => (None, None),
        (false, 1) => (rest.first().cloned(), None),
        (true, 1) => (None, rest.first().cloned()),
        (true, 2) => (rest.first().cloned(), rest.get(1).cloned()),
        (true, 0) => return PROGRAM.usage_error("export-winners needs the file to write"),
        _ => {
            return PROGRAM.usage_error(&format!("unexpected argument '{}'", rest[rest.len() - 1].display()))
        }
    };
    let config = match Config::load(path.as_deref(), |key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    if healthcheck {
        return match healthcheck::probe(&config, HEALTHCHECK_TIMEOUT) {
            Ok(address) => {
                println!("action: healthcheck | result: success | address: {address}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                println!("action: healthcheck | result: fail | error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    logging::init(config.logging_level);
    if let Some(out) = out {
        return export_winners(&config, &out);
    }
    log::info!("action: config | result: success | {}", config.describe());
    for warning in server::config::environment_warnings() {
        log::warn!("action: config | result: warning | {warning}");
    }

    // Before the store opens: a write past a file size limit must fail, not kill the central.
    if let Err(e) = signals::survive_file_size_limit() {
        log::error!("action: install_signal_handler | result: fail | error: {e}");
        return ExitCode::FAILURE;
    }
    let server = match Server::bind(&config) {
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

/// Writes the winners file from the database to `out`.
fn export_winners(config: &Config, out: &std::path::Path) -> ExitCode {
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
