//! The agency's side of the conversation: connect, and one method per request, each checking
//! that the answer fits what was asked.

use std::{
    io,
    net::{Shutdown, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use protocol::{Connection, Digest, EncodedBets, Request, Response};
use security::{proof, Challenge, Stream};

use crate::{
    endpoint::Endpoint,
    error::ClientError,
    resolve,
    stop::{Stop, Watched},
};

/// Queued batches leave once they reach this many bytes: a TLS record's most (16 KiB), about
/// three batches of 100 bets, so an upload costs a third of the system calls and records it
/// would one batch a write.
pub const WRITE_AT: usize = 16 * 1024;

/// A connection to the central on behalf of one agency.
#[derive(Debug)]
pub struct CentralClient {
    conn: Connection<Stream>,
    agency: u32,
    address: String,
    /// Lets a stop cut this connection when a read or write would hold it too long.
    _watched: Watched,
    /// The longest wait for an answer, to say so when it passes.
    timeout: Duration,
    /// A proof was sent (or queued to go with the next request) without waiting for its
    /// answer: the next read takes that answer first.
    proof_owed: bool,
}

/// What the central has committed for the agency (the answer to `Resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// The last batch committed; the next one to send is this plus one.
    pub last_sequence: u64,
    /// Bets committed.
    pub bets: u64,
    /// Winners among them.
    pub winners: u64,
    /// Whether the agency's `AgencyDone` is committed.
    pub done: bool,
    /// The digest of the committed bets, in upload order: what this agency's dataset must
    /// give for its first `bets` bets.
    pub digest: Digest,
}

/// The central's answer to a winners query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winners {
    /// Every agency is done: winners across all of them.
    Total(u64),
    /// This many agencies are still loading.
    Pending(u32),
}

impl CentralClient {
    /// Connects to the central of `endpoint` (`host:port`, every resolved address tried in
    /// turn), waiting at most its timeout to resolve and connect (together), and later for
    /// each answer; speaks TLS if it says so, and proves the agency's identity if it holds a
    /// key. `stop` watches the connection.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when no address accepts the connection or the TLS handshake
    /// fails; [`ClientError::Refused`] when the central refuses the proof.
    pub fn connect(endpoint: &Endpoint, stop: &Stop) -> Result<CentralClient, ClientError> {
        let (address, timeout) = (endpoint.address.as_str(), endpoint.timeout);
        let fail = |source: io::Error| ClientError::Connect { address: address.to_owned(), source };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the address resolves to nothing");
        let start = Instant::now();
        for addr in resolve::resolve(address, timeout).map_err(fail)? {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                last = io::Error::new(io::ErrorKind::TimedOut, format!("not connected within {timeout:?}"));
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(socket) => {
                    socket.set_read_timeout(Some(timeout)).map_err(fail)?;
                    socket.set_write_timeout(Some(timeout)).map_err(fail)?;
                    socket.set_nodelay(true).map_err(fail)?;
                    // Watched from before the handshake: a stop cuts a stuck one too.
                    let watched = stop.watch(&socket).map_err(fail)?;
                    let stream = match &endpoint.tls {
                        Some((config, name)) => Stream::connect_tls(socket, Arc::clone(config), name.clone())
                            .map_err(|e| fail(io::Error::new(e.kind(), format!("TLS handshake: {e}"))))?,
                        None => Stream::Plain(socket),
                    };
                    let mut client = CentralClient {
                        conn: Connection::new(stream),
                        agency: endpoint.agency,
                        address: address.to_owned(),
                        _watched: watched,
                        timeout,
                        proof_owed: false,
                    };
                    if let Some(key) = &endpoint.key {
                        client.prove(key)?;
                    }
                    return Ok(client);
                }
                Err(e) => last = e,
            }
        }
        Err(fail(last))
    }

    /// Proves the agency's identity. On a TLS 1.3 session both ends agreed to prove on
    /// (`security::tls::SESSION_PROOFS`), it signs the session, and `Prove` goes out with the
    /// first request, in one write, without waiting: its answer is read before that
    /// request's, so the proof costs no round trip. Elsewhere (plain TCP, an older central):
    /// `Hello`, then the signed challenge.
    fn prove(&mut self, key: &security::AgencyKey) -> Result<(), ClientError> {
        let agency = self.agency;
        let binding = self.conn.get_ref().binding().map_err(|e| self.lost(protocol::Error::Io(e)))?;
        if binding.fresh {
            let signature = proof::sign_session(key, &binding.material).to_vec();
            // Queued: the connection sends it with the first request, or before any read.
            self.conn.queue_message(&Request::Prove { agency, signature }).map_err(|e| self.lost(e))?;
            self.proof_owed = true;
            return Ok(());
        }
        let nonce = match self.call(&Request::Hello { agency })? {
            Response::Challenge { nonce } => nonce,
            other => return Err(unexpected(other, "a challenge for agency", u64::from(agency))),
        };
        let challenge = Challenge::from_bytes(&nonce).ok_or_else(|| {
            ClientError::UnexpectedResponse(format!("a challenge of {} bytes", nonce.len()))
        })?;
        let signature = proof::sign(key, &challenge, &binding.material).to_vec();
        self.call(&Request::Prove { agency, signature }).and_then(proof_accepted(agency))
    }

    /// Sends batch number `sequence` and returns the positions of the winners among its bets.
    ///
    /// # Errors
    /// [`ClientError::Refused`] when the central refuses the batch (nothing of it is stored),
    /// [`ClientError::Transport`] when the connection fails, [`ClientError::UnexpectedResponse`]
    /// when the answer is not this batch's result.
    pub fn send_batch(&mut self, sequence: u64, bets: &EncodedBets) -> Result<Vec<u32>, ClientError> {
        self.post_batch(sequence, bets)?;
        self.batch_result(sequence, bets.len())
    }

    /// Sends batch number `sequence` without waiting for its answer (several may be in
    /// flight; the central answers them in order). Batches leave together,
    /// [`WRITE_AT`] bytes a write, or sooner: a read that may wait on the central sends what
    /// is queued first.
    ///
    /// # Errors
    /// [`ClientError::Transport`] when the connection fails.
    pub fn post_batch(&mut self, sequence: u64, bets: &EncodedBets) -> Result<(), ClientError> {
        self.conn.queue_bet_batch(self.agency, sequence, bets).map_err(|e| self.lost(e))?;
        if self.conn.queued_len() >= WRITE_AT {
            self.conn.send_queued().map_err(|e| self.lost(e))?;
        }
        Ok(())
    }

    /// Reads the answer to batch `sequence`, of `count` bets: the positions of its winners.
    ///
    /// # Errors
    /// As [`CentralClient::send_batch`].
    pub fn batch_result(&mut self, sequence: u64, count: usize) -> Result<Vec<u32>, ClientError> {
        match self.read()? {
            Response::BatchResult { sequence: answered, winners } if answered == sequence => {
                let in_range = winners.iter().all(|&i| (i as usize) < count);
                let ascending = winners.windows(2).all(|w| w[0] < w[1]);
                if in_range && ascending {
                    Ok(winners)
                } else {
                    Err(ClientError::UnexpectedResponse(format!(
                        "winners {winners:?} are not distinct positions in a batch of {count}"
                    )))
                }
            }
            other => Err(unexpected(other, "the result of batch", sequence)),
        }
    }

    /// Tells the central the agency sent all its bets, in `batches` batches.
    ///
    /// # Errors
    /// As [`CentralClient::send_batch`].
    pub fn agency_done(&mut self, batches: u64) -> Result<(), ClientError> {
        match self.call(&Request::AgencyDone { agency: self.agency, batches })? {
            Response::Ack => Ok(()),
            other => Err(unexpected(other, "an acknowledgement of AgencyDone after batches", batches)),
        }
    }

    /// Asks what the central has committed for this agency.
    ///
    /// # Errors
    /// As [`CentralClient::send_batch`].
    pub fn resume(&mut self) -> Result<Committed, ClientError> {
        match self.call(&Request::Resume { agency: self.agency })? {
            Response::Resumed { last_sequence, bets, winners, done, digest } => {
                Ok(Committed { last_sequence, bets, winners, done, digest: Digest::from_bytes(digest) })
            }
            other => Err(unexpected(other, "the committed state of agency", u64::from(self.agency))),
        }
    }

    /// Asks for the winners of all agencies, letting the central hold the answer up to `hold`
    /// while agencies are still loading (`Request::AwaitWinners`): it answers the moment the
    /// lottery completes. The hold is kept under half the answer timeout, so a held answer is
    /// never taken for a lost central.
    ///
    /// # Errors
    /// As [`CentralClient::send_batch`].
    pub fn winners(&mut self, hold: Duration) -> Result<Winners, ClientError> {
        let hold = hold.min(self.timeout / 2);
        let hold_ms = u32::try_from(hold.as_millis()).unwrap_or(u32::MAX);
        let query = Request::AwaitWinners { agency: self.agency, hold_ms };
        match self.call(&query)? {
            Response::Total { winners } => Ok(Winners::Total(winners)),
            Response::Pending { agencies_pending } => Ok(Winners::Pending(agencies_pending)),
            other => Err(unexpected(other, "the winners total of agency", u64::from(self.agency))),
        }
    }
}

impl CentralClient {
    /// Sends `request` and reads its answer.
    fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.conn.write_message(request).map_err(|e| self.lost(e))?;
        self.read()
    }

    /// Reads the next answer, after the proof's if it is still owed (a refused proof is the
    /// error then).
    fn read(&mut self) -> Result<Response, ClientError> {
        if std::mem::take(&mut self.proof_owed) {
            let answer = self.read_one()?;
            proof_accepted(self.agency)(answer)?;
        }
        self.read_one()
    }

    fn read_one(&mut self) -> Result<Response, ClientError> {
        match self.conn.read_message() {
            Ok(Some(response)) => Ok(response),
            Ok(None) => Err(self.lost(protocol::Error::Closed)),
            Err(e) => Err(self.lost(e)),
        }
    }

    /// A failed exchange as the agency reports it: a socket timeout is said to be one, with
    /// the timeout, not as the system's "resource temporarily unavailable".
    fn lost(&self, e: protocol::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::TimedOut { after: self.timeout }
        } else {
            ClientError::Transport(e)
        }
    }
}

/// Closing is logged on every path out, the error paths included.
impl Drop for CentralClient {
    fn drop(&mut self) {
        self.conn.get_mut().close();
        // Fails only when the central already closed its end; the socket is released either way.
        let _ = self.conn.get_ref().socket().shutdown(Shutdown::Both);
        log::info!(
            "action: close_connection | result: success | agency: {} | address: {}",
            self.agency,
            self.address
        );
    }
}

/// Checks the answer to `agency`'s `Prove`.
fn proof_accepted(agency: u32) -> impl Fn(Response) -> Result<(), ClientError> {
    move |answer| match answer {
        Response::Ack => Ok(()),
        other => Err(unexpected(other, "an acknowledgement of the proof of agency", u64::from(agency))),
    }
}

fn unexpected(response: Response, wanted: &str, n: u64) -> ClientError {
    match response {
        Response::Error { kind, message } => ClientError::Refused { kind, message },
        other => ClientError::UnexpectedResponse(format!("wanted {wanted} {n}, got {other:?}")),
    }
}
