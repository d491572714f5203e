//! The central of the lottery: receives the agencies' bets over TCP, decides the winners,
//! stores them, and answers the total once every agency is done.
//!
//! `main.rs` only reads the configuration, installs the signal handler and calls
//! [`Server::run`]; everything else lives here so tests can run a real central in-process on
//! port 0 and stop it through a [`ShutdownHandle`].

pub mod completion;
pub mod config;
pub mod connections;
pub mod error;
pub mod handler;
pub mod healthcheck;
pub mod held_answers;
pub mod identity;
pub mod peers;
pub mod rules;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod store;

pub use config::Config;
pub use error::ServerError;
pub use server::Server;
pub use service::Lottery;
pub use shutdown::ShutdownHandle;
