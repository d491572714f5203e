//! What the store is told: the settings the central's configuration hands down, and the one
//! operation on them that is not an engine's face, writing the winners file from a database.

use std::{fmt, path::Path, path::PathBuf};

use super::{
    engine::Engine,
    error::{OpenError, StoreError},
    postgres::{DatabaseSettings, Postgres},
    winners_file::WinnersFormat,
};

/// The store's settings, built by the central's configuration (`crate::config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Agencies taking part, numbered 1 to this.
    pub agencies: u32,
    /// The winners file (the journal lives beside it).
    pub storage_path: PathBuf,
    /// How the winners file writes each winner.
    pub winners_format: WinnersFormat,
    /// A PostgreSQL database to keep the lottery in instead of the files, if any.
    pub database: Option<DatabaseSettings>,
}

/// Why [`export_winners`] failed.
#[derive(Debug)]
pub enum ExportError {
    /// The database cannot be opened.
    Open(OpenError),
    /// Reading the winners or writing the file failed.
    Write(StoreError),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Open(e) => write!(f, "{e}"),
            ExportError::Write(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Open(e) => Some(e),
            ExportError::Write(e) => Some(e),
        }
    }
}

/// Writes the winners file (the same CSV the journal engine keeps) to `out` from the database
/// `database` names, for a lottery among `agencies`; returns the rows written and the
/// database's description for the log.
///
/// # Errors
/// [`ExportError::Open`] when the database cannot be opened, [`ExportError::Write`] when the
/// winners cannot be read or the file written.
pub fn export_winners(
    database: &DatabaseSettings,
    agencies: u32,
    format: WinnersFormat,
    out: &Path,
) -> Result<(u64, String), ExportError> {
    let engine = Postgres::open(database, agencies).map_err(|e| ExportError::Open(OpenError::Database(e)))?;
    let result = engine.export_winners_file(out, format);
    // Closing a database engine only returns its connections; the export's outcome is what counts.
    let _ = engine.close();
    result.map(|rows| (rows, engine.location())).map_err(ExportError::Write)
}
