//! The messages agencies and the central exchange, as they travel.
//!
//! Every request an agency sends is answered by exactly one response. Variant order is part of
//! the wire format (the codec writes a variant's index): add new variants at the end, never
//! reorder. `Request::Echo` and `Response::Echo` share index 0, so the reply to an Echo frame
//! is byte for byte the frame that was sent, which is what the netcat check compares.

use std::fmt;

use serde::{
    de::{self, DeserializeSeed, SeqAccess, Visitor},
    ser::SerializeSeq,
    Deserialize, Deserializer, Serialize, Serializer,
};

/// A bet as it travels: four plain strings, not yet checked. The central turns it into a
/// `Bet` (validating it) before it counts; the agency builds it from a valid `Bet`.
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

/// One bet of a [`WireBets`], borrowed from it: four strings, not yet checked.
#[derive(Serialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireBetRef<'a> {
    /// The player's first name(s), UTF-8.
    pub first_name: &'a str,
    /// The player's last name(s), UTF-8.
    pub last_name: &'a str,
    /// The player's document number, ASCII digits.
    pub document: &'a str,
    /// The player's birth date as `YYYY-MM-DD`.
    pub birthdate: &'a str,
}

impl WireBetRef<'_> {
    /// The bet with its own strings.
    #[must_use]
    pub fn to_owned(&self) -> WireBet {
        WireBet {
            first_name: self.first_name.to_owned(),
            last_name: self.last_name.to_owned(),
            document: self.document.to_owned(),
            birthdate: self.birthdate.to_owned(),
        }
    }
}

/// The bets of a batch, packed: every field's bytes in one string, and where each ends. On the
/// wire exactly a sequence of [`WireBet`]s (a `u64` count, then four strings per bet), but a
/// batch costs two allocations however many bets it holds, not four per bet; decoding checks
/// each field's UTF-8 once and copies it into the one string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireBets {
    /// The fields of every bet, one after the other.
    text: String,
    /// Where each field ends in `text`: four per bet, ascending, each a character boundary
    /// of `text` (so each field is UTF-8 by itself), the last one its end.
    ends: Vec<u32>,
}

impl WireBets {
    /// An empty batch with room for `bets` bets of about `text` bytes in all.
    #[must_use]
    pub fn with_capacity(bets: usize, text: usize) -> WireBets {
        WireBets { text: String::with_capacity(text), ends: Vec::with_capacity(bets * 4) }
    }

    /// How many bets it holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ends.len() / 4
    }

    /// Removes every bet, keeping the room they took: a sent batch's buffers hold the next.
    pub fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    /// Whether it holds no bets.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends one bet.
    ///
    /// # Panics
    /// If the batch's text would pass 4 GiB, far beyond any frame the protocol carries.
    pub fn push(&mut self, bet: WireBetRef<'_>) {
        for field in [bet.first_name, bet.last_name, bet.document, bet.birthdate] {
            self.push_field(field);
        }
    }

    fn push_field(&mut self, field: &str) {
        self.text.push_str(field);
        let end = u32::try_from(self.text.len()).expect("a batch's text is bounded by its frame (u32)");
        self.ends.push(end);
    }

    /// The bet at `index`, if there is one.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<WireBetRef<'_>> {
        let ends = self.ends.get(index * 4..index * 4 + 4)?;
        let start = if index == 0 { 0 } else { self.ends[index * 4 - 1] as usize };
        let field = |from: usize, to: u32| &self.text[from..to as usize];
        Some(WireBetRef {
            first_name: field(start, ends[0]),
            last_name: field(ends[0] as usize, ends[1]),
            document: field(ends[1] as usize, ends[2]),
            birthdate: field(ends[2] as usize, ends[3]),
        })
    }

    /// Every bet, in order.
    #[must_use]
    pub fn iter(&self) -> Iter<'_> {
        Iter { rest: &self.text, consumed: 0, ends: self.ends.chunks_exact(4) }
    }
}

/// The bets of a [`WireBets`], in order: see [`WireBets::iter`].
///
/// Walks the ends four at a time, cutting each field off the front of the text that is left
/// (what [`WireBets::get`] computes for one index, without looking it up for every bet, and
/// with one character-boundary check a field).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    /// The text after the fields already handed out.
    rest: &'a str,
    /// Where `rest` starts in the batch's text.
    consumed: usize,
    ends: std::slice::ChunksExact<'a, u32>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = WireBetRef<'a>;

    #[inline]
    fn next(&mut self) -> Option<WireBetRef<'a>> {
        let ends = self.ends.next()?;
        // `WireBets`' invariant: its ends ascend, and each is a character boundary of its
        // text no further than its end, so every cut is in range and on a boundary.
        let mut field = |end: u32| {
            let (field, rest) = self.rest.split_at(end as usize - self.consumed);
            (self.rest, self.consumed) = (rest, end as usize);
            field
        };
        Some(WireBetRef {
            first_name: field(ends[0]),
            last_name: field(ends[1]),
            document: field(ends[2]),
            birthdate: field(ends[3]),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ends.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl From<Vec<WireBet>> for WireBets {
    fn from(bets: Vec<WireBet>) -> WireBets {
        bets.iter().map(WireBet::as_ref).collect()
    }
}

impl FromIterator<WireBet> for WireBets {
    fn from_iter<I: IntoIterator<Item = WireBet>>(bets: I) -> WireBets {
        let mut packed = WireBets::default();
        for bet in bets {
            packed.push(bet.as_ref());
        }
        packed
    }
}

impl<'a> FromIterator<WireBetRef<'a>> for WireBets {
    fn from_iter<I: IntoIterator<Item = WireBetRef<'a>>>(bets: I) -> WireBets {
        let mut packed = WireBets::default();
        for bet in bets {
            packed.push(bet);
        }
        packed
    }
}

impl WireBet {
    /// The bet borrowed as a [`WireBetRef`].
    #[must_use]
    pub fn as_ref(&self) -> WireBetRef<'_> {
        WireBetRef {
            first_name: &self.first_name,
            last_name: &self.last_name,
            document: &self.document,
            birthdate: &self.birthdate,
        }
    }
}

impl Serialize for WireBets {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        for bet in self.iter() {
            seq.serialize_element(&bet)?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for WireBets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<WireBets, D::Error> {
        deserializer.deserialize_seq(BetsVisitor)
    }
}

/// Reads a sequence of bets into one [`WireBets`]: every field's bytes into one buffer, then
/// one UTF-8 check of the whole (a check per field cost more than the bytes: fields are a few
/// bytes long), with SIMD, and one that every field ends on a character boundary, so each field is UTF-8
/// by itself, exactly as when each was checked alone.
struct BetsVisitor;

impl<'de> Visitor<'de> for BetsVisitor {
    type Value = WireBets;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence of bets")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WireBets, A::Error> {
        let mut raw = RawBets::with_capacity(seq.size_hint().unwrap_or(0));
        while seq.next_element_seed(BetSeed(&mut raw))?.is_some() {}
        raw.finish().map_err(de::Error::custom)
    }
}

/// A batch's fields as they are read, before their one UTF-8 check: what the serde path
/// above and the codec's direct reading of a batch (`codec::decode_request`) both fill.
#[derive(Debug)]
pub(crate) struct RawBets {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl RawBets {
    /// Room for `bets` bets, as the peer declares them: a bounded number only is reserved
    /// (the payload, already in memory and capped, bounds the rest).
    pub(crate) fn with_capacity(bets: usize) -> RawBets {
        let bets = bets.min(512);
        RawBets { bytes: Vec::with_capacity(bets * 48), ends: Vec::with_capacity(bets * 4) }
    }

    /// Fields already read: `bytes` one after the other, each ending at its entry of `ends`
    /// (ascending, at most `bytes.len()`).
    pub(crate) fn from_parts(bytes: Vec<u8>, ends: Vec<u32>) -> RawBets {
        RawBets { bytes, ends }
    }

    /// Appends one field's bytes.
    ///
    /// # Errors
    /// When the batch's text would pass 4 GiB (a frame cannot hold that much).
    pub(crate) fn push(&mut self, field: &[u8]) -> Result<(), &'static str> {
        self.bytes.extend_from_slice(field);
        let end = u32::try_from(self.bytes.len()).map_err(|_| "a batch's text passes 4 GiB")?;
        self.ends.push(end);
        Ok(())
    }

    /// The bets, once their bytes are checked: UTF-8 as a whole and every field ending on a
    /// character boundary, so each field is UTF-8 by itself, exactly as when each was checked
    /// alone.
    ///
    /// # Errors
    /// Why they are not, for the peer to read; or when the fields do not make whole bets.
    pub(crate) fn finish(self) -> Result<WireBets, String> {
        if !self.ends.len().is_multiple_of(4) {
            return Err("a bet without all four fields".to_owned());
        }
        // `unsafe` is forbidden here, so the checked bytes are copied into the `String` (one
        // copy a batch, far cheaper than std's check of them: names are full of accents).
        let text = match simdutf8::basic::from_utf8(&self.bytes) {
            Ok(text) => text.to_owned(),
            // Only to say where, as the error always did.
            Err(_) => return Err(utf8_error(self.bytes)),
        };
        if !self.ends.iter().all(|&end| text.is_char_boundary(end as usize)) {
            return Err("a field that is not UTF-8 by itself".to_owned());
        }
        Ok(WireBets { text, ends: self.ends })
    }
}

/// Why `bytes` are not UTF-8, in std's words (which say where).
fn utf8_error(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Err(e) => e.utf8_error().to_string(),
        Ok(_) => "invalid utf-8".to_owned(),
    }
}

/// Reads one bet (a struct of four strings) onto the end of a [`RawBets`].
struct BetSeed<'b>(&'b mut RawBets);

const FIELDS: [&str; 4] = ["first_name", "last_name", "document", "birthdate"];

impl<'de> DeserializeSeed<'de> for BetSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct("WireBet", &FIELDS, self)
    }
}

impl<'de> Visitor<'de> for BetSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a bet: four strings")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        for name in FIELDS {
            if seq.next_element_seed(FieldSeed(&mut *self.0))?.is_none() {
                return Err(de::Error::custom(format_args!("a bet without its {name}")));
            }
        }
        Ok(())
    }
}

/// Reads one string's bytes onto the end of a [`RawBets`]. A string travels as its length
/// and bytes, so it is read as bytes: its UTF-8 is checked with the whole batch's.
struct FieldSeed<'b>(&'b mut RawBets);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl FieldSeed<'_> {
    fn push<E: de::Error>(self, field: &[u8]) -> Result<(), E> {
        self.0.push(field).map_err(E::custom)
    }
}

impl Visitor<'_> for FieldSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a UTF-8 string")
    }

    fn visit_bytes<E: de::Error>(self, field: &[u8]) -> Result<(), E> {
        self.push(field)
    }

    fn visit_str<E: de::Error>(self, field: &str) -> Result<(), E> {
        self.push(field.as_bytes())
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
        bets: WireBets,
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
    /// [`Request::WinnersQuery`], with leave to hold the answer: while agencies are still
    /// loading, the central may wait up to `hold_ms` (at most [`MAX_HOLD_MS`]) and answers
    /// [`Response::Total`] the moment the last agency's `AgencyDone` is committed, or
    /// [`Response::Pending`] when the hold ends first. An agency that asks again every N
    /// seconds thus still hears a partial answer every N seconds while others load, and the
    /// total as soon as there is one, not up to N seconds later. With `hold_ms` 0 it is a
    /// `WinnersQuery`.
    AwaitWinners {
        /// The agency asking.
        agency: u32,
        /// Longest wait for the lottery to complete, in milliseconds.
        hold_ms: u32,
    },
}

impl Request {
    /// The agency a request acts for, if it names one: what the central authorizes before
    /// it handles the request.
    #[must_use]
    pub fn agency(&self) -> Option<u32> {
        match self {
            Request::BetBatch { agency, .. }
            | Request::AgencyDone { agency, .. }
            | Request::WinnersQuery { agency }
            | Request::AwaitWinners { agency, .. }
            | Request::Resume { agency } => Some(*agency),
            Request::Echo(_) | Request::Hello { .. } | Request::Prove { .. } => None,
        }
    }
}

/// The longest the central holds an [`Request::AwaitWinners`], whatever is asked: an agency
/// that retries less often waits out the rest of its period itself.
pub const MAX_HOLD_MS: u32 = 10_000;

/// The most batches an agency sends before waiting for the first answer (its window): a
/// central holds that many answers for one sync and keeps that many for an agency's replays,
/// so every batch a window may send again is still answered.
pub const MAX_WINDOW: usize = 256;

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
    /// Every kind, in wire order: what a count of refusals by kind starts from.
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::Malformed,
        ErrorKind::FrameTooLarge,
        ErrorKind::InvalidBet,
        ErrorKind::UnknownAgency,
        ErrorKind::OutOfSequence,
        ErrorKind::AgencyFinished,
        ErrorKind::Busy,
        ErrorKind::Storage,
        ErrorKind::BatchTooLarge,
        ErrorKind::EmptyBatch,
        ErrorKind::Overloaded,
        ErrorKind::ReplayExpired,
        ErrorKind::Unauthenticated,
        ErrorKind::NotYourAgency,
        ErrorKind::Conflict,
    ];

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
    use crate::{codec, frame};

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
            assert_eq!(bet.encoded_len(), bet.as_ref().encoded_len());
            let message = Request::BetBatch { agency: 4, sequence: 12, bets: bets.into() };
            assert_eq!(predicted, frame::PREFIX_LEN + codec::encoded_len(&message));
        }
    }

    #[test]
    fn packed_bets_encode_as_a_vec_of_wire_bets_and_decode_back() {
        let bets: Vec<WireBet> = (0..5)
            .map(|i| WireBet {
                first_name: format!("Nombre {i}"),
                last_name: if i % 2 == 0 { "Saldaña".into() } else { String::new() },
                document: format!("{}", 30_000_000 + i),
                birthdate: "1980-02-29".into(),
            })
            .collect();
        let packed = WireBets::from(bets.clone());
        assert_eq!(packed.len(), 5);
        assert_eq!(packed.get(1).map(|b| b.last_name), Some(""));
        assert_eq!(packed.get(5), None);
        assert_eq!(packed.iter().map(|b| b.document.to_owned()).collect::<Vec<_>>()[4], "30000004");
        let as_vec = payload(&bets);
        assert_eq!(payload(&packed), as_vec);
        assert_eq!(codec::encoded_len(&packed), as_vec.len());
        assert_eq!(codec::decode::<WireBets>(&as_vec).unwrap(), packed);
        // A bet cut short is malformed, not a batch of fewer bets.
        assert!(codec::decode::<WireBets>(&as_vec[..as_vec.len() - 3]).is_err());
        assert!(codec::decode::<WireBets>(&as_vec[..as_vec.len() - 18]).is_err());
    }

    #[test]
    fn every_field_of_a_decoded_batch_is_utf8_by_itself() {
        let bet = |first: &str, last: &str| WireBet {
            first_name: first.into(),
            last_name: last.into(),
            document: "1".into(),
            birthdate: "2000-01-01".into(),
        };
        let good = payload(&vec![bet("Joaquín", "Núñez"), bet("Ana", "Díaz")]);
        assert_eq!(codec::decode::<WireBets>(&good).unwrap().get(1).map(|b| b.last_name), Some("Díaz"));
        // "ñ" is c3 b1. Cut between two fields, the batch's bytes are UTF-8 as a whole, but
        // neither field is.
        let field = |bytes: &[u8]| [&(bytes.len() as u64).to_be_bytes()[..], bytes].concat();
        let mut split = 1u64.to_be_bytes().to_vec();
        for bytes in [&b"A\xc3"[..], b"\xb1x", b"1", b"2000-01-01"] {
            split.extend(field(bytes));
        }
        assert!(codec::decode::<WireBets>(&split).is_err(), "a character cut between two fields");
        let mut lone = payload(&vec![bet("Ña", "x")]);
        lone[8 + 8 + 1] = b'a';
        assert!(codec::decode::<WireBets>(&lone).is_err(), "a lone lead byte");
    }

    /// `value`'s payload bytes.
    fn payload<T: Serialize>(value: &T) -> Vec<u8> {
        let mut out = Vec::new();
        codec::encode_frame(value, &mut out, frame::DEFAULT_MAX_FRAME_LEN).unwrap();
        out.split_off(frame::PREFIX_LEN)
    }
}
