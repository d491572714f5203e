//! `bench`: the end-to-end benchmark behind `make bench`.
//!
//! Runs the release `server` and `client` binaries (found beside this one, in
//! `target/release`) on 127.0.0.1 over datasets it generates under `target/bench/data`, in
//! several scenarios (the journal; the database engine with one and with three centrals on a
//! throwaway PostgreSQL it starts, beside PostgreSQL's own `COPY` of the same rows), several
//! times each, times the floor of the million-bet one ([`floor`]), and prints the medians
//! beside the targets as a table, also written with every run's raw figures to
//! `target/bench/results.json`. A run whose checks fail (an agency that does not exit 0, a
//! bet not stored, totals that disagree) gives no figures, and the exit status is then 1.
//! Settings: see [`settings`].

mod database;
mod datasets;
mod floor;
mod gate;
mod histogram;
mod report;
mod run;
mod settings;
mod timed;

use std::{
    fs,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use report::{FloorRow, Outcome, Target};
use run::{AgencyFiles, OnDatabase, Plan};
use settings::Settings;
use timed::GNU_TIME;

/// One kind of run.
struct Scenario {
    name: &'static str,
    title: &'static str,
    agencies: u32,
    /// Bets per agency; `None`: the course's sizes.
    rows: Option<u64>,
    delay_ms: u64,
    /// The database engine with this many centrals on one database; `None`: the journal.
    centrals: Option<usize>,
    /// What the scenario should reach (issues 13 and 14's targets), printed beside its figures.
    target: Target,
    /// Whether to also time the floor of its dataset ([`floor`]), printed as its own row.
    floor: bool,
    /// Agencies with keys, every connection TLS (issue 11); else plain TCP, the central open.
    tls: bool,
}

const SCENARIOS: [Scenario; 11] = [
    Scenario {
        name: "course",
        title: "5 agencies, course sizes",
        agencies: 5,
        rows: None,
        delay_ms: 0,
        centrals: None,
        target: Target { bets_per_s: Some(2_000_000.0), floor_ratio: None, central_rss_mib: None },
        floor: false,
        tls: false,
    },
    Scenario {
        name: "many",
        title: "200 agencies x 5 000",
        agencies: 200,
        rows: Some(5_000),
        delay_ms: 0,
        centrals: None,
        target: Target { bets_per_s: Some(1_000_000.0), floor_ratio: None, central_rss_mib: Some(32.0) },
        floor: false,
        tls: false,
    },
    // A national lottery on one central at its default settings (the cap sized from the
    // agencies): time, bets/s and the central's peak RSS beside the 200-agency figures.
    Scenario {
        name: "national",
        title: "2 000 agencies x 500, defaults",
        agencies: 2_000,
        rows: Some(500),
        delay_ms: 0,
        centrals: None,
        target: Target::NONE,
        floor: false,
        tls: false,
    },
    Scenario {
        name: "single",
        title: "1 agency x 1 000 000",
        agencies: 1,
        rows: Some(1_000_000),
        delay_ms: 0,
        centrals: None,
        target: Target { bets_per_s: Some(2_500_000.0), floor_ratio: Some(1.5), central_rss_mib: None },
        floor: true,
        tls: false,
    },
    Scenario {
        name: "delay",
        title: "5 agencies, course sizes, 1 ms",
        agencies: 5,
        rows: None,
        delay_ms: 1,
        centrals: None,
        target: Target { bets_per_s: None, floor_ratio: Some(1.01), central_rss_mib: None },
        floor: false,
        tls: false,
    },
    Scenario {
        name: "single-tls",
        title: "1 agency x 1 000 000, keys and TLS",
        agencies: 1,
        rows: Some(1_000_000),
        delay_ms: 0,
        centrals: None,
        target: Target::NONE,
        floor: false,
        tls: true,
    },
    Scenario {
        name: "many-tls",
        title: "200 agencies x 5 000, keys and TLS",
        agencies: 200,
        rows: Some(5_000),
        delay_ms: 0,
        centrals: None,
        target: Target::NONE,
        floor: false,
        tls: true,
    },
    Scenario {
        name: "db-course",
        title: "database, 1 central: 5 agencies, course sizes",
        agencies: 5,
        rows: None,
        delay_ms: 0,
        centrals: Some(1),
        target: Target::NONE,
        floor: false,
        tls: false,
    },
    Scenario {
        name: "db-course-3",
        title: "database, 3 centrals: 5 agencies, course sizes",
        agencies: 5,
        rows: None,
        delay_ms: 0,
        centrals: Some(3),
        target: Target::NONE,
        floor: false,
        tls: false,
    },
    Scenario {
        name: "db-many",
        title: "database, 1 central: 200 agencies x 5 000",
        agencies: 200,
        rows: Some(5_000),
        delay_ms: 0,
        centrals: Some(1),
        target: Target::NONE,
        floor: false,
        tls: false,
    },
    Scenario {
        name: "db-many-3",
        title: "database, 3 centrals: 200 agencies x 5 000",
        agencies: 200,
        rows: Some(5_000),
        delay_ms: 0,
        centrals: Some(3),
        target: Target { bets_per_s: Some(250_000.0), floor_ratio: None, central_rss_mib: None },
        floor: false,
        tls: false,
    },
];

/// `single` with the central's HTTP listener on and its metrics fetched once a second, as
/// Prometheus would: beside `single`, what observing a central costs (issue 20: at most 2%).
const SCRAPED: Scenario = Scenario {
    name: "single-http",
    title: "1 agency x 1 000 000, metrics scraped each second",
    agencies: 1,
    rows: Some(1_000_000),
    delay_ms: 0,
    centrals: None,
    target: Target::NONE,
    floor: false,
    tls: false,
};

/// The dataset PostgreSQL's own `COPY` loads: that of the 200 × 5 000 scenarios.
const COPY_AGENCIES: u32 = 200;
const COPY_ROWS: u64 = 5_000;

/// The end-to-end benchmark behind `make bench`: the release server and client binaries
/// beside this one, on 127.0.0.1, in several scenarios (course, many, national, single, delay
/// on the journal; single-tls, many-tls the same with agency keys and TLS; single-http with
/// the HTTP listener scraped each second; db-course, db-course-3, db-many, db-many-3 on a throwaway PostgreSQL with 1 or 3 centrals; copy,
/// PostgreSQL's own COPY of the 200 x 5 000 rows), several runs each, and the floor of the
/// single one timed on this machine; the medians beside the targets as a Markdown table, and
/// every figure in target/bench/results.json.
#[derive(clap::Parser)]
#[command(name = "bench", version, after_help = BENCH_HELP)]
struct Cli {}

const BENCH_HELP: &str =
    "Settings, from the environment: BENCH_RUNS (5), BENCH_DELAY_RUNS (2), BENCH_QUICK=1 (one run
of each fast scenario, the 1 ms one skipped), BENCH_ONLY (comma-separated scenario names),
BENCH_RETRY_PERIOD (2s), BENCH_IMAGES, BENCH_RUN_DIR (target/bench/runs).

Exit status: 0 when every run passed its checks, 1 otherwise, 2 for a bad setting or
command line.";

fn main() -> ExitCode {
    let Cli {} = runtime::cli::parse("");
    let settings = match Settings::load(|key| std::env::var(key).ok()) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&settings) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every wanted scenario; `Ok(false)` when one of them failed its checks.
fn bench(settings: &Settings) -> Result<bool, String> {
    let bin_dir = binaries()?;
    let out_dir = bin_dir.parent().ok_or("the binary is not under target/")?.join("bench");
    let wants_database =
        SCENARIOS.iter().any(|s| s.centrals.is_some() && settings.wants(s.name)) || settings.wants("copy");
    // Started once, for every run on the database engine; stopped and removed on drop.
    let cluster = if wants_database { database::start() } else { None };
    let (outcomes, floors) = run_scenarios(settings, &bin_dir, &out_dir, cluster.as_ref());
    let copies = match &cluster {
        Some(cluster) if settings.wants("copy") => Some(measure_copy(cluster, &bin_dir, &out_dir, settings)),
        _ => None,
    };
    drop(cluster);

    let images = report::image_sizes(&settings.images);
    let table = report::table(&outcomes, &floors, copies.as_ref());
    println!("\n{table}\n{}", report::images_text(&images));
    print_costs(&outcomes, copies.as_ref());
    let settings_pairs = [
        ("runs", settings.runs.to_string()),
        ("delay_runs", settings.delay_runs.to_string()),
        ("retry_period", settings.retry_period.clone()),
        (
            "run_dir",
            settings
                .run_dir
                .as_ref()
                .map_or_else(|| out_dir.join("runs"), Clone::clone)
                .display()
                .to_string(),
        ),
    ];
    let json = report::json(&machine(), &settings_pairs, &outcomes, &floors, copies.as_ref(), &images);
    let json_path = out_dir.join("results.json");
    fs::write(&json_path, json).map_err(|e| format!("{}: {e}", json_path.display()))?;
    println!("results: {}", json_path.display());
    Ok(outcomes.iter().all(|o| o.runs.is_ok()) && copies.is_none_or(|c| c.runs.is_ok()))
}

/// The folder of the release binaries the runs start, checked to hold them, and GNU time.
fn binaries() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("where am I: {e}"))?;
    let bin_dir = exe.parent().ok_or("the binary has no directory")?.to_path_buf();
    for needed in ["server", "client", "datagen"] {
        if !bin_dir.join(needed).is_file() {
            return Err(format!("{} is missing: build with `make bench`", bin_dir.join(needed).display()));
        }
    }
    if !Path::new(GNU_TIME).is_file() {
        return Err(format!("{GNU_TIME} is missing (Debian package `time`): it measures peak RSS"));
    }
    Ok(bin_dir)
}

/// Every scenario the settings ask for, in order, with the timed floors of those that have
/// one; a database scenario is skipped, saying so, where no cluster could start. A scenario
/// whose cost is printed beside another's ([`twin_of`]) runs in turns with it.
fn run_scenarios(
    settings: &Settings,
    bin_dir: &Path,
    out_dir: &Path,
    cluster: Option<&testkit::postgres::Cluster>,
) -> (Vec<Outcome>, Vec<FloorRow>) {
    let wanted: Vec<&Scenario> =
        SCENARIOS.iter().chain([&SCRAPED]).filter(|s| settings.wants(s.name)).collect();
    let mut outcomes = Vec::new();
    let mut floors = Vec::new();
    for scenario in wanted.iter().filter(|s| twin_of(s.name).is_none_or(|of| !settings.wants(of))) {
        let runs = if scenario.delay_ms == 0 { settings.runs } else { settings.delay_runs };
        if runs == 0 {
            eprintln!("bench: {} skipped (BENCH_DELAY_RUNS=0 or BENCH_QUICK=1)", scenario.title);
            continue;
        }
        let database = match (scenario.centrals, cluster) {
            (None, _) => None,
            (Some(centrals), Some(cluster)) => Some(OnDatabase { cluster, centrals }),
            (Some(_), None) => {
                eprintln!("bench: {} SKIPPED: no PostgreSQL binaries", scenario.title);
                continue;
            }
        };
        let twins = wanted.iter().filter(|s| twin_of(s.name) == Some(scenario.name)).copied();
        let group: Vec<&Scenario> = std::iter::once(*scenario).chain(twins).collect();
        for (scenario, mut outcome) in
            group.iter().zip(measure(&group, runs, bin_dir, out_dir, settings, database))
        {
            if scenario.floor {
                if let Some(row) = measure_floor(scenario, &mut outcome, runs, bin_dir, out_dir) {
                    floors.push(row);
                }
            }
            outcomes.push(outcome);
        }
    }
    (outcomes, floors)
}

/// The scenario whose cost `name` measures (printed after the table): they run in turns, run
/// `i` of one beside run `i` of the other, so the cost is measured on one state of a shared,
/// noisy machine rather than minutes apart (the 2 000-agency run and the 1 ms one came in
/// between, and moved the TLS cost on `many` by 3 to 5 points from one full bench to the next).
fn twin_of(name: &str) -> Option<&'static str> {
    match name {
        "single-tls" | "single-http" => Some("single"),
        "many-tls" => Some("many"),
        _ => None,
    }
}

/// The scenarios whose TLS cost is printed: each plain one, and the same with keys and TLS.
const TLS_COSTS: [(&str, &str); 2] = [("single", "single-tls"), ("many", "many-tls")];

/// What observing, TLS and the database engine cost, each beside its bound.
fn print_costs(outcomes: &[Outcome], copies: Option<&report::CopyOutcome>) {
    let verdict = |met: bool| if met { ", met" } else { ", MISSED" };
    if let Some(cost) = report::cost_of(outcomes, "single", SCRAPED.name) {
        println!(
            "The HTTP listener, scraped each second, costs {:.1}% of single's throughput (bound: at most 2%{})",
            cost * 100.0,
            verdict(cost <= 0.02)
        );
    }
    for (plain, tls) in TLS_COSTS {
        if let Some(cost) = report::cost_of(outcomes, plain, tls) {
            println!(
                "TLS and keys cost {:.1}% of {plain}'s throughput (bound: at most 15%{})",
                cost * 100.0,
                verdict(cost <= 0.15)
            );
        }
    }
    for name in ["db-many", "db-many-3"] {
        if let Some(share) = copies.and_then(|c| report::share_of_copy(outcomes, name, c)) {
            println!(
                "{name} runs at {:.0}% of COPY's rows/s in one transaction (target: at least 80%{})",
                share * 100.0,
                verdict(share >= 0.8)
            );
        }
    }
}

/// PostgreSQL's own `COPY` of the 200 × 5 000 dataset, `settings.runs` times; stops at the
/// first failure.
fn measure_copy(
    cluster: &testkit::postgres::Cluster,
    bin_dir: &Path,
    out_dir: &Path,
    settings: &Settings,
) -> report::CopyOutcome {
    let load_before = load_average();
    let dir = out_dir.join("data").join(format!("agencies-{COPY_AGENCIES}-rows-{COPY_ROWS}"));
    let runs = AgencyFiles::ensure(bin_dir, dir, COPY_AGENCIES, Some(COPY_ROWS)).and_then(|data| {
        let mut copies = Vec::new();
        for i in 1..=settings.runs {
            let copied = database::copy(cluster, &data)?;
            eprintln!(
                "bench: COPY run {i}/{}: {} rows in {:.3} s in one transaction, {:.3} s in transactions of {}",
                settings.runs,
                copied.rows,
                copied.one.as_secs_f64(),
                copied.many.as_secs_f64(),
                database::SMALL_COPY_ROWS
            );
            copies.push(copied);
        }
        Ok(copies)
    });
    if let Err(e) = &runs {
        eprintln!("bench: COPY FAILED: {e}");
    }
    report::CopyOutcome { load_before, runs }
}

/// Runs each scenario of `group` `runs` times, in turns (run 1 of each, then run 2 of each,
/// ...); a scenario stops at its first failed run, the others go on.
fn measure(
    group: &[&Scenario],
    runs: usize,
    bin_dir: &Path,
    out_dir: &Path,
    settings: &Settings,
    database: Option<OnDatabase<'_>>,
) -> Vec<Outcome> {
    let mut sides: Vec<_> = group.iter().map(|scenario| unmeasured(scenario, bin_dir, out_dir)).collect();
    for i in 1..=runs {
        for (scenario, (outcome, prepared)) in group.iter().zip(&mut sides) {
            let (Ok(measured), Some((data, credentials))) = (&mut outcome.runs, prepared.as_ref()) else {
                continue;
            };
            let plan = Plan {
                bin_dir,
                data,
                run_dir: settings
                    .run_dir
                    .clone()
                    .unwrap_or_else(|| out_dir.join("runs"))
                    .join(scenario.name)
                    .join(i.to_string()),
                delay_ms: scenario.delay_ms,
                retry_period: &settings.retry_period,
                database,
                credentials: scenario.tls.then_some(credentials.as_path()),
                scraped: scenario.name == SCRAPED.name,
            };
            match run::run(&plan) {
                Ok(m) => {
                    eprintln!(
                        "bench: {} run {i}/{runs}: {:.3} s (after {:.3} s starting the agencies), {} bets, {} winners",
                        scenario.title,
                        m.wall.as_secs_f64(),
                        m.spawn.as_secs_f64(),
                        m.bets,
                        m.winners
                    );
                    measured.push(m);
                }
                Err(e) => {
                    eprintln!("bench: {} run {i}/{runs} FAILED: {e}", scenario.title);
                    outcome.runs = Err(format!("run {i} failed: {e}"));
                }
            }
        }
    }
    sides.into_iter().map(|(outcome, _)| outcome).collect()
}

/// A scenario's outcome with no runs yet, and its dataset and credentials; `None` (and the
/// reason in the outcome) when they could not be made.
fn unmeasured(
    scenario: &Scenario,
    bin_dir: &Path,
    out_dir: &Path,
) -> (Outcome, Option<(AgencyFiles, PathBuf)>) {
    let mut outcome = Outcome {
        name: scenario.name,
        title: scenario.title.into(),
        agencies: scenario.agencies as usize,
        bets: 0,
        floor: None,
        target: scenario.target,
        load_before: load_average(),
        runs: Ok(Vec::new()),
    };
    let (data, credentials) = match prepare(scenario, bin_dir, out_dir) {
        Ok(prepared) => prepared,
        Err(e) => {
            outcome.runs = Err(e);
            return (outcome, None);
        }
    };
    outcome.bets = data.total();
    if scenario.delay_ms > 0 {
        let largest = data.bets.iter().copied().max().unwrap_or(0);
        outcome.floor =
            Some(Duration::from_millis(scenario.delay_ms) * u32::try_from(largest).unwrap_or(u32::MAX));
    }
    (outcome, Some((data, credentials)))
}

/// A scenario's dataset (written by `datagen` when missing) and, for a TLS scenario, its
/// keys and certificates (one set per number of agencies, made once): their folder.
fn prepare(scenario: &Scenario, bin_dir: &Path, out_dir: &Path) -> Result<(AgencyFiles, PathBuf), String> {
    let data_name = match scenario.rows {
        Some(rows) => format!("agencies-{}-rows-{rows}", scenario.agencies),
        None => format!("course-{}", scenario.agencies),
    };
    let data =
        AgencyFiles::ensure(bin_dir, out_dir.join("data").join(data_name), scenario.agencies, scenario.rows)?;
    let credentials = out_dir.join(format!("credentials-{}", scenario.agencies));
    if scenario.tls && !security::generate::agencies_file(&credentials).is_file() {
        security::generate::write(&credentials, scenario.agencies, &["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| format!("credentials: {e}"))?;
    }
    Ok((data, credentials))
}

/// Times the floor of `scenario`'s dataset `runs` times (see [`floor`]), sets it as the
/// outcome's floor so its ratio is printed, and gives the floor's own row; `None` (with a
/// line on stderr) when it cannot be measured.
fn measure_floor(
    scenario: &Scenario,
    outcome: &mut Outcome,
    runs: usize,
    bin_dir: &Path,
    out_dir: &Path,
) -> Option<FloorRow> {
    let data_name = format!("agencies-{}-rows-{}", scenario.agencies, scenario.rows?);
    let data =
        AgencyFiles::ensure(bin_dir, out_dir.join("data").join(data_name), scenario.agencies, scenario.rows)
            .map_err(|e| eprintln!("bench: floor of {}: {e}", scenario.title))
            .ok()?;
    let path = data.dir.join("dataset-1.csv");
    let mut walls = Vec::new();
    for i in 1..=runs {
        match floor::measure(&path) {
            Ok(f) => {
                eprintln!(
                    "bench: floor of {} run {i}/{runs}: {:.3} s, {} rows, {} winners",
                    scenario.title,
                    f.wall.as_secs_f64(),
                    f.rows,
                    f.winners
                );
                walls.push(f.wall);
            }
            Err(e) => {
                eprintln!("bench: floor of {}: {e}", scenario.title);
                return None;
            }
        }
    }
    walls.sort();
    let median = walls[walls.len() / 2];
    outcome.floor = Some(median);
    Some(FloorRow { title: format!("floor of {}", scenario.title), bets: data.total(), walls })
}

/// What the figures were measured on.
fn machine() -> Vec<(&'static str, String)> {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned());
    let when = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    vec![
        ("cpu", cpu),
        ("cores", cores.to_string()),
        ("kernel", kernel),
        ("unix_time", when.to_string()),
        ("load_after", load_average()),
    ]
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cost_printed_is_measured_in_turns_with_what_it_is_compared_with() {
        let names: Vec<&str> = SCENARIOS.iter().chain([&SCRAPED]).map(|s| s.name).collect();
        for (plain, twin) in TLS_COSTS.into_iter().chain([("single", SCRAPED.name)]) {
            assert_eq!(twin_of(twin), Some(plain), "{twin}");
            assert!(names.contains(&plain) && names.contains(&twin), "{plain}, {twin}");
        }
        // A twin is a journal scenario of the default runs: its turns match its plain one's.
        for scenario in SCENARIOS.iter().chain([&SCRAPED]).filter(|s| twin_of(s.name).is_some()) {
            assert!(scenario.centrals.is_none() && scenario.delay_ms == 0, "{}", scenario.name);
        }
    }
}
