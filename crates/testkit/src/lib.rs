//! Support for the integration tests of `server` and `client`; not part of either binary.
//!
//! - [`process`]: a real child process whose log lines can be awaited with a deadline.
//! - [`datasets`]: deterministic agency datasets in the course's format, with accented names.
//! - [`postgres`]: a throwaway PostgreSQL server on loopback, one database per test.
//! - [`reference`]: the lottery's winning rule written again from its definition, so tests
//!   check the binaries against something they do not share code with.
//! - [`TempDir`]: a scratch directory removed on drop.

pub mod datasets;
pub mod postgres;
pub mod process;
pub mod reference;

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

/// A fresh directory under the system's temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates a directory named after `prefix`, this process and a counter.
    ///
    /// # Panics
    /// When the directory cannot be created (a test cannot go on without it).
    #[must_use]
    pub fn new(prefix: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    #[must_use]
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
