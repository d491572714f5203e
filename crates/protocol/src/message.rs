//! The messages agencies and the central exchange, as they travel.
//!
//! Every request an agency sends is answered by exactly one response. Variant order is part of
//! the wire format (the codec writes a variant's index): add new variants at the end, never
//! reorder. `Request::Echo` and `Response::Echo` share index 0, so the reply to an Echo frame
//! is byte for byte the frame that was sent, which is what the netcat check compares.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{codec, frame};

/// A bet as it travels: four plain strings, not yet checked. The central turns it into a
/// [`crate::Bet`] (validating it) before it counts; the agency builds it from a valid `Bet`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct WireBet {
    /// The player's first name(s), UTF-8.
    pub first_name: String,
    /// The player's last name(s), UTF-8.
    pub last_name: String,
    /// The player's document number, ASCII digits.
    pub document: String,
    /// The player's birth date as `YYYY-MM-DD`.
    pub birthdate: String,
}

impl WireBet {
    /// Bytes this bet adds to a `BetBatch` payload.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        codec::encoded_len(self)
    }
}

/// What an agency asks the central.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Answered by [`Response::Echo`] with the same bytes: a liveness check for netcat.
    Echo(Vec<u8>),
    /// Bets of one agency, checked and stored as a unit. Answered by
    /// [`Response::BatchResult`], or by [`Response::Error`] with nothing stored.
    BetBatch {
        /// The agency's number, 1 to the number of agencies the central expects.
        agency: u32,
        /// The batch's number within the agency's upload: 1, 2, 3, ..., across connections
        /// and restarts (a batch already committed is answered again, not stored again).
        sequence: u64,
        /// The bets; a single bet is a batch of one.
        bets: Vec<WireBet>,
    },
    /// The agency has sent all its bets in `batches` batches. Answered by [`Response::Ack`].
    AgencyDone {
        /// The agency's number.
        agency: u32,
        /// How many batches it sent; the central refuses the claim if it saw a different count.
        batches: u64,
    },
    /// How many winners do all agencies have? Answered by [`Response::Total`] once every
    /// expected agency is done, by [`Response::Pending`] before.
    WinnersQuery {
        /// The agency asking (for the central's log).
        agency: u32,
    },
    /// Where does this agency's upload stand? Answered by [`Response::Resumed`] with what the
    /// central has durably committed, so an agency that lost its connection or restarted
    /// sends the batch after the last committed one, and no bet twice.
    Resume {
        /// The agency asking.
        agency: u32,
    },
    /// The start of an agency's proof of identity: "I act for `agency`". Answered by
    /// [`Response::Challenge`]; the agency signs it and sends [`Request::Prove`].
    Hello {
        /// The agency the connection will act for.
        agency: u32,
    },
    /// The agency's signature of the challenge just received (Ed25519, 64 bytes; see the
    /// `security` crate's `proof`). Answered by [`Response::Ack`], after which the
    /// connection acts for that agency only, or by an `Unauthenticated` error.
    Prove {
        /// The agency, as in its `Hello`.
        agency: u32,
        /// The signature.
        signature: Vec<u8>,
    },
}

impl Request {
    /// Bytes on the wire, length prefix included, of a `BetBatch` whose bets encode to
    /// `bets_len` bytes (the sum of their [`WireBet::encoded_len`]).
    #[must_use]
    pub fn bet_batch_frame_len(bets_len: usize) -> usize {
        let empty = Request::BetBatch { agency: 0, sequence: 0, bets: Vec::new() };
        frame::PREFIX_LEN + codec::encoded_len(&empty) + bets_len
    }
}

/// What the central answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The bytes of the [`Request::Echo`] it answers.
    Echo(Vec<u8>),
    /// The batch `sequence` is stored (winners written and synced to disk).
    BatchResult {
        /// The sequence of the batch this answers.
        sequence: u64,
        /// Positions (0-based) within the batch of the bets that won, ascending.
        winners: Vec<u32>,
    },
    /// The agency's `AgencyDone` is recorded.
    Ack,
    /// Every expected agency is done: the winners of all of them.
    Total {
        /// Winning bets across all agencies.
        winners: u64,
    },
    /// Some agencies are still loading their bets; ask again later.
    Pending {
        /// How many expected agencies have not sent `AgencyDone` yet.
        agencies_pending: u32,
    },
    /// The request was refused; nothing it asked for was done.
    Error {
        /// What kind of refusal, for a program to act on.
        kind: ErrorKind,
        /// Why, for a person to read.
        message: String,
    },
    /// What the central has durably committed for the agency of a [`Request::Resume`].
    Resumed {
        /// The last batch committed (0: none); the next batch to send is this plus one.
        last_sequence: u64,
        /// Bets committed, over all those batches: the agency skips this many valid bets of
        /// its dataset, whatever batch size it used before.
        bets: u64,
        /// Winners among those bets.
        winners: u64,
        /// Whether the agency's `AgencyDone` is committed.
        done: bool,
        /// The digest of the `bets` committed bets, in upload order (`Digest::to_bytes`):
        /// what the agency's own dataset must give for its first `bets` bets.
        digest: [u8; 16],
    },
    /// A fresh random challenge for the agency of a [`Request::Hello`] to sign.
    Challenge {
        /// 32 random bytes, never sent twice.
        nonce: Vec<u8>,
    },
}

/// The kinds of refusal in [`Response::Error`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The frame's payload is not a valid request.
    Malformed,
    /// The frame's declared length exceeds the central's maximum; the connection is closed.
    FrameTooLarge,
    /// A bet in the batch is not valid; the message says which and why.
    InvalidBet,
    /// The agency number is outside 1 to the number of agencies the central expects.
    UnknownAgency,
    /// A batch arrived out of order, or `AgencyDone` counted other batches than were seen.
    OutOfSequence,
    /// The agency already sent `AgencyDone`; its bets are closed.
    AgencyFinished,
    /// The central is at its connection limit; try again later.
    Busy,
    /// The central could not store the batch; nothing of it was acknowledged.
    Storage,
    /// The batch holds more bets than the central takes in one batch; nothing was stored.
    BatchTooLarge,
    /// The batch holds no bets: there is nothing for it to do, and nothing was stored.
    EmptyBatch,
    /// The central's memory budget for frames in flight is spent by other connections; the
    /// frame was skipped unread. Try again later.
    Overloaded,
    /// The batch is an old one the central no longer keeps the answer of (it keeps the last
    /// few of each agency for replays); nothing was stored.
    ReplayExpired,
    /// The central takes requests in an agency's name only from a connection that proved it
    /// holds that agency's key (`Hello`, `Prove`), and this one has not (or its proof failed).
    Unauthenticated,
    /// The connection proved it acts for another agency than the one this request names.
    NotYourAgency,
    /// The batch came under a sequence already committed with other bets: another upload
    /// under the same agency. Nothing was stored or merged.
    Conflict,
}

impl ErrorKind {
    /// The kind's name in log lines (`busy`, `invalid_bet`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::FrameTooLarge => "frame_too_large",
            ErrorKind::InvalidBet => "invalid_bet",
            ErrorKind::UnknownAgency => "unknown_agency",
            ErrorKind::OutOfSequence => "out_of_sequence",
            ErrorKind::AgencyFinished => "agency_finished",
            ErrorKind::Busy => "busy",
            ErrorKind::Storage => "storage",
            ErrorKind::BatchTooLarge => "batch_too_large",
            ErrorKind::EmptyBatch => "empty_batch",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::ReplayExpired => "replay_expired",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::NotYourAgency => "not_your_agency",
            ErrorKind::Conflict => "conflict",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_frame_len_matches_the_encoded_frame() {
        let bet = WireBet {
            first_name: "Joaquín".into(),
            last_name: "Saldaña".into(),
            document: "12345678".into(),
            birthdate: "1980-02-29".into(),
        };
        for n in [0, 1, 7] {
            let bets = vec![bet.clone(); n];
            let predicted = Request::bet_batch_frame_len(bets.iter().map(WireBet::encoded_len).sum());
            let message = Request::BetBatch { agency: 4, sequence: 12, bets };
            assert_eq!(predicted, frame::PREFIX_LEN + codec::encoded_len(&message));
        }
    }
}
