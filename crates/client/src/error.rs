//! What can stop an agency before its work is done.

use std::{fmt, io, time::Duration};

use protocol::{ErrorKind, InvalidBet};

use crate::dataset::DatasetError;

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
    /// The connection broke or carried something that is not a message.
    Transport(protocol::Error),
    /// The central did not answer (or take a request) within the agency's timeout.
    TimedOut {
        /// The timeout (`server.timeout`).
        after: Duration,
    },
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
    /// The central says it holds more of this agency's bets than its dataset has: the
    /// dataset is not the one uploaded before.
    DatasetMismatch {
        /// Bets the central committed for the agency.
        committed: u64,
        /// Valid bets in the dataset.
        available: u64,
    },
    /// The central holds `committed` bets for this agency, but they are not this dataset's
    /// first ones (their digest differs): another upload under the same agency id.
    NotThisDataset {
        /// Bets the central holds.
        committed: u64,
    },
    /// Retrying did not help within the configured total.
    GaveUp {
        /// Retries made.
        attempts: u32,
        /// Time spent waiting between them.
        waited: Duration,
        /// Time from the first failure to giving up: the waits and every attempt (name
        /// lookups, connects, exchanges), as the clock measured it.
        elapsed: Duration,
        /// The last failure.
        last: Box<ClientError>,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::TimedOut { after } => {
                write!(f, "the central did not answer: timed out after {after:?}")
            }
            ClientError::Connect { address, source } => {
                write!(f, "cannot connect to the central at {address}: {source}")
            }
            ClientError::Transport(e) => write!(f, "connection to the central failed: {e}"),
            ClientError::Refused { kind, message } => write!(f, "the central refused ({kind}): {message}"),
            ClientError::UnexpectedResponse(what) => write!(f, "unexpected answer from the central: {what}"),
            ClientError::Dataset(e) => e.fmt(f),
            ClientError::InvalidBet(e) => write!(f, "invalid bet: {e}"),
            ClientError::DatasetMismatch { committed, available } => write!(
                f,
                "the central holds {committed} bets of this agency but its dataset has only {available}"
            ),
            ClientError::NotThisDataset { committed } => write!(
                f,
                "the central holds {committed} bets for this agency, but they are not the first {committed} of this \
                 dataset: is another agency uploading with the same id?"
            ),
            ClientError::GaveUp { attempts, waited, elapsed, last } => write!(
                f,
                "gave up after {attempts} retries in {:.1}s ({waited:?} of it waiting between them): {last}",
                elapsed.as_secs_f64()
            ),
        }
    }
}

impl ClientError {
    /// The `action:` of the log line reporting this failure.
    #[must_use]
    pub fn action(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Transport(_)
            | ClientError::TimedOut { .. }
            | ClientError::Refused { .. }
            | ClientError::UnexpectedResponse(_) => "exchange",
            ClientError::Dataset(_)
            | ClientError::DatasetMismatch { .. }
            | ClientError::NotThisDataset { .. } => "read_dataset",
            ClientError::InvalidBet(_) => "bet_checked",
            ClientError::GaveUp { last, .. } => last.action(),
        }
    }

    /// Whether trying again later may succeed: the central was unreachable, the connection
    /// broke, or the central was busy or could not store. Every other failure would repeat.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            // A TLS handshake the central's certificate fails will fail again: not an outage.
            ClientError::Connect { source, .. } => source.kind() != std::io::ErrorKind::InvalidData,
            ClientError::Transport(_) | ClientError::TimedOut { .. } => true,
            ClientError::Refused { kind, .. } => {
                matches!(kind, ErrorKind::Busy | ErrorKind::Storage | ErrorKind::Overloaded)
            }
            _ => false,
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
