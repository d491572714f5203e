//! The connection layer: sockets, frames and the stop, and nothing of the lottery's rules.
//!
//! - `server`: [`Server`], the accept loop, which owns every connection thread;
//! - `connections`: the registry that says who may hold a connection slot (and evicts to
//!   make room) and lets the stop reach every socket;
//! - `descriptors`: the file-descriptor limit, raised at start and checked against the cap;
//! - `handler`: one connection, from accept to close: read, handle, flush;
//! - `held_answers`: when a connection's batch answers go out (group commit as it sees it);
//! - `shutdown`: the switch that stops the central within a second;
//! - `peers`: the pause after a failed `accept`, and the throttle of warnings about peers.
//!
//! Calls go down only: into [`crate::lottery`] for every answer, never into the store.

mod connections;
mod descriptors;
mod handler;
mod held_answers;
mod peers;
mod server;
mod shutdown;

pub use server::Server;
pub use shutdown::{ShutdownHandle, FORCE_CLOSE_AFTER, STOP_BUDGET, WRITE_GRACE};
