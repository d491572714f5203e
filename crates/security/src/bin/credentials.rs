//! The `credentials` binary: a fresh set of agency keys and TLS certificates.
//!
//! Usage: `credentials DIR AGENCIES [HOST...]`. Writes into DIR the central's list of public
//! keys, its certificate and key, the authority agencies trust, the centrals' database
//! password, and one private key per agency (see `security::generate`). The central's certificate names each HOST (default:
//! `server localhost 127.0.0.1`). Replaces whatever set DIR held.

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

/// Writes a fresh set of credentials for agencies 1..AGENCIES into DIR: central/agencies.pub,
/// central/tls.crt, central/tls.key, ca.crt, database.password and agency-N.key. Replaces whatever set DIR held.
#[derive(Parser)]
#[command(
    name = "credentials",
    version,
    after_help = "Exit status: 0 when written, 1 when a file cannot be written, 2 for a bad command line."
)]
struct Cli {
    /// The folder to write the set into.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// How many agencies (1 to AGENCIES) get a key.
    #[arg(value_name = "AGENCIES")]
    agencies: u32,
    /// The names the central's certificate is valid for (default: server localhost 127.0.0.1).
    /// A flag is never taken for one (`credentials DIR 1 --force` exits 2).
    #[arg(value_name = "HOST")]
    hosts: Vec<String>,
}

fn main() -> ExitCode {
    let Cli { dir, agencies, mut hosts } = Cli::parse();
    if hosts.is_empty() {
        hosts = ["server", "localhost", "127.0.0.1"].map(String::from).to_vec();
    }
    match security::generate::write(&dir, agencies, &hosts) {
        Ok(written) => {
            println!(
                "action: credentials | result: success | dir: {} | agencies: {} | hosts: {}",
                written.dir.display(),
                written.agencies,
                hosts.join(",")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("action: credentials | result: fail | error: {e}");
            ExitCode::FAILURE
        }
    }
}
