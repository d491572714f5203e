//! Why the central cannot start, or could not close cleanly: the errors `main` turns into an
//! exit status. A refused request is not one of these (it is answered with a typed
//! `Response::Error` and the central goes on).

use std::{error::Error, fmt, io, net::SocketAddr};

use crate::store::{OpenError, StoreError};

/// Why [`Server::bind`](crate::Server::bind) or [`Server::run`](crate::Server::run) failed.
#[derive(Debug)]
pub enum ServerError {
    /// The store cannot be opened: its files, the lottery they hold, or the database (the
    /// store's own error says which, and what to do).
    Store(OpenError),
    /// The agencies' keys or the TLS certificate cannot be loaded.
    Credentials(security::SecurityError),
    /// `SERVER_IP` cannot be resolved.
    Resolve {
        /// The address asked for.
        ip: String,
        /// What the resolver said; `None` when it answered with no address.
        source: Option<io::Error>,
    },
    /// The listening socket cannot be set up on `addr`.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the system said.
        source: io::Error,
    },
    /// The listening socket cannot report its own address.
    LocalAddr(io::Error),
    /// The connection cap needs more file descriptors than the system allows; the message
    /// says how many and what to set.
    Descriptors(String),
    /// The HTTP listener (`SERVER_HTTP_PORT`) cannot start.
    Http(io::Error),
    /// The last sync of the store, at shutdown, failed.
    CloseStore(StoreError),
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Store(e) => write!(f, "{e}"),
            ServerError::Credentials(e) => write!(f, "cannot load the credentials: {e}"),
            ServerError::Resolve { source: Some(e), .. } => write!(f, "{e}"),
            ServerError::Resolve { ip, source: None } => write!(f, "{ip} resolves to no address"),
            ServerError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ServerError::LocalAddr(e) => write!(f, "{e}"),
            ServerError::Descriptors(why) => write!(f, "{why}"),
            ServerError::Http(e) => write!(f, "cannot start the HTTP listener: {e}"),
            // The system's words alone, as the close line has always said them.
            ServerError::CloseStore(StoreError::Io(e)) => write!(f, "{e}"),
            ServerError::CloseStore(e) => write!(f, "{e}"),
        }
    }
}

impl Error for ServerError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ServerError::Bind { source, .. } => Some(source),
            ServerError::Store(e) => Some(e),
            ServerError::Resolve { source, .. } => source.as_ref().map(|e| e as &(dyn Error + 'static)),
            ServerError::LocalAddr(e) | ServerError::Http(e) => Some(e),
            ServerError::CloseStore(e) => Some(e),
            ServerError::Credentials(e) => Some(e),
            ServerError::Descriptors(_) => None,
        }
    }
}

impl From<OpenError> for ServerError {
    fn from(e: OpenError) -> Self {
        ServerError::Store(e)
    }
}
