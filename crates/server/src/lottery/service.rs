//! The central's answers: one method per request, in the lottery's terms.
//!
//! Knows bets, agencies and winners; knows nothing of sockets or frames (the handler reads
//! requests and writes responses). Every refusal is a typed `Response::Error` with nothing
//! stored, logged once with the peer's address.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use protocol::{BetRef, Digest, ErrorKind, Request, Response, WireBets, MAX_HOLD_MS};

use super::{
    completion::{Completion, HoldRelease},
    identity::{Denied, Identities},
    rules,
    session::Session,
    stop::{StopClock, CHECK_GRACE},
    WARNINGS,
};
use crate::{
    error::ServerError,
    metrics::Metrics,
    store::{Admission, CheckedBatch, Engine, Progress, Settled, StoreError, Tally, Ticket},
};

/// Most bets the central takes in one batch. An honest agency's batch fits in 8 KiB, which
/// holds at most 182 bets; the cap keeps a hostile batch from holding a connection thread
/// (and its simulated checks) for long.
pub const MAX_BATCH_BETS: usize = 512;

/// An answer, and whether it must wait for the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Send it now.
    Now(Response),
    /// A batch result: send it once `ticket` is durable ([`Lottery::release`]). The
    /// connection may hold several and release them with one sync (`held_answers.rs`).
    WhenDurable {
        /// The answer.
        response: Response,
        /// What must be durable before it goes out.
        ticket: Ticket,
        /// How long the batch's simulated check took: a slow batch's answer is not held.
        check: Duration,
        /// What the batch counts once durable ([`Lottery::release`]).
        counted: Counted,
    },
    /// The central is stopping and the batch's check could not end in time: nothing was
    /// stored and nothing is answered; the connection should close (the agency resends it).
    Abandoned,
}

/// What a batch answered once durable counts in the metrics: counted at the release, after
/// the sync, so that `stored` holds only what became durable, and only once (a batch that two
/// connections staged at once is stored by one and replayed by the other).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Stored now: its agency, bets and winners.
    Stored {
        /// The agency.
        agency: u32,
        /// Its bets.
        bets: u64,
        /// Of those, winners.
        winners: u64,
    },
    /// Committed before (by another connection, meanwhile): answered from that commit.
    Replayed,
}

/// What every connection shares: the storage engine and the rules' settings.
#[derive(Debug)]
pub struct Lottery {
    store: Arc<dyn Engine>,
    /// Who may act for which agency: the keys proofs are checked against, if any.
    identities: Identities,
    winner_delay: Duration,
    /// The stop's clock: a batch whose check cannot end in time is abandoned.
    stop: StopClock,
    /// Where held total queries wait for the lottery to complete; shared with the store,
    /// which tells it of completions through other centrals ([`Engine::on_completion`]).
    completion: Arc<Completion>,
    /// Batches and refusals counted as they are answered.
    metrics: Arc<Metrics>,
    /// The pending count the last `winners_query` answer logged at INFO: every agency asks
    /// again every few seconds, so only a change is worth a line by default (the repeats are
    /// at DEBUG). A relaxed atomic: two racing queries may both log one change, which is fine.
    logged_pending: AtomicU32,
}

/// The lottery as the store sees it, for the status page and the metrics' gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where the draw stands.
    pub progress: Progress,
    /// Every agency's counts, agency 1 first.
    pub agencies: Vec<Tally>,
}

impl Lottery {
    /// A lottery kept by `store`, checking each bet at a simulated cost of `winner_delay`, and
    /// abandoning a check that would outlast the stop's grace (`stop`); batches and refusals
    /// are counted into `metrics`.
    #[must_use]
    pub fn new(
        store: Arc<dyn Engine>,
        keys: Option<security::AgencyKeys>,
        winner_delay: Duration,
        stop: StopClock,
        metrics: Arc<Metrics>,
    ) -> Lottery {
        let completion = Arc::new(Completion::new());
        store.on_completion(Completion::told_by_store(&completion));
        Lottery {
            store,
            identities: Identities::new(keys),
            winner_delay,
            stop,
            completion,
            metrics,
            logged_pending: AtomicU32::new(u32::MAX),
        }
    }

    /// Where the draw stands and every agency's counts, as the store sees them (read-only).
    ///
    /// # Errors
    /// The store's, when it cannot answer (a database unreachable).
    pub fn status(&self) -> Result<Status, StoreError> {
        Ok(Status { progress: self.store.progress()?, agencies: self.store.agencies()? })
    }

    /// Whether the store can take a batch now (see [`Engine::ready`]).
    ///
    /// # Errors
    /// Why not.
    pub fn ready(&self) -> Result<(), StoreError> {
        self.store.ready()
    }

    /// Counts a refusal the connection layer made itself (a malformed frame, the cap).
    pub fn count_refusal(&self, kind: ErrorKind) {
        self.metrics.refused(kind, 1);
    }

    /// Answers one request of the connection from `peer`, which has proved what `session`
    /// says (the only per-connection state: sequences are the agency's, kept durably by the
    /// store, so a request means the same on any connection and after any restart).
    ///
    /// `taken` is the instant the connection took the request: a batch's simulated check is
    /// paid from it, so what the connection did since (releasing the held answers of a slow
    /// batch before, `net/held_answers.rs`) overlaps the check instead of adding to it.
    pub fn handle(&self, request: Request, peer: SocketAddr, session: &mut Session, taken: Instant) -> Reply {
        if let Some(agency) = request.agency() {
            if let Err(denied) = self.identities.authorize(&session.proof, agency) {
                let refusal = deny(&denied, agency, peer);
                if let Response::Error { kind, .. } = &refusal {
                    self.metrics.refused(*kind, 1);
                }
                return Reply::Now(refusal);
            }
        }
        let response = match request {
            Request::Echo(bytes) => {
                log::debug!("action: echo | result: success | peer: {peer} | bytes: {}", bytes.len());
                Response::Echo(bytes)
            }
            Request::BetBatch { agency, sequence, bets } => {
                let reply = self.bet_batch(agency, sequence, bets, peer, taken);
                self.count_batch(&reply);
                return reply;
            }
            Request::AgencyDone { agency, batches } => self.agency_done(agency, batches, peer),
            Request::WinnersQuery { agency } => {
                self.winners_query(agency, Duration::ZERO, peer, &session.release)
            }
            Request::AwaitWinners { agency, hold_ms } => {
                let hold = Duration::from_millis(u64::from(hold_ms.min(MAX_HOLD_MS)));
                self.winners_query(agency, hold, peer, &session.release)
            }
            Request::Resume { agency } => self.resume(agency, peer),
            Request::Hello { agency } => match self.identities.hello(&mut session.proof, agency) {
                Ok(challenge) => Response::Challenge { nonce: challenge.as_bytes().to_vec() },
                Err(e) => refuse(ErrorKind::Storage, e.to_string(), "hello", peer),
            },
            Request::Prove { agency, signature } => {
                match self.identities.prove(&mut session.proof, agency, &signature) {
                    Ok(()) => {
                        log::info!(
                        "action: authenticate | result: success | peer: {peer} | agency: {agency} | mode: {}",
                        if self.identities.required() { "checked" } else { "open" }
                    );
                        Response::Ack
                    }
                    Err(denied) => deny(&denied, agency, peer),
                }
            }
        };
        if let Response::Error { kind, .. } = &response {
            self.metrics.refused(*kind, 1);
        }
        Reply::Now(response)
    }

    /// Counts a batch's answer sent now: replayed, or refused. One sent once durable is
    /// counted at its release.
    fn count_batch(&self, reply: &Reply) {
        match reply {
            Reply::Now(Response::BatchResult { .. }) => self.metrics.batch_replayed(),
            Reply::Now(Response::Error { kind, .. }) => self.metrics.refused(*kind, 1),
            _ => {}
        }
    }

    /// Makes `staged` answers (each a [`Reply::WhenDurable`], staged under the same place of
    /// `tickets`, with what each counts in `counted`) sendable, with one sync where the engine
    /// can, and counts them. Each becomes what its commit decided: as staged, a replay of
    /// another connection's commit, or a refusal; if the sync fails each becomes a `Storage`
    /// refusal. Nothing is acknowledged, or counted as stored, that is not durable.
    pub fn release(
        &self,
        tickets: &[Ticket],
        staged: &mut [Response],
        counted: &[Counted],
        peer: SocketAddr,
    ) {
        let settled = match self.store.make_durable(tickets) {
            Ok(settled) => settled,
            Err(e) => {
                self.metrics.refused(ErrorKind::Storage, staged.len() as u64);
                refuse_staged(&e, staged, peer);
                return;
            }
        };
        for ((response, count), settled) in staged.iter_mut().zip(counted).zip(settled) {
            let Response::BatchResult { sequence, winners } = response else { continue };
            match (settled, *count) {
                (Settled::AsStaged, Counted::Stored { agency, bets, winners: won }) => {
                    self.metrics.batch_stored(agency, bets, won);
                    log::debug!(
                        "action: batch_stored | result: success | peer: {peer} | agency: {agency} | sequence: {sequence} | winners: {won}"
                    );
                }
                (Settled::AsStaged, Counted::Replayed) => self.metrics.batch_replayed(),
                (Settled::Replayed(original), _) => {
                    self.metrics.batch_replayed();
                    log::info!(
                        "action: batch_replayed | result: success | peer: {peer} | sequence: {sequence} | winners: {}",
                        original.len()
                    );
                    *winners = original;
                }
                (Settled::Refused(e), _) => {
                    let kind = store_error_kind(&e);
                    self.metrics.refused(kind, 1);
                    *response = refuse(kind, e.to_string(), "bet_batch", peer);
                }
            }
        }
    }

    /// Closes the store once every connection is done (its last sync), logging the outcome.
    ///
    /// # Errors
    /// [`ServerError::CloseStore`] when the last sync fails.
    pub fn close(&self) -> Result<(), ServerError> {
        let path = self.store.location();
        match self.store.close() {
            Ok(()) => {
                log::info!("action: close_store | result: success | path: {path}");
                Ok(())
            }
            Err(e) => {
                let e = ServerError::CloseStore(e);
                log::error!("action: close_store | result: fail | path: {path} | error: {e}");
                Err(e)
            }
        }
    }
}

/// Replaces every staged answer with a `Storage` refusal, logged once.
fn refuse_staged(e: &StoreError, staged: &mut [Response], peer: SocketAddr) {
    let message = e.to_string();
    log::warn!(
        "action: bet_batch | result: fail | peer: {peer} | kind: {} | batches: {} | error: {message}",
        ErrorKind::Storage,
        staged.len()
    );
    for response in staged {
        *response = Response::Error { kind: ErrorKind::Storage, message: message.clone() };
    }
}

impl Lottery {
    fn bet_batch(
        &self,
        agency: u32,
        sequence: u64,
        bets: WireBets,
        peer: SocketAddr,
        taken: Instant,
    ) -> Reply {
        let check = self.winner_delay.saturating_mul(u32::try_from(bets.len()).unwrap_or(u32::MAX));
        match self.stage_batch(agency, sequence, bets, peer, taken) {
            Ok((response, ticket, counted)) => Reply::WhenDurable { response, ticket, check, counted },
            Err(Some(refusal)) => Reply::Now(refusal),
            Err(None) => Reply::Abandoned,
        }
    }

    /// Checks and appends a batch; `Err` holds a refusal to send at once, or `None` when the
    /// check was abandoned for a stop.
    fn stage_batch(
        &self,
        agency: u32,
        sequence: u64,
        bets: WireBets,
        peer: SocketAddr,
        taken: Instant,
    ) -> Result<(Response, Ticket, Counted), Option<Response>> {
        log::debug!(
            "action: batch_received | result: in_progress | peer: {peer} | agency: {agency} | sequence: {sequence} | bets: {}",
            bets.len()
        );
        let refused = |e: StoreError| Some(refuse(store_error_kind(&e), e.to_string(), "bet_batch", peer));
        check_size(agency, sequence, &bets)
            .map_err(|(kind, message)| Some(refuse(kind, message, "bet_batch", peer)))?;
        let admission = self.store.admit(agency, sequence, bets.len() as u64).map_err(refused)?;
        let valid = validate(agency, sequence, &bets)
            .map_err(|message| Some(refuse(ErrorKind::InvalidBet, message, "bet_batch", peer)))?;
        let (first_bet, after) = match admission {
            Admission::Fresh { first_bet, after } => (first_bet, after),
            Admission::Replay(committed) => {
                // Answered from what was committed, but only for the same bets: another batch
                // under a committed sequence is another upload, refused, never merged.
                let digest = Digest::of_bets(committed.first_bet, &valid);
                let winners = self.store.replay(agency, sequence, committed, digest).map_err(refused)?;
                log::info!(
                    "action: batch_replayed | result: success | peer: {peer} | agency: {agency} | sequence: {sequence} | winners: {}",
                    winners.len()
                );
                // `admit` synced what the replay reveals.
                return Err(Some(Response::BatchResult { sequence, winners }));
            }
        };
        let digest = Digest::of_bets(first_bet, &valid);
        // The slow part (the simulated check), with no lock held.
        let Some(winners) =
            rules::winners(&valid, self.winner_delay, taken, || self.stop.deadline(CHECK_GRACE))
        else {
            log::info!(
                "action: bet_batch | result: fail | peer: {peer} | agency: {agency} | sequence: {sequence} | error: abandoned unstored: the central is stopping"
            );
            return Err(None);
        };
        // Every `i` was counted out over `valid` just above, so the index is in range.
        let winning_bets = winners.iter().map(|&i| valid[i as usize]).collect();
        let bets = valid.len() as u64;
        let batch = CheckedBatch { agency, sequence, bets, first_bet, digest, after, winners, winning_bets };
        let staged = self.store.stage(&batch).map_err(refused)?;
        log::debug!(
            "action: batch_staged | result: success | agency: {agency} | sequence: {sequence} | bets: {} | winners: {}",
            valid.len(),
            staged.winners.len(),
        );
        let counted = if staged.replayed {
            Counted::Replayed
        } else {
            Counted::Stored { agency, bets, winners: staged.winners.len() as u64 }
        };
        Ok((Response::BatchResult { sequence, winners: staged.winners }, staged.ticket, counted))
    }

    fn agency_done(&self, agency: u32, batches: u64, peer: SocketAddr) -> Response {
        match self.store.finish_agency(agency, batches) {
            Ok((tally, progress)) => {
                log::info!(
                    "action: agency_done | result: success | agency: {agency} | bets: {} | winners: {}",
                    tally.bets,
                    tally.winners
                );
                if let Progress::Complete { winners } = progress {
                    log::info!("action: lottery_complete | result: success | winners: {winners}");
                    self.completion.completed(winners);
                }
                Response::Ack
            }
            Err(e) => refuse(store_error_kind(&e), e.to_string(), "agency_done", peer),
        }
    }

    /// The total, or how many agencies are pending; while some are, waits up to `hold` for the
    /// lottery to complete (`completion.rs`).
    fn winners_query(
        &self,
        agency: u32,
        hold: Duration,
        peer: SocketAddr,
        release: &HoldRelease,
    ) -> Response {
        if let Err(e) = self.store.tally(agency) {
            return refuse(store_error_kind(&e), e.to_string(), "winners_query", peer);
        }
        let until = Instant::now() + hold;
        let mut progress = self.store.progress();
        if matches!(progress, Ok(Progress::Pending { .. })) && !hold.is_zero() {
            progress = match self.completion.wait(until, release) {
                Some(winners) => Ok(Progress::Complete { winners }),
                // The hold ended, or the central is stopping: what the store holds now
                // (another central on the same database may have completed it).
                None => self.store.progress(),
            };
        }
        match progress {
            Ok(Progress::Complete { winners }) => {
                log::info!("action: winners_query | result: success | agency: {agency} | winners: {winners}");
                Response::Total { winners }
            }
            Ok(Progress::Pending { agencies }) => {
                let level = if self.logged_pending.swap(agencies, Ordering::Relaxed) == agencies {
                    log::Level::Debug
                } else {
                    log::Level::Info
                };
                log::log!(
                    level,
                    "action: winners_query | result: in_progress | agency: {agency} | agencies_pending: {agencies}"
                );
                Response::Pending { agencies_pending: agencies }
            }
            Err(e) => refuse(store_error_kind(&e), e.to_string(), "winners_query", peer),
        }
    }

    /// Whether a connection must prove an agency (keys are configured) before acting for one.
    #[must_use]
    pub fn proofs_required(&self) -> bool {
        self.identities.required()
    }

    /// Answers at once every held total query whose [`HoldRelease`] was released.
    pub fn wake_released(&self) {
        self.completion.wake();
    }

    /// Answers every held total query now and holds none from here on: the central is
    /// stopping.
    pub fn stop_holding(&self) {
        self.completion.stop();
    }

    /// The stop is forcing connections closed: storage calls still waiting return now, with
    /// nothing acknowledged ([`Engine::interrupt`]).
    pub fn interrupt(&self) {
        self.store.interrupt();
    }

    fn resume(&self, agency: u32, peer: SocketAddr) -> Response {
        match self.store.resume(agency) {
            Ok(resume) => {
                log::info!(
                    "action: resume | result: success | peer: {peer} | agency: {agency} | last_sequence: {} | bets: {} | winners: {} | done: {}",
                    resume.last_sequence,
                    resume.tally.bets,
                    resume.tally.winners,
                    resume.tally.done
                );
                Response::Resumed {
                    last_sequence: resume.last_sequence,
                    bets: resume.tally.bets,
                    winners: resume.tally.winners,
                    done: resume.tally.done,
                    digest: resume.digest.to_bytes(),
                }
            }
            Err(e) => refuse(store_error_kind(&e), e.to_string(), "resume", peer),
        }
    }
}

/// Refuses a batch with no bet or more than [`MAX_BATCH_BETS`], before anything is asked of
/// the store: an empty one would only grow the journal and the replays.
fn check_size(agency: u32, sequence: u64, bets: &WireBets) -> Result<(), (ErrorKind, String)> {
    if bets.len() > MAX_BATCH_BETS {
        let message = format!(
            "agency {agency}, batch {sequence}: {} bets, the most in one batch is {MAX_BATCH_BETS}",
            bets.len()
        );
        return Err((ErrorKind::BatchTooLarge, message));
    }
    if bets.is_empty() {
        return Err((
            ErrorKind::EmptyBatch,
            format!("agency {agency}, batch {sequence}: a batch needs at least one bet"),
        ));
    }
    Ok(())
}

/// The batch's bets, each checked in place: it borrows its fields from the batch, none is
/// copied. The first invalid bet refuses the whole batch, naming it.
fn validate<'a>(agency: u32, sequence: u64, bets: &'a WireBets) -> Result<Vec<BetRef<'a>>, String> {
    let mut valid = Vec::with_capacity(bets.len());
    for (i, wire) in bets.iter().enumerate() {
        let bet = BetRef::try_from(wire)
            .map_err(|e| format!("agency {agency}, batch {sequence}, bet {}: {e}", i + 1))?;
        valid.push(bet);
    }
    Ok(valid)
}

fn store_error_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::UnknownAgency { .. } => ErrorKind::UnknownAgency,
        StoreError::AgencyFinished(_) => ErrorKind::AgencyFinished,
        StoreError::OutOfSequence { .. } => ErrorKind::OutOfSequence,
        StoreError::ReplayExpired { .. } => ErrorKind::ReplayExpired,
        // Another batch under a committed sequence, by its size or by its bets.
        StoreError::NotTheCommittedBatch { .. } | StoreError::Conflict { .. } => ErrorKind::Conflict,
        StoreError::Io(_) | StoreError::Broken => ErrorKind::Storage,
    }
}

/// A request refused for who sent it, logged once (throttled) with the peer's address.
fn deny(denied: &Denied, agency: u32, peer: SocketAddr) -> Response {
    match denied {
        Denied::Unauthenticated(why) => refuse(ErrorKind::Unauthenticated, why.clone(), "authenticate", peer),
        Denied::NotYourAgency { bound } => refuse(
            ErrorKind::NotYourAgency,
            format!("this connection acts for agency {bound}, not for agency {agency}"),
            "authorize",
            peer,
        ),
    }
}

fn refuse(kind: ErrorKind, message: String, action: &str, peer: SocketAddr) -> Response {
    runtime::throttled!(
        WARNINGS,
        kind.as_str(),
        log::Level::Warn,
        "action: {action} | result: fail | peer: {peer} | kind: {kind} | error: {message}"
    );
    Response::Error { kind, message }
}
