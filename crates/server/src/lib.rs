//! The central of the lottery: receives the agencies' bets over TCP, decides the winners,
//! stores them, and answers the total once every agency is done.
//!
//! Three layers, each a folder, calling only downward:
//! - [`net`]: the accept loop, one thread per connection, the stop;
//! - [`lottery`]: the answer to each request, in the lottery's terms;
//! - [`store`]: the one seam to storage (`Engine`), with its engines private behind it.
//!
//! Beside them, [`http`]: the read-only HTTP listener (metrics, status page, readiness),
//! another entry layer that calls down into the lottery.
//!
//! At the top: `config` (the settings, which it hands down to each layer),
//! `error` (why the central cannot start or close), `healthcheck` (the container's probe) and
//! `metrics` (the counters every layer adds to).
//! `commands` holds what each of the binary's commands does (serve, healthcheck,
//! export-winners); `main.rs` only parses the command line and reads the configuration;
//! everything else lives here so tests can run a real central in-process on
//! port 0 and stop it through a [`ShutdownHandle`].

pub mod commands;
pub mod config;
pub mod error;
pub mod healthcheck;
pub mod http;
pub mod lottery;
pub mod metrics;
pub mod net;
pub mod store;

pub use config::Config;
pub use error::ServerError;
pub use lottery::Lottery;
pub use net::{Server, ShutdownHandle};
