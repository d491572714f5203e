//! One run of one scenario: a real central (or several on one database) and its agencies as
//! processes on 127.0.0.1, timed from the moment every agency is let go at once (see
//! [`crate::gate`]) to the last agency's exit, and checked before any figure is believed. The
//! central runs under GNU time, the agencies bare (see [`crate::timed`]).

use std::{
    fs,
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::mpsc::{self, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use client::latency::Latencies;
use testkit::{postgres::Cluster, process::field};

pub use crate::datasets::AgencyFiles;
use crate::{
    database,
    gate::Gate,
    histogram,
    timed::{children_cpu, held, kill, timed, usage, Process, PATIENCE},
};

/// The longest a run's agencies may take: far above any scenario here (the 1 ms one takes
/// 28 s), so only a stuck run reaches it.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What one run is: binaries, data, where to keep its files, the central's settings.
#[derive(Debug)]
pub struct Plan<'a> {
    /// Holds `server` and `client` (release builds).
    pub bin_dir: &'a Path,
    /// The agencies' bets.
    pub data: &'a AgencyFiles,
    /// Emptied first; receives every log, the winners file and the RSS reports.
    pub run_dir: PathBuf,
    /// `SERVER_WINNER_DELAY_MS`.
    pub delay_ms: u64,
    /// `CLI_WINNERS_RETRY_PERIOD`.
    pub retry_period: &'a str,
    /// The database engine: the cluster to make the run's database in, and how many centrals
    /// share it. `None`: one central on its journal.
    pub database: Option<OnDatabase<'a>>,
    /// A credentials set (`security::generate`): the agencies prove their keys and every
    /// connection is TLS. `None`: plain TCP, the central open.
    pub credentials: Option<&'a Path>,
    /// The central's HTTP listener on (`SERVER_HTTP_PORT`), its `/metrics` fetched once a
    /// second through the run, as Prometheus would: what observing a central costs.
    pub scraped: bool,
}

/// Centrals on one database.
#[derive(Debug, Clone, Copy)]
pub struct OnDatabase<'a> {
    /// Where each run gets a new database.
    pub cluster: &'a Cluster,
    /// Centrals at once; agency `i` uses central `(i - 1) % centrals`.
    pub centrals: usize,
}

/// The figures of one run that passed every check.
#[derive(Debug, Clone)]
pub struct Measured {
    /// From the moment the agencies are let go to the last agency's exit.
    pub wall: Duration,
    /// The harness's starting of the agencies' processes, before `wall` begins.
    pub spawn: Duration,
    /// CPU time the agencies' processes used waiting to be let go (their shells), left out of
    /// `clients_cpu`.
    pub held_cpu: Duration,
    /// Bets stored, summed over the agencies' summaries.
    pub bets: u64,
    /// The total every agency was told.
    pub winners: u64,
    /// The central's peak resident set, KiB (the largest, with several centrals).
    pub server_rss_kib: u64,
    /// The central's CPU time, user + system (of all, with several centrals).
    pub server_cpu: Duration,
    /// The database server's CPU time over the run (its every process), on the database
    /// engine.
    pub database_cpu: Option<Duration>,
    /// The agencies' CPU time, user + system, all of them added up.
    pub clients_cpu: Duration,
    /// Each agency's peak resident set, KiB, agency 1 first (as it logged it on exit).
    pub client_rss_kib: Vec<u64>,
    /// Every batch's round trip, all agencies merged.
    pub round_trips: Latencies,
}

/// Runs the plan once.
///
/// # Errors
/// What went wrong or what check failed; a failed run reports no figures.
pub fn run(plan: &Plan<'_>) -> Result<Measured, String> {
    let dir = &plan.run_dir;
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let centrals = plan.database.map_or(1, |d| d.centrals.max(1));
    let ports = free_ports(centrals)?;
    let http_ports = if plan.scraped { free_ports(centrals)? } else { Vec::new() };
    let agencies = plan.data.bets.len();
    let url = plan.database.map(|d| d.cluster.create_database("bench"));
    let names: Vec<String> = if centrals == 1 {
        vec!["server".into()]
    } else {
        (1..=centrals).map(|i| format!("server-{i}")).collect()
    };
    let database_cpu = || plan.database.map(|d| database::server_cpu(d.cluster.port())).transpose();
    let database_before = database_cpu()?;
    let cpu_before = children_cpu()?;
    let mut servers = Vec::new();
    for ((name, port), http) in
        names.iter().zip(&ports).zip(http_ports.iter().map(Some).chain(std::iter::repeat(None)))
    {
        servers.push(start_central(plan, name, *port, http.copied(), url.as_deref())?);
    }
    let scraper = Scraper::start(&http_ports)?;
    let result = with_servers(plan, &ports, &mut servers);
    let scrapes = scraper.stop();
    let stopped: Vec<_> = servers.iter_mut().map(Process::stop).collect();
    let mut measured = result?;
    if plan.scraped && scrapes == 0 {
        return Err("the metrics were never scraped during the run".into());
    }
    let children = children_cpu()?.saturating_sub(cpu_before);
    if let (Some(before), Some(after)) = (database_before, database_cpu()?) {
        measured.database_cpu = Some(after.saturating_sub(before));
    }
    for (name, status) in names.iter().zip(stopped) {
        let status = status?;
        if !status.success() {
            return Err(format!(
                "{name} exited with {status}; see {}",
                dir.join(format!("{name}.log")).display()
            ));
        }
        let (rss, cpu) = usage(dir, name)?;
        measured.server_rss_kib = measured.server_rss_kib.max(rss);
        measured.server_cpu += cpu;
    }
    measured.clients_cpu = children.saturating_sub(measured.server_cpu).saturating_sub(measured.held_cpu);
    check_winners_stored(plan, url.as_deref(), agencies, &measured)?;
    Ok(measured)
}

/// One central of the run, under GNU time, on `port` (and its HTTP listener on `http`), on
/// the database `url` or a winners file in the run's folder.
fn start_central(
    plan: &Plan<'_>,
    name: &str,
    port: u16,
    http: Option<u16>,
    url: Option<&str>,
) -> Result<Process, String> {
    let dir = &plan.run_dir;
    let mut server = timed(&plan.bin_dir.join("server"), dir, name)?;
    server
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", port.to_string())
        .env("SERVER_AGENCIES", plan.data.bets.len().to_string())
        .env("SERVER_WINNER_DELAY_MS", plan.delay_ms.to_string())
        .env("LOGGING_LEVEL", "WARNING");
    match url {
        Some(url) => server.env("SERVER_DATABASE_URL", url),
        None => server.env("SERVER_STORAGE_PATH", dir.join("winners.csv")),
    };
    if let Some(http) = http {
        server.env("SERVER_HTTP_PORT", http.to_string());
    }
    if let Some(credentials) = plan.credentials {
        server
            .env("SERVER_AGENCY_KEYS", security::generate::agencies_file(credentials))
            .env("SERVER_TLS_CERT", security::generate::central_cert(credentials))
            .env("SERVER_TLS_KEY", security::generate::central_key(credentials));
    }
    Process::start(&mut server, name)
}

/// Checks that what was stored (the winners file, or what `server export-winners` writes
/// from the database) holds exactly the winners the agencies were told of.
fn check_winners_stored(
    plan: &Plan<'_>,
    url: Option<&str>,
    agencies: usize,
    measured: &Measured,
) -> Result<(), String> {
    let dir = &plan.run_dir;
    let rows = match url {
        Some(url) => database::exported_winners(plan.bin_dir, url, agencies, dir)?,
        None => {
            let stored =
                fs::read_to_string(dir.join("winners.csv")).map_err(|e| format!("winners file: {e}"))?;
            // One header line, then one line per winner (names hold no line breaks).
            stored.lines().count().saturating_sub(1) as u64
        }
    };
    if rows != measured.winners {
        return Err(format!(
            "the winners file holds {rows} winners, the agencies were told {}",
            measured.winners
        ));
    }
    Ok(())
}

/// The agencies' part of a run, once the centrals are up; agencies spread round-robin over
/// them.
fn with_servers(plan: &Plan<'_>, ports: &[u16], servers: &mut [Process]) -> Result<Measured, String> {
    let dir = &plan.run_dir;
    let addresses: Vec<SocketAddr> =
        ports.iter().map(|&port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))).collect();
    for (&address, server) in addresses.iter().zip(servers) {
        wait_listening(address, server)?;
    }
    let gate = Gate::new().map_err(|e| format!("the agencies' start line: {e}"))?;
    let spawning = Instant::now();
    let mut agencies = Vec::new();
    for agency in 1..=plan.data.bets.len() {
        let name = format!("client-{agency}");
        let mut client = held(&gate, &plan.bin_dir.join("client"), dir, &name)?;
        client
            .env("CLI_ID", agency.to_string())
            .env("CLI_SERVER_ADDRESS", addresses[(agency - 1) % addresses.len()].to_string())
            .env("CLI_DATA_PATH", plan.data.dir.join(format!("dataset-{agency}.csv")))
            .env("CLI_WINNERS_RETRY_PERIOD", plan.retry_period)
            // The figures checked below are INFO lines; an agency logs a bounded number of
            // them (progress once a second), never one per bet or per batch.
            .env("CLI_LOG_LEVEL", "info");
        if let Some(credentials) = plan.credentials {
            let id = u32::try_from(agency).map_err(|_| "too many agencies".to_owned())?;
            client
                .env("CLI_KEY", security::generate::agency_key(credentials, id))
                .env("CLI_TLS_CA", security::generate::ca_cert(credentials))
                .env("CLI_TLS_NAME", "localhost");
        }
        agencies.push(Process::start(&mut client, &name)?);
    }
    let spawn = spawning.elapsed();
    let (statuses, run) = wait_all(agencies, dir, gate)?;
    let mut measured = check_agencies(dir, plan.data, &statuses, run.wall)?;
    measured.spawn = spawn;
    measured.held_cpu = run.held_cpu;
    Ok(measured)
}

/// The agencies' run as timed: from the gate's opening to the last exit.
struct Timed {
    wall: Duration,
    /// What the agencies' processes used before the gate opened.
    held_cpu: Duration,
}

/// Lets the agencies (held at `gate`) go once a thread waits for each, and waits for every
/// one, so that the first failure is seen at once: the other agencies would otherwise ask
/// for a total that never comes, forever. Then the rest are killed and the run fails.
/// Returns each exit status (agency 1 first) and the run's time.
fn wait_all(agencies: Vec<Process>, dir: &Path, gate: Gate) -> Result<(Vec<ExitStatus>, Timed), String> {
    let count = agencies.len();
    let programs: Vec<u32> = agencies.iter().filter_map(|a| a.program_pid().ok()).collect();
    let (report, reports) = mpsc::channel();
    let mut waiters = Vec::new();
    for (i, mut agency) in agencies.into_iter().enumerate() {
        let report = report.clone();
        waiters.push(thread::spawn(move || {
            let status = agency.wait();
            let _ = report.send((i, status, Instant::now()));
        }));
    }
    drop(report);
    let (started, held_cpu) = match gate.open(&programs) {
        Ok(opened) => opened,
        Err(e) => {
            programs.iter().for_each(|&pid| kill(pid));
            for waiter in waiters {
                let _ = waiter.join();
            }
            return Err(e);
        }
    };
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut statuses = vec![None; count];
    let mut last_exit = started;
    let mut failure = None;
    while statuses.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        let received = reports.recv_timeout(left);
        if let Err(RecvTimeoutError::Disconnected) = received {
            failure.get_or_insert_with(|| "an agency's waiting thread ended without a word".to_owned());
            break;
        }
        let failed = match received {
            Ok((i, Ok(status), at)) => {
                statuses[i] = Some(status);
                last_exit = last_exit.max(at);
                let log = dir.join(format!("client-{}.log", i + 1));
                let last_line =
                    fs::read_to_string(&log).ok().and_then(|t| t.lines().last().map(String::from));
                (!status.success()).then(|| {
                    format!("client-{} exited with {status}: {}", i + 1, last_line.unwrap_or_default())
                })
            }
            Ok((i, Err(e), _)) => Some(format!("client-{}: {e}", i + 1)),
            Err(RecvTimeoutError::Timeout) => {
                Some(format!("the agencies did not finish within {RUN_TIMEOUT:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                Some("an agency's waiting thread ended without a word".into())
            }
        };
        if let Some(why) = failed {
            if failure.is_none() {
                programs.iter().for_each(|&pid| kill(pid));
                failure = Some(why);
            }
            if Instant::now() > deadline {
                break;
            }
        }
    }
    for waiter in waiters {
        let _ = waiter.join();
    }
    match failure {
        Some(why) => Err(why),
        None => Ok((
            statuses.into_iter().flatten().collect(),
            Timed { wall: last_exit.saturating_duration_since(started), held_cpu },
        )),
    }
}

/// Reads every agency's log and RSS; fails unless each exited 0, stored all its bets, and all
/// were told the same total, equal to the sum of their own winners.
fn check_agencies(
    dir: &Path,
    data: &AgencyFiles,
    statuses: &[ExitStatus],
    wall: Duration,
) -> Result<Measured, String> {
    let mut measured = Measured {
        wall,
        spawn: Duration::ZERO,
        held_cpu: Duration::ZERO,
        bets: 0,
        winners: 0,
        server_rss_kib: 0,
        server_cpu: Duration::ZERO,
        database_cpu: None,
        clients_cpu: Duration::ZERO,
        client_rss_kib: Vec::new(),
        round_trips: Latencies::default(),
    };
    let mut own_winners = 0;
    let mut totals = Vec::new();
    for (i, (status, &expected)) in statuses.iter().zip(&data.bets).enumerate() {
        let name = format!("client-{}", i + 1);
        let log_path = dir.join(format!("{name}.log"));
        let log = fs::read_to_string(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        if !status.success() {
            return Err(format!("{name} exited with {status}; see {}", log_path.display()));
        }
        let line = |action: &str| {
            log.lines()
                .find(|l| l.contains(&format!("action: {action} | result: success")))
                .ok_or_else(|| format!("{name} logged no successful {action}; see {}", log_path.display()))
        };
        let number = |line: &str, key: &str| {
            field(line, key)
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{name}: no number {key} in {line:?}"))
        };
        let summary = line("agency_summary")?;
        let bets = number(summary, "bets")?;
        if bets != expected {
            return Err(format!("{name} stored {bets} bets of {expected}"));
        }
        measured.bets += bets;
        own_winners += number(summary, "winners")?;
        totals.push(number(line("total_winners")?, "winners")?);
        let rtt = line("batch_rtt")?;
        let histogram = field(rtt, "histogram_us").unwrap_or("");
        histogram::merge_logged(&mut measured.round_trips, histogram).map_err(|e| format!("{name}: {e}"))?;
        measured.client_rss_kib.push(number(line("exit")?, "peak_memory_kib")?);
    }
    if totals.iter().any(|&t| t != own_winners) {
        return Err(format!(
            "agencies were told totals {totals:?}; their own winners add up to {own_winners}"
        ));
    }
    measured.winners = own_winners;
    Ok(measured)
}

/// `count` distinct ports nobody listens on now (all held at once while chosen). The centrals
/// bind them a moment later; another process could take one in between, which would fail the
/// run loudly, not skew it.
/// Fetches `/metrics` from every central as it starts and then once a second, as Prometheus
/// would, on a thread of its own until [`Scraper::stop`]; nothing without ports.
struct Scraper {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<usize>>,
}

impl Scraper {
    fn start(ports: &[u16]) -> Result<Scraper, String> {
        if ports.is_empty() {
            return Ok(Scraper { stop: None, thread: None });
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let addresses: Vec<SocketAddr> =
            ports.iter().map(|&port| SocketAddr::from((Ipv4Addr::LOCALHOST, port))).collect();
        let thread = thread::Builder::new()
            .name("scraper".into())
            .spawn(move || {
                // A first scrape as soon as the centrals answer, as Prometheus scrapes a target
                // it has just found (so a run shorter than a second is scraped too), then one a
                // second. The channel is the clock: a tick each period, the stop at once.
                let mut scrapes = 0;
                let mut period = Duration::ZERO;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
                    scrapes += addresses.iter().filter(|&&address| scrape(address)).count();
                    period = if scrapes == 0 { Duration::from_millis(10) } else { Duration::from_secs(1) };
                }
                scrapes
            })
            .map_err(|e| format!("scraper thread: {e}"))?;
        Ok(Scraper { stop: Some(stop), thread: Some(thread) })
    }

    /// Stops and joins the thread; how many pages it read.
    fn stop(mut self) -> usize {
        drop(self.stop.take());
        self.thread.take().map_or(0, |t| t.join().unwrap_or(0))
    }
}

/// One `GET /metrics`; whether a page came back.
fn scrape(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut page = String::new();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n").is_ok()
        && stream.read_to_string(&mut page).is_ok()
        && page.starts_with("HTTP/1.1 200")
        && page.contains("lottery_bets_stored_total")
}

fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| format!("no free port: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(|e| format!("no free port: {e}")))
        .collect()
}

/// Waits until the central accepts a connection (it then listens at WARNING, silent). A bare
/// connect-and-close is what a health probe does; the central logs nothing above DEBUG for it.
fn wait_listening(address: SocketAddr, server: &mut Process) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err() {
        if let Some(status) = server.try_wait()? {
            return Err(format!("the central exited with {status} before listening"));
        }
        if Instant::now() > deadline {
            return Err(format!("the central did not listen on {address} within {PATIENCE:?}"));
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}
