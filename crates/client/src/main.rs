//! The `client` binary: one agency of the lottery. `client [CONFIG.yaml]`; settings from the
//! YAML file, overridden by the environment (`client::config`). The run itself is
//! `client::commands::run`; this file is the command line and the settings.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use client::{commands, config, endpoint::Endpoint, Config};
use runtime::{logging, settings};

const EXIT_STATUS: &str =
    "RUST_LOG, when set, is applied over CLI_LOG_LEVEL. SIGTERM or SIGINT stops the agency
gracefully.

Exit status: 0 when its work is done (or it was stopped), 1 when it failed, 2 for a bad
setting or command line.";

/// One agency of the lottery: sends its dataset (or exercise 5's bet from NOMBRE, APELLIDO,
/// DOCUMENTO and NACIMIENTO) to the central, then asks for the total winners. Settings: the
/// YAML file, overridden by the CLI_* environment variables.
#[derive(Parser)]
#[command(name = "client", version, after_help = EXIT_STATUS)]
struct Cli {
    /// The YAML file; without it, the defaults and the environment.
    #[arg(value_name = "CONFIG.yaml")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli: Cli = runtime::cli::parse(&settings::help(config::SETTINGS));
    let loaded = Config::load(cli.config.as_deref(), |key| std::env::var(key).ok());
    let (config, endpoint) = match loaded.and_then(|config| Ok((Endpoint::from_config(&config)?, config))) {
        Ok((endpoint, config)) => (config, endpoint),
        Err(e) => {
            eprintln!("action: config | result: fail | error: {e}");
            return ExitCode::from(2);
        }
    };
    logging::init(config.log_level);
    log::info!("action: config | result: success | {}", config.describe());
    for warning in config::environment_warnings() {
        log::warn!("action: config | result: warning | {warning}");
    }
    commands::run(&config, &endpoint)
}
