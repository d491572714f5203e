//! The `credentials` binary: a fresh set of agency keys and TLS certificates.
//!
//! Usage: `credentials DIR AGENCIES [HOST...]`. Writes into DIR the central's list of public
//! keys, its certificate and key, the authority agencies trust, the centrals' database
//! password, and one private key per agency (see `security::generate`). The central's certificate names each HOST (default:
//! `server localhost 127.0.0.1`). Replaces whatever set DIR held.

use std::{path::PathBuf, process::ExitCode};

const USAGE: &str = "usage: credentials DIR AGENCIES [HOST...]\n\
Writes a fresh set of credentials for agencies 1..AGENCIES into DIR: central/agencies.pub,\n\
central/tls.crt, central/tls.key, ca.crt, database.password and agency-N.key. HOSTs are the\n\
names the central's certificate is valid for (default: server localhost 127.0.0.1).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("credentials {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // A flag is never a host name (`credentials DIR 1 --force`): refused, as every binary does.
    if let Some(flag) = args.iter().find(|a| a.len() > 1 && a.starts_with('-')) {
        eprintln!("credentials: unknown option '{flag}'\n{USAGE}");
        return ExitCode::from(2);
    }
    let (Some(dir), Some(agencies)) = (args.first(), args.get(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let Ok(agencies) = agencies.parse::<u32>() else {
        eprintln!("credentials: AGENCIES must be a number, not `{agencies}`\n{USAGE}");
        return ExitCode::from(2);
    };
    let mut hosts: Vec<String> = args[2..].to_vec();
    if hosts.is_empty() {
        hosts = ["server", "localhost", "127.0.0.1"].map(String::from).to_vec();
    }
    match security::generate::write(&PathBuf::from(dir), agencies, &hosts) {
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
