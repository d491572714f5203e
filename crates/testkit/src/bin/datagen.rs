//! `datagen`: writes agency datasets in the course's format, the same bytes for the same seed.
//!
//! Usage: `datagen [--dir DIR] [--agencies N] [--rows ROWS] [--seed SEED]`
//! Writes the missing ones of `DIR/dataset-1.csv` … `DIR/dataset-N.csv` (default `.data`, 5
//! agencies). A file already there is never rewritten, whatever it holds: it may be the
//! course's own dataset, which the user brought. Without `--rows`, agency sizes follow the
//! course's datasets (26 936, 25 518, 16 014, 9 238 and 991 rows, repeated for more agencies);
//! with it, every agency gets ROWS rows.

use std::{fs::OpenOptions, io::ErrorKind, path::PathBuf, process::ExitCode};

use runtime::cli::Program;
use testkit::datasets;

/// The row counts of the course's five datasets.
const COURSE_SIZES: [usize; 5] = [26_936, 25_518, 16_014, 9_238, 991];

const PROGRAM: Program = Program {
    name: "datagen",
    version: env!("CARGO_PKG_VERSION"),
    usage: "usage: datagen [--dir DIR] [--agencies N] [--rows ROWS] [--seed SEED]",
    about: "Writes the missing ones of DIR/dataset-1.csv ... DIR/dataset-N.csv (default .data, 5
agencies) in the course's format, the same bytes for the same seed (default 2026). A file
already there is kept as it is, never rewritten. Without --rows the sizes follow the course's
datasets (26936, 25518, 16014, 9238 and 991 rows, repeated); with it, ROWS rows each.

Exit status: 0 when every file is there, 1 when one cannot be written, 2 for a bad command
line.",
};

fn main() -> ExitCode {
    let (mut dir, mut agencies, mut rows, mut seed) = (PathBuf::from(".data"), 5u64, None, 2026u64);
    let argv: Vec<_> = std::env::args_os().skip(1).collect();
    if let Some(code) = PROGRAM.answer_help_or_version(&argv) {
        return code;
    }
    let mut args = argv.into_iter().map(|a| a.to_string_lossy().into_owned());
    while let Some(flag) = args.next() {
        let value = args.next();
        let parsed = match (flag.as_str(), &value) {
            ("--dir", Some(v)) => {
                dir = PathBuf::from(v);
                Some(())
            }
            ("--agencies", Some(v)) => v.parse().ok().map(|n| agencies = n),
            ("--rows", Some(v)) => v.parse().ok().map(|n| rows = Some(n)),
            ("--seed", Some(v)) => v.parse().ok().map(|n| seed = n),
            ("--dir" | "--agencies" | "--rows" | "--seed", None) => {
                return PROGRAM.usage_error(&format!("{flag} needs a value"))
            }
            _ => return PROGRAM.usage_error(&format!("unknown argument '{flag}'")),
        };
        if parsed.is_none() {
            return PROGRAM.usage_error(&format!("{flag}: not a number: {}", value.unwrap_or_default()));
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("datagen: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for agency in 1..=agencies {
        let count = rows.unwrap_or(COURSE_SIZES[((agency - 1) % 5) as usize]);
        let path = dir.join(format!("dataset-{agency}.csv"));
        // `create_new` is the guard: no check-then-write window in which a file could appear
        // and then be replaced.
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists && path.is_dir() => {
                // Docker makes a directory where a file it was told to mount is missing.
                eprintln!(
                    "datagen: {} is a directory, not a dataset; remove it (rmdir {}) and run again",
                    path.display(),
                    path.display()
                );
                return ExitCode::FAILURE;
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                println!("datagen: kept {} (already there)", path.display());
                continue;
            }
            Err(e) => {
                eprintln!("datagen: cannot create {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        };
        // Each agency's rows depend on the seed and the agency only, not on the others.
        let data = datasets::generate(seed.wrapping_mul(1_000_003).wrapping_add(agency), count);
        if let Err(e) = datasets::write_to(file, &data) {
            // The file is the one created just above, so removing it touches nothing of the
            // user's, and a later run does not keep a half-written dataset.
            let _ = std::fs::remove_file(&path);
            eprintln!("datagen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("datagen: wrote {} ({count} bets)", path.display());
    }
    ExitCode::SUCCESS
}
