//! The central's counters, in one registry handed down to where the events happen: the
//! lottery layer counts batches and refusals, the store times its syncs and commits, and the
//! HTTP listener (`http`) renders them in the Prometheus text format.
//!
//! Counted per batch, never per bet: one batch's update is a handful of atomic additions,
//! which costs nothing beside a batch's simulated check. The gauges of the lottery as the
//! store sees it (`lottery_agencies_done`, ...) are not kept here: the listener asks the store
//! when it is scraped, so with several centrals on one database each shows the database's view.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::text,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};
use protocol::ErrorKind;

/// One label and its value, such as `agency="3"`.
type Label<V> = [(&'static str, V); 1];

/// Every metric of one central. Shared by the layers through an `Arc`; each metric is atomic
/// inside, so no lock is taken to count.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    bets_stored: Family<Label<u32>, Counter>,
    winners_stored: Family<Label<u32>, Counter>,
    batches: Family<Label<&'static str>, Counter>,
    refusals: Family<Label<&'static str>, Counter>,
    sync_seconds: Histogram,
    /// Set from the store's answer when the page is scraped.
    agencies_expected: Gauge,
    agencies_done: Gauge,
    complete: Gauge,
    connections_open: Gauge,
}

/// The lottery as the store sees it, set into the gauges just before a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Agencies taking part.
    pub agencies_expected: u32,
    /// Of those, done.
    pub agencies_done: u32,
    /// Whether every one is done.
    pub complete: bool,
    /// Connections this central serves now.
    pub connections_open: usize,
}

impl Metrics {
    /// The metrics of a central for `agencies` agencies: every agency's counters and every
    /// refusal kind start at 0, so a dashboard sees each series from the first scrape.
    #[must_use]
    pub fn new(agencies: u32) -> Arc<Metrics> {
        let mut metrics = Metrics {
            registry: Registry::default(),
            bets_stored: Family::default(),
            winners_stored: Family::default(),
            batches: Family::default(),
            refusals: Family::default(),
            // From 100 µs to about 3 s: a page-cache sync on an idle disk to a stalled database.
            sync_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 16)),
            agencies_expected: Gauge::default(),
            agencies_done: Gauge::default(),
            complete: Gauge::default(),
            connections_open: Gauge::default(),
        };
        metrics.create_series(agencies);
        metrics.register();
        Arc::new(metrics)
    }

    /// Every agency's and every refusal kind's series, at 0 from the start, so a dashboard
    /// sees them before anything happens.
    fn create_series(&self, agencies: u32) {
        for agency in 1..=agencies {
            drop(self.bets_stored.get_or_create(&[("agency", agency)]));
            drop(self.winners_stored.get_or_create(&[("agency", agency)]));
        }
        for outcome in ["stored", "replayed"] {
            drop(self.batches.get_or_create(&[("outcome", outcome)]));
        }
        for kind in ErrorKind::ALL {
            drop(self.refusals.get_or_create(&[("kind", kind.as_str())]));
        }
    }

    /// Names and describes every metric in the registry the page is rendered from.
    fn register(&mut self) {
        let registry = &mut self.registry;
        registry.register(
            "lottery_agencies_expected",
            "Agencies taking part in the lottery",
            self.agencies_expected.clone(),
        );
        registry.register(
            "lottery_agencies_done",
            "Agencies that said they sent everything, as the store sees it",
            self.agencies_done.clone(),
        );
        registry.register(
            "lottery_complete",
            "1 once every agency is done (the draw's total is known), else 0",
            self.complete.clone(),
        );
        registry.register(
            "lottery_connections_open",
            "Agency connections this central serves now",
            self.connections_open.clone(),
        );
        registry.register(
            "lottery_bets_stored",
            "Bets this central stored, by agency",
            self.bets_stored.clone(),
        );
        registry.register(
            "lottery_winners_stored",
            "Winning bets this central stored, by agency",
            self.winners_stored.clone(),
        );
        registry.register(
            "lottery_batches",
            "Batches answered: stored now, or replayed from what was stored before",
            self.batches.clone(),
        );
        registry.register(
            "lottery_refusals",
            "Requests refused, by the kind of error answered",
            self.refusals.clone(),
        );
        registry.register(
            "lottery_storage_sync_seconds",
            "Time of each journal sync or database commit",
            self.sync_seconds.clone(),
        );
    }

    /// Counts a batch stored for `agency`, with its bets and winners.
    pub fn batch_stored(&self, agency: u32, bets: u64, winners: u64) {
        self.batches.get_or_create(&[("outcome", "stored")]).inc();
        self.bets_stored.get_or_create(&[("agency", agency)]).inc_by(bets);
        self.winners_stored.get_or_create(&[("agency", agency)]).inc_by(winners);
    }

    /// Counts a batch answered from what was stored before.
    pub fn batch_replayed(&self) {
        self.batches.get_or_create(&[("outcome", "replayed")]).inc();
    }

    /// Counts `count` requests refused with `kind`.
    pub fn refused(&self, kind: ErrorKind, count: u64) {
        self.refusals.get_or_create(&[("kind", kind.as_str())]).inc_by(count);
    }

    /// What the store times its syncs or commits with.
    #[must_use]
    pub fn sync_timer(&self) -> SyncTimer {
        SyncTimer(Some(self.sync_seconds.clone()))
    }

    /// The page in the OpenMetrics text format when `openmetrics` (what Prometheus asks for),
    /// else in the Prometheus text format 0.0.4 (what `promtool check metrics` and older
    /// scrapers read), with `snapshot` in the gauges.
    ///
    /// # Errors
    /// Only a formatter's error, which writing to a `String` never gives.
    pub fn render(&self, snapshot: Snapshot, openmetrics: bool) -> Result<String, std::fmt::Error> {
        self.agencies_expected.set(i64::from(snapshot.agencies_expected));
        self.agencies_done.set(i64::from(snapshot.agencies_done));
        self.complete.set(i64::from(snapshot.complete));
        self.connections_open.set(i64::try_from(snapshot.connections_open).unwrap_or(i64::MAX));
        let mut page = String::new();
        text::encode(&mut page, &self.registry)?;
        Ok(if openmetrics { page } else { prometheus_text(&page) })
    }
}

/// The Prometheus text format 0.0.4 from the library's OpenMetrics page. The two differ only
/// where this page uses them: a counter's family is named with its `_total` suffix in HELP and
/// TYPE lines, and there is no `# EOF` line.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut page = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines().filter(|line| *line != "# EOF") {
        let described = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        page.push_str(described.as_deref().unwrap_or(line));
        page.push('\n');
    }
    page
}

/// The histogram a store observes each sync or commit into; the default observes nothing
/// (an engine opened outside a central, by a test or `export-winners`).
#[derive(Debug, Clone, Default)]
pub struct SyncTimer(Option<Histogram>);

impl SyncTimer {
    /// Records the time since `started`.
    pub fn observe(&self, started: Instant) {
        if let Some(histogram) = &self.0 {
            histogram.observe(started.elapsed().as_secs_f64());
        }
    }

    /// Records `took`.
    pub fn observe_duration(&self, took: Duration) {
        if let Some(histogram) = &self.0 {
            histogram.observe(took.as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_page_names_every_series_and_counts_per_batch() {
        let metrics = Metrics::new(2);
        metrics.batch_stored(2, 100, 3);
        metrics.batch_stored(2, 50, 0);
        metrics.batch_replayed();
        metrics.refused(ErrorKind::Busy, 2);
        metrics.sync_timer().observe_duration(Duration::from_millis(3));
        let snapshot =
            Snapshot { agencies_expected: 2, agencies_done: 1, complete: false, connections_open: 4 };
        let page = metrics.render(snapshot, false).unwrap();
        assert!(page.contains("# TYPE lottery_bets_stored_total counter\n"), "{page}");
        assert!(!page.contains("# EOF"));
        let openmetrics = metrics.render(snapshot, true).unwrap();
        assert!(
            openmetrics.contains("# TYPE lottery_bets_stored counter\n") && openmetrics.ends_with("# EOF\n")
        );
        for line in [
            "lottery_bets_stored_total{agency=\"1\"} 0",
            "lottery_bets_stored_total{agency=\"2\"} 150",
            "lottery_winners_stored_total{agency=\"2\"} 3",
            "lottery_batches_total{outcome=\"stored\"} 2",
            "lottery_batches_total{outcome=\"replayed\"} 1",
            "lottery_refusals_total{kind=\"busy\"} 2",
            "lottery_refusals_total{kind=\"conflict\"} 0",
            "lottery_storage_sync_seconds_count 1",
            "lottery_agencies_expected 2",
            "lottery_agencies_done 1",
            "lottery_complete 0",
            "lottery_connections_open 4",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing from:\n{page}");
        }
    }
}
