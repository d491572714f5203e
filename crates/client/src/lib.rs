//! An agency of the lottery: reads its bets, sends them to the central in batches, and asks
//! for the total winners of all agencies.
//!
//! `main.rs` only parses the command line and reads the configuration; [`commands::run`]
//! installs the signal handler and calls [`agency::run`]; the parts below are split so each can be tested alone: [`batch`] (pure
//! splitting), [`dataset`] (CSV rows to bets, checked in place as `protocol::BetRef`s),
//! [`client`] (the conversation with the
//! central), [`retry`] (capped exponential backoff, bounded in total), [`resolve`] (name
//! lookups with a deadline), [`window`] (how many batches go unanswered at once).

pub mod agency;
pub mod batch;
pub mod client;
pub mod commands;
pub mod config;
pub mod dataset;
pub mod duration;
pub mod endpoint;
pub mod error;
pub mod latency;
pub mod resolve;
pub mod retry;
pub mod stop;
pub mod window;

pub use config::Config;
pub use error::ClientError;
pub use stop::Stop;
