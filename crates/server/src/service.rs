//! The central's answers: one method per request, in the lottery's terms.
//!
//! Knows bets, agencies and winners; knows nothing of sockets or frames (the handler reads
//! requests and writes responses). Every refusal is a typed `Response::Error` with nothing
//! stored, logged once with the peer's address.

use std::{collections::HashMap, net::SocketAddr, time::Duration};

use protocol::{Bet, ErrorKind, Request, Response, WireBet};

use crate::{
    lottery,
    store::{Progress, Store, StoreError},
};

/// What every connection shares: the store and the rules' settings.
#[derive(Debug)]
pub struct Central {
    store: Store,
    winner_delay: Duration,
}

/// What one connection remembers between requests: how many batches each agency sent on it,
/// so batches arrive in order and `AgencyDone` counts match.
#[derive(Debug, Default)]
pub struct Session {
    batches: HashMap<u32, u64>,
}

impl Central {
    /// A central over `store`, checking each bet at a simulated cost of `winner_delay`.
    #[must_use]
    pub fn new(store: Store, winner_delay: Duration) -> Central {
        Central { store, winner_delay }
    }

    /// The store, for shutdown to sync and for tests to read.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Answers one request of the connection from `peer`.
    pub fn handle(&self, session: &mut Session, request: Request, peer: SocketAddr) -> Response {
        match request {
            Request::Echo(bytes) => {
                log::debug!("action: echo | result: success | peer: {peer} | bytes: {}", bytes.len());
                Response::Echo(bytes)
            }
            Request::BetBatch { agency, sequence, bets } => {
                self.bet_batch(session, agency, sequence, bets, peer)
            }
            Request::AgencyDone { agency, batches } => self.agency_done(session, agency, batches, peer),
            Request::WinnersQuery { agency } => self.winners_query(agency, peer),
        }
    }

    fn bet_batch(
        &self,
        session: &mut Session,
        agency: u32,
        sequence: u64,
        bets: Vec<WireBet>,
        peer: SocketAddr,
    ) -> Response {
        log::debug!(
            "action: batch_received | result: in_progress | peer: {peer} | agency: {agency} | sequence: {sequence} | bets: {}",
            bets.len()
        );
        if let Err(e) = self.store.check_open(agency) {
            return refuse(store_error_kind(&e), e.to_string(), "bet_batch", peer);
        }
        let expected = session.batches.get(&agency).copied().unwrap_or(0) + 1;
        if sequence != expected {
            let message = format!("agency {agency}: expected batch {expected}, got batch {sequence}");
            return refuse(ErrorKind::OutOfSequence, message, "bet_batch", peer);
        }
        let mut valid = Vec::with_capacity(bets.len());
        for (i, wire) in bets.into_iter().enumerate() {
            match Bet::try_from(wire) {
                Ok(bet) => valid.push(bet),
                Err(e) => {
                    let message = format!("agency {agency}, batch {sequence}, bet {}: {e}", i + 1);
                    return refuse(ErrorKind::InvalidBet, message, "bet_batch", peer);
                }
            }
        }
        // The slow part (the simulated check), with no lock held.
        let winners: Vec<u32> = (0u32..)
            .zip(&valid)
            .filter(|(_, bet)| lottery::is_winner(bet, self.winner_delay))
            .map(|(i, _)| i)
            .collect();
        // Every `i` was counted out over `valid` just above, so the index is in range.
        let winning_bets = winners.iter().map(|&i| &valid[i as usize]);
        if let Err(e) = self.store.record_batch(agency, valid.len(), winning_bets) {
            return refuse(store_error_kind(&e), e.to_string(), "bet_batch", peer);
        }
        session.batches.insert(agency, sequence);
        log::debug!(
            "action: batch_stored | result: success | agency: {agency} | sequence: {sequence} | bets: {} | winners: {}",
            valid.len(),
            winners.len()
        );
        Response::BatchResult { sequence, winners }
    }

    fn agency_done(&self, session: &Session, agency: u32, batches: u64, peer: SocketAddr) -> Response {
        let seen = session.batches.get(&agency).copied().unwrap_or(0);
        if batches != seen {
            let message =
                format!("agency {agency} says it sent {batches} batches, this connection carried {seen}");
            return refuse(ErrorKind::OutOfSequence, message, "agency_done", peer);
        }
        match self.store.finish_agency(agency) {
            Ok((tally, progress)) => {
                log::info!(
                    "action: agency_done | result: success | agency: {agency} | bets: {} | winners: {}",
                    tally.bets,
                    tally.winners
                );
                if let Progress::Complete { winners } = progress {
                    log::info!("action: lottery_complete | result: success | winners: {winners}");
                }
                Response::Ack
            }
            Err(e) => refuse(store_error_kind(&e), e.to_string(), "agency_done", peer),
        }
    }

    fn winners_query(&self, agency: u32, peer: SocketAddr) -> Response {
        if let Err(e) = self.store.tally(agency) {
            return refuse(store_error_kind(&e), e.to_string(), "winners_query", peer);
        }
        match self.store.progress() {
            Progress::Complete { winners } => {
                log::info!("action: winners_query | result: success | agency: {agency} | winners: {winners}");
                Response::Total { winners }
            }
            Progress::Pending { agencies } => {
                log::info!("action: winners_query | result: in_progress | agency: {agency} | agencies_pending: {agencies}");
                Response::Pending { agencies_pending: agencies }
            }
        }
    }
}

fn store_error_kind(e: &StoreError) -> ErrorKind {
    match e {
        StoreError::UnknownAgency { .. } => ErrorKind::UnknownAgency,
        StoreError::AgencyFinished(_) => ErrorKind::AgencyFinished,
        StoreError::Io(_) => ErrorKind::Storage,
    }
}

fn refuse(kind: ErrorKind, message: String, action: &str, peer: SocketAddr) -> Response {
    log::warn!("action: {action} | result: fail | peer: {peer} | kind: {kind} | error: {message}");
    Response::Error { kind, message }
}
