//! A connection: whole messages over any byte stream.
//!
//! Owns the stream and its buffers and exposes only message reads and writes, so neither the
//! central nor the agency ever sees a partial frame. Reads go through a buffer (a small frame
//! costs one `read` call, not two); each message is written with one `write_all`, or queued
//! to leave with the next ones ([`Connection::queue_message`]): a sender of many small frames
//! pays one system call (and one TLS record) for several, and a read that may wait on the
//! peer sends what is queued first, so nothing waits on an answer to a request still queued.

use std::io::{BufRead, Read, Write};

use serde::{de::DeserializeOwned, Serialize};

use crate::{
    codec,
    deadline::{Guard, Guards, Timeouts},
    encoded_bets::EncodedBets,
    error::Error,
    frame,
    message::{Request, Response},
    read_buffer::ReadBuffer,
};

/// Read buffer of a connection carrying an upload: room for a few whole 8 KiB batches, so a
/// peer that sends several requests without waiting has them buffered together and the reader
/// can see it ([`Connection::has_buffered_frame`]) and answer them as a group. It is this big
/// only while traffic fills it (`read_buffer.rs`).
const READ_BUFFER: usize = 32 * 1024;

/// Where [`Connection::next_frame`] left the next frame.
enum Next {
    /// The peer closed cleanly between frames.
    Closed,
    /// Read into the connection's `payload`.
    Read,
    /// Whole in the read buffer, its payload this many bytes after its prefix: decoded there.
    Buffered(usize),
}

/// A message that travels whole in one frame: [`Request`] or [`Response`].
pub trait Message: Serialize + DeserializeOwned + private::Sealed {}
impl Message for Request {}
impl Message for Response {}

mod private {
    use crate::{codec, error::Error};

    pub trait Sealed: Sized {
        /// Decodes one from a frame's payload.
        fn decode(payload: &[u8]) -> Result<Self, Error>;
    }
    impl Sealed for crate::message::Request {
        fn decode(payload: &[u8]) -> Result<Self, Error> {
            // Bet batches, the central's bulk, by their layout (same result, see the codec).
            codec::decode_request(payload)
        }
    }
    impl Sealed for crate::message::Response {
        fn decode(payload: &[u8]) -> Result<Self, Error> {
            codec::decode(payload)
        }
    }
}

/// Reads and writes messages over a stream (a `TcpStream` in the binaries).
#[derive(Debug)]
pub struct Connection<S: Read + Write> {
    reader: ReadBuffer<S>,
    payload: Vec<u8>,
    /// Frames queued and not sent yet: emptied by every send.
    out: Vec<u8>,
    max_frame_len: usize,
    /// Deadlines and budget of a connection to an untrusted peer; `None` for a plain one.
    guard: Option<Guard<S>>,
}

impl<S: Read + Write> Connection<S> {
    /// Wraps `stream`, refusing frames longer than [`frame::DEFAULT_MAX_FRAME_LEN`].
    pub fn new(stream: S) -> Self {
        Self::with_max_frame_len(stream, frame::DEFAULT_MAX_FRAME_LEN)
    }

    /// Wraps `stream`, refusing frames whose payload exceeds `max_frame_len` bytes.
    pub fn with_max_frame_len(stream: S, max_frame_len: usize) -> Self {
        Connection {
            reader: ReadBuffer::new(stream, READ_BUFFER),
            payload: Vec::new(),
            out: Vec::new(),
            max_frame_len,
            guard: None,
        }
    }

    /// Wraps `stream` for serving an untrusted peer: the idle timeout bounds the wait for a
    /// frame's first byte, the frame deadline the rest of it and each whole answer, and every
    /// frame reserves its share of the budget before its payload is allocated (see
    /// [`crate::deadline`]).
    ///
    /// # Errors
    /// When the stream's timeouts cannot be set.
    pub fn guarded(stream: S, max_frame_len: usize, guards: Guards) -> std::io::Result<Self>
    where
        S: Timeouts,
    {
        let guard = Guard::new(&stream, guards)?;
        let mut conn = Self::with_max_frame_len(stream, max_frame_len);
        conn.guard = Some(guard);
        Ok(conn)
    }

    /// Changes the largest frame accepted from now on and, on a guarded connection, the idle
    /// timeout and the frame deadline: a server narrows them for a peer that has not proved
    /// who it is yet, and widens them back once it has.
    pub fn set_limits(
        &mut self,
        max_frame_len: usize,
        idle: std::time::Duration,
        frame: std::time::Duration,
    ) {
        self.max_frame_len = max_frame_len;
        if let Some(guard) = &mut self.guard {
            guard.set_limits(idle, frame);
        }
    }

    /// Frees the connection's buffers down to a small read buffer (none of them if bytes are
    /// still buffered): for a connection that is about to wait a long time, such as an agency
    /// done with its upload. The next upload makes the read buffer grow again.
    pub fn release_buffers(&mut self) {
        if self.reader.buffer().is_empty() && self.out.is_empty() {
            self.reader.shrink();
            self.payload = Vec::new();
            self.out = Vec::new();
        }
    }

    /// Reads the next message: `Ok(None)` when the peer closed cleanly between messages.
    ///
    /// # Errors
    /// See [`frame::read_frame`] for transport errors; [`Error::Malformed`] when a whole frame
    /// arrived but is not a valid `M`. After `Malformed` the stream is still in step (the next
    /// read starts at the next frame); after any other error it is not. A guarded
    /// connection also fails with [`Error::TooSlow`] (not in step) and
    /// [`Error::OverBudget`] (in step: the payload was skipped unread).
    pub fn read_message<M: Message>(&mut self) -> Result<Option<M>, Error> {
        match self.next_frame()? {
            Next::Closed => Ok(None),
            Next::Read => self.decode().map(Some),
            Next::Buffered(len) => {
                let message = <M as private::Sealed>::decode(self.buffered_payload(len));
                self.reader.consume(frame::PREFIX_LEN + len);
                message.map(Some)
            }
        }
    }

    /// Reads the next request as [`read_message`](Connection::read_message) does, refusing a
    /// batch that declares more than `max_bets` bets from its header, before decoding it.
    ///
    /// # Errors
    /// As [`read_message`](Connection::read_message), and [`Error::TooManyBets`] (the stream is
    /// still in step).
    pub fn read_request(&mut self, max_bets: usize) -> Result<Option<Request>, Error> {
        let too_many = |payload: &[u8]| match codec::declared_bets(payload) {
            Some(bets) if bets > max_bets as u64 => Err(Error::TooManyBets { bets, max: max_bets }),
            _ => Ok(()),
        };
        match self.next_frame()? {
            Next::Closed => Ok(None),
            Next::Read => {
                too_many(&self.payload)?;
                self.decode().map(Some)
            }
            Next::Buffered(len) => {
                let payload = self.buffered_payload(len);
                let request = too_many(payload).and_then(|()| codec::decode_request(payload));
                self.reader.consume(frame::PREFIX_LEN + len);
                request.map(Some)
            }
        }
    }

    /// Takes the next frame: decoded where it lies when it is whole in the read buffer (no
    /// copy of its payload), else read into `payload` (through the guard, if any). What is
    /// queued leaves first unless the frame is buffered whole already: only a read that may
    /// wait on the peer must not leave the peer waiting on us. A sender that reads a burst of
    /// buffered answers between its writes thus keeps its writes as big as it queues them,
    /// not one per answer read.
    fn next_frame(&mut self) -> Result<Next, Error> {
        if let Some(len) = self.buffered_frame_len().filter(|&len| len <= self.max_frame_len) {
            if let Some(guard) = &mut self.guard {
                if let Err(e) = guard.admit_buffered(len, &mut self.payload) {
                    // Refused by the budget: skipped, so the stream stays in step.
                    self.reader.consume(frame::PREFIX_LEN + len);
                    return Err(e);
                }
            }
            return Ok(Next::Buffered(len));
        }
        self.send_queued()?;
        let read = match &mut self.guard {
            None => frame::read_frame(&mut self.reader, &mut self.payload, self.max_frame_len),
            Some(guard) => guard.read_frame(&mut self.reader, &mut self.payload, self.max_frame_len),
        }?;
        Ok(if read { Next::Read } else { Next::Closed })
    }

    /// The payload of the frame whole at the start of the read buffer, `len` bytes.
    fn buffered_payload(&self, len: usize) -> &[u8] {
        &self.reader.buffer()[frame::PREFIX_LEN..frame::PREFIX_LEN + len]
    }

    /// The payload length of the frame whole at the start of the read buffer, if one is.
    fn buffered_frame_len(&self) -> Option<usize> {
        let buffered = self.reader.buffer();
        let prefix = buffered.first_chunk::<{ frame::PREFIX_LEN }>()?;
        let len = u32::from_be_bytes(*prefix) as usize;
        (buffered.len() - frame::PREFIX_LEN >= len).then_some(len)
    }

    fn decode<M: Message>(&mut self) -> Result<M, Error> {
        let message = <M as private::Sealed>::decode(&self.payload);
        if self.guard.is_some() {
            Guard::<S>::done_with(&mut self.payload);
        }
        message
    }

    /// Writes `message` as one frame, after the frames queued before it in the same write, and
    /// flushes them.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when the message exceeds the frame cap (nothing is written);
    /// [`Error::Io`] when the stream fails.
    pub fn write_message<M: Message>(&mut self, message: &M) -> Result<(), Error> {
        self.queue_message(message)?;
        self.send()
    }

    /// Queues `message` to leave with the next write (any `write_message`, a read that may
    /// wait on the peer, or [`Connection::send_queued`]), behind the frames queued before it.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when the message exceeds the frame cap: it is not queued, and
    /// what was queued before stays.
    pub fn queue_message<M: Message>(&mut self, message: &M) -> Result<(), Error> {
        codec::append_frame(message, &mut self.out, self.max_frame_len)
    }

    /// Queues batch `sequence` of `agency`, its bets already in their wire layout, as
    /// [`Connection::queue_message`] queues a `BetBatch` holding them (the same bytes, one copy).
    ///
    /// # Errors
    /// As [`Connection::queue_message`].
    pub fn queue_bet_batch(&mut self, agency: u32, sequence: u64, bets: &EncodedBets) -> Result<(), Error> {
        codec::append_encoded_batch(agency, sequence, bets, &mut self.out, self.max_frame_len)
    }

    /// Bytes queued and not sent yet.
    #[must_use]
    pub fn queued_len(&self) -> usize {
        self.out.len()
    }

    /// Sends the queued frames, if any, in one write.
    ///
    /// # Errors
    /// [`Error::Io`] when the stream fails.
    pub fn send_queued(&mut self) -> Result<(), Error> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.send()
    }

    /// Writes `messages` as consecutive frames with one write, and flushes them: answers
    /// released together cost one system call, not one each.
    ///
    /// # Errors
    /// [`Error::FrameTooLarge`] when a message exceeds the frame cap (nothing is written);
    /// [`Error::Io`] when the stream fails.
    pub fn write_messages<'m, M: Message + 'm>(
        &mut self,
        messages: impl IntoIterator<Item = &'m M>,
    ) -> Result<(), Error> {
        let queued = self.out.len();
        for message in messages {
            if let Err(e) = codec::append_frame(message, &mut self.out, self.max_frame_len) {
                self.out.truncate(queued);
                return Err(e);
            }
        }
        self.send()
    }

    /// Writes the encoded frames in `out` (the queued ones first) and flushes them (within
    /// the frame deadline when guarded).
    fn send(&mut self) -> Result<(), Error> {
        let stream = self.reader.get_mut();
        let sent = match &mut self.guard {
            Some(guard) => guard.write_all(stream, &self.out),
            None => stream.write_all(&self.out).and_then(|()| stream.flush()).map_err(Error::from),
        };
        // Sent or broken: either way they are no longer queued.
        self.out.clear();
        if self.guard.is_some() {
            Guard::<S>::done_with(&mut self.out);
        }
        sent
    }

    /// Whether a whole frame is already in the read buffer, so the next
    /// [`read_message`](Connection::read_message) returns without waiting on the peer.
    #[must_use]
    pub fn has_buffered_frame(&self) -> bool {
        self.buffered_frame_len().is_some()
    }

    /// Sends `request` and reads its response: the agency's one round trip.
    ///
    /// # Errors
    /// As [`Connection::write_message`] and [`Connection::read_message`]; a peer that closes
    /// instead of answering is [`Error::Closed`].
    pub fn call(&mut self, request: &Request) -> Result<Response, Error> {
        self.write_message(request)?;
        self.read_message()?.ok_or(Error::Closed)
    }

    /// The underlying stream, for socket options and shutdown.
    pub fn get_ref(&self) -> &S {
        self.reader.get_ref()
    }

    /// The underlying stream, to end it (a TLS `close_notify`, say). Bytes read ahead stay
    /// in the connection's buffer.
    pub fn get_mut(&mut self) -> &mut S {
        self.reader.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Cursor};

    use super::*;

    /// A duplex stream made of a scripted input and a recorded output.
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

    fn frames(messages: &[Request]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut out = Vec::new();
        for m in messages {
            codec::encode_frame(m, &mut out, 1024).unwrap();
            bytes.extend_from_slice(&out);
        }
        bytes
    }

    #[test]
    fn reads_messages_until_a_clean_close() {
        let input = frames(&[Request::WinnersQuery { agency: 1 }, Request::Echo(b"x".to_vec())]);
        let mut conn = Connection::new(Duplex { input: Cursor::new(input), output: Vec::new() });
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::WinnersQuery { agency: 1 }));
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::Echo(b"x".to_vec())));
        assert_eq!(conn.read_message::<Request>().unwrap(), None);
    }

    #[test]
    fn a_malformed_frame_leaves_the_stream_in_step() {
        let mut input = vec![0, 0, 0, 3, 1, 2, 3];
        input.extend(frames(&[Request::WinnersQuery { agency: 7 }]));
        let mut conn = Connection::new(Duplex { input: Cursor::new(input), output: Vec::new() });
        assert!(matches!(conn.read_message::<Request>(), Err(Error::Malformed(_))));
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::WinnersQuery { agency: 7 }));
    }

    #[test]
    fn buffered_frames_are_seen_whole_or_not_at_all() {
        let mut input = frames(&[Request::WinnersQuery { agency: 1 }, Request::WinnersQuery { agency: 2 }]);
        input.extend_from_slice(&[0, 0, 0, 8, 0, 0]);
        let mut conn = Connection::new(Duplex { input: Cursor::new(input), output: Vec::new() });
        assert!(!conn.has_buffered_frame(), "nothing read yet");
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::WinnersQuery { agency: 1 }));
        assert!(conn.has_buffered_frame());
        assert_eq!(conn.read_message::<Request>().unwrap(), Some(Request::WinnersQuery { agency: 2 }));
        assert!(!conn.has_buffered_frame(), "only part of the third frame is there");
    }

    #[test]
    fn several_messages_leave_as_consecutive_frames_in_one_write() {
        let answers =
            [Response::Ack, Response::Pending { agencies_pending: 2 }, Response::Total { winners: 9 }];
        let mut conn = Connection::new(Duplex { input: Cursor::new(Vec::new()), output: Vec::new() });
        conn.write_messages(&answers).unwrap();
        let written = std::mem::take(&mut conn.reader.get_mut().output);
        let mut back = Connection::new(Duplex { input: Cursor::new(written), output: Vec::new() });
        for answer in &answers {
            assert_eq!(back.read_message::<Response>().unwrap().as_ref(), Some(answer));
        }
        assert_eq!(back.read_message::<Response>().unwrap(), None);
    }

    #[test]
    fn a_message_over_the_cap_writes_none_of_the_batch() {
        let answers = [Response::Ack, Response::Echo(vec![0; 100])];
        let mut conn =
            Connection::with_max_frame_len(Duplex { input: Cursor::new(Vec::new()), output: Vec::new() }, 32);
        assert!(matches!(conn.write_messages(&answers), Err(Error::FrameTooLarge { .. })));
        assert!(conn.reader.get_ref().output.is_empty());
    }

    #[test]
    fn call_writes_one_frame_and_reads_the_answer() {
        let mut answer = Vec::new();
        codec::encode_frame(&Response::Pending { agencies_pending: 3 }, &mut answer, 64).unwrap();
        let mut conn = Connection::new(Duplex { input: Cursor::new(answer), output: Vec::new() });
        let response = conn.call(&Request::WinnersQuery { agency: 2 }).unwrap();
        assert_eq!(response, Response::Pending { agencies_pending: 3 });
        assert_eq!(conn.get_ref().output, frames(&[Request::WinnersQuery { agency: 2 }]));
    }

    /// A stream that records each write apart and answers reads from a script.
    struct Writes {
        input: Cursor<Vec<u8>>,
        writes: Vec<Vec<u8>>,
    }
    impl Read for Writes {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn queued_messages_leave_with_the_next_write_in_one_write() {
        let mut conn = Connection::new(Writes { input: Cursor::new(Vec::new()), writes: Vec::new() });
        conn.queue_message(&Request::Echo(b"1".to_vec())).unwrap();
        conn.queue_message(&Request::Echo(b"2".to_vec())).unwrap();
        assert!(conn.get_ref().writes.is_empty(), "queued, not sent");
        assert_eq!(conn.queued_len(), frames(&[Request::Echo(b"1".to_vec())]).len() * 2);
        conn.write_message(&Request::WinnersQuery { agency: 1 }).unwrap();
        let want = frames(&[
            Request::Echo(b"1".to_vec()),
            Request::Echo(b"2".to_vec()),
            Request::WinnersQuery { agency: 1 },
        ]);
        assert_eq!(conn.get_ref().writes, [want]);
        assert_eq!(conn.queued_len(), 0);
        conn.send_queued().unwrap();
        assert_eq!(conn.get_ref().writes.len(), 1, "nothing was left to send");
    }

    #[test]
    fn a_read_sends_what_is_queued_first() {
        let mut answer = Vec::new();
        codec::encode_frame(&Response::Ack, &mut answer, 64).unwrap();
        let mut conn = Connection::new(Writes { input: Cursor::new(answer), writes: Vec::new() });
        conn.queue_message(&Request::AgencyDone { agency: 1, batches: 0 }).unwrap();
        assert_eq!(conn.read_message::<Response>().unwrap(), Some(Response::Ack));
        assert_eq!(conn.get_ref().writes, [frames(&[Request::AgencyDone { agency: 1, batches: 0 }])]);
    }

    #[test]
    fn a_batch_of_encoded_bets_leaves_as_the_same_bet_batch_would() {
        let bets = [
            crate::Bet::new("Ana".into(), "Díaz".into(), "1".into(), "1990-12-31").unwrap(),
            crate::Bet::new("Ñ".repeat(40), "O'Brien".into(), "22".into(), "2000-02-29").unwrap(),
        ];
        let mut encoded = EncodedBets::default();
        let mut wire = crate::WireBets::default();
        for bet in &bets {
            encoded.push(&bet.as_ref());
            wire.push_bet(bet);
        }
        let mut conn = Connection::new(Writes { input: Cursor::new(Vec::new()), writes: Vec::new() });
        conn.queue_bet_batch(4, 7, &encoded).unwrap();
        conn.queue_bet_batch(4, 8, &EncodedBets::default()).unwrap();
        conn.send_queued().unwrap();
        let expected = frames(&[
            Request::BetBatch { agency: 4, sequence: 7, bets: wire },
            Request::BetBatch { agency: 4, sequence: 8, bets: crate::WireBets::default() },
        ]);
        assert_eq!(conn.get_ref().writes, [expected]);
        // One over the cap is not queued, and what was queued stays.
        let mut conn =
            Connection::with_max_frame_len(Writes { input: Cursor::new(Vec::new()), writes: Vec::new() }, 40);
        conn.queue_bet_batch(4, 1, &EncodedBets::default()).unwrap();
        let queued = conn.queued_len();
        assert!(matches!(conn.queue_bet_batch(4, 2, &encoded), Err(Error::FrameTooLarge { .. })));
        assert_eq!(conn.queued_len(), queued);
    }

    #[test]
    fn a_read_of_a_frame_already_buffered_sends_nothing() {
        let mut answers = Vec::new();
        let mut one = Vec::new();
        for _ in 0..2 {
            codec::encode_frame(&Response::Ack, &mut one, 64).unwrap();
            answers.extend_from_slice(&one);
        }
        let mut conn = Connection::new(Writes { input: Cursor::new(answers), writes: Vec::new() });
        let first = Request::AgencyDone { agency: 1, batches: 0 };
        let second = Request::AgencyDone { agency: 1, batches: 1 };
        conn.queue_message(&first).unwrap();
        // The buffer is empty: the read may wait, so the queue leaves first (and the read
        // buffers both answers).
        assert_eq!(conn.read_message::<Response>().unwrap(), Some(Response::Ack));
        conn.queue_message(&second).unwrap();
        // The second answer is buffered whole: reading it waits on nothing, so nothing is sent.
        assert_eq!(conn.read_message::<Response>().unwrap(), Some(Response::Ack));
        assert_eq!(conn.get_ref().writes, [frames(std::slice::from_ref(&first))]);
        // The next read would wait on the peer: what is queued leaves before it.
        assert_eq!(conn.read_message::<Response>().unwrap(), None);
        assert_eq!(conn.get_ref().writes, [frames(&[first]), frames(&[second])]);
    }

    #[test]
    fn a_message_over_the_cap_is_not_queued_and_what_was_stays() {
        let mut conn =
            Connection::with_max_frame_len(Writes { input: Cursor::new(Vec::new()), writes: Vec::new() }, 32);
        conn.queue_message(&Request::Echo(b"kept".to_vec())).unwrap();
        let big = Request::Echo(vec![0; 100]);
        assert!(matches!(conn.queue_message(&big), Err(Error::FrameTooLarge { .. })));
        assert!(matches!(conn.write_messages([&big]), Err(Error::FrameTooLarge { .. })));
        conn.send_queued().unwrap();
        assert_eq!(conn.get_ref().writes, [frames(&[Request::Echo(b"kept".to_vec())])]);
    }

    #[test]
    fn call_reports_a_peer_that_closes_instead_of_answering() {
        let mut conn = Connection::new(Duplex { input: Cursor::new(Vec::new()), output: Vec::new() });
        let err = conn.call(&Request::WinnersQuery { agency: 2 }).unwrap_err();
        assert!(matches!(err, Error::Closed), "{err:?}");
    }
}
