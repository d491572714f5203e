//! Storage: what the lottery needs to keep, behind one seam.
//!
//! The service holds an `Arc<dyn Engine>` and speaks only the [`Engine`] face: admit a
//! batch, stage it, make it durable, answer a replay, record an agency done, read a resume
//! point, a tally and the total, close. How an engine keeps them is its own business; [`open`]
//! picks the one the [`Settings`] ask for. Everything below the face is private to this
//! folder, so the compiler keeps code outside it from reaching an engine directly.
//!
//! - `engine`: the face itself: the [`Engine`] trait and the values it takes and gives.
//! - `ledger`: the rules of sequencing and replay (which batch comes next, which one is a
//!   replay, when an agency may finish), written once as a pure type any engine can hold, and
//!   the values the face answers with; `replays` keeps each agency's last answers.
//! - `error`: why storage refuses ([`StoreError`]) or cannot open ([`OpenError`]).
//! - `settings`: what the store is told by the central's configuration.
//! - `journal`: the default engine: the winners file plus an append-only journal, synced in
//!   groups.
//! - `postgres`: the engine for a PostgreSQL database (`SERVER_DATABASE_URL`), which several
//!   centrals may share.
//! - `memory`: an engine that keeps nothing on disk, for the tests of the layers above.
//! - `winners_file`: the winners file's format (header, rows), the same from either engine.
//! - `tests`: one behaviour suite that every engine runs.
//!
mod engine;
mod error;
mod journal;
mod ledger;
#[cfg(test)]
pub(crate) mod memory;
mod postgres;
mod replays;
mod settings;
#[cfg(test)]
mod tests;
mod winners_file;

use std::sync::Arc;

pub use engine::{CheckedBatch, Engine, Settled, Staged, Ticket};
pub use error::{OpenError, StoreError};
pub use ledger::{Admission, Committed, Progress, Resume, Tally};
pub use postgres::DatabaseSettings;
pub use settings::{export_winners, ExportError, Settings};
pub use winners_file::WinnersFormat;

use crate::metrics::SyncTimer;

/// Opens the storage engine `settings` describe: the PostgreSQL database when they name one,
/// else the journal beside the winners file; recovers the lottery it holds. Each journal
/// sync or database commit is observed into `timer`.
///
/// # Errors
/// [`OpenError::Files`] when its files cannot be created, read, written or synced;
/// [`OpenError::Recover`] when what it holds cannot be used (a damaged journal, another
/// number of agencies); [`OpenError::Database`] when the database cannot be reached or holds
/// another lottery: the central must not start then.
pub fn open(settings: &Settings, timer: SyncTimer) -> Result<Arc<dyn Engine>, OpenError> {
    if let Some(database) = &settings.database {
        let engine = postgres::Postgres::open(database, settings.agencies).map_err(OpenError::Database)?;
        return Ok(Arc::new(engine.warm_up().timed(timer)));
    }
    let engine = journal::Journal::open(&settings.storage_path, settings.agencies, settings.winners_format)?;
    Ok(Arc::new(engine.timed(timer)))
}
