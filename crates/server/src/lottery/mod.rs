//! The lottery layer: the answer to each request in the lottery's terms, with no socket and
//! no file in sight. The connection layer (`net`) calls down into it; it calls down into the
//! store through the `Engine` face only.
//!
//! - `service`: [`Lottery`], one method per request;
//! - `rules`: which bets win, and the simulated cost of checking them;
//! - `identity`: who a connection may act for (the agencies' keys and the proofs);
//! - `completion`: where held total queries wait for the lottery to complete;
//! - `session`: what the lottery keeps of one connection between its requests;
//! - `stop`: the stop's clock, which a batch's check is measured against.

mod completion;
mod identity;
pub mod rules;
mod service;
mod session;
mod stop;
#[cfg(test)]
mod tests;

use std::time::Duration;

use runtime::throttle::Throttle;

pub use crate::store::Ticket;
pub use completion::HoldRelease;
pub use service::{Counted, Lottery, Reply, Status, MAX_BATCH_BETS};
pub use session::Session;
pub use stop::{StopClock, CHECK_GRACE};

/// The throttle of every warning about peers (a refused request here, a malformed frame in
/// the connection layer), shared by all connection threads: at most one line per kind a
/// second, so no peer can fill the disk through the log.
pub static WARNINGS: Throttle = Throttle::new(Duration::from_secs(1));
