//! What an agency does, start to end, in the lottery's terms.
//!
//! Exercise 5: check the one bet given in the environment. Exercises 6 to 8: send the whole
//! dataset in batches, say it is done, log the agency's winner rate, then ask for the total
//! winners of all agencies until every agency is done. A stop request (SIGTERM) is honoured
//! between batches, during a retry wait and during the pause between two queries.
//!
//! Every conversation survives a broken connection or a restarted central: the agency waits
//! (capped exponential backoff, bounded in total), reconnects, asks the central what it has
//! committed (`Resume`), skips that many valid bets of its dataset and goes on with the next
//! batch. The same holds when the agency itself is restarted. The central answers a batch it
//! already committed with its original result, so nothing is counted twice.

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use protocol::{Bet, Digest, EncodedBets, WireBets};

use crate::{
    batch::Batcher,
    client::{CentralClient, Committed, Winners},
    config::Config,
    dataset::{Dataset, Row},
    endpoint::Endpoint,
    error::ClientError,
    latency::Latencies,
    retry::Backoff,
    stop::Stop,
    window::Window,
};

/// Upload progress is logged at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// How a run ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The agency's work is done.
    Done,
    /// A stop was requested and honoured.
    Stopped,
}

/// Runs the agency's work as configured: the single bet if one is given, else the dataset.
///
/// # Errors
/// The first failure; it ends the run.
pub fn run(config: &Config, endpoint: &Endpoint, stop: &Stop) -> Result<Outcome, ClientError> {
    if let Some(fields) = &config.bet {
        return check_bet(config, endpoint, stop, fields);
    }
    // A dataset that cannot be read fails now, in one line, not after the connection's
    // retries (up to `retry.total`) while the central is not up yet.
    drop(Dataset::open(&config.data_path)?);
    // The upload's connection, already proved (and through its TLS handshake), serves the
    // total queries too: one connection an agency, not two.
    let mut connection = None;
    match upload(config, endpoint, stop, &mut connection)? {
        Outcome::Done => wait_for_total(config, endpoint, stop, connection),
        Outcome::Stopped => Ok(Outcome::Stopped),
    }
}

/// Runs `attempt` until it succeeds, fails for good, or a stop is requested; between two
/// failed attempts waits as `backoff` says, and gives up when it says so. `Ok(None)` when
/// stopped (the caller logs its stage's stop line).
fn with_retry<T>(
    config: &Config,
    stop: &Stop,
    stage: &str,
    backoff: &mut Backoff,
    mut attempt: impl FnMut(&mut Backoff) -> Result<T, ClientError>,
) -> Result<Option<T>, ClientError> {
    // When this outage began: the give-up line states the time really spent, attempts included.
    let mut first_failure = None;
    loop {
        if stop.is_requested() {
            return Ok(None);
        }
        match attempt(backoff) {
            Ok(value) => return Ok(Some(value)),
            // A failure caused by the stop itself (its cut-off of a connection) is no outage.
            Err(_) if stop.is_requested() => return Ok(None),
            Err(e) if e.is_retryable() => {
                let since = *first_failure.get_or_insert_with(Instant::now);
                let Some(wait) = backoff.next_wait() else {
                    return Err(ClientError::GaveUp {
                        attempts: backoff.attempts(),
                        waited: backoff.waited(),
                        elapsed: since.elapsed(),
                        last: Box::new(e),
                    });
                };
                log::warn!(
                    "action: retry | result: in_progress | agency: {} | stage: {stage} | attempt: {} | wait: {wait:?} | error: {e}",
                    config.id,
                    backoff.attempts()
                );
                if stop.wait(wait) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Logs that a stop was honoured during `stage`.
fn log_stopped(config: &Config, stage: &str) {
    log::info!("action: shutdown | result: success | agency: {} | stage: {stage}", config.id);
}

/// Connects and asks what the central has committed for the agency.
fn connect_and_resume(endpoint: &Endpoint, stop: &Stop) -> Result<(CentralClient, Committed), ClientError> {
    let mut client = CentralClient::connect(endpoint, stop)?;
    let committed = client.resume()?;
    Ok((client, committed))
}

/// Exercise 5: sends one bet, logs whether it won.
fn check_bet(
    config: &Config,
    endpoint: &Endpoint,
    stop: &Stop,
    [first, last, document, birthdate]: &[String; 4],
) -> Result<Outcome, ClientError> {
    let bet = Bet::new(first.clone(), last.clone(), document.clone(), birthdate)
        .map_err(ClientError::InvalidBet)?;
    let mut backoff = Backoff::new(config.retry);
    // Chosen once, on the first answer: a retry resends the same batch, which the central
    // answers from what it committed if the first try got that far.
    let mut sequence = None;
    let sent = with_retry(config, stop, "single_bet", &mut backoff, |_| {
        let (mut client, committed) = connect_and_resume(endpoint, stop)?;
        let sequence = *sequence.get_or_insert(committed.last_sequence + 1);
        let mut one = EncodedBets::default();
        one.push(&bet.as_ref());
        client.send_batch(sequence, &one)
    })?;
    let Some(winners) = sent else {
        log_stopped(config, "single_bet");
        return Ok(Outcome::Stopped);
    };
    log::info!(
        "action: bet_checked | result: success | agency: {} | document: {document} | winner: {}",
        config.id,
        !winners.is_empty()
    );
    Ok(Outcome::Done)
}

/// What the central has acknowledged of this agency's upload, across connections.
#[derive(Debug, Clone, Copy, Default)]
struct Acknowledged {
    batches: u64,
    bets: u64,
}

/// Exercises 6 and 7: sends the dataset in batches, then `AgencyDone`, and logs the summary;
/// across broken connections and restarts of either side.
/// The connection that finished the upload is left in `connection`.
fn upload(
    config: &Config,
    endpoint: &Endpoint,
    stop: &Stop,
    connection: &mut Option<CentralClient>,
) -> Result<Outcome, ClientError> {
    let mut backoff = Backoff::new(config.retry);
    let mut acked = Acknowledged::default();
    let outcome = with_retry(config, stop, "upload", &mut backoff, |backoff| {
        upload_once(config, endpoint, stop, backoff, &mut acked, connection)
    })?;
    match outcome {
        Some(Outcome::Done) => Ok(Outcome::Done),
        Some(Outcome::Stopped) | None => {
            // What the central acknowledged is a prefix of the dataset: what a restarted
            // agency will not send again.
            log::info!(
                "action: shutdown | result: success | agency: {} | stage: upload | batches_sent: {} | bets_sent: {}",
                config.id,
                acked.batches,
                acked.bets
            );
            Ok(Outcome::Stopped)
        }
    }
}

/// One connection's worth of upload: from what the central has committed to the end, or to
/// the first failure. `acked` follows every answer; at the end the connection is left in
/// `keep`, for the total queries.
fn upload_once(
    config: &Config,
    endpoint: &Endpoint,
    stop: &Stop,
    backoff: &mut Backoff,
    acked: &mut Acknowledged,
    keep: &mut Option<CentralClient>,
) -> Result<Outcome, ClientError> {
    let agency = config.id;
    // No backoff reset here: a central that answers `Resume` but refuses every batch (a full
    // disk) is still an outage; only a stored batch ends it.
    let (mut client, committed) = connect_and_resume(endpoint, stop)?;
    let mut dataset = Dataset::open(&config.data_path)?;
    check_held(&mut dataset, &committed)?;
    *acked = Acknowledged { batches: committed.last_sequence, bets: committed.bets };
    let mut counts =
        Counts { batches: committed.last_sequence, bets: committed.bets, winners: committed.winners };
    if committed.last_sequence > 0 || committed.done {
        log::info!(
            "action: resume | result: success | agency: {agency} | batches: {} | bets: {} | winners: {} | done: {}",
            counts.batches,
            counts.bets,
            counts.winners,
            committed.done
        );
    }
    if committed.done {
        check_nothing_more(&mut dataset, &committed)?;
    } else {
        log::info!(
            "action: upload | result: in_progress | agency: {agency} | data_path: {}",
            config.data_path.display()
        );
        let mut upload = Upload::new(config, counts);
        if upload.run(&mut client, &mut dataset, stop, backoff, acked)? == Outcome::Stopped {
            return Ok(Outcome::Stopped);
        }
        counts = upload.counts;
        client.agency_done(counts.batches)?;
        upload.round_trips.log(agency);
    }
    *keep = Some(client);
    let rate = if counts.bets == 0 { 0.0 } else { counts.winners as f64 * 100.0 / counts.bets as f64 };
    log::info!(
        "action: agency_summary | result: success | agency: {agency} | bets: {} | skipped: {} | winners: {} | winner_rate: {rate:.2}%",
        counts.bets,
        dataset.skipped(),
        counts.winners
    );
    Ok(Outcome::Done)
}

/// Checks that what the central holds is this dataset's first bets, by their digest, so
/// another upload under this agency's id (a copied configuration) is caught before anything
/// is sent or reported as done. Leaves `dataset` at the first bet not committed.
fn check_held(dataset: &mut Dataset, committed: &Committed) -> Result<(), ClientError> {
    let mut held = Digest::default();
    let mut position = 0;
    while position < committed.bets {
        match dataset.next_row()? {
            Row::Bet(bet) => {
                held = held.plus(Digest::of_bets(position, [bet]));
                position += 1;
            }
            Row::Skipped => {}
            Row::End => {
                return Err(ClientError::DatasetMismatch { committed: committed.bets, available: position })
            }
        }
    }
    if held != committed.digest {
        return Err(ClientError::NotThisDataset { committed: committed.bets });
    }
    Ok(())
}

/// Done before this run: the central must hold the whole dataset, not a part of it (its
/// first bets were checked by [`check_held`]); reading on also counts the skipped rows.
fn check_nothing_more(dataset: &mut Dataset, committed: &Committed) -> Result<(), ClientError> {
    loop {
        match dataset.next_row()? {
            Row::Bet(_) => return Err(ClientError::NotThisDataset { committed: committed.bets }),
            Row::Skipped => {}
            Row::End => return Ok(()),
        }
    }
}

/// What the central has acknowledged of this agency's upload, as the summary reports it.
#[derive(Debug, Clone, Copy)]
struct Counts {
    batches: u64,
    bets: u64,
    winners: u64,
}

/// A batch sent and not yet answered.
struct InFlight {
    sequence: u64,
    /// How many bets it holds.
    bets: usize,
    sent_at: Instant,
    /// The batch itself, kept only when debug lines name its winners.
    batch: Option<WireBets>,
}

/// One connection's upload under way: batches sent and not yet answered, and the window that
/// decides how many may be.
struct Upload {
    agency: u32,
    counts: Counts,
    batcher: Batcher,
    /// Batches sent and not yet answered, oldest first: the central answers in order. On a
    /// broken connection they are dropped with it; the next attempt asks the central what it
    /// committed and reads them again from the dataset.
    in_flight: VecDeque<InFlight>,
    window: Window,
    /// The dataset is read to its end, or the stop asked for no new batch.
    at_end: bool,
    stopped: bool,
    /// This connection's batches only: an attempt cut short by a failure is not timed.
    round_trips: Latencies,
    last_progress: Instant,
    /// Whether debug lines name each winner by its document: only then is a batch kept until
    /// its answer; otherwise its buffers go back to the batcher for the next one.
    keep_batches: bool,
}

impl Upload {
    fn new(config: &Config, counts: Counts) -> Upload {
        Upload {
            agency: config.id,
            counts,
            batcher: Batcher::new(config.batch_max_amount),
            in_flight: VecDeque::with_capacity(config.batch_window),
            window: Window::new(config.batch_window),
            at_end: false,
            stopped: false,
            round_trips: Latencies::default(),
            last_progress: Instant::now(),
            keep_batches: log::log_enabled!(log::Level::Debug),
        }
    }

    /// Sends the rest of the dataset, as many batches ahead as the window allows, and reads
    /// every answer; `Stopped` when the stop asked for no new batch (answers owed are still
    /// read) or cut the connection while they were owed.
    fn run(
        &mut self,
        client: &mut CentralClient,
        dataset: &mut Dataset,
        stop: &Stop,
        backoff: &mut Backoff,
        acked: &mut Acknowledged,
    ) -> Result<Outcome, ClientError> {
        while !self.at_end || !self.in_flight.is_empty() {
            if !self.at_end && self.window.allows(self.in_flight.len()) {
                self.send_next(client, dataset, stop)?;
                continue;
            }
            let Some(sent) = self.in_flight.pop_front() else { break };
            let won = match client.batch_result(sent.sequence, sent.bets) {
                Ok(won) => won,
                // The stop cut the connection while answers were owed: they were never
                // acknowledged, so a restarted agency sends them again.
                Err(_) if stop.is_requested() => return Ok(Outcome::Stopped),
                Err(e) => return Err(e),
            };
            backoff.reset();
            self.answered(sent, &won);
            *acked = Acknowledged { batches: self.counts.batches, bets: self.counts.bets };
        }
        Ok(if self.stopped { Outcome::Stopped } else { Outcome::Done })
    }

    /// Reads rows until they complete a batch (or the dataset ends), and sends it, if any
    /// (unless the stop asked for no new batch). Nothing between two rows of one batch
    /// changes what the upload may do, so they are read in one loop: the window and the
    /// stop are asked once a batch.
    fn send_next(
        &mut self,
        client: &mut CentralClient,
        dataset: &mut Dataset,
        stop: &Stop,
    ) -> Result<(), ClientError> {
        let ready = loop {
            match dataset.next_row()? {
                Row::Bet(bet) => {
                    if let Some(batch) = self.batcher.push(&bet) {
                        break Some(batch);
                    }
                }
                Row::Skipped => {}
                Row::End => {
                    self.at_end = true;
                    break self.batcher.finish();
                }
            }
        };
        let Some(batch) = ready else { return Ok(()) };
        if stop.is_requested() {
            // Answers still owed are awaited; nothing new is sent.
            self.stopped = true;
            self.at_end = true;
            return Ok(());
        }
        let sequence = self.counts.batches + self.in_flight.len() as u64 + 1;
        client.post_batch(sequence, &batch)?;
        let bets = batch.len();
        let kept = self.keep_batches.then(|| batch.to_wire_bets());
        self.batcher.recycle(batch);
        self.in_flight.push_back(InFlight { sequence, bets, sent_at: Instant::now(), batch: kept });
        Ok(())
    }

    /// Counts the answer to `sent`: its winners at positions `won`.
    fn answered(&mut self, sent: InFlight, won: &[u32]) {
        let now = Instant::now();
        self.round_trips.record(now.saturating_duration_since(sent.sent_at));
        self.window.answered(now);
        if let Some(batch) = &sent.batch {
            for &i in won {
                log::debug!(
                    "action: bet_checked | result: success | agency: {} | document: {} | winner: true",
                    self.agency,
                    batch.get(i as usize).map_or("", |b| b.document)
                );
            }
        }
        self.counts = Counts {
            batches: sent.sequence,
            bets: self.counts.bets + sent.bets as u64,
            winners: self.counts.winners + won.len() as u64,
        };
        if self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = now;
            log::info!(
                "action: upload | result: in_progress | agency: {} | batches: {} | bets: {} | winners: {}",
                self.agency,
                self.counts.batches,
                self.counts.bets,
                self.counts.winners
            );
        }
    }
}

/// Exercise 8: asks for the total winners, again after each retry period while agencies are
/// still loading. Each query lets the central hold its answer for that period, so the total
/// comes the moment the last agency is done, and a partial answer still comes once a period;
/// a central that answers sooner is asked again only when the period is over. One connection
/// serves every query (a new one per query would cost the central a thread each time), the
/// upload's own when there is one; a broken one is replaced on the next attempt.
fn wait_for_total(
    config: &Config,
    endpoint: &Endpoint,
    stop: &Stop,
    mut connection: Option<CentralClient>,
) -> Result<Outcome, ClientError> {
    let agency = config.id;
    let mut backoff = Backoff::new(config.retry);
    loop {
        let asked = Instant::now();
        let answer = with_retry(config, stop, "winners_query", &mut backoff, |backoff| {
            ask_total(config, endpoint, stop, &mut connection, backoff)
        })?;
        match answer {
            None => {
                log_stopped(config, "winners_query");
                return Ok(Outcome::Stopped);
            }
            Some(Winners::Total(total)) => {
                log::info!("action: total_winners | result: success | agency: {agency} | winners: {total}");
                return Ok(Outcome::Done);
            }
            Some(Winners::Pending(pending)) => {
                log::info!("action: total_winners | result: in_progress | agency: {agency} | agencies_pending: {pending}");
            }
        }
        if stop.wait(config.retry_period.saturating_sub(asked.elapsed())) {
            log_stopped(config, "winners_query");
            return Ok(Outcome::Stopped);
        }
    }
}

/// One total query, on the kept connection if there is one, else on a new one. A kept
/// connection the central closed between two queries (to make room for an agency with bets
/// to send, or idle) is no outage: the query is asked once more, at once, on a new one; only a
/// failure of that one counts.
fn ask_total(
    config: &Config,
    endpoint: &Endpoint,
    stop: &Stop,
    connection: &mut Option<CentralClient>,
    backoff: &mut Backoff,
) -> Result<Winners, ClientError> {
    if let Some(client) = connection.as_mut() {
        match client.winners(config.retry_period) {
            Ok(answer) => {
                backoff.reset();
                return Ok(answer);
            }
            // The stop's own cut-off of the connection is not a reason to ask again.
            Err(e) if !e.is_retryable() || stop.is_requested() => return Err(e),
            Err(e) => {
                log::debug!(
                    "action: winners_query | result: in_progress | agency: {} | reconnect: {e}",
                    config.id
                );
                *connection = None;
            }
        }
    }
    let client = connection.insert(CentralClient::connect(endpoint, stop)?);
    match client.winners(config.retry_period) {
        Ok(answer) => {
            backoff.reset();
            Ok(answer)
        }
        Err(e) => {
            *connection = None;
            Err(e)
        }
    }
}
