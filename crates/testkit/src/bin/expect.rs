//! `expect`: what a lottery over some datasets must give, computed from the winning rule's
//! definition (`testkit::reference`), not from the central's code. The Docker end-to-end
//! check compares the containers' logs and winners file with it.
//!
//! Usage: `expect --dir DIR --agencies N [--winners-file OUT]`
//! Prints one line per agency, `agency I bets B winners W`, then `total T`. With
//! `--winners-file`, also writes the winners file's rows (header excluded) sorted, one per line.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use clap::Parser;
use testkit::{datasets, reference};

/// What a lottery over DIR/dataset-1.csv ... DIR/dataset-N.csv must give, from the winning
/// rule's definition: one line per agency, `agency I bets B winners W`, then `total T`.
#[derive(Parser)]
#[command(
    name = "expect",
    version,
    after_help = "Exit status: 0 when done, 1 when a file cannot be read or written, 2 for a bad command line."
)]
struct Cli {
    /// The folder of the datasets.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// How many agencies' datasets.
    #[arg(long, value_name = "N")]
    agencies: u32,
    /// Also writes the winners file's rows (header excluded), sorted, to OUT.
    #[arg(long, value_name = "OUT")]
    winners_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    let Cli { dir, agencies, winners_file: out } = runtime::cli::parse("");
    let mut rows_out = Vec::new();
    let mut report = String::new();
    let mut total = 0;
    for agency in 1..=agencies {
        let path = dir.join(format!("dataset-{agency}.csv"));
        let rows = match datasets::read(&path) {
            Ok(rows) => rows,
            Err(e) => {
                eprintln!("expect: cannot read {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        let winners = reference::winner_rows(agency, &rows);
        total += winners.len();
        let _ = writeln!(report, "agency {agency} bets {} winners {}", rows.len(), winners.len());
        rows_out.extend(winners);
    }
    println!("{report}total {total}");
    if let Some(out) = out {
        rows_out.sort_unstable();
        let text: String = rows_out.iter().map(|row| format!("{row}\n")).collect();
        if let Err(e) = std::fs::write(&out, text) {
            eprintln!("expect: cannot write {}: {e}", out.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
