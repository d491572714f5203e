//! The results: medians over runs, the table printed for a person, and the same figures with
//! every run's raw values as JSON for a script.

use std::{fmt::Write as _, process::Command, time::Duration};

use client::latency::Latencies;
use serde_json::{json, Map, Value};

use crate::{
    database::{Copied, SMALL_COPY_ROWS},
    run::Measured,
};

/// One scenario's outcome.
#[derive(Debug)]
pub struct Outcome {
    /// Short name (`course`, `many`, `single`, `delay`), as `BENCH_ONLY` takes it.
    pub name: &'static str,
    /// What it is, for the table.
    pub title: String,
    /// Agencies run at once.
    pub agencies: usize,
    /// Bets of all agencies.
    pub bets: u64,
    /// The floor the run is compared with: with the simulated check on, the largest agency's
    /// bets × delay; for a scenario whose floor is timed ([`crate::floor`]), that time.
    pub floor: Option<Duration>,
    /// What it should reach.
    pub target: Target,
    /// The load average when the scenario started: how busy the machine already was.
    pub load_before: String,
    /// Every run that passed its checks, or why the scenario has no figures.
    pub runs: Result<Vec<Measured>, String>,
}

/// A scenario's targets; each one set is checked against the medians.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target {
    /// Bets per second at least.
    pub bets_per_s: Option<f64>,
    /// Wall over floor at most.
    pub floor_ratio: Option<f64>,
    /// The central's peak RSS below this many MiB.
    pub central_rss_mib: Option<f64>,
}

impl Target {
    /// No target: the scenario is measured for comparison only.
    pub const NONE: Target = Target { bets_per_s: None, floor_ratio: None, central_rss_mib: None };

    /// `met` or `MISSED` and each target beside its figure, e.g. `met: >= 1000000 bets/s
    /// (1.21x)`; `-` when there is no target.
    fn verdict(&self, m: &Medians) -> String {
        let mut parts = Vec::new();
        let mut met = true;
        if let Some(want) = self.bets_per_s {
            met &= m.bets_per_s >= want;
            parts.push(format!(">= {want:.0} bets/s ({:.2}x)", m.bets_per_s / want));
        }
        if let (Some(want), Some(ratio)) = (self.floor_ratio, m.floor_ratio) {
            met &= ratio <= want;
            parts.push(format!("<= {want:.2}x floor"));
        }
        if let Some(want) = self.central_rss_mib {
            met &= m.server_rss_mib < want;
            parts.push(format!("central RSS < {want:.0} MiB"));
        }
        if parts.is_empty() {
            return "-".into();
        }
        format!("{}: {}", if met { "met" } else { "MISSED" }, parts.join(", "))
    }
}

/// A floor timed for a scenario (see [`crate::floor`]): its own row in the table.
#[derive(Debug, Clone)]
pub struct FloorRow {
    /// What it is the floor of.
    pub title: String,
    /// Bets (rows) hashed in each run.
    pub bets: u64,
    /// Every run's time.
    pub walls: Vec<Duration>,
}

/// PostgreSQL's own `COPY` of the rows of the 200 × 5 000 scenarios.
#[derive(Debug)]
pub struct CopyOutcome {
    /// The load average when it started.
    pub load_before: String,
    /// Every run, or why there are no figures.
    pub runs: Result<Vec<Copied>, String>,
}

/// How much slower scenario `other` went than `base`, as a share of `base`'s bets per second
/// (0.12: 12% fewer bets a second); `None` unless both have figures.
#[must_use]
pub fn cost_of(outcomes: &[Outcome], base: &str, other: &str) -> Option<f64> {
    let rate = |name: &str| {
        let outcome = outcomes.iter().find(|o| o.name == name)?;
        let runs = outcome.runs.as_ref().ok().filter(|r| !r.is_empty())?;
        Some(medians(outcome, runs).bets_per_s)
    };
    let (base, other) = (rate(base)?, rate(other)?);
    Some(1.0 - other / base)
}

/// Scenario `name`'s median bets per second as a share of `COPY`'s median rows per second in
/// one transaction (0.8: 80% of `COPY`'s throughput); `None` unless both have figures.
#[must_use]
pub fn share_of_copy(outcomes: &[Outcome], name: &str, copies: &CopyOutcome) -> Option<f64> {
    let outcome = outcomes.iter().find(|o| o.name == name)?;
    let runs = outcome.runs.as_ref().ok().filter(|r| !r.is_empty())?;
    let copied = copies.runs.as_ref().ok().filter(|c| !c.is_empty())?;
    let copy_rate = copied[0].rows as f64 / median(copied.iter().map(|c| c.one.as_secs_f64()));
    Some(medians(outcome, runs).bets_per_s / copy_rate)
}

/// The medians of a scenario's runs.
#[derive(Debug, Clone, Copy)]
struct Medians {
    wall_s: f64,
    wall_min_s: f64,
    wall_max_s: f64,
    bets_per_s: f64,
    server_rss_mib: f64,
    client_rss_max_mib: f64,
    server_cpu_s: f64,
    clients_cpu_s: f64,
    database_cpu_s: Option<f64>,
    rtt_p50_ms: Option<f64>,
    rtt_p99_ms: Option<f64>,
    floor_ratio: Option<f64>,
}

fn medians(outcome: &Outcome, runs: &[Measured]) -> Medians {
    let wall_s = median(runs.iter().map(|r| r.wall.as_secs_f64()));
    let mib = |kib: u64| kib as f64 / 1024.0;
    let rtt = |q: f64| -> Option<f64> {
        let each: Vec<f64> = runs
            .iter()
            .filter_map(|r| r.round_trips.quantile_micros(q))
            .map(|us| us as f64 / 1000.0)
            .collect();
        (!each.is_empty()).then(|| median(each.into_iter()))
    };
    let walls = runs.iter().map(|r| r.wall.as_secs_f64());
    Medians {
        wall_s,
        wall_min_s: walls.clone().fold(f64::INFINITY, f64::min),
        wall_max_s: walls.fold(0.0, f64::max),
        bets_per_s: outcome.bets as f64 / wall_s,
        server_rss_mib: median(runs.iter().map(|r| mib(r.server_rss_kib))),
        client_rss_max_mib: median(
            runs.iter().map(|r| mib(r.client_rss_kib.iter().copied().max().unwrap_or(0))),
        ),
        server_cpu_s: median(runs.iter().map(|r| r.server_cpu.as_secs_f64())),
        clients_cpu_s: median(runs.iter().map(|r| r.clients_cpu.as_secs_f64())),
        database_cpu_s: runs
            .iter()
            .all(|r| r.database_cpu.is_some())
            .then(|| median(runs.iter().filter_map(|r| r.database_cpu).map(|d| d.as_secs_f64()))),
        rtt_p50_ms: rtt(0.5),
        rtt_p99_ms: rtt(0.99),
        floor_ratio: outcome.floor.map(|f| wall_s / f.as_secs_f64()),
    }
}

/// The median of `values` (the mean of the middle two for an even count); 0 for none.
fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The table, one row per scenario, medians only, in Markdown (header, separator row, one row
/// per scenario, then `COPY`'s two rows if measured), with docs/performance.md's words: the central,
/// the agencies.
#[must_use]
pub fn table(outcomes: &[Outcome], floors: &[FloorRow], copies: Option<&CopyOutcome>) -> String {
    let mut rows = vec![HEADER.map(String::from).to_vec()];
    let mut failures = Vec::new();
    for o in outcomes {
        match &o.runs {
            Ok(runs) => rows.push(scenario_row(o, runs)),
            Err(why) => {
                rows.push(padded(vec![o.title.clone(), o.bets.to_string(), "FAILED".into()], ""));
                failures.push(format!("{}: no figures: {why}", o.title));
            }
        }
    }
    rows.extend(floors.iter().map(floor_row));
    if let Some(copies) = copies {
        match &copies.runs {
            Ok(runs) if !runs.is_empty() => rows.extend(copy_rows(runs)),
            Ok(_) => {}
            Err(why) => failures.push(format!("PostgreSQL COPY: no figures: {why}")),
        }
    }
    let mut out = render(&rows);
    for failure in failures {
        let _ = writeln!(out, "\n{failure}");
    }
    out
}

/// The table's columns.
const HEADER: [&str; 13] = [
    "run",
    "bets",
    "runs",
    "wall (min-max)",
    "bets/s",
    "central RSS",
    "agency RSS (max)",
    "CPU central + agencies",
    "CPU database",
    "RTT p50",
    "RTT p99",
    "vs floor",
    "target",
];

/// `cells` with every column filled (with `fill`), so the table stays one table in any
/// Markdown reader.
fn padded(mut cells: Vec<String>, fill: &str) -> Vec<String> {
    cells.resize(HEADER.len(), fill.to_owned());
    cells
}

/// A scenario's medians and its verdict against its target.
fn scenario_row(o: &Outcome, runs: &[Measured]) -> Vec<String> {
    let m = medians(o, runs);
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2} ms"));
    vec![
        o.title.clone(),
        o.bets.to_string(),
        runs.len().to_string(),
        format!("{:.3} s ({:.2}-{:.2})", m.wall_s, m.wall_min_s, m.wall_max_s),
        format!("{:.0}", m.bets_per_s),
        format!("{:.1} MiB", m.server_rss_mib),
        format!("{:.1} MiB", m.client_rss_max_mib),
        format!("{:.2} + {:.2} s", m.server_cpu_s, m.clients_cpu_s),
        m.database_cpu_s.map_or("-".into(), |s| format!("{s:.2} s")),
        ms(m.rtt_p50_ms),
        ms(m.rtt_p99_ms),
        m.floor_ratio.map_or("-".into(), |r| format!("{r:.3}x")),
        o.target.verdict(&m),
    ]
}

/// `took`'s median and range, as the wall column shows them.
fn wall_cell(took: &[f64]) -> (f64, String) {
    let wall = median(took.iter().copied());
    let min = took.iter().copied().fold(f64::INFINITY, f64::min);
    let max = took.iter().copied().fold(0.0, f64::max);
    (wall, format!("{wall:.3} s ({min:.2}-{max:.2})"))
}

/// The timed floor of a scenario: its own row, the 1.000x every ratio is taken against.
fn floor_row(f: &FloorRow) -> Vec<String> {
    let walls: Vec<f64> = f.walls.iter().map(Duration::as_secs_f64).collect();
    let (wall, cell) = wall_cell(&walls);
    let mut row = vec![
        f.title.clone(),
        f.bets.to_string(),
        walls.len().to_string(),
        cell,
        format!("{:.0}", f.bets as f64 / wall),
    ];
    row.resize(HEADER.len() - 2, "-".into());
    row.extend(["1.000x".into(), "-".into()]);
    row
}

/// PostgreSQL's own `COPY` of the same rows: in one transaction, and in transactions of
/// [`SMALL_COPY_ROWS`].
fn copy_rows(runs: &[Copied]) -> Vec<Vec<String>> {
    let rows_copied = runs[0].rows;
    let title_many = format!(
        "PostgreSQL COPY, {} transactions of {SMALL_COPY_ROWS}",
        rows_copied / SMALL_COPY_ROWS as u64
    );
    [
        (
            "PostgreSQL COPY, 1 transaction".to_owned(),
            runs.iter().map(|c| c.one.as_secs_f64()).collect::<Vec<_>>(),
        ),
        (title_many, runs.iter().map(|c| c.many.as_secs_f64()).collect()),
    ]
    .into_iter()
    .map(|(title, took)| {
        let (wall, cell) = wall_cell(&took);
        padded(
            vec![
                title,
                rows_copied.to_string(),
                runs.len().to_string(),
                cell,
                format!("{:.0}", rows_copied as f64 / wall),
            ],
            "-",
        )
    })
    .collect()
}

/// The rows as a Markdown table, each column as wide as its widest cell.
fn render(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0).max(3))
        .collect();
    let line = |cells: Vec<String>| format!("| {} |", cells.join(" | "));
    let pad = |row: &[String]| row.iter().zip(&widths).map(|(cell, &w)| format!("{cell:<w$}")).collect();
    let _ = writeln!(out, "{}", line(pad(&rows[0])));
    let _ = writeln!(out, "{}", line(widths.iter().map(|&w| "-".repeat(w)).collect()));
    for row in &rows[1..] {
        let _ = writeln!(out, "{}", line(pad(row)));
    }
    out
}

/// The size of each image in bytes, `None` when Docker does not know it; `Err` when Docker
/// itself does not answer.
pub fn image_sizes(images: &[String]) -> Result<Vec<(String, Option<u64>)>, String> {
    let probe = Command::new("docker").args(["version", "--format", "{{.Server.Version}}"]).output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(_) => return Err("docker does not answer (no daemon)".into()),
        Err(_) => return Err("docker is not installed".into()),
    }
    Ok(images
        .iter()
        .map(|image| {
            let out =
                Command::new("docker").args(["image", "inspect", "--format", "{{.Size}}", image]).output();
            let size = out
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok());
            (image.clone(), size)
        })
        .collect())
}

/// The images' lines under the table.
#[must_use]
pub fn images_text(sizes: &Result<Vec<(String, Option<u64>)>, String>) -> String {
    match sizes {
        Err(why) => format!("images: not measured, {why}\n"),
        Ok(sizes) => sizes
            .iter()
            .map(|(image, size)| match size {
                Some(bytes) => format!("image {image}: {:.1} MiB\n", *bytes as f64 / (1024.0 * 1024.0)),
                None => format!("image {image}: absent\n"),
            })
            .collect(),
    }
}

/// Everything as one JSON document: the machine, the settings, and per scenario the medians
/// and every run's raw figures.
#[must_use]
pub fn json(
    machine: &[(&str, String)],
    settings: &[(&str, String)],
    outcomes: &[Outcome],
    floors: &[FloorRow],
    copies: Option<&CopyOutcome>,
    images: &Result<Vec<(String, Option<u64>)>, String>,
) -> String {
    let object = |pairs: &[(&str, String)]| -> Map<String, Value> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str()))).collect()
    };
    let images = match images {
        Err(why) => json!({ "error": why }),
        Ok(sizes) => Value::Object(sizes.iter().map(|(image, size)| (image.clone(), json!(size))).collect()),
    };
    let document = json!({
        "machine": object(machine),
        "settings": object(settings),
        "images_bytes": images,
        "scenarios": outcomes.iter().map(scenario_json).collect::<Vec<_>>(),
        "floors": floors.iter().map(floor_json).collect::<Vec<_>>(),
        "copy": copies.map(copy_json),
    });
    // A `Value` always serializes: its keys are strings and it holds no non-finite number.
    let mut text = serde_json::to_string_pretty(&document).unwrap_or_default();
    text.push('\n');
    text
}

/// One scenario: what it was, its medians and verdict, and every run's figures.
fn scenario_json(o: &Outcome) -> Value {
    let mut s = json!({
        "name": o.name,
        "title": o.title,
        "agencies": o.agencies,
        "bets": o.bets,
        "load_before": o.load_before,
        "floor_s": number(o.floor.map(|f| f.as_secs_f64())),
    });
    match &o.runs {
        Ok(runs) => {
            let m = medians(o, runs);
            s["median"] = json!({
                "wall_s": number(Some(m.wall_s)),
                "bets_per_s": number(Some(m.bets_per_s)),
                "server_rss_mib": number(Some(m.server_rss_mib)),
                "client_rss_max_mib": number(Some(m.client_rss_max_mib)),
                "server_cpu_s": number(Some(m.server_cpu_s)),
                "clients_cpu_s": number(Some(m.clients_cpu_s)),
                "database_cpu_s": number(m.database_cpu_s),
                "rtt_p50_ms": number(m.rtt_p50_ms),
                "rtt_p99_ms": number(m.rtt_p99_ms),
                "floor_ratio": number(m.floor_ratio),
                "target": o.target.verdict(&m),
            });
            s["runs"] = runs.iter().map(run_json).collect();
        }
        Err(why) => s["error"] = Value::from(why.as_str()),
    }
    s
}

/// One timed floor: its median and every run's wall.
fn floor_json(f: &FloorRow) -> Value {
    json!({
        "title": f.title,
        "bets": f.bets,
        "median_wall_s": number(Some(median(f.walls.iter().map(Duration::as_secs_f64)))),
        "walls_s": f.walls.iter().map(|w| number(Some(w.as_secs_f64()))).collect::<Vec<_>>(),
    })
}

/// PostgreSQL's own `COPY`: medians and every run.
fn copy_json(c: &CopyOutcome) -> Value {
    match &c.runs {
        Ok(runs) => json!({
            "load_before": c.load_before,
            "rows_per_small_transaction": SMALL_COPY_ROWS,
            "median": {
                "one_transaction_s": number(Some(median(runs.iter().map(|r| r.one.as_secs_f64())))),
                "small_transactions_s": number(Some(median(runs.iter().map(|r| r.many.as_secs_f64())))),
            },
            "runs": runs.iter().map(|r| json!({
                "rows": r.rows,
                "one_transaction_s": number(Some(r.one.as_secs_f64())),
                "small_transactions_s": number(Some(r.many.as_secs_f64())),
            })).collect::<Vec<_>>(),
        }),
        Err(why) => json!({ "load_before": c.load_before, "error": why }),
    }
}

fn run_json(r: &Measured) -> Value {
    let quantile = |l: &Latencies, q| number(l.quantile_micros(q).map(|us| us as f64 / 1000.0));
    json!({
        "wall_s": number(Some(r.wall.as_secs_f64())),
        "spawn_s": number(Some(r.spawn.as_secs_f64())),
        "bets": r.bets,
        "winners": r.winners,
        "server_rss_kib": r.server_rss_kib,
        "server_cpu_s": number(Some(r.server_cpu.as_secs_f64())),
        "clients_cpu_s": number(Some(r.clients_cpu.as_secs_f64())),
        "database_cpu_s": number(r.database_cpu.map(|d| d.as_secs_f64())),
        "client_rss_kib": r.client_rss_kib,
        "batches": r.round_trips.count(),
        "rtt_p50_ms": quantile(&r.round_trips, 0.5),
        "rtt_p99_ms": quantile(&r.round_trips, 0.99),
    })
}

/// A figure, or `null` when there is none or it is not finite (JSON has no NaN).
fn number(value: Option<f64>) -> Value {
    value.filter(|v| v.is_finite()).map_or(Value::Null, Value::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0].into_iter()), 2.5);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    fn outcome(runs: Result<Vec<Measured>, String>) -> Outcome {
        Outcome {
            name: "course",
            title: "5 agencies, \"course\" sizes".into(),
            agencies: 5,
            bets: 1000,
            floor: None,
            target: Target { bets_per_s: Some(500.0), floor_ratio: None, central_rss_mib: Some(32.0) },
            load_before: "0.10 0.20 0.30".into(),
            runs,
        }
    }

    fn measured() -> Measured {
        Measured {
            wall: Duration::from_millis(80),
            spawn: Duration::from_millis(5),
            held_cpu: Duration::ZERO,
            bets: 1000,
            winners: 60,
            server_rss_kib: 3200,
            server_cpu: Duration::from_millis(40),
            clients_cpu: Duration::from_millis(70),
            database_cpu: Some(Duration::from_millis(90)),
            client_rss_kib: vec![2900, 2800],
            round_trips: Latencies::default(),
        }
    }

    fn copies() -> CopyOutcome {
        let copied = Copied { rows: 1_000, one: Duration::from_millis(20), many: Duration::from_millis(100) };
        CopyOutcome { load_before: "0.10 0.20 0.30".into(), runs: Ok(vec![copied]) }
    }

    #[test]
    fn a_scenario_is_measured_against_copy_in_one_transaction() {
        // 1000 bets in 80 ms (12 500/s) against 1000 rows in 20 ms (50 000/s): a quarter.
        let share = share_of_copy(&[outcome(Ok(vec![measured()]))], "course", &copies()).unwrap();
        assert!((share - 0.25).abs() < 1e-9, "{share}");
        assert!(share_of_copy(&[outcome(Err("failed".into()))], "course", &copies()).is_none());
        assert!(share_of_copy(&[outcome(Ok(vec![measured()]))], "many", &copies()).is_none());
    }

    #[test]
    fn the_table_is_markdown_with_a_separator_row() {
        let floor =
            FloorRow { title: "floor of course".into(), bets: 1000, walls: vec![Duration::from_millis(8)] };
        let text = table(
            &[outcome(Ok(vec![measured()])), outcome(Err("central exited 1".into()))],
            &[floor],
            Some(&copies()),
        );
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(lines.len(), 7, "{text}");
        fn cells(line: &str) -> Vec<&str> {
            line.trim_matches('|').split('|').map(str::trim).collect()
        }
        assert!(cells(lines[1]).iter().all(|c| c.len() >= 3 && c.chars().all(|ch| ch == '-')), "{text}");
        assert!(lines.iter().all(|l| cells(l).len() == 13), "{text}");
        assert_eq!(cells(lines[2])[8], "0.09 s", "{text}");
        // 1000 bets in 80 ms: 12 500 bets/s, 25x the 500 asked; 3.1 MiB under 32.
        assert!(lines[2].contains("met: >= 500 bets/s (25.00x), central RSS < 32 MiB"), "{text}");
        assert!(lines[4].starts_with("| floor of course") && lines[4].contains("125000"), "{text}");
        assert_eq!(
            &cells(lines[5])[..5],
            ["PostgreSQL COPY, 1 transaction", "1000", "1", "0.020 s (0.02-0.02)", "50000"]
        );
        assert_eq!(cells(lines[6])[0], "PostgreSQL COPY, 10 transactions of 100", "{text}");
        assert!(lines[0].contains("central RSS") && !text.contains("server"), "{text}");
        assert!(text.contains("course\" sizes: no figures: central exited 1"), "{text}");
    }

    #[test]
    fn the_json_parses_back_with_every_figure() {
        let images = Ok(vec![("tp0-server:latest".to_owned(), Some(2_000_000)), ("x".to_owned(), None)]);
        let text = json(
            &[("cpu", "AMD \"EPYC\"\n".into())],
            &[("runs", "1".into())],
            &[outcome(Ok(vec![measured()])), outcome(Err("no".into()))],
            &[FloorRow { title: "floor".into(), bets: 10, walls: vec![Duration::from_millis(5)] }],
            Some(&copies()),
            &images,
        );
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["machine"]["cpu"], "AMD \"EPYC\"\n");
        assert_eq!(doc["images_bytes"]["tp0-server:latest"], 2_000_000);
        assert_eq!(doc["images_bytes"]["x"], Value::Null);
        let course = &doc["scenarios"][0];
        assert_eq!(course["title"], "5 agencies, \"course\" sizes");
        assert_eq!(course["median"]["wall_s"], 0.08);
        assert_eq!(course["median"]["rtt_p50_ms"], Value::Null);
        assert_eq!(course["runs"][0]["client_rss_kib"], json!([2900, 2800]));
        assert_eq!(course["median"]["database_cpu_s"], 0.09);
        assert_eq!(doc["scenarios"][1]["error"], "no");
        assert_eq!(doc["copy"]["median"]["one_transaction_s"], 0.02);
        assert_eq!(doc["copy"]["runs"][0]["small_transactions_s"], 0.1);
        assert_eq!(course["median"]["target"], "met: >= 500 bets/s (25.00x), central RSS < 32 MiB");
        assert_eq!(doc["floors"][0]["median_wall_s"], 0.005);
        assert_eq!(number(Some(f64::NAN)), Value::Null);
    }
}
