//! The database engine's side of the benchmark: the throwaway PostgreSQL the runs share
//! (`testkit::postgres::Cluster`, on loopback, its files on the same disk as the runs'), the
//! CPU its processes use during a run, the check of what the runs committed (`server
//! export-winners`), and PostgreSQL's own `COPY` of the same rows as the bar to compare with.
//!
//! The cluster keeps PostgreSQL's defaults where they matter for durability: `fsync` and
//! `synchronous_commit` on, so every commit the central acknowledges has been flushed.

use std::{
    fs,
    io::Write,
    path::Path,
    process::{Command, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

use testkit::postgres::Cluster;

use crate::datasets::AgencyFiles;

/// Rows per transaction in the many-transactions `COPY`.
pub const SMALL_COPY_ROWS: usize = 100;

/// The table both `COPY`s fill: one column per field of a bet, the date as a `date`.
const COPY_TABLE: &str = "CREATE TABLE IF NOT EXISTS copied_bets (
    first_name text NOT NULL,
    last_name text NOT NULL,
    document text NOT NULL,
    birthdate date NOT NULL
)";

/// Starts the cluster, or `None` without PostgreSQL's binaries (after a loud SKIPPED line).
#[must_use]
pub fn start() -> Option<Cluster> {
    Cluster::start("bench")
}

/// CPU time (user + system) the PostgreSQL server listening on `port` has used so far: the
/// postmaster's own, that of the backends it has reaped (fields 16 and 17 of its
/// `/proc/PID/stat`), and that of its live processes. The difference of two readings is what
/// the server spent between them, backends that came and went included.
///
/// # Errors
/// When no postmaster listens on `port`, or `/proc` cannot be read.
pub fn server_cpu(port: u16) -> Result<Duration, String> {
    let postmaster = postmaster(port)?;
    let own = stat_ticks(postmaster, true)?;
    let path = format!("/proc/{postmaster}/task/{postmaster}/children");
    let children = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // A backend may exit between the listing and its reading: it is then counted in the
    // postmaster's reaped time by the next reading.
    let live: u64 = children
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .filter_map(|pid| stat_ticks(pid, false).ok())
        .sum();
    Ok(Duration::from_millis((own + live) * 10))
}

/// The postmaster listening on `port`: the `postgres` process started with `-p PORT`.
fn postmaster(port: u16) -> Result<u32, String> {
    let port = port.to_string();
    let entries = fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let is_postgres = args.first().is_some_and(|a| a.ends_with(b"postgres"));
        let on_port = args.windows(2).any(|w| w[0] == b"-p" && w[1] == port.as_bytes());
        if is_postgres && on_port {
            return Ok(pid);
        }
    }
    Err(format!("no postgres process listens on port {port}"))
}

/// User + system clock ticks (1/100 s) of `pid`, with those of its reaped children if
/// `reaped`.
fn stat_ticks(pid: u32, reaped: bool) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    // The command name (field 2) may hold spaces; the fields after it start at field 3.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    // utime, stime, cutime, cstime: fields 14 to 17, here 11 to 14 (from field 3).
    let field = |i: usize| {
        fields.get(i).and_then(|f| f.parse::<u64>().ok()).ok_or_else(|| format!("{path}: no field {}", i + 3))
    };
    let mut ticks = field(11)? + field(12)?;
    if reaped {
        ticks += field(13)? + field(14)?;
    }
    Ok(ticks)
}

/// The winners the central committed to the database at `url`, written by `server
/// export-winners` into `dir`: the rows, header excluded.
///
/// # Errors
/// When the export fails or its file cannot be read.
pub fn exported_winners(bin_dir: &Path, url: &str, agencies: usize, dir: &Path) -> Result<u64, String> {
    let out = dir.join("winners.csv");
    let status = Command::new(bin_dir.join("server"))
        .arg("export-winners")
        .arg(&out)
        .env_clear()
        .env("SERVER_DATABASE_URL", url)
        .env("SERVER_AGENCIES", agencies.to_string())
        .env("LOGGING_LEVEL", "WARNING")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run server export-winners: {e}"))?;
    if !status.success() {
        return Err(format!("server export-winners exited with {status}"));
    }
    let text = fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    // One header line, then one line per winner (names hold no line breaks).
    Ok(text.lines().count().saturating_sub(1) as u64)
}

/// One run of both `COPY`s of the same rows.
#[derive(Debug, Clone, Copy)]
pub struct Copied {
    /// Rows in each.
    pub rows: u64,
    /// Every row in one `COPY`, one transaction.
    pub one: Duration,
    /// The rows as transactions of [`SMALL_COPY_ROWS`] rows each, one after the other on one
    /// connection, each its own `COPY` and commit.
    pub many: Duration,
}

/// `COPY`s every bet of `data` into a new table of a new database of `cluster`, once in one
/// transaction and once as transactions of [`SMALL_COPY_ROWS`] rows; times each from the
/// first byte sent to the commit's answer (the reading of the files is not timed).
///
/// # Errors
/// When a file cannot be read or the database refuses.
pub fn copy(cluster: &Cluster, data: &AgencyFiles) -> Result<Copied, String> {
    let mut text = Vec::new();
    for agency in 1..=data.bets.len() {
        let path = data.dir.join(format!("dataset-{agency}.csv"));
        text.extend(fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?);
    }
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let url = cluster.create_database("bench_copy");
    let config = postgres::Config::from_str(&url).map_err(|e| format!("{url}: {e}"))?;
    let mut client = config.connect(postgres::NoTls).map_err(|e| format!("{url}: {e}"))?;
    let db = |e: postgres::Error| format!("COPY: {e}");
    client.batch_execute(COPY_TABLE).map_err(db)?;
    let copy_in = |client: &mut postgres::Client, rows: &[&[u8]]| -> Result<u64, String> {
        let mut writer = client.copy_in("COPY copied_bets FROM STDIN WITH (FORMAT csv)").map_err(db)?;
        for row in rows {
            writer.write_all(row).map_err(|e| format!("COPY: {e}"))?;
        }
        writer.finish().map_err(db)
    };

    let started = Instant::now();
    let rows = copy_in(&mut client, &lines)?;
    let one = started.elapsed();
    client.batch_execute("TRUNCATE copied_bets").map_err(db)?;

    let started = Instant::now();
    let mut many_rows = 0;
    for chunk in lines.chunks(SMALL_COPY_ROWS) {
        many_rows += copy_in(&mut client, chunk)?;
    }
    let many = started.elapsed();
    if rows != lines.len() as u64 || many_rows != rows {
        return Err(format!("COPY stored {rows} and {many_rows} rows of {}", lines.len()));
    }
    Ok(Copied { rows, one, many })
}
