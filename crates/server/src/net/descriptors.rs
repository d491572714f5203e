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

/// Raises the soft `RLIMIT_NOFILE` to the hard one, then fits the connection cap to it:
/// `max_connections` as it is when it fits; when it does not, the most that fits if the cap
/// is the default sized from the agencies (`chosen` false: a lottery the settings accept must
/// start, and its waiting agencies make room for the others, see `connections.rs`), or an
/// error if the operator chose it. Returns the cap to serve.
///
/// # Errors
/// [`TooFew`] when an operator's cap does not fit, or not even one connection does.
pub fn fit_cap(max_connections: usize, chosen: bool) -> Result<usize, TooFew> {
    let allowed = raise_limit();
    let needed = 2 * max_connections as u64 + RESERVED;
    if needed <= allowed {
        log::debug!("action: descriptors | result: success | allowed: {allowed} | needed: {needed}");
        return Ok(max_connections);
    }
    let most = usize::try_from(allowed.saturating_sub(RESERVED) / 2).unwrap_or(usize::MAX);
    if chosen || most == 0 {
        return Err(TooFew { needed, allowed, max_connections });
    }
    log::warn!(
        "action: descriptors | result: warning | max_connections: {most} | sized_for_agencies: {max_connections} | \
         allowed: {allowed} | note: the file-descriptor limit holds fewer connections than agencies; \
         waiting agencies make room for the others; raise the hard limit (ulimit -Hn) to serve all at once"
    );
    Ok(most)
}

/// Raises the soft limit to the hard one (always permitted), and returns the soft limit then
/// in force (`u64::MAX` for none).
fn raise_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            let raised = Rlimit { current: Some(hard), maximum: Some(hard) };
            // If it fails all the same, the caller says what the current limit allows.
            if setrlimit(Resource::Nofile, raised).is_ok() {
                limit = raised;
            }
        }
    }
    limit.current.unwrap_or(u64::MAX)
}
