//! The PostgreSQL engine: the store kept in a database that several centrals share.
//!
//! The same answers and guarantees as the journal (`store/journal/`), by the database's own means:
//! - A batch's winners, its sequence and its agency's counts commit in one transaction (one
//!   statement, `lottery_stage_group`, for every batch of a group, see `schema.rs`).
//!   [`Postgres::stage`] only queues the batch (`group.rs`), so a connection goes on to stage
//!   the next batches its agency pipelined; [`Postgres::make_durable`] waits for their
//!   groups' commits and gives what each decided. The central expects each batch to commit
//!   as staged (it admitted it against what it expects the agency's last batch to be, `Hint`);
//!   where the commit decides otherwise (another central committed it first, or another
//!   upload holds the agency's sequence) the answer is what the commit decided.
//! - A batch commits only on top of the batch it was staged after (its `after` digest against
//!   the agency's `last_digest`): a batch staged behind one that the database then refused is
//!   refused too, never laid on another upload's batches.
//! - A batch commits at most once: the key on (agency, sequence) decides, under the
//!   agency's row lock, so two connections or two centrals sending the same batch at the same
//!   moment get one commit and the same answer.
//! - An agency's done commits before any total counts it, and totals are read from
//!   committed rows only.
//! - Connections come from a bounded pool (`pool.rs`); a lost connection (database restart,
//!   outage) turns into [`StoreError::Io`] (a `Storage` refusal the agency retries) and is
//!   replaced by a new one on the next use.

mod group;
mod notify;
mod pool;
mod progress;
mod schema;

use std::{
    fmt,
    fs::File,
    io,
    path::{Path, PathBuf},
    str::FromStr,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use postgres::{fallible_iterator::FallibleIterator, types::ToSql};

use self::{
    pool::{CheckoutError, Client, Conn, ConnectError, Cut, FillError, Pool},
    schema::InstallError,
};
use protocol::{BetRef, Digest};

use crate::metrics::SyncTimer;

use super::{
    engine::{CheckedBatch, Engine, Settled, Staged, Ticket},
    error::StoreError,
    ledger::{Admission, Committed, Progress, Resume, Tally},
    winners_file::{self, WinnersFormat, HEADER},
};

/// Groups one central commits at once. One: while it commits, the batches of every other
/// connection queue behind it and the next group carries them all, so the groups are as large
/// as the load makes them. Measured against 2 on 200 agencies x 5 000, alternating (one and
/// three centrals): the same walls within noise, and less database CPU with one (0.85 against
/// 1.0 s with one central, 1.4 against 1.6 s with three), since each group has a cost of its
/// own (see docs/performance.md).
const GROUPS_IN_FLIGHT: usize = 1;
/// How long a readiness probe may take to connect and to query.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Every agency's counts, agency 1 first (the status page's query).
const AGENCIES: &str = "SELECT bets, winners, done FROM agencies ORDER BY agency";

/// What a central expects of an agency from what it staged and read: the sequence it expects
/// next, the bets before it and the digest of the batch before it (next 0: unknown, ask the
/// database). Only ever a guess: each batch commits only if the database agrees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Hint {
    next: u64,
    bets: u64,
    after: Digest,
}

/// A digest as the database keeps it: 16 bytes.
fn digest_of(bytes: Vec<u8>) -> Result<Digest, StoreError> {
    let bytes: [u8; 16] = bytes.try_into().map_err(|_| {
        StoreError::Io(io::Error::new(io::ErrorKind::InvalidData, "a batch digest is not 16 bytes"))
    })?;
    Ok(Digest::from_bytes(bytes))
}

/// A batch as the group commit carries it: owned (its waiter may not be the one sending it),
/// in the database's types.
#[derive(Debug)]
struct Staging {
    /// The batch, to name it in a refusal.
    batch: Batch,
    agency: i32,
    sequence: i64,
    bets: i64,
    digest: Vec<u8>,
    after: Vec<u8>,
    winners: Vec<i32>,
    first: Vec<String>,
    last: Vec<String>,
    documents: Vec<String>,
    dates: Vec<String>,
}

impl Staging {
    fn of(batch: &CheckedBatch<'_>) -> Result<Staging, StoreError> {
        if batch.winners.len() != batch.winning_bets.len() {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} winner positions but {} winning bets",
                    batch.winners.len(),
                    batch.winning_bets.len()
                ),
            )));
        }
        let winners = batch
            .winners
            .iter()
            .map(|&p| i32::try_from(p).map_err(|_| overflow("a winner position", u64::from(p))))
            .collect::<Result<Vec<i32>, _>>()?;
        let bets = &batch.winning_bets;
        Ok(Staging {
            batch: Batch { agency: batch.agency, sequence: batch.sequence, bets: batch.bets },
            agency: agency_key(batch.agency),
            sequence: sql_count(batch.sequence)?,
            bets: sql_count(batch.bets)?,
            digest: batch.digest.to_bytes().to_vec(),
            after: batch.after.to_bytes().to_vec(),
            winners,
            first: bets.iter().map(|b| b.first_name().to_owned()).collect(),
            last: bets.iter().map(|b| b.last_name().to_owned()).collect(),
            documents: bets.iter().map(|b| b.document().to_owned()).collect(),
            dates: bets.iter().map(|b| b.birthdate_str().to_owned()).collect(),
        })
    }

    /// Agency 1's first batch: one winning bet, as the warm-up stages it (and rolls back).
    fn sample() -> Result<Staging, StoreError> {
        let bet = BetRef::new("Warm", "Up", "1", "2000-01-01")
            .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
        Staging::of(&CheckedBatch {
            agency: 1,
            sequence: 1,
            bets: 1,
            first_bet: 0,
            digest: Digest::of_bets(0, [bet]),
            after: Digest::default(),
            winners: vec![0],
            winning_bets: vec![bet],
        })
    }
}

/// What `lottery_stage` answered for one batch.
#[derive(Debug)]
struct Outcome {
    outcome: String,
    number: Option<i64>,
    winners: Option<Vec<i32>>,
}

impl Outcome {
    /// From a row whose columns from `at` on are outcome, number, winners.
    fn of(row: &postgres::Row, at: usize) -> Outcome {
        Outcome { outcome: row.get(at), number: row.get(at + 1), winners: row.get(at + 2) }
    }

    /// What it means for the answer to `batch`, staged as fresh, in a lottery among
    /// `agencies` agencies.
    fn settled(self, batch: Batch, agencies: u32) -> Settled {
        let Batch { agency, sequence, bets } = batch;
        let number = count(self.number.unwrap_or_default());
        let refused = match self.outcome.as_str() {
            "fresh" => return Settled::AsStaged,
            "replay" => return Settled::Replayed(positions(self.winners.unwrap_or_default())),
            "conflict" => StoreError::Conflict { agency, sequence },
            // Another upload holds the batch before it.
            "diverged" => StoreError::Conflict { agency, sequence: sequence.saturating_sub(1) },
            "not_the_batch" => {
                StoreError::NotTheCommittedBatch { agency, sequence, committed: number, got: bets }
            }
            "finished" => StoreError::AgencyFinished(agency),
            "out_of_sequence" => StoreError::OutOfSequence { agency, expected: number, got: sequence },
            "unknown" => StoreError::UnknownAgency { agency, agencies },
            other => unexpected("lottery_stage", other),
        };
        Settled::Refused(refused)
    }
}

/// Which batch an outcome is for, to name it in a refusal.
#[derive(Debug, Clone, Copy)]
struct Batch {
    agency: u32,
    sequence: u64,
    bets: u64,
}

/// An agency's done as the finish group carries it: the agency and its batch count.
#[derive(Debug, Clone, Copy)]
struct Finishing {
    agency: i32,
    batches: i64,
}

/// What `lottery_finish_group` answered for one agency.
#[derive(Debug)]
struct Finished {
    outcome: String,
    expected: Option<i64>,
    bets: Option<i64>,
    winners: Option<i64>,
    pending: Option<i64>,
    total: Option<i64>,
}

/// A batch's winners as `lottery_stage_group` takes them: the composite `batch_winners`, one
/// per batch, so each batch's arrays reach the database whole (no slicing of the group's).
#[derive(Debug, ToSql)]
#[postgres(name = "batch_winners")]
struct BatchWinners<'a> {
    positions: &'a [i32],
    first_names: &'a [String],
    last_names: &'a [String],
    documents: &'a [String],
    birthdates: &'a [String],
}

/// A group's batches as the columns `lottery_stage_group` takes: one array per field.
struct GroupArrays<'a> {
    agencies: Vec<i32>,
    sequences: Vec<i64>,
    bets: Vec<i64>,
    digests: Vec<&'a [u8]>,
    afters: Vec<&'a [u8]>,
    winners: Vec<BatchWinners<'a>>,
}

impl<'a> GroupArrays<'a> {
    fn of(batches: &[&'a Staging]) -> GroupArrays<'a> {
        GroupArrays {
            agencies: batches.iter().map(|b| b.agency).collect(),
            sequences: batches.iter().map(|b| b.sequence).collect(),
            bets: batches.iter().map(|b| b.bets).collect(),
            digests: batches.iter().map(|b| b.digest.as_slice()).collect(),
            afters: batches.iter().map(|b| b.after.as_slice()).collect(),
            winners: batches
                .iter()
                .map(|b| BatchWinners {
                    positions: &b.winners,
                    first_names: &b.first,
                    last_names: &b.last,
                    documents: &b.documents,
                    birthdates: &b.dates,
                })
                .collect(),
        }
    }

    fn query(
        &self,
        client: &mut Client,
        statement: &postgres::Statement,
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let params: [&(dyn ToSql + Sync); 6] =
            [&self.agencies, &self.sequences, &self.bets, &self.digests, &self.afters, &self.winners];
        client.query(statement, &params)
    }
}

/// Runs `work` in a transaction that is then rolled back, whatever `work` gave: how the
/// warm-up runs what a central will run without writing anything.
fn rolled_back(
    client: &mut Client,
    work: impl FnOnce(&mut Client) -> Result<(), postgres::Error>,
) -> Result<(), postgres::Error> {
    client.batch_execute("BEGIN")?;
    let worked = work(client);
    let ended = client.batch_execute("ROLLBACK");
    worked.and(ended)
}

/// How the engine connects: the database and its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// A PostgreSQL URL (`postgres://user@host:5432/lottery`) or key-value string.
    pub url: String,
    /// A file whose contents (less the trailing newline) are the password, applied over the
    /// URL's (`SERVER_DATABASE_PASSWORD_FILE`): read when the engine opens, never kept here.
    pub password_file: Option<PathBuf>,
    /// Connections the central keeps at most for its reads and dones (`SERVER_DATABASE_POOL_SIZE`);
    /// the batch groups commit on one more of their own.
    pub pool_size: usize,
    /// Longest wait for a connection, to make one or for one to free
    /// (`SERVER_DATABASE_TIMEOUT_SECS`).
    pub timeout: Duration,
}

impl DatabaseSettings {
    /// The database as the logs name it: user, host, port and database, read with the
    /// driver's own parser, so no form of password (in a URL, percent-encoded or not, or a
    /// `password = '...'` pair with spaces or quotes) can reach a log. A string the driver
    /// cannot parse is not shown at all.
    #[must_use]
    pub fn describe(&self) -> String {
        match tokio_postgres::Config::from_str(&self.url) {
            Ok(config) => describe(&config),
            Err(_) => "(a connection string that does not parse; not shown)".to_owned(),
        }
    }
}

/// The password in `path` (`SERVER_DATABASE_PASSWORD_FILE`): its bytes less the trailing
/// line ending. Refused when empty, or when the URL carries a password too (`in_url`): which
/// one counts would be a guess. Errors name the key and the path, never the contents.
fn read_password(path: &Path, in_url: bool) -> io::Result<Vec<u8>> {
    let key = "SERVER_DATABASE_PASSWORD_FILE";
    if in_url {
        return Err(invalid(format!(
            "{key} is {} but SERVER_DATABASE_URL carries a password too: give it in one place",
            path.display()
        )));
    }
    let mut bytes = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{key}: cannot read {}: {e}", path.display())))?;
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(invalid(format!("{key}: {} holds no password", path.display())));
    }
    Ok(bytes)
}

/// The store in a PostgreSQL database. Shared by every connection of a central through an
/// `Arc`; several centrals may share one database.
pub(super) struct Postgres {
    pool: Pool,
    agencies: u32,
    location: String,
    /// Per agency (index `agency - 1`), the sequence this central expects next and the bets
    /// before it, learnt from its own commits (0: unknown). A batch with that sequence is admitted without asking
    /// the database: [`Postgres::stage`] checks everything again under the agency's lock, so
    /// a stale hint (another central committed meanwhile) costs only the batch's check,
    /// never a wrong answer. A std `Mutex`: held for one read or write.
    hints: Mutex<Vec<Hint>>,
    /// The winners queries' progress, asked of the database once at a time.
    progress: progress::Coalesced,
    /// Batches staged at once by many connections, committed in groups (`group.rs`).
    group: group::Group<Staging, (Batch, Outcome)>,
    /// The connections the batch groups commit on, as many as groups commit at once, apart
    /// from `pool`: a backend compiles the group function and plans its statement once, on
    /// its first group (about 10 ms of the database's CPU), so groups led from a shared pool
    /// paid it on every pooled connection of every central.
    committer: Pool,
    /// Agencies' dones, committed in groups the same way: the lottery row's lock makes
    /// finishes one transaction at a time, so without groups the last agencies' dones
    /// would wait for each other's commits, one WAL flush each.
    finishes: group::Group<Finishing, Finished>,
    /// Where each batch's commit time is observed.
    timer: SyncTimer,
    /// The readiness probe's own connection (outside the pool, so a busy pool does not
    /// read as a dead database), made again after it breaks; its settings bound a probe to
    /// about a second. A std `Mutex`: probes come one at a time from the HTTP listener.
    probe: Mutex<(tokio_postgres::Config, Option<Client>)>,
    /// The stop's cut of the pool's and the probe's calls ([`Engine::interrupt`]).
    cut: Arc<Cut>,
    /// How the completion listener connects (the pool's settings).
    config: tokio_postgres::Config,
    /// The completion listener, once the lottery asked for it (`notify.rs`); a std `Mutex`:
    /// set once at start, taken at close.
    listener: Mutex<Option<notify::Listener>>,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Postgres")
            .field("location", &self.location)
            .field("agencies", &self.agencies)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Connects to the database of `settings`, creates the schema if missing, and checks it
    /// holds a lottery among `agencies` agencies (or starts one). Logs one line saying which.
    ///
    /// # Errors
    /// When the URL does not parse, the database cannot be reached or refuses, or it holds a
    /// lottery among another number of agencies; the central must not start then.
    pub(super) fn open(settings: &DatabaseSettings, agencies: u32) -> io::Result<Postgres> {
        let mut config = tokio_postgres::Config::from_str(&settings.url)
            .map_err(|e| invalid(format!("SERVER_DATABASE_URL does not parse: {e}")))?;
        if let Some(path) = &settings.password_file {
            config.password(read_password(path, config.get_password().is_some())?);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(settings.timeout);
        }
        // A database host that vanishes (no reset) must fail a call, not hang it.
        config.keepalives(true).keepalives_idle(Duration::from_secs(10));
        config.tcp_user_timeout(settings.timeout.max(Duration::from_secs(10)));
        config.application_name("lottery-central");
        let location = describe(&config);
        // The schema's transaction, once at start, on the `postgres` crate's own client.
        let mut client = postgres::Config::from(config.clone())
            .connect(postgres::NoTls)
            .map_err(|e| db_io(&location, &e))?;
        let new = match schema::install(&mut client, agencies) {
            Ok(new) => new,
            Err(InstallError::Database(e)) => return Err(db_io(&location, &e)),
            Err(InstallError::Mismatch { held, wanted }) => {
                return Err(invalid(format!(
                    "{location} holds a lottery among {held} agencies but SERVER_AGENCIES is {wanted}; \
                     use another database (or drop its tables) to start a new lottery"
                )))
            }
            Err(InstallError::TooManyAgencies(n)) => {
                return Err(invalid(format!("{n} agencies: the database engine takes at most {}", i32::MAX)))
            }
        };
        let mut probe = config.clone();
        probe.connect_timeout(PROBE_TIMEOUT).tcp_user_timeout(PROBE_TIMEOUT);
        probe.options(format!("-c statement_timeout={}", PROBE_TIMEOUT.as_millis()));
        let cut = Arc::new(Cut::default());
        let engine = Postgres {
            pool: Pool::new(config.clone(), settings.pool_size, settings.timeout, Arc::clone(&cut)),
            committer: Pool::new(config.clone(), GROUPS_IN_FLIGHT, settings.timeout, Arc::clone(&cut)),
            agencies,
            location,
            hints: Mutex::new(vec![Hint::default(); agencies as usize]),
            progress: progress::Coalesced::default(),
            group: group::Group::new(GROUPS_IN_FLIGHT),
            // One at a time: each holds the lottery row's lock until its commit.
            finishes: group::Group::new(1),
            timer: SyncTimer::default(),
            probe: Mutex::new((probe, None)),
            cut,
            config,
            listener: Mutex::new(None),
        };
        let progress = engine.progress().map_err(|e| io::Error::other(e.to_string()))?;
        let pending = match progress {
            Progress::Complete { .. } => 0,
            Progress::Pending { agencies } => agencies,
        };
        log::info!(
            "action: store_open | result: success | mode: {} | engine: postgres | database: {} | agencies: {agencies} | \
             agencies_done: {} | pool_size: {}",
            if new { "new" } else { "recovered" },
            engine.location,
            agencies - pending,
            engine.pool.size(),
        );
        Ok(engine)
    }

    /// Makes every connection now, before the first agency comes (a central's start; not the
    /// export's, which needs one), and runs on each what it will run, once: each costs the
    /// database a backend's start and the statements' preparation, and each function and
    /// statement its compilation and plans on its first call in that backend (about 3 ms for
    /// the group function, 3.5 ms for the done one, and the foreign key's check of the first
    /// batch stored), which the first batches and dones would otherwise wait for, on every
    /// central. Everything runs in a transaction that is rolled back: a done for agency 1 and
    /// a batch for agency 1 (its first, which the database may refuse), so nothing is written,
    /// and agency 1's row and the lottery's are locked for a moment only. A failure is
    /// logged: the pools then connect when first needed, as they would anyway.
    pub(super) fn warm_up(self) -> Postgres {
        if let Err(e) = self.fill() {
            log::warn!(
                "action: database_warm_up | result: fail | database: {} | error: {e} | note: connections are made when first needed",
                self.location
            );
        }
        self
    }

    fn fill(&self) -> Result<(), StoreError> {
        let fill_error = |e: FillError| match e {
            FillError::Checkout(e) => self.checkout_error(e),
            FillError::Warm(e) => self.db_error(&e),
        };
        let agency = agency_key(1);
        let (agencies, batches): (Vec<i32>, Vec<i64>) = (vec![agency], vec![0]);
        self.pool
            .fill(|c| {
                let Conn { client, statements: s } = c;
                rolled_back(client, |client| {
                    client.query(&s.agency, &[&agency])?;
                    client.query(&s.admit, &[&agency, &1i64])?;
                    client.query(&s.digests, &[&agency])?;
                    client.query(&s.progress, &[])?;
                    client.query(&s.finish_group, &[&agencies, &batches]).map(drop)
                })
            })
            .map_err(fill_error)?;
        let sample = Staging::sample()?;
        let group = GroupArrays::of(&[&sample]);
        self.committer
            .fill(|c| {
                rolled_back(&mut c.client, |client| group.query(client, &c.statements.stage_group).map(drop))
            })
            .map_err(fill_error)?;
        Ok(())
    }

    /// The same engine, observing each batch's commit into `timer`.
    pub(super) fn timed(self, timer: SyncTimer) -> Postgres {
        Postgres { timer, ..self }
    }

    /// Writes the winners file from the database: the header, then every winning bet in
    /// the journal's CSV (csv quoting, dates as `YYYY-MM-DD`), by agency, batch and position.
    /// Returns the rows written. Reads committed rows only.
    ///
    /// # Errors
    /// [`StoreError::Io`] from the database or from `out`.
    pub(super) fn export_winners(
        &self,
        out: &mut dyn io::Write,
        format: WinnersFormat,
    ) -> Result<u64, StoreError> {
        const QUERY: &str =
            "SELECT agency, first_name, last_name, document, to_char(birthdate, 'YYYY-MM-DD') \
                             FROM winners ORDER BY agency, sequence, position";
        let mut lease = self.pool.get().map_err(|e| self.checkout_error(e))?;
        let conn = lease.conn();
        let mut rows = conn.client.query_rows(QUERY).map_err(|e| self.db_error(&e))?;
        let mut written = 0u64;
        // The course's lines are not CSV: written as they are, never quoted.
        let quoting =
            if format == WinnersFormat::Csv { csv::QuoteStyle::Necessary } else { csv::QuoteStyle::Never };
        let mut writer = csv::WriterBuilder::new().has_headers(false).quote_style(quoting).from_writer(out);
        if format == WinnersFormat::Csv {
            writer.write_record(HEADER.split(',')).map_err(csv_io)?;
        }
        while let Some(row) = rows.next().map_err(|e| self.db_error(&e))? {
            let agency: i32 = row.get(0);
            let fields: [&str; 4] = [row.get(1), row.get(2), row.get(3), row.get(4)];
            match format {
                WinnersFormat::Csv => writer
                    .write_record([agency.to_string().as_str(), fields[0], fields[1], fields[2], fields[3]])
                    .map_err(csv_io)?,
                WinnersFormat::Course => writer
                    .write_record([
                        winners_file::course_line(fields[0], fields[1], fields[2], fields[3]).trim_end()
                    ])
                    .map_err(csv_io)?,
            }
            written += 1;
        }
        writer.flush().map_err(StoreError::Io)?;
        Ok(written)
    }

    /// Writes the winners file from the database to `path` ([`Postgres::export_winners`]):
    /// written aside and renamed into place, so `path` is never a partial file. Returns the
    /// rows written.
    ///
    /// # Errors
    /// [`StoreError::Io`] from the database or the file system.
    pub(super) fn export_winners_file(&self, path: &Path, format: WinnersFormat) -> Result<u64, StoreError> {
        let mut aside = path.as_os_str().to_owned();
        aside.push(".part");
        let aside = PathBuf::from(aside);
        let result = File::create(&aside).map_err(StoreError::Io).and_then(|file| {
            let mut out = io::BufWriter::new(file);
            let rows = self.export_winners(&mut out, format)?;
            let file = out.into_inner().map_err(|e| StoreError::Io(e.into_error()))?;
            file.sync_all().map_err(StoreError::Io)?;
            Ok(rows)
        });
        match result {
            Ok(rows) => {
                std::fs::rename(&aside, path).map_err(StoreError::Io)?;
                Ok(rows)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&aside);
                Err(e)
            }
        }
    }

    /// An agency's last committed sequence, its tally and its last batch's digest.
    fn agency_row(&self, agency: u32) -> Result<(u64, Tally, Digest), StoreError> {
        let key = agency_key(agency);
        let row = self.call(true, |c| c.client.query_opt(&c.statements.agency, &[&key]))?;
        let row = row.ok_or(StoreError::UnknownAgency { agency, agencies: self.agencies })?;
        let tally = Tally {
            bets: count(row.get::<_, i64>(1)),
            winners: count(row.get::<_, i64>(2)),
            done: row.get(3),
        };
        Ok((count(row.get::<_, i64>(0)), tally, digest_of(row.get(4))?))
    }

    /// Runs `f` on a pooled connection. When it fails because the connection was lost (a
    /// database restart leaves every pooled connection dead) and `again` says `f` may run
    /// twice, runs it once more on another connection, and so on, at most once per pooled
    /// connection: each failure drops a dead one, so the last try is on a new connection.
    fn call<T>(
        &self,
        again: bool,
        f: impl FnMut(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        self.call_on(&self.pool, again, f)
    }

    /// As [`Postgres::call`], on a connection of `pool`.
    fn call_on<T>(
        &self,
        pool: &Pool,
        again: bool,
        mut f: impl FnMut(&mut Conn) -> Result<T, postgres::Error>,
    ) -> Result<T, StoreError> {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut lease = pool.get().map_err(|e| self.checkout_error(e))?;
            match f(lease.conn()) {
                Ok(value) => return Ok(value),
                Err(e) if again && lease.conn().client.is_closed() && tries <= pool.size() => {
                    log::warn!(
                        "action: database_reconnect | result: in_progress | database: {} | error: {e}",
                        self.location
                    );
                }
                Err(e) => return Err(self.db_error(&e)),
            }
        }
    }

    /// Commits a group of batches in one statement and one transaction (the engine's whole
    /// commit path: a timer around this call times every commit). Gives one outcome per
    /// batch, in their order. If the database refuses the statement itself (not a rule: those
    /// are outcomes), each batch is sent again alone, so one bad batch fails alone.
    fn commit_group(&self, batches: Vec<Staging>) -> Vec<Result<(Batch, Outcome), StoreError>> {
        let n = batches.len();
        // One lock order for every transaction: by agency, then sequence.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (batches[i].agency, batches[i].sequence));
        let sorted: Vec<&Staging> = order.iter().map(|&i| &batches[i]).collect();
        let arrays = GroupArrays::of(&sorted);
        let mut refused = false;
        let started = Instant::now();
        let rows = self.call_on(&self.committer, true, |c| {
            arrays
                .query(&mut c.client, &c.statements.stage_group)
                .inspect_err(|e| refused = e.as_db_error().is_some())
        });
        self.timer.observe(started);
        let outcomes = match rows {
            Ok(rows) => by_index(
                &rows,
                n,
                "lottery_stage_group",
                |k| order.get(k).copied(),
                |row| Outcome::of(row, 1),
            ),
            Err(_) if refused && n > 1 => batches.iter().map(|b| self.commit_alone(b)).collect(),
            Err(e) => each_failed(&e, n),
        };
        outcomes.into_iter().zip(&batches).map(|(outcome, b)| outcome.map(|o| (b.batch, o))).collect()
    }

    /// Commits one batch in its own transaction (`lottery_stage`).
    fn commit_alone(&self, b: &Staging) -> Result<Outcome, StoreError> {
        let params: [&(dyn ToSql + Sync); 10] = [
            &b.agency,
            &b.sequence,
            &b.bets,
            &b.digest,
            &b.after,
            &b.winners,
            &b.first,
            &b.last,
            &b.documents,
            &b.dates,
        ];
        let row =
            self.call_on(&self.committer, true, |c| c.client.query_one(&c.statements.stage, &params))?;
        Ok(Outcome { outcome: row.get(0), number: row.get(1), winners: row.get(2) })
    }

    /// Marks a group of agencies done in one statement and one transaction; one outcome per
    /// agency, in their order. Not sent again by the engine after a lost connection: if the
    /// first one committed, a second would answer AgencyFinished, which the agency must not
    /// take for a refusal of a done it never got acknowledged. The agency retries, and
    /// resumes if it must.
    fn commit_finishes(&self, group: &[Finishing]) -> Vec<Result<Finished, StoreError>> {
        let agencies: Vec<i32> = group.iter().map(|f| f.agency).collect();
        let batches: Vec<i64> = group.iter().map(|f| f.batches).collect();
        match self.call(false, |c| c.client.query(&c.statements.finish_group, &[&agencies, &batches])) {
            Ok(rows) => by_index(&rows, group.len(), "lottery_finish_group", Some, |row| Finished {
                outcome: row.get(1),
                expected: row.get(2),
                bets: row.get(3),
                winners: row.get(4),
                pending: row.get(5),
                total: row.get(6),
            }),
            Err(e) => each_failed(&e, group.len()),
        }
    }

    fn db_error(&self, e: &postgres::Error) -> StoreError {
        StoreError::Io(db_io(&self.location, e))
    }

    fn checkout_error(&self, e: CheckoutError) -> StoreError {
        match e {
            CheckoutError::Connect(ConnectError::Database(e)) => self.db_error(&e),
            CheckoutError::Connect(e) => {
                StoreError::Io(io::Error::other(format!("database {}: {e}", self.location)))
            }
            CheckoutError::Timeout(after) => StoreError::Io(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no connection to {} free within {} ms", self.location, after.as_millis()),
            )),
        }
    }

    fn index(&self, agency: u32) -> Result<usize, StoreError> {
        match agency.checked_sub(1) {
            Some(i) if i < self.agencies => Ok(i as usize),
            _ => Err(StoreError::UnknownAgency { agency, agencies: self.agencies }),
        }
    }

    fn listener(&self) -> MutexGuard<'_, Option<notify::Listener>> {
        // Set or taken whole: poison changes nothing.
        self.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hints(&self) -> MutexGuard<'_, Vec<Hint>> {
        // A hint is only ever a guess checked again by the database: poison changes nothing.
        self.hints.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The storage face (each method documents its errors in the trait).
impl Engine for Postgres {
    /// Decides what to do with batch `sequence` of `agency` before its winners are computed:
    /// refuse it, replay it, or check and commit it.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`] (a batch past the next one),
    /// [`StoreError::NotTheCommittedBatch`], [`StoreError::Io`] (the database).
    fn admit(&self, agency: u32, sequence: u64, bets: u64) -> Result<Admission, StoreError> {
        let index = self.index(agency)?;
        let hint = self.hints()[index];
        if sequence != 0 && hint.next == sequence {
            return Ok(Admission::Fresh { first_bet: hint.bets, after: hint.after });
        }
        let (key, seq) = (agency_key(agency), sql_count(sequence)?);
        let row = self.call(true, |c| c.client.query_one(&c.statements.admit, &[&key, &seq]))?;
        let last = count(row.get::<_, i64>(0));
        let done: bool = row.get(1);
        let agency_bets = count(row.get::<_, i64>(4));
        if sequence >= 1 && sequence <= last {
            let committed = count(row.get::<_, Option<i64>>(2).unwrap_or_default());
            if committed != bets {
                return Err(StoreError::NotTheCommittedBatch { agency, sequence, committed, got: bets });
            }
            let winners = positions(row.get::<_, Option<Vec<i32>>>(3).unwrap_or_default());
            let first_bet = count(row.get::<_, Option<i64>>(5).unwrap_or_default());
            let digest = digest_of(row.get::<_, Option<Vec<u8>>>(6).unwrap_or_default())?;
            return Ok(Admission::Replay(Committed { bets: committed, first_bet, winners, digest }));
        }
        if done {
            return Err(StoreError::AgencyFinished(agency));
        }
        let after = digest_of(row.get(7))?;
        self.hints()[index] = Hint { next: last + 1, bets: agency_bets, after };
        if sequence != last + 1 {
            return Err(StoreError::OutOfSequence { agency, expected: last + 1, got: sequence });
        }
        Ok(Admission::Fresh { first_bet: agency_bets, after })
    }

    /// Queues `batch` for its group's commit (`group.rs`) and returns at once: its winners
    /// as staged, and a ticket for [`Postgres::make_durable`], which says whether the commit
    /// agreed. From here on the central expects the agency's next batch after this one.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::Io`] when the central is stopping.
    fn stage(&self, batch: &CheckedBatch<'_>) -> Result<Staged, StoreError> {
        let index = self.index(batch.agency)?;
        let staging = Staging::of(batch)?;
        let number = self.group.submit(staging)?;
        self.hints()[index] =
            Hint { next: batch.sequence + 1, bets: batch.first_bet + batch.bets, after: batch.digest };
        // Numbered from 1: the default ticket (0) waits for nothing.
        Ok(Staged { winners: batch.winners.clone(), ticket: Ticket::at(number + 1), replayed: false })
    }

    /// Waits for each ticket's group to commit (leading one when no group is committing, with
    /// every batch queued by then: this connection's and every other's) and says what the
    /// commit decided for it. A batch whose commit failed, or broke a rule, is refused alone;
    /// a later batch of the same agency then fails its chain, and is refused too.
    ///
    /// # Errors
    /// None as a whole: each batch's failure is its own.
    fn make_durable(&self, tickets: &[Ticket]) -> Result<Vec<Settled>, StoreError> {
        Ok(tickets
            .iter()
            .map(|ticket| match ticket.position().checked_sub(1) {
                None => Settled::AsStaged,
                // Safe to send again after a lost connection: a second commit of the same
                // batch is the replay the key makes it.
                Some(number) => match self.group.collect(number, |batches| self.commit_group(batches)) {
                    Ok((batch, outcome)) => {
                        let settled = outcome.settled(batch, self.agencies);
                        if let Settled::Refused(_) = settled {
                            // What this central expected of the agency did not hold: the
                            // next batch asks the database.
                            if let Ok(index) = self.index(batch.agency) {
                                self.hints()[index] = Hint::default();
                            }
                        }
                        settled
                    }
                    Err(e) => Settled::Refused(e),
                },
            })
            .collect())
    }

    /// Marks `agency` done after its `batches` batches, committed; returns its final tally
    /// and where the lottery stands right after (finishes run one at a time, so exactly one
    /// caller sees the lottery complete).
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::AgencyFinished`],
    /// [`StoreError::OutOfSequence`] when `batches` is not the count committed,
    /// [`StoreError::Io`].
    fn finish_agency(&self, agency: u32, batches: u64) -> Result<(Tally, Progress), StoreError> {
        let index = self.index(agency)?;
        let finishing = Finishing { agency: agency_key(agency), batches: sql_count(batches)? };
        let row = self.finishes.commit(finishing, |group| self.commit_finishes(&group))?;
        let outcome = row.outcome.as_str();
        let number = |n: Option<i64>| count(n.unwrap_or_default());
        match outcome {
            "done" => {
                self.hints()[index] = Hint::default();
                let tally = Tally { bets: number(row.bets), winners: number(row.winners), done: true };
                let pending = number(row.pending);
                let progress = if pending == 0 {
                    Progress::Complete { winners: number(row.total) }
                } else {
                    Progress::Pending { agencies: u32::try_from(pending).unwrap_or(u32::MAX) }
                };
                Ok((tally, progress))
            }
            "finished" => Err(StoreError::AgencyFinished(agency)),
            "out_of_sequence" => {
                Err(StoreError::OutOfSequence { agency, expected: number(row.expected), got: batches })
            }
            "unknown" => Err(StoreError::UnknownAgency { agency, agencies: self.agencies }),
            other => Err(unexpected("lottery_finish_group", other)),
        }
    }

    /// What is committed for `agency`.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::Io`].
    fn resume(&self, agency: u32) -> Result<Resume, StoreError> {
        let index = self.index(agency)?;
        let (last_sequence, tally, after) = self.agency_row(agency)?;
        let key = agency_key(agency);
        let rows = self.call(true, |c| c.client.query(&c.statements.digests, &[&key]))?;
        let mut digest = Digest::default();
        for row in rows {
            digest = digest.plus(digest_of(row.get::<_, Vec<u8>>(0))?);
        }
        self.hints()[index] = if tally.done {
            Hint::default()
        } else {
            Hint { next: last_sequence + 1, bets: tally.bets, after }
        };
        Ok(Resume { last_sequence, tally, digest })
    }

    /// One agency's committed tally.
    ///
    /// # Errors
    /// [`StoreError::UnknownAgency`], [`StoreError::Io`].
    fn tally(&self, agency: u32) -> Result<Tally, StoreError> {
        self.index(agency)?;
        Ok(self.agency_row(agency)?.1)
    }

    /// Every agency's committed tally, from all centrals.
    ///
    /// # Errors
    /// [`StoreError::Io`].
    fn agencies(&self) -> Result<Vec<Tally>, StoreError> {
        let rows = self.call(true, |c| c.client.query(AGENCIES, &[]))?;
        Ok(rows
            .iter()
            .map(|row| Tally {
                bets: count(row.get::<_, i64>(0)),
                winners: count(row.get::<_, i64>(1)),
                done: row.get(2),
            })
            .collect())
    }

    /// Whether the database answers `SELECT 1` within about a second, on the probe's own
    /// connection (made again when it broke).
    ///
    /// # Errors
    /// [`StoreError::Io`] when it cannot connect or the query fails.
    fn ready(&self) -> Result<(), StoreError> {
        let mut probe = self.probe.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (config, client) = &mut *probe;
        let mut connected = match client.take() {
            Some(client) if !client.is_closed() => client,
            _ => Client::connect(config, &self.cut).map_err(|e| match e {
                ConnectError::Database(e) => self.db_error(&e),
                e => StoreError::Io(io::Error::other(format!("database {}: {e}", self.location))),
            })?,
        };
        connected.batch_execute("SELECT 1").map_err(|e| self.db_error(&e))?;
        *client = Some(connected);
        Ok(())
    }

    /// The total of winners if every agency is done, else how many are not; from committed
    /// rows only, by a query that started after this call (callers at the same moment share
    /// one, see `progress.rs`).
    ///
    /// # Errors
    /// [`StoreError::Io`].
    fn progress(&self) -> Result<Progress, StoreError> {
        self.progress.get(|| {
            let row = self.call(true, |c| c.client.query_one(&c.statements.progress, &[]))?;
            let pending = count(row.get::<_, i64>(0));
            Ok(if pending == 0 {
                Progress::Complete { winners: count(row.get::<_, i64>(1)) }
            } else {
                Progress::Pending { agencies: u32::try_from(pending).unwrap_or(u32::MAX) }
            })
        })
    }

    /// Starts the completion listener (`notify.rs`): `completed` is told the total the
    /// moment the last agency's done commits, through this central or any other on the
    /// database. Without the thread (it cannot start) held queries learn it when their hold
    /// ends, as before.
    fn on_completion(&self, completed: Box<dyn FnOnce(u64) + Send>) {
        match notify::Listener::start(self.config.clone(), self.location.clone(), completed) {
            Ok(listener) => *self.listener() = Some(listener),
            Err(e) => log::error!(
                "action: completion_listen | result: fail | database: {} | error: cannot start its thread: {e}",
                self.location
            ),
        }
    }

    /// Every call on the database ends now: batches waiting for their group's commit
    /// (`group.rs`), and calls already sent, whose connections are closed (`pool.rs`); each
    /// returns an error, which acknowledges nothing. No new call starts.
    fn interrupt(&self) {
        self.group.interrupt();
        self.finishes.interrupt();
        self.pool.interrupt();
        self.committer.interrupt();
        if let Some(listener) = self.listener().as_ref() {
            listener.interrupt();
        }
    }

    /// Stops the completion listener and closes the idle connections; every answered batch
    /// is already committed. Connections still in use close when they come back.
    ///
    /// # Errors
    /// None so far; the signature is the storage trait's.
    fn close(&self) -> Result<(), StoreError> {
        if let Some(mut listener) = self.listener().take() {
            listener.stop();
        }
        self.pool.clear();
        self.committer.clear();
        Ok(())
    }

    /// Where the lottery is kept, for logs: the database's address, without its password.
    fn location(&self) -> String {
        self.location.clone()
    }
}

/// The database's address for logs: user, host, port and database, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config.get_hosts().first().map_or_else(
        || "localhost".to_owned(),
        |h| match h {
            postgres::config::Host::Tcp(name) => name.clone(),
            postgres::config::Host::Unix(path) => path.display().to_string(),
        },
    );
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let dbname = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{host}:{port}/{dbname}")
}

fn db_io(location: &str, e: &postgres::Error) -> io::Error {
    // `Display` of a database error is only "db error"; the server's message is in `source`.
    let detail =
        e.as_db_error().map_or_else(|| e.to_string(), |db| format!("{}: {}", db.severity(), db.message()));
    io::Error::other(format!("database {location}: {detail}"))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn csv_io(e: csv::Error) -> StoreError {
    StoreError::Io(io::Error::other(e))
}

/// A group function's rows, one per member, each in its member's place: the row's first
/// column is its 1-based place in the arrays sent, `slot` gives the member at a 0-based
/// place. A member the function gave no row is an error of its own.
fn by_index<T>(
    rows: &[postgres::Row],
    n: usize,
    function: &str,
    slot: impl Fn(usize) -> Option<usize>,
    read: impl Fn(&postgres::Row) -> T,
) -> Vec<Result<T, StoreError>> {
    let mut outcomes: Vec<Option<T>> = (0..n).map(|_| None).collect();
    for row in rows {
        let at = usize::try_from(row.get::<_, i32>(0)).unwrap_or_default();
        if let Some(place) = at.checked_sub(1).and_then(&slot).and_then(|i| outcomes.get_mut(i)) {
            *place = Some(read(row));
        }
    }
    outcomes.into_iter().map(|o| o.ok_or_else(|| unexpected(function, "(no row for a member)"))).collect()
}

/// The same failure for each of the `n` members of a group.
fn each_failed<T>(e: &StoreError, n: usize) -> Vec<Result<T, StoreError>> {
    let (kind, text) = match e {
        StoreError::Io(io) => (io.kind(), io.to_string()),
        other => (io::ErrorKind::Other, other.to_string()),
    };
    (0..n).map(|_| Err(StoreError::Io(io::Error::new(kind, text.clone())))).collect()
}

fn unexpected(function: &str, outcome: &str) -> StoreError {
    StoreError::Io(io::Error::other(format!("{function} answered an unknown outcome {outcome:?}")))
}

fn overflow(what: &str, value: u64) -> StoreError {
    StoreError::Io(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{what} of {value} does not fit the database"),
    ))
}

/// The agency as the schema's `integer`; callers checked it against the agency count, which
/// [`Postgres::open`] checked fits.
fn agency_key(agency: u32) -> i32 {
    i32::try_from(agency).unwrap_or(i32::MAX)
}

/// A count as the schema's `bigint`.
fn sql_count(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| overflow("a count", value))
}

/// A `bigint` count back; the schema never stores a negative one.
fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or_default()
}

fn positions(stored: Vec<i32>) -> Vec<u32> {
    // Written from `u32` positions by `stage`, so never negative.
    stored.into_iter().map(|p| u32::try_from(p).unwrap_or_default()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(url: &str) -> String {
        DatabaseSettings {
            url: url.to_owned(),
            password_file: None,
            pool_size: 1,
            timeout: Duration::from_secs(1),
        }
        .describe()
    }

    /// Asserts the description names the database and shows no trace of `secret`.
    fn hides(url: &str, secret: &str, shown: &str) {
        let text = described(url);
        assert_eq!(text, shown, "{url}");
        assert!(!text.contains(secret), "{url}: {text}");
    }

    #[test]
    fn a_url_password_with_any_character_is_never_described() {
        hides("postgres://u:pa/ss@host:1/db", "pa/ss", "postgres://u@host:1/db");
        // An '@' the driver cannot tell from the host's: not taken, and not shown either.
        let text = described("postgres://u:p@ss:w0rd@host/db");
        assert!(!text.contains("w0rd") && !text.contains("p@ss"), "{text}");
        hides("postgresql://u:s3cret@host", "s3cret", "postgres://u@host:5432/u");
    }

    #[test]
    fn a_percent_encoded_url_password_is_never_described() {
        hides("postgres://u:s3%2Fcr%40et@host:7/db", "s3", "postgres://u@host:7/db");
    }

    #[test]
    fn a_url_password_in_the_query_is_never_described() {
        hides("postgres://u@host/db?password=s3cret&sslmode=disable", "s3cret", "postgres://u@host:5432/db");
    }

    #[test]
    fn a_key_value_password_with_spaces_is_never_described() {
        hides("host=h user=u password = s3cret dbname=d", "s3cret", "postgres://u@h:5432/d");
    }

    #[test]
    fn a_quoted_key_value_password_is_never_described() {
        hides("host=h user=u password='my s3cret' dbname=d", "s3cret", "postgres://u@h:5432/d");
        hides(r"host=h password='it\'s s3cret' user=u", "s3cret", "postgres://u@h:5432/u");
    }

    #[test]
    fn a_password_file_gives_its_first_line_and_its_errors_name_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("database.password");
        std::fs::write(&path, "s3 cr'et\r\n").unwrap();
        assert_eq!(read_password(&path, false).unwrap(), b"s3 cr'et");
        let refused = |path: &Path, in_url: bool| read_password(path, in_url).unwrap_err().to_string();
        let missing = refused(&dir.path().join("none"), false);
        assert!(
            missing.starts_with("SERVER_DATABASE_PASSWORD_FILE: cannot read ") && missing.contains("none"),
            "{missing}"
        );
        let twice = refused(&path, true);
        assert!(twice.contains("SERVER_DATABASE_PASSWORD_FILE") && !twice.contains("s3"), "{twice}");
        std::fs::write(&path, "\n").unwrap();
        assert!(refused(&path, false).ends_with("holds no password"));
    }

    #[test]
    fn a_string_the_driver_cannot_parse_is_not_shown_at_all() {
        let text = described("host=h password='s3cret");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
