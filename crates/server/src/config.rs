//! The central's settings: defaults, then an optional INI file, then the environment.
//!
//! Keys keep the course's names (`SERVER_PORT`, `SERVER_LISTEN_BACKLOG`, `LOGGING_LEVEL` in the
//! `[DEFAULT]` section of `config.ini`), and each key is also read from the environment
//! variable of the same name, which wins over the file.

use std::{path::Path, path::PathBuf, time::Duration};

use log::LevelFilter;

use crate::store::{self, DatabaseSettings, WinnersFormat};

use runtime::{
    logging::parse_level,
    settings::{unknown_key, ConfigError, Parse, Setting},
};

/// Every setting the central reads: its INI key (in `[DEFAULT]`), also the name of the
/// environment variable that wins over the file. The loader, `--help` and the test on
/// `docs/configuration.md` read this table; a new setting is one more row.
pub const SETTINGS: &[Setting<Config>] = &[
    text("SERVER_IP", "empty (every interface)", "an address", "address to listen on", |c, v| {
        c.ip = unquoted(v).to_owned();
        Ok(())
    }),
    number("SERVER_PORT", "12345", (0, 65535, "a port number"), "TCP port (0: any free port)", |c, v| {
        c.port = v as u16;
    }),
    number(
        "SERVER_HTTP_PORT",
        "0 (off)",
        (0, 65535, "a port number, 0 for off"),
        "the read-only HTTP listener: metrics, status page, health and readiness",
        |c, v| c.http_port = v as u16,
    ),
    number(
        "SERVER_LISTEN_BACKLOG",
        "1024",
        (1, 65535, "connections"),
        "connections queued by the kernel before accept (capped by net.core.somaxconn)",
        |c, v| c.listen_backlog = v as i32,
    ),
    text("LOGGING_LEVEL", "INFO", "DEBUG, INFO, WARNING, ERROR, OFF", "least severe level logged", |c, v| {
        c.logging_level = parse_level(v).ok_or_else(|| {
            ConfigError::invalid("LOGGING_LEVEL", v, "one of DEBUG, INFO, WARNING, ERROR, OFF")
        })?;
        Ok(())
    }),
    number(
        "SERVER_AGENCIES",
        "5",
        (1, MAX_AGENCIES as u64, "agencies"),
        "agencies taking part, numbered 1 to this",
        |c, v| c.agencies = v as u32,
    ),
    text(
        "SERVER_STORAGE_PATH",
        "winners.csv",
        "not blank",
        "the winners file; its journal is beside it, named as it plus .journal",
        |c, v| {
            if v.trim().is_empty() {
                return Err(ConfigError::invalid("SERVER_STORAGE_PATH", v, "a file path"));
            }
            c.storage_path = PathBuf::from(v.trim());
            Ok(())
        },
    ),
    number(
        "SERVER_WINNER_DELAY_MS",
        "1",
        (0, 1000, "milliseconds"),
        "simulated cost of checking one bet",
        |c, v| c.winner_delay = Duration::from_millis(v),
    ),
    number(
        "SERVER_MAX_CONNECTIONS",
        "SERVER_AGENCIES plus a quarter plus 16, at least 256",
        (1, 16_384, "connections"),
        "connection slots (lowered at start to what the file-descriptor limit allows when not set)",
        |c, v| {
            c.max_connections = v as usize;
            c.max_connections_chosen = true;
        },
    ),
    number(
        "SERVER_PROOF_TIMEOUT_SECS",
        "5",
        (1, 300, "seconds"),
        "with keys, how long a connection has to prove an agency",
        |c, v| c.proof_timeout = Duration::from_secs(v),
    ),
    number(
        "SERVER_UNPROVED_PERCENT",
        "25",
        (1, 90, "percent"),
        "with keys, the share of the slots unproved connections may hold together",
        |c, v| c.unproved_percent = v as usize,
    ),
    number(
        "SERVER_IDLE_TIMEOUT_SECS",
        "30",
        (1, 86_400, "seconds"),
        "a connection silent this long (before a request's first byte) is closed",
        |c, v| c.idle_timeout = Duration::from_secs(v),
    ),
    number("SERVER_MAX_FRAME_BYTES", "1048576", (64, 64 << 20, "bytes"), "largest frame accepted", |c, v| {
        c.max_frame_len = v as usize;
    }),
    number(
        "SERVER_FRAME_TIMEOUT_SECS",
        "5",
        (1, 3600, "seconds"),
        "from a request's first byte, the time its frame has to arrive and its answer to leave",
        |c, v| c.frame_timeout = Duration::from_secs(v),
    ),
    number(
        "SERVER_MEMORY_BUDGET_MIB",
        "64",
        (1, 4096, "MiB"),
        "memory requests and answers in flight may hold together; at least twice SERVER_MAX_FRAME_BYTES",
        |c, v| c.memory_budget = (v as usize) << 20,
    ),
    text(
        "SERVER_DATABASE_URL",
        "empty (none)",
        "a URL or empty",
        "a PostgreSQL database for the lottery",
        |c, v| {
            let url = unquoted(v);
            c.database_url = (!url.is_empty()).then(|| url.to_owned());
            Ok(())
        },
    ),
    text(
        "SERVER_DATABASE_PASSWORD_FILE",
        "empty (none)",
        "a file",
        "the database password, read from this file when the database opens (the URL then carries none); only the path is logged",
        |c, v| {
            c.database_password_file = path(v);
            Ok(())
        },
    ),
    number(
        "SERVER_DATABASE_POOL_SIZE",
        "2",
        (1, 1024, "connections"),
        "database connections the central keeps at most for resumes, dones and totals; its batch groups commit on one more of their own",
        |c, v| c.database_pool_size = v as usize,
    ),
    number(
        "SERVER_DATABASE_TIMEOUT_SECS",
        "5",
        (1, 3600, "seconds"),
        "longest wait to connect to the database or for a pooled connection",
        |c, v| c.database_timeout = Duration::from_secs(v),
    ),
    text("SERVER_WINNERS_FORMAT", "csv", "csv, course", "how the winners file writes each winner", |c, v| {
        c.winners_format = WinnersFormat::parse(unquoted(v))
            .ok_or_else(|| ConfigError::invalid("SERVER_WINNERS_FORMAT", v, "csv or course"))?;
        Ok(())
    }),
    text("SERVER_AGENCY_KEYS", "empty (open)", "a file", "the agencies' public keys", |c, v| {
        c.agency_keys = path(v);
        Ok(())
    }),
    text(
        "SERVER_TLS_CERT",
        "empty (plain TCP)",
        "a file, with SERVER_TLS_KEY",
        "the TLS certificate chain (PEM)",
        |c, v| {
            let key = c.tls.take().map(|(_, key)| key).unwrap_or_default();
            c.tls = Some((path(v).unwrap_or_default(), key));
            Ok(())
        },
    ),
    text(
        "SERVER_TLS_KEY",
        "empty (plain TCP)",
        "a file, with SERVER_TLS_CERT",
        "the TLS private key (PEM)",
        |c, v| {
            let cert = c.tls.take().map(|(cert, _)| cert).unwrap_or_default();
            c.tls = Some((cert, path(v).unwrap_or_default()));
            Ok(())
        },
    ),
];

/// A row for a whole number within `(min, max, unit)`. `set` receives a number already
/// checked against the row's range, so each row's `as` cast to its field's type is exact.
const fn number(
    key: &'static str,
    default: &'static str,
    (min, max, unit): (u64, u64, &'static str),
    meaning: &'static str,
    set: fn(&mut Config, u64),
) -> Setting<Config> {
    Setting { key, var: key, default, meaning, parse: Parse::Number { min, max, unit, set } }
}

/// A row for any other text, checked by `set`.
const fn text(
    key: &'static str,
    default: &'static str,
    accepted: &'static str,
    meaning: &'static str,
    set: fn(&mut Config, &str) -> Result<(), ConfigError>,
) -> Setting<Config> {
    Setting { key, var: key, default, meaning, parse: Parse::Text { accepted, set } }
}

/// A value without the quotes an INI file may put around it (`SERVER_IP = ""`).
fn unquoted(value: &str) -> &str {
    value.trim().trim_matches('"').trim()
}

/// A path, or none when empty.
fn path(value: &str) -> Option<PathBuf> {
    Some(unquoted(value)).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// Most agencies a central takes (`SERVER_AGENCIES`). The store keeps a small state for each
/// from the start, and the course runs five; this leaves room for any real lottery while
/// keeping a typo from reserving gigabytes.
pub const MAX_AGENCIES: u32 = 10_000;

/// The central's effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to listen on; empty means every interface (`SERVER_IP`, default empty).
    pub ip: String,
    /// TCP port; 0 asks the system for a free one (`SERVER_PORT`, default 12345).
    pub port: u16,
    /// Port of the read-only HTTP listener (metrics, status page, readiness), on `SERVER_IP`;
    /// 0 means off (`SERVER_HTTP_PORT`, default 0).
    pub http_port: u16,
    /// Connections the kernel queues before `accept` (`SERVER_LISTEN_BACKLOG`, default 1024:
    /// thousands of agencies, or a flood of peers reconnecting, connecting at once must not
    /// overflow it, or the kernel drops their SYNs and each waits a second to retry).
    pub listen_backlog: i32,
    /// Least severe level logged (`LOGGING_LEVEL`, default INFO).
    pub logging_level: LevelFilter,
    /// Agencies taking part; the total is answered once all of them are done
    /// (`SERVER_AGENCIES`, default 5). Agencies are numbered 1 to this.
    pub agencies: u32,
    /// The winners file, a CSV (`SERVER_STORAGE_PATH`, default `winners.csv`).
    pub storage_path: PathBuf,
    /// Simulated cost of checking one bet (`SERVER_WINNER_DELAY_MS`, default 1 ms, 0 allowed).
    pub winner_delay: Duration,
    /// Connection slots; when all are taken a newcomer evicts a waiting or unproved
    /// connection, or is refused `Busy` if every one is working (`net/connections.rs`)
    /// (`SERVER_MAX_CONNECTIONS`, default [`default_max_connections`] of `SERVER_AGENCIES`).
    pub max_connections: usize,
    /// Whether `SERVER_MAX_CONNECTIONS` was set (else the cap is sized from the agencies, and
    /// lowered at start to what the file-descriptor limit allows).
    pub max_connections_chosen: bool,
    /// A connection that sends nothing for this long is closed (`SERVER_IDLE_TIMEOUT_SECS`,
    /// default 30).
    pub idle_timeout: Duration,
    /// Largest frame payload accepted, in bytes (`SERVER_MAX_FRAME_BYTES`, default 1 MiB).
    pub max_frame_len: usize,
    /// A PostgreSQL database to keep the lottery in instead of the winners file and its
    /// journal (`SERVER_DATABASE_URL`, default empty: none). May hold a password: never logged.
    pub database_url: Option<String>,
    /// A file holding the database password, read when the database opens, so that the URL
    /// need carry none (`SERVER_DATABASE_PASSWORD_FILE`, default empty: none). Only its path
    /// is logged.
    pub database_password_file: Option<PathBuf>,
    /// Database connections the central keeps at most for its reads and dones, beside the one
    /// its batch groups commit on (`SERVER_DATABASE_POOL_SIZE`, default 2).
    pub database_pool_size: usize,
    /// Longest wait to connect to the database or for a free connection
    /// (`SERVER_DATABASE_TIMEOUT_SECS`, default 5).
    pub database_timeout: Duration,
    /// From a request's first byte, the time its whole frame has to arrive, and an answer to
    /// leave (`SERVER_FRAME_TIMEOUT_SECS`, default 5).
    pub frame_timeout: Duration,
    /// Bytes all connections' requests and answers in flight may hold together
    /// (`SERVER_MEMORY_BUDGET_MIB`, default 64 MiB).
    pub memory_budget: usize,
    /// The agencies' public keys (`SERVER_AGENCY_KEYS`, default none): with them, a
    /// connection acts for an agency only after proving it holds that agency's key; without,
    /// the central runs open.
    pub agency_keys: Option<PathBuf>,
    /// The central's TLS certificate chain and private key, PEM (`SERVER_TLS_CERT`,
    /// `SERVER_TLS_KEY`, default none: plain TCP). Both or neither.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// How the winners file writes each winner (`SERVER_WINNERS_FORMAT`: `csv`, the default,
    /// or `course`, the lines of the course's `persist_winners`).
    pub winners_format: WinnersFormat,
    /// With keys configured, how long a connection has from accept to prove an agency
    /// (`SERVER_PROOF_TIMEOUT_SECS`, default 5); `Echo` does not extend it.
    pub proof_timeout: Duration,
    /// The share of the connection slots unproved connections may hold together, in percent
    /// (`SERVER_UNPROVED_PERCENT`, default 25; only with keys configured).
    pub unproved_percent: usize,
}

/// The connection cap when `SERVER_MAX_CONNECTIONS` is not set: one slot for each agency, a
/// quarter more for unproved connections and health checks, and at least 256.
#[must_use]
pub fn default_max_connections(agencies: u32) -> usize {
    let agencies = agencies as usize;
    (agencies + agencies / 4 + 16).max(256)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ip: String::new(),
            port: 12345,
            http_port: 0,
            listen_backlog: 1024,
            logging_level: LevelFilter::Info,
            agencies: 5,
            storage_path: PathBuf::from("winners.csv"),
            winner_delay: Duration::from_millis(1),
            max_connections: 256,
            max_connections_chosen: false,
            idle_timeout: Duration::from_secs(30),
            max_frame_len: protocol::DEFAULT_MAX_FRAME_LEN,
            database_url: None,
            database_password_file: None,
            database_pool_size: 2,
            database_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(5),
            memory_budget: 64 << 20,
            agency_keys: None,
            tls: None,
            winners_format: WinnersFormat::Csv,
            proof_timeout: Duration::from_secs(5),
            unproved_percent: 25,
        }
    }
}

impl Config {
    /// Reads the settings: defaults, overridden by the INI file at `path` (if given; it must
    /// exist), overridden by `env` (a lookup such as `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    /// A missing or unreadable file, a key the file has but no setting, or a value that does
    /// not parse, naming the key.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Ini));
        }
        for setting in SETTINGS {
            if let Some(value) = env(setting.var) {
                builder = builder
                    .set_override(format!("DEFAULT.{}", setting.key), value)
                    .map_err(|e| ConfigError::new(format!("{}: {e}", setting.key)))?;
            }
        }
        let raw = builder.build().map_err(|e| ConfigError::new(format!("cannot read configuration: {e}")))?;
        let section = raw.get_table("DEFAULT").unwrap_or_default();
        let known = || SETTINGS.iter().map(|s| s.key);
        if let Some(unknown) = section.keys().find(|key| !known().any(|k| k == key.as_str())) {
            return Err(unknown_key(unknown, known()));
        }
        let mut config = Config::default();
        for setting in SETTINGS {
            if let Ok(value) = raw.get_string(&format!("DEFAULT.{}", setting.key)) {
                setting.apply(&mut config, &value, setting.key)?;
            }
        }
        config.settle()
    }

    /// The checks that join several settings, once each is read.
    fn settle(mut self) -> Result<Config, ConfigError> {
        if !self.max_connections_chosen {
            self.max_connections = default_max_connections(self.agencies);
        }
        // A frame reserves twice its payload (request and answer): a budget smaller than that
        // for the largest frame would refuse it every time.
        if self.memory_budget < 2 * self.max_frame_len {
            return Err(ConfigError::new(format!(
                "SERVER_MEMORY_BUDGET_MIB: {} MiB is less than twice SERVER_MAX_FRAME_BYTES ({} bytes): \
                 the largest frame would never fit",
                self.memory_budget >> 20,
                self.max_frame_len
            )));
        }
        let empty = |p: &PathBuf| p.as_os_str().is_empty();
        self.tls = match self.tls.take() {
            None => None,
            Some((cert, key)) if empty(&cert) && empty(&key) => None,
            Some((cert, key)) if empty(&key) => {
                let expected = format!("a key file, since SERVER_TLS_CERT is {}", cert.display());
                return Err(ConfigError::invalid("SERVER_TLS_KEY", "", &expected));
            }
            Some((cert, key)) if empty(&cert) => {
                let expected = format!("a certificate file, since SERVER_TLS_KEY is {}", key.display());
                return Err(ConfigError::invalid("SERVER_TLS_CERT", "", &expected));
            }
            pair => pair,
        };
        Ok(self)
    }

    /// What the store is told: the agencies, the winners file and its format, the database.
    #[must_use]
    pub fn store(&self) -> store::Settings {
        store::Settings {
            agencies: self.agencies,
            storage_path: self.storage_path.clone(),
            winners_format: self.winners_format,
            database: self.database(),
        }
    }

    /// Slots unproved connections may hold together: their share of `cap` (the connection
    /// cap in force), at least one.
    #[must_use]
    pub fn unproved_slots(&self, cap: usize) -> usize {
        (cap * self.unproved_percent / 100).max(1)
    }

    /// The database engine's settings, when `SERVER_DATABASE_URL` names a database.
    #[must_use]
    pub fn database(&self) -> Option<DatabaseSettings> {
        self.database_url.as_ref().map(|url| DatabaseSettings {
            url: url.clone(),
            password_file: self.database_password_file.clone(),
            pool_size: self.database_pool_size,
            timeout: self.database_timeout,
        })
    }

    /// The settings as `key: value` pairs, for the `action: config` log line.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "ip: {:?} | port: {} | http_port: {} | listen_backlog: {} | logging_level: {} | agencies: {} | storage_path: {} | \
             winner_delay_ms: {} | max_connections: {} | idle_timeout_secs: {} | max_frame_bytes: {} | \
             database_url: {} | database_password_file: {} | database_pool_size: {} | database_timeout_secs: {} | \
             frame_timeout_secs: {} | memory_budget_mib: {} | agency_keys: {} | tls: {} | winners_format: {} | \
             proof_timeout_secs: {} | unproved_percent: {}",
            self.ip,
            self.port,
            self.http_port,
            self.listen_backlog,
            self.logging_level,
            self.agencies,
            self.storage_path.display(),
            self.winner_delay.as_millis(),
            self.max_connections,
            self.idle_timeout.as_secs(),
            self.max_frame_len,
            self.database().map_or_else(|| "none".to_owned(), |database| database.describe()),
            self.database_password_file.as_ref().map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
            self.database_pool_size,
            self.database_timeout.as_secs(),
            self.frame_timeout.as_secs(),
            self.memory_budget >> 20,
            self.agency_keys.as_ref().map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
            self.tls.as_ref().map_or_else(|| "off".to_owned(), |(cert, _)| cert.display().to_string()),
            self.winners_format.name(),
            self.proof_timeout.as_secs(),
            self.unproved_percent,
        )
    }
}

/// A warning line for each environment variable starting with `SERVER_` that names no
/// setting of the central, with the closest one: a typo there would otherwise be ignored.
#[must_use]
pub fn environment_warnings() -> Vec<String> {
    let known: Vec<&str> = SETTINGS.iter().map(|s| s.var).collect();
    runtime::settings::unknown_variables(runtime::settings::environment_names(), "SERVER_", &known)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_need_no_file_and_no_environment() {
        assert_eq!(Config::load(None, env(&[])).unwrap(), Config::default());
    }

    #[test]
    fn the_course_ini_is_read_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.ini");
        std::fs::write(
            &path,
            "[DEFAULT]\nSERVER_PORT = 12345\nSERVER_IP = \"\"\nSERVER_LISTEN_BACKLOG = 5\nLOGGING_LEVEL = DEBUG\n\
             SERVER_AGENCIES = 3\nSERVER_WINNER_DELAY_MS = 0\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            env(&[("SERVER_AGENCIES", "7"), ("SERVER_STORAGE_PATH", "/data/w.csv")]),
        )
        .unwrap();
        assert_eq!(config.listen_backlog, 5);
        assert_eq!(config.logging_level, LevelFilter::Debug);
        assert_eq!(config.winner_delay, Duration::ZERO);
        assert_eq!(config.agencies, 7, "environment over file");
        assert_eq!(config.storage_path, PathBuf::from("/data/w.csv"));
        assert_eq!(config.ip, "");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_shipped_config_file_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/server.ini");
        assert_eq!(Config::load(Some(&path), env(&[])).unwrap(), Config::default());
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/config.ini")), env(&[])).unwrap_err();
        assert!(err.to_string().contains("cannot read configuration"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (key, value) in [
            ("SERVER_PORT", "70000"),
            ("SERVER_PORT", "http"),
            ("LOGGING_LEVEL", "LOUD"),
            ("SERVER_MAX_CONNECTIONS", "0"),
            ("SERVER_WINNER_DELAY_MS", "-1"),
            ("SERVER_IDLE_TIMEOUT_SECS", "0"),
            ("SERVER_MAX_FRAME_BYTES", "10"),
            ("SERVER_STORAGE_PATH", " "),
            ("SERVER_DATABASE_POOL_SIZE", "0"),
            ("SERVER_DATABASE_TIMEOUT_SECS", "0"),
        ] {
            let err = Config::load(None, env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().starts_with(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn the_cap_is_sized_from_the_agencies_unless_set() {
        let cap = |pairs: &[(&str, &str)]| Config::load(None, env(pairs)).unwrap().max_connections;
        assert_eq!(cap(&[]), 256, "the course's five agencies");
        assert_eq!(cap(&[("SERVER_AGENCIES", "1000")]), 1266);
        assert_eq!(cap(&[("SERVER_AGENCIES", "10000")]), 12_516);
        assert_eq!(cap(&[("SERVER_AGENCIES", "1000"), ("SERVER_MAX_CONNECTIONS", "100")]), 100);
        // The agencies may come from the file, the cap still follows them.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.ini");
        std::fs::write(&path, "[DEFAULT]\nSERVER_AGENCIES = 2000\n").unwrap();
        assert_eq!(Config::load(Some(&path), env(&[])).unwrap().max_connections, 2516);
    }

    #[test]
    fn the_proof_settings_have_defaults_and_ranges() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs));
        let config = load(&[]).unwrap();
        assert_eq!((config.proof_timeout, config.unproved_percent), (Duration::from_secs(5), 25));
        assert_eq!(config.unproved_slots(config.max_connections), 64, "a quarter of the 256 slots");
        let edges = [("SERVER_PROOF_TIMEOUT_SECS", "1"), ("SERVER_UNPROVED_PERCENT", "90")];
        let config = load(&edges).unwrap();
        assert_eq!((config.proof_timeout, config.unproved_percent), (Duration::from_secs(1), 90));
        let config = load(&[("SERVER_PROOF_TIMEOUT_SECS", "300"), ("SERVER_MAX_CONNECTIONS", "3")]).unwrap();
        assert_eq!(config.proof_timeout, Duration::from_secs(300));
        assert_eq!(
            config.unproved_slots(config.max_connections),
            1,
            "at least one slot, however small the cap"
        );
        for (key, value) in [
            ("SERVER_PROOF_TIMEOUT_SECS", "0"),
            ("SERVER_PROOF_TIMEOUT_SECS", "301"),
            ("SERVER_PROOF_TIMEOUT_SECS", "5s"),
            ("SERVER_UNPROVED_PERCENT", "0"),
            ("SERVER_UNPROVED_PERCENT", "91"),
            ("SERVER_MAX_CONNECTIONS", "16385"),
        ] {
            let err = load(&[(key, value)]).unwrap_err();
            assert!(err.to_string().starts_with(key), "{key}={value}: {err}");
        }
    }

    #[test]
    fn a_database_url_selects_the_database_and_its_password_is_never_described() {
        assert_eq!(Config::default().database(), None);
        let config = Config::load(
            None,
            env(&[
                ("SERVER_DATABASE_URL", "postgres://lottery:s3cret@db:5432/lottery"),
                ("SERVER_DATABASE_POOL_SIZE", "4"),
            ]),
        )
        .unwrap();
        let database = config.database().unwrap();
        assert_eq!(database.url, "postgres://lottery:s3cret@db:5432/lottery");
        assert_eq!((database.pool_size, database.timeout), (4, Duration::from_secs(5)));
        let described = config.describe();
        assert!(described.contains("database_url: postgres://lottery@db:5432/lottery"), "{described}");
        assert!(!described.contains("s3cret"), "{described}");
        assert_eq!(Config::load(None, env(&[("SERVER_DATABASE_URL", "\"\"")])).unwrap().database(), None);
    }

    #[test]
    fn an_unknown_key_in_the_file_names_the_closest_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.ini");
        std::fs::write(&path, "[DEFAULT]\nSERVER_AGENCEIS = 5\n").unwrap();
        let err = Config::load(Some(&path), env(&[])).unwrap_err();
        assert_eq!(err.to_string(), "unknown setting SERVER_AGENCEIS; did you mean SERVER_AGENCIES?");
    }

    #[test]
    fn the_table_states_the_defaults() {
        for setting in SETTINGS.iter().filter(|s| s.default.parse::<u64>().is_ok()) {
            let mut config = Config::default();
            setting.apply(&mut config, setting.default, setting.key).unwrap();
            assert_eq!(config.settle().unwrap(), Config::default(), "{}", setting.key);
        }
    }

    #[test]
    fn the_docs_list_exactly_the_table_s_settings() {
        runtime::settings::assert_documented(
            SETTINGS,
            include_str!("../../../docs/configuration.md"),
            "the central's",
        );
    }

    #[test]
    fn a_password_from_its_file_never_shows_in_the_config_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("database.password");
        std::fs::write(&file, "f1le-s3cret\n").unwrap();
        let config = Config::load(
            None,
            env(&[
                ("SERVER_DATABASE_URL", "postgres://lottery@db:5432/lottery"),
                ("SERVER_DATABASE_PASSWORD_FILE", file.to_str().unwrap()),
            ]),
        )
        .unwrap();
        assert_eq!(config.database().unwrap().password_file.as_deref(), Some(file.as_path()));
        let described = config.describe();
        assert!(described.contains("database_url: postgres://lottery@db:5432/lottery"), "{described}");
        assert!(described.contains(&format!("database_password_file: {}", file.display())), "{described}");
        assert!(!described.contains("f1le-s3cret"), "{described}");
        assert!(!format!("{config:?}").contains("f1le-s3cret"), "nor in the settings' Debug");
        assert_eq!(
            Config::load(None, env(&[("SERVER_DATABASE_PASSWORD_FILE", "")])).unwrap(),
            Config::default()
        );
    }
}
