//! The lottery's wire protocol, shared by the central (server) and the agencies (clients).
//!
//! Layers, from the socket up:
//! - [`frame`]: a message travels as a 4-byte big-endian length and that many bytes. Knows
//!   bytes, not messages; refuses oversized lengths before allocating.
//! - [`codec`]: turns messages into payload bytes and back. The only module that knows the
//!   encoding (bincode 1.3, fixed-width big-endian integers), so it can be swapped alone.
//! - [`message`]: the typed requests and responses, and [`message::WireBet`], a bet as it
//!   travels (plain strings, unchecked).
//! - [`connection`]: reads and writes whole messages over any `Read + Write`.
//! - [`deadline`] and [`budget`]: what a connection to an untrusted peer allows it: a
//!   deadline for each whole frame and answer, and a memory budget shared by all connections.
//! - [`bet`]: the domain's bet, valid by construction, borrowed ([`BetRef`]) or owned
//!   ([`Bet`]); the only way from a `WireBet` (or a CSV row) to either is through its
//!   validation.
//! - [`digest`]: what a run of bets hashes to, the same on both ends, so a replayed batch and
//!   a finished upload are checked by content.

pub mod bet;
pub mod budget;
pub mod codec;
pub mod connection;
pub mod deadline;
pub mod digest;
pub mod encoded_bets;
pub mod error;
pub mod frame;
pub mod message;
mod read_buffer;
mod short_copy;

pub use bet::{Bet, BetRef, InvalidBet};
pub use budget::Budget;
pub use connection::Connection;
pub use deadline::{Guards, LateBytes, Timeouts};
pub use digest::Digest;
pub use encoded_bets::EncodedBets;
pub use error::Error;
pub use frame::DEFAULT_MAX_FRAME_LEN;
pub use message::{ErrorKind, Request, Response, WireBet, WireBetRef, WireBets, MAX_HOLD_MS, MAX_WINDOW};
