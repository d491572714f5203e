//! One answer per path. Every answer is read from the lottery or the metrics; none changes
//! anything, and none names a person (agency numbers and counts only).

use std::{sync::Arc, time::Instant};

use serde_json::json;

use super::wire::{Answer, Asked};
use crate::{
    lottery::{Lottery, Status},
    metrics::{Metrics, Snapshot},
    store::Progress,
};

/// The status page: one file, no external assets (the machines it runs on may have no
/// internet), refreshing itself from `/status.json`.
const PAGE: &str = include_str!("page.html");

/// What the listener shows.
pub struct Observed {
    /// The lottery, asked for its status and readiness.
    pub lottery: Arc<Lottery>,
    /// The counters.
    pub metrics: Arc<Metrics>,
    /// Agencies taking part.
    pub agencies: u32,
    /// How many agency connections are open now (the connection layer's registry).
    pub connections: Box<dyn Fn() -> usize + Send + Sync>,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed").field("agencies", &self.agencies).finish_non_exhaustive()
    }
}

/// The answer to `asked`. Prometheus asks for OpenMetrics; anything else gets the older text
/// format.
pub(super) fn answer(asked: &Asked, observed: &Observed) -> Answer {
    let (status, content_type, body) = if matches!(asked.method.as_str(), "GET" | "HEAD") {
        route(&asked.target, observed, asked.openmetrics)
    } else {
        (405, "text/plain; charset=utf-8", "read-only: GET only\n".to_owned())
    };
    Answer { status, content_type, body }
}

fn route(url: &str, observed: &Observed, openmetrics: bool) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let path = url.split('?').next().unwrap_or(url);
    match path {
        "/" | "/index.html" => (200, "text/html; charset=utf-8", PAGE.to_owned()),
        "/healthz" => (200, TEXT, "ok\n".to_owned()),
        "/readyz" => readiness(&observed.lottery),
        "/status.json" => match observed.lottery.status() {
            Ok(status) => (200, "application/json", status_json(observed.agencies, &status)),
            Err(e) => (503, TEXT, format!("the store does not answer: {e}\n")),
        },
        "/metrics" => metrics(observed, openmetrics),
        _ => (404, TEXT, "not found: try /, /metrics, /status.json, /healthz, /readyz\n".to_owned()),
    }
}

fn readiness(lottery: &Lottery) -> (u16, &'static str, String) {
    let started = Instant::now();
    match lottery.ready() {
        Ok(()) => (200, "text/plain; charset=utf-8", "ready\n".to_owned()),
        Err(e) => {
            runtime::throttled!(
                crate::lottery::WARNINGS,
                "readyz",
                log::Level::Warn,
                "action: readyz | result: fail | took_ms: {} | error: {e}",
                started.elapsed().as_millis()
            );
            (503, "text/plain; charset=utf-8", format!("not ready: {e}\n"))
        }
    }
}

/// The metrics page; the gauges of the lottery are left at their last values when the store
/// does not answer (the counters are this central's own and always shown).
fn metrics(observed: &Observed, openmetrics: bool) -> (u16, &'static str, String) {
    let mut snapshot = Snapshot {
        agencies_expected: observed.agencies,
        connections_open: (observed.connections)(),
        ..Snapshot::default()
    };
    if let Ok(status) = observed.lottery.status() {
        snapshot.agencies_done = done(&status);
        snapshot.complete = matches!(status.progress, Progress::Complete { .. });
    }
    let content_type = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    match observed.metrics.render(snapshot, openmetrics) {
        Ok(page) => (200, content_type, page),
        Err(e) => (500, "text/plain; charset=utf-8", format!("cannot render the metrics: {e}\n")),
    }
}

fn done(status: &Status) -> u32 {
    u32::try_from(status.agencies.iter().filter(|t| t.done).count()).unwrap_or(u32::MAX)
}

/// `{"agencies_expected", "agencies_done", "complete", "total_winners" (null until
/// complete), "agencies": [{"agency", "bets", "winners", "done"}, ...]}`.
fn status_json(expected: u32, status: &Status) -> String {
    let total = match status.progress {
        Progress::Complete { winners } => Some(winners),
        Progress::Pending { .. } => None,
    };
    let agencies: Vec<_> = (1..)
        .zip(&status.agencies)
        .map(|(agency, t): (u32, _)| json!({"agency": agency, "bets": t.bets, "winners": t.winners, "done": t.done}))
        .collect();
    json!({
        "agencies_expected": expected,
        "agencies_done": done(status),
        "complete": total.is_some(),
        "total_winners": total,
        "agencies": agencies,
    })
    .to_string()
}
