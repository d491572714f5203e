//! What an agency does, start to end, in the lottery's terms.
//!
//! Exercise 5: check the one bet given in the environment. Exercises 6 to 8: send the whole
//! dataset in batches, say it is done, log the agency's winner rate, then ask for the total
//! winners of all agencies until every agency is done. A stop request (SIGTERM) is honoured
//! between batches and during the pause between two queries.

use std::time::{Duration, Instant};

use protocol::{Bet, WireBet};

use crate::{
    batch::Batcher,
    bets::Dataset,
    client::{CentralClient, Winners},
    config::Config,
    error::ClientError,
    latency::Latencies,
    stop::Stop,
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
pub fn run(config: &Config, stop: &Stop) -> Result<Outcome, ClientError> {
    if let Some(fields) = &config.bet {
        return check_bet(config, fields);
    }
    match upload(config, stop)? {
        Outcome::Done => wait_for_total(config, stop),
        Outcome::Stopped => Ok(Outcome::Stopped),
    }
}

/// Exercise 5: sends one bet, logs whether it won.
fn check_bet(
    config: &Config,
    [first, last, document, birthdate]: &[String; 4],
) -> Result<Outcome, ClientError> {
    let bet = Bet::new(first.clone(), last.clone(), document.clone(), birthdate)
        .map_err(ClientError::InvalidBet)?;
    let mut client = CentralClient::connect(&config.server_address, config.id, config.server_timeout)?;
    let (_, winners) = client.send_batch(1, vec![WireBet::from(bet)])?;
    log::info!(
        "action: bet_checked | result: success | agency: {} | document: {document} | winner: {}",
        config.id,
        !winners.is_empty()
    );
    Ok(Outcome::Done)
}

/// Exercises 6 and 7: sends the dataset in batches, then `AgencyDone`, and logs the summary.
fn upload(config: &Config, stop: &Stop) -> Result<Outcome, ClientError> {
    let agency = config.id;
    let mut dataset = Dataset::open(&config.data_path)?;
    let mut client = CentralClient::connect(&config.server_address, agency, config.server_timeout)?;
    log::info!(
        "action: upload | result: in_progress | agency: {agency} | data_path: {}",
        config.data_path.display()
    );
    let mut batcher = Batcher::new(config.batch_max_amount);
    let (mut batches, mut bets, mut winners) = (0u64, 0u64, 0u64);
    let mut last_progress = Instant::now();
    let mut at_end = false;
    let mut round_trips = Latencies::default();
    while !at_end {
        let ready = match dataset.next_bet()? {
            Some(bet) => batcher.push(WireBet::from(bet)),
            None => {
                at_end = true;
                batcher.finish()
            }
        };
        let Some(batch) = ready else { continue };
        if stop.is_requested() {
            log::info!("action: shutdown | result: success | agency: {agency} | stage: upload | batches_sent: {batches}");
            return Ok(Outcome::Stopped);
        }
        batches += 1;
        let sent_at = Instant::now();
        let (sent, won) = client.send_batch(batches, batch)?;
        round_trips.record(sent_at.elapsed());
        for &i in &won {
            log::debug!(
                "action: bet_checked | result: success | agency: {agency} | document: {} | winner: true",
                sent[i as usize].document
            );
        }
        bets += sent.len() as u64;
        winners += won.len() as u64;
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            log::info!(
                "action: upload | result: in_progress | agency: {agency} | batches: {batches} | bets: {bets} | winners: {winners}"
            );
        }
    }
    client.agency_done(batches)?;
    drop(client);
    let rate = if bets == 0 { 0.0 } else { winners as f64 * 100.0 / bets as f64 };
    log::info!(
        "action: agency_summary | result: success | agency: {agency} | bets: {bets} | skipped: {} | winners: {winners} | winner_rate: {rate:.2}%",
        dataset.skipped()
    );
    round_trips.log(agency);
    Ok(Outcome::Done)
}

/// Exercise 8: asks for the total winners, again after each retry period while agencies are
/// still loading.
fn wait_for_total(config: &Config, stop: &Stop) -> Result<Outcome, ClientError> {
    let agency = config.id;
    loop {
        let answer =
            CentralClient::connect(&config.server_address, agency, config.server_timeout)?.winners()?;
        match answer {
            Winners::Total(total) => {
                log::info!("action: total_winners | result: success | agency: {agency} | winners: {total}");
                return Ok(Outcome::Done);
            }
            Winners::Pending(pending) => {
                log::info!("action: total_winners | result: in_progress | agency: {agency} | agencies_pending: {pending}");
            }
        }
        if stop.wait(config.retry_period) {
            log::info!("action: shutdown | result: success | agency: {agency} | stage: winners_query");
            return Ok(Outcome::Stopped);
        }
    }
}
