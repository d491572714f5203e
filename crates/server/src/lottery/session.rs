//! What the lottery keeps of one connection from one request to the next: what it proved
//! (`identity`), and the switch that ends its held total query early when the connection
//! gives its slot up to a newcomer (`completion`). The connection layer makes one per
//! connection and hands it to every [`Lottery::handle`](super::Lottery::handle); a new
//! per-connection property of the lottery is a field here.

use std::sync::Arc;

use super::{completion::HoldRelease, identity::Proof};

/// One connection's state, as the lottery sees it.
#[derive(Debug)]
pub struct Session {
    /// What the connection has proved, and is proving.
    pub(super) proof: Proof,
    /// Set when the connection must end (it was evicted): a held query returns at once.
    pub(super) release: Arc<HoldRelease>,
}

impl Session {
    /// A connection that has proved nothing yet, whose proofs are bound to `binding` (the
    /// TLS session's exported keying material, or nothing on plain TCP), and whose held
    /// queries `release` ends.
    #[must_use]
    pub fn new(binding: security::Binding, release: Arc<HoldRelease>) -> Session {
        Session { proof: Proof::bound_to(binding), release }
    }

    /// The agency this connection proved it acts for, if any.
    #[must_use]
    pub fn agency(&self) -> Option<u32> {
        self.proof.agency()
    }
}
