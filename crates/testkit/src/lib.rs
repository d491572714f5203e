//! Support for the integration tests of `server` and `client`; not part of either binary.
//!
//! - [`process`]: a real child process whose log lines can be awaited with a deadline.
//! - [`datasets`]: deterministic agency datasets in the course's format, with accented names.
//! - [`reference`]: the lottery's winning rule written again from its definition, so tests
//!   check the binaries against something they do not share code with.
//! - [`TempDir`]: a scratch directory removed on drop.

pub mod datasets;
pub mod process;
pub mod reference;

use std::path::{Path, PathBuf};

/// A fresh directory under the system's temp dir, removed (with its contents) on drop.
/// A thin wrapper over [`tempfile::TempDir`] that keeps the tests' `join` shorthand.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// Creates a directory whose name starts with `prefix`, unique on this machine.
    ///
    /// # Panics
    /// When the directory cannot be created (a test cannot go on without it).
    #[must_use]
    pub fn new(prefix: &str) -> TempDir {
        let dir = tempfile::Builder::new().prefix(&format!("{prefix}-")).tempdir();
        TempDir(dir.expect("create a temp dir"))
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// A path inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}
