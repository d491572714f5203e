//! A property test over the frame decoder and the message codec, with a large fixed case
//! count and a fixed seed (so a failure reproduces): whatever bytes arrive, reading them
//! returns a message, a clean end or an error, never panics, never loops, and never keeps
//! more than the bytes that really arrived.
//!
//! Three generators: random bytes (mostly garbage, sometimes a plausible length prefix),
//! valid frames with one mutation (a flipped byte, a cut, an extension), and random valid
//! messages, which must round-trip exactly.

use std::io::{self, Cursor, Read, Write};

use protocol::{Connection, Error, ErrorKind, Request, Response, WireBet};

/// Cases per generator. Together they take about two seconds in a debug build.
const CASES: u64 = 200_000;

/// The largest frame the fuzzed connection accepts: small, so random prefixes land on both
/// sides of it.
const MAX_FRAME: usize = 4096;

/// SplitMix64: a tiny deterministic generator, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, most: u64) -> Vec<u8> {
        let n = self.below(most + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn text(&mut self) -> String {
        const PIECES: [&str; 8] = ["a", "Z", "ñ", "é", "0", "9", " ", "-"];
        (0..self.below(12)).map(|_| PIECES[self.below(8) as usize]).collect()
    }
}

/// A stream made of a fixed input; writes are recorded.
struct Duplex {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn connection(input: Vec<u8>) -> Connection<Duplex> {
    Connection::with_max_frame_len(Duplex { input: Cursor::new(input), output: Vec::new() }, MAX_FRAME)
}

/// Reads requests until the stream ends or breaks; returns how many whole messages it read.
/// Every outcome is one the handler knows how to answer.
fn drain(input: Vec<u8>) -> usize {
    let len = input.len();
    let mut conn = connection(input);
    let mut read = 0;
    // Each loop turn consumes at least the 4-byte prefix, so this bound is never reached by
    // a decoder that makes progress.
    for _ in 0..=len / 4 + 1 {
        match conn.read_message::<Request>() {
            Ok(Some(_)) => read += 1,
            Ok(None) => return read,
            Err(Error::Malformed(_)) => {}
            Err(Error::FrameTooLarge { length, max }) => {
                assert!(length > max as u64, "refused {length} under the max {max}");
                return read;
            }
            Err(Error::Truncated { expected, received }) => {
                assert!(received < expected && received <= len, "{received} of {expected}, input {len}");
                return read;
            }
            Err(e) => panic!("an in-memory stream cannot fail with {e}"),
        }
    }
    panic!("the decoder made no progress on {len} bytes")
}

fn encode<M: protocol::connection::Message>(message: &M) -> Vec<u8> {
    let mut conn = Connection::with_max_frame_len(
        Duplex { input: Cursor::new(Vec::new()), output: Vec::new() },
        1 << 20,
    );
    conn.write_message(message).expect("encode a message");
    conn.get_ref().output.clone()
}

fn random_bet(rng: &mut Rng) -> WireBet {
    WireBet { first_name: rng.text(), last_name: rng.text(), document: rng.text(), birthdate: rng.text() }
}

/// One maker of a random request per variant of `Request`, in the order of the encoding's
/// variant index: `every_variant_the_codec_knows_is_generated` fails when a variant is added
/// to the protocol without a maker here, so the fuzzer covers every request by construction.
static REQUEST_MAKERS: [fn(&mut Rng) -> Request; 8] = [
    |rng| Request::Echo(rng.bytes(40)),
    |rng| Request::BetBatch {
        agency: rng.next() as u32,
        sequence: rng.next(),
        bets: (0..rng.below(6)).map(|_| random_bet(rng)).collect(),
    },
    |rng| Request::AgencyDone { agency: rng.next() as u32, batches: rng.next() },
    |rng| Request::WinnersQuery { agency: rng.next() as u32 },
    |rng| Request::Resume { agency: rng.next() as u32 },
    |rng| Request::Hello { agency: rng.next() as u32 },
    |rng| Request::Prove { agency: rng.next() as u32, signature: rng.bytes(64) },
    |rng| Request::AwaitWinners { agency: rng.next() as u32, hold_ms: rng.next() as u32 },
];

/// The error kinds an answer may carry, in wire order (a new one shows as a decodable `Error`
/// past the last: see `every_error_kind_is_generated`).
const KINDS: [ErrorKind; 15] = ErrorKind::ALL;

/// One maker of a random response per variant of `Response`, in the encoding's order (as
/// [`REQUEST_MAKERS`]).
static RESPONSE_MAKERS: [fn(&mut Rng) -> Response; 8] = [
    |rng| Response::Echo(rng.bytes(40)),
    |rng| Response::BatchResult {
        sequence: rng.next(),
        winners: (0..rng.below(8)).map(|_| rng.next() as u32).collect(),
    },
    |_| Response::Ack,
    |rng| Response::Total { winners: rng.next() },
    |rng| Response::Pending { agencies_pending: rng.next() as u32 },
    |rng| Response::Error { kind: KINDS[rng.below(KINDS.len() as u64) as usize], message: rng.text() },
    |rng| Response::Resumed {
        last_sequence: rng.next(),
        bets: rng.next(),
        winners: rng.next(),
        done: rng.below(2) == 1,
        digest: std::array::from_fn(|_| rng.next() as u8),
    },
    |rng| Response::Challenge { nonce: rng.bytes(32) },
];

fn random_request(rng: &mut Rng) -> Request {
    REQUEST_MAKERS[rng.below(REQUEST_MAKERS.len() as u64) as usize](rng)
}

fn random_response(rng: &mut Rng) -> Response {
    RESPONSE_MAKERS[rng.below(RESPONSE_MAKERS.len() as u64) as usize](rng)
}

/// The variant index a message's frame carries (the first four payload bytes).
fn variant_index(frame: &[u8]) -> u32 {
    u32::from_be_bytes(frame[4..8].try_into().expect("a frame holds a variant index"))
}

/// How many variants the codec decodes for `M`: variant indexes, from 0, for which a payload
/// of that index followed by zeros (a zero length, a zero count, false, the first kind)
/// decodes at some length.
fn variants_the_codec_knows<M: protocol::connection::Message>() -> usize {
    (0u32..)
        .take_while(|index| {
            (0..=64usize).any(|zeros| {
                let mut frame = ((4 + zeros) as u32).to_be_bytes().to_vec();
                frame.extend(index.to_be_bytes());
                frame.extend(std::iter::repeat_n(0, zeros));
                matches!(connection(frame).read_message::<M>(), Ok(Some(_)))
            })
        })
        .count()
}

#[test]
fn every_variant_the_codec_knows_is_generated() {
    let mut rng = Rng(0x5eed_0004);
    for (i, make) in REQUEST_MAKERS.iter().enumerate() {
        assert_eq!(variant_index(&encode(&make(&mut rng))) as usize, i, "request maker {i}");
    }
    for (i, make) in RESPONSE_MAKERS.iter().enumerate() {
        assert_eq!(variant_index(&encode(&make(&mut rng))) as usize, i, "response maker {i}");
    }
    assert_eq!(variants_the_codec_knows::<Request>(), REQUEST_MAKERS.len(), "a request variant has no maker");
    assert_eq!(
        variants_the_codec_knows::<Response>(),
        RESPONSE_MAKERS.len(),
        "a response variant has no maker"
    );
}

#[test]
fn every_error_kind_is_generated() {
    // An `Error` answer whose kind index is one past the last known must not decode.
    let past = encode(&Response::Error { kind: KINDS[KINDS.len() - 1], message: String::new() });
    let mut frame = past.clone();
    let at = 8; // after the length prefix and the variant index
    let last = u32::from_be_bytes(frame[at..at + 4].try_into().unwrap());
    assert_eq!(last as usize, KINDS.len() - 1, "KINDS lists the kinds in the encoding's order");
    frame[at..at + 4].copy_from_slice(&(last + 1).to_be_bytes());
    assert!(
        !matches!(connection(frame).read_message::<Response>(), Ok(Some(_))),
        "an error kind past KINDS decodes: add it to KINDS"
    );
}

#[test]
fn random_bytes_never_panic_and_never_stall() {
    let mut rng = Rng(0x5eed_0001);
    for _ in 0..CASES {
        let mut input = Vec::new();
        if rng.below(2) == 0 {
            // A plausible prefix, so the payload decoder is reached often.
            let len = rng.below(64) as u32;
            input.extend_from_slice(&len.to_be_bytes());
        }
        input.extend(rng.bytes(80));
        drain(input);
    }
}

#[test]
fn mutated_valid_frames_decode_to_an_error_or_to_exactly_their_bytes() {
    let mut rng = Rng(0x5eed_0002);
    for _ in 0..CASES {
        let mut frame = encode(&random_request(&mut rng));
        match rng.below(4) {
            0 => {
                let i = rng.below(frame.len() as u64) as usize;
                frame[i] ^= 1 << rng.below(8);
            }
            1 => frame.truncate(rng.below(frame.len() as u64) as usize),
            2 => {
                frame.extend(rng.bytes(8));
            }
            _ => {
                // Change a length or count field inside the payload to a huge value.
                if frame.len() > 16 {
                    let i = 4 + rng.below(frame.len() as u64 - 12) as usize;
                    frame[i..i + 8].copy_from_slice(&u64::MAX.to_be_bytes());
                }
            }
        }
        let mut conn = connection(frame.clone());
        if let Ok(Some(request)) = conn.read_message::<Request>() {
            // A decoded frame is canonical: encoding what was read gives back the frame read.
            let again = encode(&request);
            assert_eq!(again[..], frame[..again.len()], "{request:?}");
        }
        drain(frame);
    }
}

#[test]
fn random_messages_round_trip_exactly() {
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..CASES / 2 {
        let request = random_request(&mut rng);
        let mut conn = connection(encode(&request));
        assert_eq!(conn.read_message::<Request>().expect("a valid request"), Some(request));
        let response = random_response(&mut rng);
        let mut conn = connection(encode(&response));
        assert_eq!(conn.read_message::<Response>().expect("a valid response"), Some(response));
    }
}
