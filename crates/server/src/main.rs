//! The `server` binary: the central of the lottery. `server [CONFIG.ini]` serves;
//! `server healthcheck [CONFIG.ini]` probes a central on this host; `server export-winners
//! [CONFIG.ini] OUT.csv` writes the winners file from the database. Settings: the INI file,
//! overridden by the environment (`server::config`). The commands' bodies are in
//! `server::commands`; this file is the command line.

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use runtime::{logging, settings};
use server::{commands, config, Config};

const EXIT_STATUS: &str =
    "RUST_LOG, when set, is applied over LOGGING_LEVEL. SIGTERM or SIGINT stops the central
gracefully.

Exit status: 0 after a graceful stop (healthcheck: the central answered; export-winners: the
file is written), 1 when it cannot start or fails, 2 for a bad setting or command line.";

/// The central of the lottery: receives the agencies' bets, decides the winners, answers the
/// total. Settings: the INI file's [DEFAULT] section, overridden by environment variables of
/// the same names.
#[derive(Parser)]
#[command(name = "server", version, after_help = EXIT_STATUS, args_conflicts_with_subcommands = true)]
struct Cli {
    /// The INI file (section [DEFAULT]); without it, the defaults and the environment.
    #[arg(value_name = "CONFIG.ini")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Asks the central those settings describe, on this host, for an echo (or GET /readyz
    /// with SERVER_HTTP_PORT): exit 0 when it answers, 1 when not.
    Healthcheck {
        /// The central's INI file.
        #[arg(value_name = "CONFIG.ini")]
        config: Option<PathBuf>,
    },
    /// Writes the winners file (the CSV the file engine keeps) from the database
    /// SERVER_DATABASE_URL names: exit 0 when written, 1 when the database or the file fails,
    /// 2 for a bad setting or no database.
    #[command(override_usage = "server export-winners [CONFIG.ini] OUT.csv")]
    ExportWinners {
        /// The central's INI file (optional), then the file to write.
        #[arg(value_name = "FILE", num_args = 1..=2, required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli: Cli = runtime::cli::parse(&settings::help(config::SETTINGS));
    let healthcheck = matches!(cli.command, Some(Command::Healthcheck { .. }));
    let (path, out) = match cli.command {
        None => (cli.config, None),
        Some(Command::Healthcheck { config }) => (config, None),
        // clap has checked there are one or two: the file to write is the last.
        Some(Command::ExportWinners { mut files }) => {
            let out = files.pop();
            (files.pop(), out)
        }
    };
    let config = match Config::load(path.as_deref(), |key| std::env::var(key).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    match (healthcheck, out) {
        (true, None) => commands::healthcheck(&config),
        (_, Some(out)) => {
            logging::init(config.logging_level);
            commands::export_winners(&config, &out)
        }
        (false, None) => {
            logging::init(config.logging_level);
            log::info!("action: config | result: success | {}", config.describe());
            for warning in config::environment_warnings() {
                log::warn!("action: config | result: warning | {warning}");
            }
            commands::serve(&config)
        }
    }
}
