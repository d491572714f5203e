//! Errors of the protocol layer: what went wrong while reading or writing a message.

use std::{fmt, io, time::Duration};

/// Why a message could not be read or written.
///
/// Each variant is something a caller acts on differently: `Io`, `Closed` and `Truncated` mean the
/// connection is gone; `FrameTooLarge` means the stream can no longer be trusted (its framing
/// is lost) and must be closed; `Malformed` means one frame held garbage but the framing is
/// intact, so the peer can be answered and the connection kept.
#[derive(Debug)]
pub enum Error {
    /// The socket failed, including a read or write timeout (see [`Error::is_timeout`]).
    Io(io::Error),
    /// The peer closed the connection cleanly where an answer was due.
    Closed,
    /// The peer closed the connection in the middle of a frame.
    Truncated {
        /// Bytes the frame (or its length prefix) needed.
        expected: usize,
        /// Bytes that had arrived when the stream ended.
        received: usize,
    },
    /// A frame's declared length exceeds the configured maximum; nothing was allocated for it.
    FrameTooLarge {
        /// The length the frame declared (or, when writing, would have had).
        length: u64,
        /// The maximum in force.
        max: usize,
    },
    /// A complete frame whose payload is not a valid message.
    Malformed(String),
    /// A guarded connection's peer did not send a whole frame, or take a whole answer, within
    /// the frame deadline; the stream is no longer in step.
    TooSlow {
        /// The frame deadline in force.
        limit: Duration,
    },
    /// A batch declares more bets than the reader takes; refused from its header before its
    /// bets were decoded. The frame was whole, so the stream is still in step.
    TooManyBets {
        /// Bets the batch declares.
        bets: u64,
        /// The most taken.
        max: usize,
    },
    /// A guarded connection's frame did not fit the shared memory budget in time; its payload
    /// was skipped unread, so the stream is still in step.
    OverBudget {
        /// The frame's payload length.
        length: usize,
        /// The whole budget, in bytes.
        budget: usize,
    },
}

impl Error {
    /// True when the error is a socket read or write timing out.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Io(e) => matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
            Error::TooSlow { .. } => true,
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "i/o error: {e}"),
            Error::Closed => write!(f, "the peer closed the connection without answering"),
            Error::Truncated { expected, received } => {
                write!(f, "connection closed mid-frame ({received} of {expected} bytes)")
            }
            Error::FrameTooLarge { length, max } => {
                write!(f, "frame of {length} bytes exceeds the maximum of {max}")
            }
            Error::Malformed(reason) => write!(f, "malformed message: {reason}"),
            Error::TooManyBets { bets, max } => {
                write!(f, "the batch declares {bets} bets, the most in one batch is {max}")
            }
            Error::TooSlow { limit } => {
                write!(f, "the peer did not send a whole frame or take a whole answer within {limit:?}")
            }
            Error::OverBudget { length, budget } => write!(
                f,
                "a frame of {length} bytes does not fit the central's memory budget of {budget} bytes now; try again later"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}
