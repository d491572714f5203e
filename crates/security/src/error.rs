//! What can go wrong loading credentials or setting up TLS.

use std::{fmt, io, path::PathBuf};

/// A credential or TLS setup failure, naming the file when there is one.
#[derive(Debug)]
pub enum SecurityError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A file's content is not what it should be.
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line when it helps.
        reason: String,
    },
    /// rustls refused the configuration (a key that does not match its certificate, say).
    Tls(rustls::Error),
    /// A certificate could not be made.
    Certificate(rcgen::Error),
    /// The system's random source failed.
    Random,
}

impl fmt::Display for SecurityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecurityError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            SecurityError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
            SecurityError::Tls(e) => write!(f, "TLS: {e}"),
            SecurityError::Certificate(e) => write!(f, "certificate: {e}"),
            SecurityError::Random => f.write_str("the system's random source failed"),
        }
    }
}

impl std::error::Error for SecurityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SecurityError::Io { source, .. } => Some(source),
            SecurityError::Tls(e) => Some(e),
            SecurityError::Certificate(e) => Some(e),
            SecurityError::Invalid { .. } | SecurityError::Random => None,
        }
    }
}

impl From<rustls::Error> for SecurityError {
    fn from(e: rustls::Error) -> Self {
        SecurityError::Tls(e)
    }
}

impl From<rcgen::Error> for SecurityError {
    fn from(e: rcgen::Error) -> Self {
        SecurityError::Certificate(e)
    }
}

/// Reads a whole file, naming it on failure.
pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|source| SecurityError::Io { path: path.to_owned(), source })
}

pub(crate) fn invalid(path: &std::path::Path, reason: impl Into<String>) -> SecurityError {
    SecurityError::Invalid { path: path.to_owned(), reason: reason.into() }
}
