//! `expect`: what a lottery over some datasets must give, computed from the winning rule's
//! definition (`testkit::reference`), not from the central's code. The Docker end-to-end
//! check compares the containers' logs and winners file with it.
//!
//! Usage: `expect --dir DIR --agencies N [--winners-file OUT]`
//! Prints one line per agency, `agency I bets B winners W`, then `total T`. With
//! `--winners-file`, also writes the winners file's rows (header excluded) sorted, one per line.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use runtime::cli::Program;
use testkit::{datasets, reference};

const PROGRAM: Program = Program {
    name: "expect",
    version: env!("CARGO_PKG_VERSION"),
    usage: "usage: expect --dir DIR --agencies N [--winners-file OUT]",
    about: "What a lottery over DIR/dataset-1.csv ... DIR/dataset-N.csv must give, from the winning
rule's definition: one line per agency, `agency I bets B winners W`, then `total T`. With
--winners-file, also writes the winners file's rows (header excluded), sorted, to OUT.

Exit status: 0 when done, 1 when a file cannot be read or written, 2 for a bad command line.",
};

fn main() -> ExitCode {
    let (mut dir, mut agencies, mut out) = (None, None, None);
    let argv: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = PROGRAM.answer_help_or_version(&argv) {
        return code;
    }
    let mut args = argv.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(flag) = args.next() {
        let value = args.next();
        match (flag.as_str(), value.as_deref().map(str::parse::<u32>)) {
            ("--dir", Some(_)) => dir = value.map(PathBuf::from),
            ("--agencies", Some(Ok(n))) => agencies = Some(n),
            ("--winners-file", Some(_)) => out = value.map(PathBuf::from),
            ("--dir" | "--agencies" | "--winners-file", _) => {
                return PROGRAM.usage_error(&format!("{flag} needs a value (a number for --agencies)"))
            }
            _ => return PROGRAM.usage_error(&format!("unknown argument '{flag}'")),
        }
    }
    let (Some(dir), Some(agencies)) = (dir, agencies) else {
        return PROGRAM.usage_error("--dir and --agencies are required");
    };

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
