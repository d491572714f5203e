//! `datagen`: writes agency datasets in the course's format, the same bytes for the same seed.
//!
//! Usage: `datagen [--dir DIR] [--agencies N] [--rows ROWS] [--seed SEED]`
//! Writes `DIR/dataset-1.csv` … `DIR/dataset-N.csv` (default `.data`, 5 agencies). Without
//! `--rows`, agency sizes follow the course's datasets (26 936, 25 518, 16 014, 9 238 and 991
//! rows, repeated for more agencies); with it, every agency gets ROWS rows.

use std::{path::PathBuf, process::ExitCode};

use testkit::datasets;

/// The row counts of the course's five datasets.
const COURSE_SIZES: [usize; 5] = [26_936, 25_518, 16_014, 9_238, 991];

const USAGE: &str = "usage: datagen [--dir DIR] [--agencies N] [--rows ROWS] [--seed SEED]";

fn main() -> ExitCode {
    let (mut dir, mut agencies, mut rows, mut seed) = (PathBuf::from(".data"), 5u64, None, 2026u64);
    let mut args = std::env::args().skip(1);
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
            _ => None,
        };
        if parsed.is_none() {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("datagen: cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    for agency in 1..=agencies {
        let count = rows.unwrap_or(COURSE_SIZES[((agency - 1) % 5) as usize]);
        let path = dir.join(format!("dataset-{agency}.csv"));
        // Each agency's rows depend on the seed and the agency only, not on the others.
        let data = datasets::generate(seed.wrapping_mul(1_000_003).wrapping_add(agency), count);
        if let Err(e) = datasets::write(&path, &data) {
            eprintln!("datagen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("datagen: wrote {} ({count} bets)", path.display());
    }
    ExitCode::SUCCESS
}
