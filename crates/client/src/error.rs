//! What can stop an agency before its work is done.

use std::{fmt, io};

use protocol::{ErrorKind, InvalidBet};

use crate::bets::DatasetError;

/// Why the agency failed; each variant is logged as one `result: fail` line and exits 1.
#[derive(Debug)]
pub enum ClientError {
    /// The central could not be reached.
    Connect {
        /// The configured address.
        address: String,
        /// Why.
        source: io::Error,
    },
    /// The connection broke, timed out, or carried something that is not a message.
    Transport(protocol::Error),
    /// The central refused a request.
    Refused {
        /// The kind of refusal.
        kind: ErrorKind,
        /// The central's reason.
        message: String,
    },
    /// The central answered something that does not fit the request.
    UnexpectedResponse(String),
    /// The dataset could not be read.
    Dataset(DatasetError),
    /// The bet of exercise 5 is not valid.
    InvalidBet(InvalidBet),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { address, source } => {
                write!(f, "cannot connect to the central at {address}: {source}")
            }
            ClientError::Transport(e) => write!(f, "connection to the central failed: {e}"),
            ClientError::Refused { kind, message } => write!(f, "the central refused ({kind}): {message}"),
            ClientError::UnexpectedResponse(what) => write!(f, "unexpected answer from the central: {what}"),
            ClientError::Dataset(e) => e.fmt(f),
            ClientError::InvalidBet(e) => write!(f, "invalid bet: {e}"),
        }
    }
}

impl ClientError {
    /// The `action:` of the log line reporting this failure.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Transport(_) | ClientError::Refused { .. } | ClientError::UnexpectedResponse(_) => {
                "exchange"
            }
            ClientError::Dataset(_) => "read_dataset",
            ClientError::InvalidBet(_) => "bet_checked",
        }
    }
}

impl std::error::Error for ClientError {}

impl From<protocol::Error> for ClientError {
    fn from(e: protocol::Error) -> Self {
        ClientError::Transport(e)
    }
}

impl From<DatasetError> for ClientError {
    fn from(e: DatasetError) -> Self {
        ClientError::Dataset(e)
    }
}
