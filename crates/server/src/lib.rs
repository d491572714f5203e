//! The central of the lottery: receives the agencies' bets over TCP, decides the winners,
//! stores them, and answers the total once every agency is done.
//!
//! `main.rs` only reads the configuration, installs the signal handler and calls
//! [`Server::run`]; everything else lives here so tests can run a real central in-process on
//! port 0 and stop it through a [`ShutdownHandle`].

pub mod config;
pub mod connections;
pub mod handler;
pub mod healthcheck;
pub mod journal;
pub mod lottery;
pub mod peers;
pub mod recovery;
pub mod replays;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod tally;

pub use config::Config;
pub use server::Server;
pub use shutdown::ShutdownHandle;
