//! The lottery's counting of batches against an engine in memory whose sync can be made to
//! fail: a batch counts as stored only once durable, and only once.

#![allow(clippy::unwrap_used)]

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use protocol::{Bet, ErrorKind, Request, Response, WireBets};

use super::{Counted, HoldRelease, Lottery, Reply, Session, StopClock, Ticket};
use crate::{
    metrics::{Metrics, Snapshot},
    store::{
        memory::Memory, Admission, CheckedBatch, Engine, Progress, Resume, Settled, Staged, StoreError, Tally,
    },
};

/// The memory engine, with a sync that fails while `broken` is set, another connection (or
/// central) that stages the same batch just before this one while `raced` is set, and a
/// commit that decides otherwise than staged while `decides` holds what it decides (as the
/// database may, deciding at commit time).
#[derive(Debug)]
struct Flaky {
    inner: Memory,
    broken: AtomicBool,
    raced: AtomicBool,
    decides: Mutex<Option<fn() -> Settled>>,
}

impl Flaky {
    /// One agency, every fault off.
    fn new() -> Flaky {
        Flaky {
            inner: Memory::new(1),
            broken: AtomicBool::new(false),
            raced: AtomicBool::new(false),
            decides: Mutex::new(None),
        }
    }
}

impl Engine for Flaky {
    fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        self.inner.admit(agency, sequence, bets)
    }
    fn stage(&self, batch: &CheckedBatch<'_>) -> Result<Staged, StoreError> {
        if self.raced.load(Ordering::SeqCst) {
            self.inner.stage(batch)?;
        }
        self.inner.stage(batch)
    }
    fn make_durable(&self, tickets: &[Ticket]) -> Result<Vec<Settled>, StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Io(std::io::Error::other("the disk is gone")));
        }
        let decided = self.decides.lock().unwrap().take();
        let settled = self.inner.make_durable(tickets)?;
        Ok(match decided {
            Some(decide) => settled.iter().map(|_| decide()).collect(),
            None => settled,
        })
    }
    fn finish_agency(&self, agency: u32, batches: u64) -> Result<(Tally, Progress), StoreError> {
        self.inner.finish_agency(agency, batches)
    }
    fn resume(&self, agency: u32) -> Result<Resume, StoreError> {
        self.inner.resume(agency)
    }
    fn tally(&self, agency: u32) -> Result<Tally, StoreError> {
        self.inner.tally(agency)
    }
    fn agencies(&self) -> Result<Vec<Tally>, StoreError> {
        self.inner.agencies()
    }
    fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready()
    }
    fn progress(&self) -> Result<Progress, StoreError> {
        self.inner.progress()
    }
    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

fn batch(sequence: u64, bets: usize) -> Request {
    let mut wire = WireBets::default();
    for i in 0..bets {
        let bet =
            Bet::new("Ana".into(), "Pérez".into(), format!("{}", 30_000_000 + i), "1990-01-31").unwrap();
        wire.push_bet(&bet);
    }
    Request::BetBatch { agency: 1, sequence, bets: wire }
}

/// Sends `request`, expecting an answer held until durable; returns it with its ticket.
fn held(lottery: &Lottery, session: &mut Session, request: Request) -> (Response, Ticket, Counted) {
    let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
    match lottery.handle(request, peer, session, Instant::now()) {
        Reply::WhenDurable { response, ticket, counted, .. } => (response, ticket, counted),
        other => panic!("expected an answer held until durable, got {other:?}"),
    }
}

/// A lottery over a [`Flaky`] store, its metrics, one connection's session and its peer.
struct Counting {
    store: Arc<Flaky>,
    metrics: Arc<Metrics>,
    lottery: Lottery,
    session: Session,
    peer: SocketAddr,
}

impl Counting {
    fn new() -> Counting {
        let store = Arc::new(Flaky::new());
        let metrics = Metrics::new(1);
        let lottery =
            Lottery::new(store.clone(), None, Duration::ZERO, StopClock::new(), Arc::clone(&metrics));
        let session = Session::new(security::Binding::default(), Arc::new(HoldRelease::default()));
        Counting { store, metrics, lottery, session, peer: "127.0.0.1:1".parse().unwrap() }
    }
}

fn line(metrics: &Metrics, series: &str) -> String {
    let page = metrics.render(Snapshot::default(), false).unwrap();
    page.lines().find(|l| l.starts_with(series)).unwrap().to_owned()
}

#[test]
fn a_batch_counts_as_stored_once_durable_and_a_staged_duplicate_as_replayed() {
    let Counting { store, metrics, lottery, mut session, peer } = Counting::new();
    let stored = "lottery_batches_total{outcome=\"stored\"}";
    let replayed = "lottery_batches_total{outcome=\"replayed\"}";

    let (response, ticket, counted) = held(&lottery, &mut session, batch(1, 3));
    assert_eq!(counted, Counted::Stored { agency: 1, bets: 3, winners: 0 });
    assert_eq!(line(&metrics, stored), format!("{stored} 0"), "counted before the sync");
    // The sync fails: the answer becomes a refusal and nothing counts as stored.
    store.broken.store(true, Ordering::SeqCst);
    let mut answers = [response.clone()];
    lottery.release(&[ticket], &mut answers, &[counted], peer);
    assert!(matches!(answers[0], Response::Error { .. }), "{answers:?}");
    assert_eq!(line(&metrics, stored), format!("{stored} 0"));
    assert_eq!(
        line(&metrics, "lottery_bets_stored_total{agency=\"1\"}"),
        "lottery_bets_stored_total{agency=\"1\"} 0"
    );
    // The sync works again: once durable, it counts, bets and all.
    store.broken.store(false, Ordering::SeqCst);
    let mut answers = [response];
    lottery.release(&[ticket], &mut answers, &[counted], peer);
    assert!(matches!(answers[0], Response::BatchResult { sequence: 1, .. }), "{answers:?}");
    assert_eq!(line(&metrics, stored), format!("{stored} 1"));
    assert_eq!(
        line(&metrics, "lottery_bets_stored_total{agency=\"1\"}"),
        "lottery_bets_stored_total{agency=\"1\"} 3"
    );

    // The next batch, staged by another connection just before this one (both admitted it
    // as fresh): the store says this one replayed, and it counts as replayed, not stored.
    store.raced.store(true, Ordering::SeqCst);
    let (response, ticket, counted) = held(&lottery, &mut session, batch(2, 2));
    assert_eq!(counted, Counted::Replayed);
    lottery.release(&[ticket], &mut [response], &[counted], peer);
    assert_eq!(line(&metrics, stored), format!("{stored} 1"));
    assert_eq!(line(&metrics, replayed), format!("{replayed} 1"));
    assert_eq!(
        line(&metrics, "lottery_bets_stored_total{agency=\"1\"}"),
        "lottery_bets_stored_total{agency=\"1\"} 3"
    );
}

#[test]
fn a_batch_its_commit_decides_otherwise_is_answered_and_counted_as_decided() {
    let Counting { store, metrics, lottery, mut session, peer } = Counting::new();
    let stored = "lottery_batches_total{outcome=\"stored\"}";
    let replayed = "lottery_batches_total{outcome=\"replayed\"}";
    let conflicts = "lottery_refusals_total{kind=\"conflict\"}";

    // Committed first by another central with the same bets: that commit's winners answer,
    // and it counts as a replay.
    let (response, ticket, counted) = held(&lottery, &mut session, batch(1, 3));
    *store.decides.lock().unwrap() = Some(|| Settled::Replayed(vec![2]));
    let mut answers = [response];
    lottery.release(&[ticket], &mut answers, &[counted], peer);
    assert!(
        matches!(&answers[0], Response::BatchResult { sequence: 1, winners } if winners == &[2]),
        "{answers:?}"
    );
    assert_eq!(line(&metrics, stored), format!("{stored} 0"));
    assert_eq!(line(&metrics, replayed), format!("{replayed} 1"));

    // Refused at its commit: the refusal is the answer, counted by its kind, nothing stored.
    let (response, ticket, counted) = held(&lottery, &mut session, batch(2, 3));
    *store.decides.lock().unwrap() =
        Some(|| Settled::Refused(StoreError::Conflict { agency: 1, sequence: 2 }));
    let mut answers = [response];
    lottery.release(&[ticket], &mut answers, &[counted], peer);
    assert!(matches!(answers[0], Response::Error { kind: ErrorKind::Conflict, .. }), "{answers:?}");
    assert_eq!(line(&metrics, conflicts), format!("{conflicts} 1"));
    assert_eq!(line(&metrics, stored), format!("{stored} 0"));
}
