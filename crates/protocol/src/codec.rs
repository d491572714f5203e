//! The codec: messages to payload bytes and back. The only module that names bincode.
//!
//! bincode 1.3 with fixed-width integers in big-endian order (the same order as the frame's
//! length prefix, so a hex dump reads left to right), enum variants as a `u32` index, strings
//! and byte vectors as a `u64` length then the bytes. Trailing bytes after a message are an
//! error, so a frame holds exactly one message. docs/protocol.md documents this
//! layout byte by byte; `tests::readme_hex_example` keeps the two in step.

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use crate::{
    bet::{Bet, BetRef},
    encoded_bets::EncodedBets,
    error::Error,
    frame,
    message::{RawBets, Request, WireBet, WireBetRef, WireBets},
    short_copy::put,
};

fn options() -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_big_endian().reject_trailing_bytes()
}

/// Encodes `message` as a whole frame (length prefix and payload) into `out`, replacing its
/// contents: the frames the tests build by hand.
///
/// # Errors
/// [`Error::FrameTooLarge`] when the payload would exceed `max_len`; `out` is then left empty.
#[cfg(test)]
pub(crate) fn encode_frame<M: Serialize>(
    message: &M,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), Error> {
    out.clear();
    append_frame(message, out, max_len)
}

/// Encodes `message` as a whole frame at the end of `out`, after the frames already there, so
/// several answers can leave in one write.
///
/// # Errors
/// [`Error::FrameTooLarge`] when the payload would exceed `max_len`; `out` is then left as it
/// was.
pub(crate) fn append_frame<M: Serialize>(
    message: &M,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), Error> {
    let start = out.len();
    out.extend_from_slice(&[0; frame::PREFIX_LEN]);
    if let Err(e) = options().serialize_into(&mut *out, message) {
        out.truncate(start);
        return Err(Error::Malformed(format!("cannot encode: {e}")));
    }
    let payload_len = out.len() - start - frame::PREFIX_LEN;
    match frame::check_len(payload_len, max_len) {
        Ok(prefix) => {
            out[start..start + frame::PREFIX_LEN].copy_from_slice(&prefix.to_be_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// A `Request::BetBatch` frame of bets already in their wire layout, at the end of `out`:
/// the header, then the bets with one copy: the bytes [`append_frame`] gives for a
/// `BetBatch` holding the same bets.
///
/// # Errors
/// As [`append_frame`].
pub(crate) fn append_encoded_batch(
    agency: u32,
    sequence: u64,
    bets: &EncodedBets,
    out: &mut Vec<u8>,
    max_len: usize,
) -> Result<(), Error> {
    let payload_len = BET_COUNT_AT + 8 + bets.byte_len();
    let prefix = frame::check_len(payload_len, max_len)?;
    out.reserve(frame::PREFIX_LEN + payload_len);
    out.extend_from_slice(&prefix.to_be_bytes());
    out.extend_from_slice(&BET_BATCH_INDEX.to_be_bytes());
    out.extend_from_slice(&agency.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&(bets.len() as u64).to_be_bytes());
    out.extend_from_slice(bets.as_bytes());
    Ok(())
}

/// Decodes one message from a frame's payload.
///
/// The payload is a slice already in memory and bounded by the frame cap, and every length
/// inside it is checked against the bytes that remain, so a lying length cannot make the
/// decoder allocate more than the payload holds.
///
/// # Errors
/// [`Error::Malformed`] when the payload is not exactly one valid message.
pub(crate) fn decode<M: DeserializeOwned>(payload: &[u8]) -> Result<M, Error> {
    options()
        .with_limit(payload.len() as u64)
        .deserialize(payload)
        .map_err(|e| Error::Malformed(e.to_string()))
}

/// Decodes one request from a frame's payload, as [`decode`] does. A `BetBatch` (nearly
/// every request an agency sends) is read directly from its layout, without serde's
/// machinery per field (which cost the central more than checking the bets); anything that
/// is not a well-formed batch goes through [`decode`], so what is refused, and the reason
/// given, are the same.
///
/// # Errors
/// [`Error::Malformed`] when the payload is not exactly one valid request.
pub(crate) fn decode_request(payload: &[u8]) -> Result<Request, Error> {
    match bet_batch(payload) {
        Some(request) => Ok(request),
        None => decode(payload),
    }
}

/// A `Request::BetBatch` read from its layout: the variant index, the agency (`u32`), the
/// sequence and the bet count (`u64`), then four strings per bet, each a `u64` length and
/// its bytes, and nothing after. `None` for anything else, including a batch that would fail
/// to decode (for [`decode`] to say why).
fn bet_batch(payload: &[u8]) -> Option<Request> {
    let (header, rest) = payload.split_first_chunk::<{ BET_COUNT_AT + 8 }>()?;
    let word = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let long = |at: usize| (u64::from(word(at)) << 32) | u64::from(word(at + 4));
    if word(0) != BET_BATCH_INDEX {
        return None;
    }
    let (agency, sequence, count) = (word(4), long(8), long(BET_COUNT_AT));
    Some(Request::BetBatch { agency, sequence, bets: bets_of(rest, count)? })
}

/// The `count` bets laid out in `bytes` (what follows a `BetBatch`'s bet count): four
/// strings per bet, each a `u64` length and its bytes, and nothing after. `None` when they
/// are not exactly that, or not UTF-8.
pub(crate) fn bets_of(mut rest: &[u8], count: u64) -> Option<WireBets> {
    // The fields are copied out of the bytes that carry them, so they fit in as many, and
    // `text` has room for a whole `SPAN` more: no copy below writes past its end.
    let mut text = vec![0; rest.len() + SPAN];
    let mut at = 0;
    let mut ends = Vec::with_capacity(usize::try_from(count).ok()?.min(rest.len() / 32) * 4);
    // Every bet takes at least 32 bytes, so a lying count ends the loop at the payload's end.
    for _ in 0..count {
        for _ in 0..4 {
            let (len, tail) = rest.split_first_chunk::<8>()?;
            let len = usize::try_from(u64::from_be_bytes(*len)).ok()?;
            let (field, after) = tail.split_at_checked(len)?;
            // A field (a few to a few dozen bytes) is copied as the fixed `SPAN` bytes that
            // start it, whatever its length: the bytes past its end are overwritten by the
            // next field or cut off at the end. One predictable branch and two moves, where
            // a copy of exactly its length branches on that length, which varies from bet
            // to bet (a misprediction for most names).
            match tail.first_chunk::<SPAN>() {
                Some(span) if len <= SPAN => text[at..at + SPAN].copy_from_slice(span),
                _ => text[at..at + len].copy_from_slice(field),
            }
            at += len;
            ends.push(u32::try_from(at).ok()?);
            rest = after;
        }
    }
    if !rest.is_empty() {
        return None;
    }
    text.truncate(at);
    RawBets::from_parts(text, ends).finish().ok()
}

/// Writes `bet` into `out` at `at` in its layout inside a `BetBatch`: its four fields, each
/// a `u64` length and its bytes (what [`bets_of`] reads back); returns where it ends. Short
/// fields are copied without a call to `memcpy` (`short_copy`).
///
/// # Panics
/// If `out` has fewer than [`BetRef::encoded_len`] bytes from `at`: the caller makes room.
pub(crate) fn put_bet(out: &mut [u8], mut at: usize, bet: &BetRef<'_>) -> usize {
    for field in [bet.first_name(), bet.last_name(), bet.document(), bet.birthdate_str()] {
        out[at..at + STRING_LEN_PREFIX].copy_from_slice(&(field.len() as u64).to_be_bytes());
        at = put(out, at + STRING_LEN_PREFIX, field.as_bytes());
    }
    at
}

/// Bytes copied at once for each field of a batch ([`bet_batch`]).
const SPAN: usize = 32;

/// Index of `Request::BetBatch` in the encoding, and the offset of its bet count: after the
/// variant index (`u32`), the agency (`u32`) and the sequence (`u64`).
const BET_BATCH_INDEX: u32 = 1;
const BET_COUNT_AT: usize = 4 + 4 + 8;

/// The number of bets a `Request::BetBatch` payload declares, read from its header without
/// decoding it (so a batch over a cap is refused before its bets are allocated); `None` when
/// the payload is not a batch or too short to say.
#[must_use]
pub fn declared_bets(payload: &[u8]) -> Option<u64> {
    let index = payload.get(..4)?;
    if u32::from_be_bytes([index[0], index[1], index[2], index[3]]) != BET_BATCH_INDEX {
        return None;
    }
    let count: [u8; 8] = payload.get(BET_COUNT_AT..BET_COUNT_AT + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(count))
}

/// Bytes a string's length takes before its bytes (bincode's fixed-width `u64`).
const STRING_LEN_PREFIX: usize = 8;

/// Bytes a bet whose four fields hold `text_len` bytes adds to a `BetBatch` payload: four
/// strings, each its length and its bytes.
const fn bet_len(text_len: usize) -> usize {
    4 * STRING_LEN_PREFIX + text_len
}

impl WireBet {
    /// Bytes this bet adds to a `BetBatch` payload.
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        encoded_len(self)
    }
}

impl WireBetRef<'_> {
    /// Bytes this bet adds to a `BetBatch` payload (what [`WireBet::encoded_len`] computes,
    /// without serializing).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        bet_len(self.first_name.len() + self.last_name.len() + self.document.len() + self.birthdate.len())
    }
}

impl BetRef<'_> {
    /// Bytes this bet adds to a `BetBatch` payload (as [`WireBet::encoded_len`]).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        bet_len(self.text_len())
    }
}

impl Bet {
    /// Bytes this bet adds to a `BetBatch` payload (as [`WireBet::encoded_len`]).
    #[must_use]
    pub fn encoded_len(&self) -> usize {
        self.as_ref().encoded_len()
    }
}

impl Request {
    /// Bytes on the wire, length prefix included, of a `BetBatch` whose bets encode to
    /// `bets_len` bytes (the sum of their [`WireBet::encoded_len`]).
    #[must_use]
    pub fn bet_batch_frame_len(bets_len: usize) -> usize {
        let empty = Request::BetBatch { agency: 0, sequence: 0, bets: WireBets::default() };
        frame::PREFIX_LEN + encoded_len(&empty) + bets_len
    }
}

/// Payload bytes `value` takes on the wire (the frame's length prefix not included).
#[must_use]
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    // Sizing our own plain-data types cannot fail: they hold no maps and no
    // unsized sequences, which is all that makes bincode's size computation fail.
    options().serialized_size(value).map_or(usize::MAX, |n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Request, Response, WireBet};

    fn bet() -> WireBet {
        WireBet {
            first_name: "Santiago Lionel".into(),
            last_name: "Lorca".into(),
            document: "30904465".into(),
            birthdate: "1999-03-17".into(),
        }
    }

    fn roundtrip<M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(message: M) {
        let mut out = Vec::new();
        encode_frame(&message, &mut out, frame::DEFAULT_MAX_FRAME_LEN).unwrap();
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(len, out.len() - 4);
        assert_eq!(len, encoded_len(&message));
        assert_eq!(decode::<M>(&out[4..]).unwrap(), message);
    }

    #[test]
    fn every_message_roundtrips() {
        roundtrip(Request::Echo(b"hola".to_vec()));
        roundtrip(Request::BetBatch { agency: 3, sequence: 9, bets: vec![bet(), bet()].into() });
        roundtrip(Request::BetBatch { agency: 1, sequence: 1, bets: vec![].into() });
        roundtrip(Request::AgencyDone { agency: 5, batches: 270 });
        roundtrip(Request::WinnersQuery { agency: 2 });
        roundtrip(Request::Resume { agency: 3 });
        roundtrip(Response::Resumed {
            last_sequence: 7,
            bets: 700,
            winners: 41,
            done: false,
            digest: [7; 16],
        });
        roundtrip(Request::Hello { agency: 4 });
        roundtrip(Request::Prove { agency: 4, signature: vec![1; 64] });
        roundtrip(Request::AwaitWinners { agency: 2, hold_ms: 5_000 });
        roundtrip(Response::Challenge { nonce: vec![9; 32] });
        roundtrip(Response::Error { kind: ErrorKind::BatchTooLarge, message: "2000 bets".into() });
        roundtrip(Response::Echo(vec![0, 255, 10]));
        roundtrip(Response::BatchResult { sequence: 4, winners: vec![0, 17, 99] });
        roundtrip(Response::Ack);
        roundtrip(Response::Total { winners: 4689 });
        roundtrip(Response::Pending { agencies_pending: 2 });
        roundtrip(Response::Error { kind: ErrorKind::InvalidBet, message: "bet 1: document".into() });
    }

    #[test]
    fn echo_request_and_response_are_the_same_bytes() {
        // The netcat check relies on this: the reply to an Echo frame is that very frame.
        let (mut req, mut resp) = (Vec::new(), Vec::new());
        encode_frame(&Request::Echo(b"ping".to_vec()), &mut req, 64).unwrap();
        encode_frame(&Response::Echo(b"ping".to_vec()), &mut resp, 64).unwrap();
        assert_eq!(req, resp);
    }

    #[test]
    fn readme_hex_example() {
        // The worked example of docs/protocol.md, byte for byte.
        let mut out = Vec::new();
        encode_frame(&Request::WinnersQuery { agency: 1 }, &mut out, 64).unwrap();
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 1]);
        let batch = Request::BetBatch {
            agency: 1,
            sequence: 1,
            bets: vec![WireBet {
                first_name: "Ana".into(),
                last_name: "Díaz".into(),
                document: "1".into(),
                birthdate: "2000-01-31".into(),
            }]
            .into(),
        };
        encode_frame(&batch, &mut out, 1024).unwrap();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0000004b\
             00000001\
             00000001\
             0000000000000001\
             0000000000000001\
             0000000000000003416e61\
             000000000000000544c3ad617a\
             000000000000000131\
             000000000000000a323030302d30312d3331"
        );
        encode_frame(&Request::Resume { agency: 1 }, &mut out, 64).unwrap();
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 4, 0, 0, 0, 1]);
        let digest = std::array::from_fn(|i| i as u8);
        let resumed = Response::Resumed { last_sequence: 1, bets: 1, winners: 1, done: false, digest };
        encode_frame(&resumed, &mut out, 64).unwrap();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "0000002d\
             00000006\
             0000000000000001\
             0000000000000001\
             0000000000000001\
             00\
             000102030405060708090a0b0c0d0e0f"
        );
        encode_frame(&Request::Hello { agency: 1 }, &mut out, 64).unwrap();
        assert_eq!(out, [0, 0, 0, 8, 0, 0, 0, 5, 0, 0, 0, 1]);
        encode_frame(&Request::AwaitWinners { agency: 1, hold_ms: 5_000 }, &mut out, 64).unwrap();
        assert_eq!(out, [0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0x13, 0x88]);
        encode_frame(&Response::BatchResult { sequence: 1, winners: vec![0] }, &mut out, 64).unwrap();
        let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "00000018\
             00000001\
             0000000000000001\
             0000000000000001\
             00000000"
        );
    }

    #[test]
    fn error_kinds_keep_their_indexes() {
        // Appended kinds must not move the old ones: agencies of an older build read them.
        let kinds = [
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
        for (index, kind) in kinds.into_iter().enumerate() {
            let mut out = Vec::new();
            encode_frame(&Response::Error { kind, message: String::new() }, &mut out, 64).unwrap();
            // Prefix, `Error`'s index (5), then the kind's.
            assert_eq!(out[4..12], [0, 0, 0, 5, 0, 0, 0, index as u8], "{kind}");
            roundtrip(Response::Error { kind, message: kind.to_string() });
        }
    }

    #[test]
    fn a_batch_declares_its_bet_count_in_its_header() {
        for n in [0, 1, 3] {
            let batch = Request::BetBatch { agency: 7, sequence: 9, bets: vec![bet(); n].into() };
            let mut out = Vec::new();
            encode_frame(&batch, &mut out, 4096).unwrap();
            assert_eq!(declared_bets(&out[4..]), Some(n as u64));
        }
        // A lying count is read as declared, without allocating anything for it.
        let mut lying = vec![0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 9];
        lying.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(declared_bets(&lying), Some(u64::MAX));
        assert_eq!(declared_bets(&lying[..20]), None, "too short to say");
        let mut out = Vec::new();
        encode_frame(&Request::Resume { agency: 1 }, &mut out, 64).unwrap();
        assert_eq!(declared_bets(&out[4..]), None, "not a batch");
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        for payload in [
            &b""[..],
            &[0, 0, 0, 99],
            &[0, 0, 0, 3, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255],
        ] {
            assert!(matches!(decode::<Request>(payload), Err(Error::Malformed(_))), "{payload:?}");
        }
    }

    #[test]
    fn a_string_claiming_more_than_the_payload_is_refused_without_allocating_it() {
        // Echo of a claimed 2^62 bytes, in a 12-byte payload.
        let payload = [0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(decode::<Request>(&payload), Err(Error::Malformed(_))));
    }

    #[test]
    fn a_batch_read_by_its_layout_is_what_serde_reads() {
        let wire = |first: &str, last: &str| WireBet {
            first_name: first.into(),
            last_name: last.into(),
            document: "30904465".into(),
            birthdate: "1999-03-17".into(),
        };
        let batches = [
            vec![],
            vec![bet()],
            vec![wire("Joaquín", "Núñez"), wire("", ""), wire("Ñ", "Ü"), bet()],
            // Fields longer than the span copied at once, and ending the payload.
            vec![wire(&"ñ".repeat(20), &"x".repeat(33)), wire(&"a".repeat(31), &"é".repeat(150))],
        ];
        for bets in batches {
            let mut payload = Vec::new();
            encode_frame(
                &Request::BetBatch { agency: 3, sequence: 7, bets: bets.into() },
                &mut payload,
                1 << 20,
            )
            .unwrap();
            let payload = payload.split_off(frame::PREFIX_LEN);
            let same = |payload: &[u8]| match (decode_request(payload), decode::<Request>(payload)) {
                (Ok(fast), Ok(serde)) => assert_eq!(fast, serde, "{payload:?}"),
                (Err(fast), Err(serde)) => assert_eq!(fast.to_string(), serde.to_string(), "{payload:?}"),
                (fast, serde) => panic!("{payload:?}: {fast:?} but serde says {serde:?}"),
            };
            same(&payload);
            assert!(bet_batch(&payload).is_some(), "a valid batch takes the direct path");
            // Every byte changed to values that move lengths, counts, the variant, and UTF-8;
            // every cut; bytes added at the end.
            for at in 0..payload.len() {
                for value in [0, 1, 4, 0x7f, 0x80, 0xb1, 0xc3, 0xff] {
                    let mut mutated = payload.clone();
                    mutated[at] = value;
                    same(&mutated);
                }
                same(&payload[..at]);
            }
            for extra in [&[0][..], &[0; 8], &[0, 0, 0, 0, 0, 0, 0, 1, b'x']] {
                same(&[&payload[..], extra].concat());
            }
        }
    }

    #[test]
    fn oversized_messages_are_refused_when_encoding() {
        let mut out = Vec::new();
        let err = encode_frame(&Request::Echo(vec![0; 100]), &mut out, 64).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { length: 112, max: 64 }), "{err:?}");
        assert!(out.is_empty());
    }
}
