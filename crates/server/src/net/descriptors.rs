//! The file-descriptor limit: raised to what the system allows at start, and checked against
//! the connection cap, so a central never accepts connections it cannot serve.
//!
//! Each connection costs two descriptors (its socket, and the registry's clone of it that
//! lets the stop reach it); the listener, the store's files or database sockets, the log and
//! the standard streams need a few more, [`RESERVED`] in all.

use std::fmt;

/// Descriptors kept for everything but connections.
pub const RESERVED: u64 = 64;

/// The cap does not fit the descriptors the system allows.
#[derive(Debug)]
pub struct TooFew {
    /// Descriptors the cap needs.
    pub needed: u64,
    /// The soft limit after raising it to the hard one.
    pub allowed: u64,
    /// The cap.
    pub max_connections: usize,
}

impl fmt::Display for TooFew {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SERVER_MAX_CONNECTIONS={} needs {} file descriptors (2 a connection + {RESERVED}) but the system allows {}: \
             raise the hard limit (ulimit -Hn, or LimitNOFILE / --ulimit nofile) or set SERVER_MAX_CONNECTIONS to at most {}",
            self.max_connections,
            self.needed,
            self.allowed,
            self.allowed.saturating_sub(RESERVED) / 2
        )
    }
}

impl std::error::Error for TooFew {}

/// Raises the soft `RLIMIT_NOFILE` to the hard one, then checks that `max_connections` fit.
///
/// # Errors
/// [`TooFew`] when they do not.
pub fn raise_and_check(max_connections: usize) -> Result<u64, TooFew> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let needed = 2 * max_connections as u64 + RESERVED;
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            let raised = Rlimit { current: Some(hard), maximum: Some(hard) };
            // Raising the soft limit up to the hard one is always permitted; if it fails all
            // the same, the check below says what the current limit allows.
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
    }
    // `None` is no limit at all.
    let allowed = limit.current.unwrap_or(u64::MAX);
    if needed > allowed {
        return Err(TooFew { needed, allowed, max_connections });
    }
    log::info!("action: descriptors | result: success | allowed: {allowed} | needed: {needed}");
    Ok(allowed)
}
