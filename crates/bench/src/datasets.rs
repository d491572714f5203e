//! The agencies' dataset files of a scenario, made by `datagen` when missing.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The agencies' dataset files of a scenario (not `client::dataset::Dataset`, one agency's bets being read).
#[derive(Debug, Clone)]
pub struct AgencyFiles {
    /// Holds `dataset-1.csv` … `dataset-N.csv`.
    pub dir: PathBuf,
    /// Bets (rows) of each agency, agency 1 first.
    pub bets: Vec<u64>,
}

impl AgencyFiles {
    /// The dataset under `dir`, written by `datagen` first if any file is missing: `agencies`
    /// agencies of `rows` rows each, or of the course's sizes when `rows` is `None`.
    ///
    /// # Errors
    /// When `datagen` fails or a file cannot be read.
    pub fn ensure(
        bin_dir: &Path,
        dir: PathBuf,
        agencies: u32,
        rows: Option<u64>,
    ) -> Result<AgencyFiles, String> {
        let path = |agency: u32| dir.join(format!("dataset-{agency}.csv"));
        if (1..=agencies).any(|a| !path(a).is_file()) {
            let mut datagen = Command::new(bin_dir.join("datagen"));
            datagen.arg("--dir").arg(&dir).arg("--agencies").arg(agencies.to_string());
            if let Some(rows) = rows {
                datagen.arg("--rows").arg(rows.to_string());
            }
            let status =
                datagen.stdout(Stdio::null()).status().map_err(|e| format!("cannot run datagen: {e}"))?;
            if !status.success() {
                return Err(format!("datagen failed ({status}) writing {}", dir.display()));
            }
        }
        let mut bets = Vec::new();
        for agency in 1..=agencies {
            let text = fs::read(path(agency)).map_err(|e| format!("{}: {e}", path(agency).display()))?;
            // One bet per line, no header; the generator writes no line breaks inside a field.
            bets.push(text.iter().filter(|&&b| b == b'\n').count() as u64);
        }
        Ok(AgencyFiles { dir, bets })
    }

    /// Bets of all agencies.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.bets.iter().sum()
    }
}
