//! Support for the end-to-end tests (`crates/e2e`) and the benchmark; not part of either binary.
//!
//! - [`central`]: the one launcher of a central (the real `server` binary), and of agencies
//!   (the real `client` binary) against it.
//! - [`process`]: a real child process whose log lines can be awaited with a deadline.
//! - [`datasets`]: deterministic agency datasets in the course's format, with accented names.
//! - [`postgres`]: a throwaway PostgreSQL server on loopback, one database per test.
//! - [`reference`]: the lottery's winning rule written again from its definition, so tests
//!   check the binaries against something they do not share code with.

pub mod central;
pub mod datasets;
pub mod postgres;
pub mod process;
pub mod reference;
