//! The agency's settings: defaults, then an optional YAML file, then the environment.
//!
//! Keys keep the course's names: `id`, `server.address`, `log.level` and `batch.maxAmount` in
//! `config.yaml`, and `CLI_ID`, `CLI_SERVER_ADDRESS`, `CLI_LOG_LEVEL`, ... in the environment,
//! which wins over the file. The bet of exercise 5 comes only from the environment
//! (`NOMBRE`, `APELLIDO`, `DOCUMENTO`, `NACIMIENTO`).

use std::{path::Path, path::PathBuf, time::Duration};

use log::LevelFilter;

use runtime::{
    logging::parse_level,
    settings::{in_range, ConfigError},
};

use crate::{duration, retry::RetryPolicy};

/// Each YAML key and the environment variable that overrides it.
pub const KEYS: [(&str, &str); 14] = [
    ("id", "CLI_ID"),
    ("server.address", "CLI_SERVER_ADDRESS"),
    ("server.timeout", "CLI_SERVER_TIMEOUT"),
    ("log.level", "CLI_LOG_LEVEL"),
    ("data.path", "CLI_DATA_PATH"),
    ("batch.maxAmount", "CLI_BATCH_MAX_AMOUNT"),
    ("batch.window", "CLI_BATCH_WINDOW"),
    ("winners.retryPeriod", "CLI_WINNERS_RETRY_PERIOD"),
    ("retry.initial", "CLI_RETRY_INITIAL"),
    ("retry.max", "CLI_RETRY_MAX"),
    ("retry.total", "CLI_RETRY_TOTAL"),
    ("credentials.key", "CLI_KEY"),
    ("tls.ca", "CLI_TLS_CA"),
    ("tls.name", "CLI_TLS_NAME"),
];

/// Most agencies a lottery has (the central's `SERVER_AGENCIES` takes at most this too).
pub const MAX_AGENCY: u32 = 10_000;
/// Most bets in one batch: the central's cap.
pub const MAX_BATCH_AMOUNT: usize = 512;

/// The range of each duration setting. Every one is above zero; none is longer than an hour
/// (a day for the retry total), which keeps every deadline computed from them representable.
const DURATION_RANGES: [(&str, Duration, Duration); 5] = [
    ("server.timeout", Duration::from_millis(1), Duration::from_secs(3600)),
    ("winners.retryPeriod", Duration::from_millis(1), Duration::from_secs(3600)),
    ("retry.initial", Duration::from_millis(1), Duration::from_secs(3600)),
    ("retry.max", Duration::from_millis(1), Duration::from_secs(3600)),
    ("retry.total", Duration::from_millis(1), Duration::from_secs(86_400)),
];

/// The environment variables holding the bet of exercise 5, in field order.
pub const BET_VARS: [&str; 4] = ["NOMBRE", "APELLIDO", "DOCUMENTO", "NACIMIENTO"];

/// The agency's effective settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The agency's number, 1 to the number of agencies the central expects (`id`, `CLI_ID`;
    /// required).
    pub id: u32,
    /// The central's `host:port` (`server.address`, default `127.0.0.1:12345`).
    pub server_address: String,
    /// Longest wait to connect, or for an answer (`server.timeout`, default `60s`).
    pub server_timeout: Duration,
    /// Least severe level logged (`log.level`, default `info`).
    pub log_level: LevelFilter,
    /// The agency's bets, a CSV without header (`data.path`, default
    /// `.data/dataset-<id>.csv`).
    pub data_path: PathBuf,
    /// Most bets in one batch (`batch.maxAmount`, default 100); a batch also never exceeds
    /// 8 KiB on the wire.
    pub batch_max_amount: usize,
    /// Batches sent before waiting for the first answer (`batch.window`, default 64, at most
    /// 64): more than one lets the central answer several with one disk sync, and keeps the
    /// agency reading its file while the central checks and stores.
    pub batch_window: usize,
    /// Wait between two winners queries while agencies are still loading
    /// (`winners.retryPeriod`, default `5s`).
    pub retry_period: Duration,
    /// How the agency retries when the central cannot be reached or the connection breaks
    /// (`retry.initial` default `100ms`, `retry.max` default `5s`, `retry.total` default
    /// `60s`: waits double from the first up to the cap, and one outage waits at most the
    /// total before the agency gives up).
    pub retry: RetryPolicy,
    /// The single bet of exercise 5, when `NOMBRE`, `APELLIDO`, `DOCUMENTO` and `NACIMIENTO`
    /// are set: first name, last name, document, birth date.
    pub bet: Option<[String; 4]>,
    /// The agency's private key file (`credentials.key`, `CLI_KEY`; default none): with it,
    /// every connection proves the agency's identity before acting for it.
    pub key_path: Option<PathBuf>,
    /// The certificate authority the central's TLS certificate must be signed by
    /// (`tls.ca`, `CLI_TLS_CA`; default none: plain TCP).
    pub tls_ca: Option<PathBuf>,
    /// The name the central's certificate must carry (`tls.name`, `CLI_TLS_NAME`; default:
    /// the host of `server.address`).
    pub tls_name: Option<String>,
}

impl Config {
    /// Reads the settings: defaults, overridden by the YAML file at `path` (if given; it must
    /// exist), overridden by `env` (a lookup such as `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    /// A missing or unreadable file, a missing agency id, an incomplete bet, or a value that
    /// does not parse, naming the key.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Yaml));
        }
        for (key, var) in KEYS {
            if let Some(value) = env(var) {
                builder =
                    builder.set_override(key, value).map_err(|e| ConfigError::new(format!("{var}: {e}")))?;
            }
        }
        let raw = builder.build().map_err(|e| ConfigError::new(format!("cannot read configuration: {e}")))?;
        let get = |key: &str| raw.get_string(key).ok().map(|v| v.trim().to_owned());

        let id_text =
            get("id").ok_or_else(|| ConfigError::new("id (CLI_ID) is required: the agency's number"))?;
        let id: u32 = in_range(&named("id"), &id_text, 1, MAX_AGENCY, "an agency number")?;
        let server_address = get("server.address").unwrap_or_else(|| "127.0.0.1:12345".into());
        if server_address.is_empty() {
            return Err(ConfigError::invalid("server.address", &server_address, "host:port"));
        }
        let server_timeout = match get("server.timeout") {
            Some(v) => ranged_duration("server.timeout", &v)?,
            None => Duration::from_secs(60),
        };
        let log_level = match get("log.level") {
            Some(v) => parse_level(&v).ok_or_else(|| {
                ConfigError::invalid("log.level", &v, "one of debug, info, warn, error, off")
            })?,
            None => LevelFilter::Info,
        };
        let data_path = match get("data.path") {
            Some(v) if !v.is_empty() => PathBuf::from(v),
            _ => PathBuf::from(format!(".data/dataset-{id}.csv")),
        };
        let batch_max_amount = match get("batch.maxAmount") {
            Some(v) => in_range(&named("batch.maxAmount"), &v, 1, MAX_BATCH_AMOUNT, "bets")?,
            None => 100,
        };
        let batch_window = match get("batch.window") {
            Some(v) => in_range(&named("batch.window"), &v, 1, 64, "batches")?,
            None => 64,
        };
        let retry_period = match get("winners.retryPeriod") {
            Some(v) => ranged_duration("winners.retryPeriod", &v)?,
            None => Duration::from_secs(5),
        };
        let mut retry = RetryPolicy::default();
        for (key, slot) in [
            ("retry.initial", &mut retry.initial),
            ("retry.max", &mut retry.max),
            ("retry.total", &mut retry.total),
        ] {
            if let Some(v) = get(key) {
                *slot = ranged_duration(key, &v)?;
            }
        }
        Ok(Config {
            id,
            server_address,
            server_timeout,
            log_level,
            data_path,
            batch_max_amount,
            batch_window,
            retry_period,
            retry,
            bet: bet_from(&env)?,
            key_path: get("credentials.key").filter(|v| !v.is_empty()).map(PathBuf::from),
            tls_ca: get("tls.ca").filter(|v| !v.is_empty()).map(PathBuf::from),
            tls_name: get("tls.name").filter(|v| !v.is_empty()),
        })
    }

    /// The settings as `key: value` pairs, for the `action: config` log line.
    #[must_use]
    pub fn describe(&self) -> String {
        let mode = match &self.bet {
            Some([_, _, document, _]) => format!("single_bet | document: {document}"),
            None => format!("dataset | data_path: {}", self.data_path.display()),
        };
        format!(
            "id: {} | server_address: {} | server_timeout: {:?} | log_level: {} | batch_max_amount: {} | batch_window: {} | \
             retry_period: {:?} | retry_initial: {:?} | retry_max: {:?} | retry_total: {:?} | key: {} | tls_ca: {} | mode: {mode}",
            self.id,
            self.server_address,
            self.server_timeout,
            self.log_level,
            self.batch_max_amount,
            self.batch_window,
            self.retry_period,
            self.retry.initial,
            self.retry.max,
            self.retry.total,
            self.key_path.as_ref().map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
            self.tls_ca.as_ref().map_or_else(|| "none".to_owned(), |p| p.display().to_string()),
        )
    }
}

fn bet_from(env: &impl Fn(&str) -> Option<String>) -> Result<Option<[String; 4]>, ConfigError> {
    let values = BET_VARS.map(env);
    let missing: Vec<&str> =
        BET_VARS.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|(k, _)| *k).collect();
    match missing.len() {
        4 => Ok(None),
        0 => Ok(Some(values.map(Option::unwrap_or_default))),
        _ => Err(ConfigError::new(format!(
            "the bet of exercise 5 needs NOMBRE, APELLIDO, DOCUMENTO and NACIMIENTO; missing: {}",
            missing.join(", ")
        ))),
    }
}

/// `key (VARIABLE)`, so an error names both ways of setting it.
fn named(key: &str) -> String {
    match KEYS.iter().find(|(k, _)| *k == key) {
        Some((_, var)) => format!("{key} ({var})"),
        None => key.to_owned(),
    }
}

/// A duration within the range [`DURATION_RANGES`] gives `key`.
fn ranged_duration(key: &str, value: &str) -> Result<Duration, ConfigError> {
    let (min, max) = DURATION_RANGES
        .iter()
        .find(|(k, ..)| *k == key)
        .map_or((Duration::from_millis(1), Duration::from_secs(3600)), |&(_, min, max)| (min, max));
    let range = format!("a duration from {min:?} to {max:?}");
    match duration::parse(value) {
        Ok(d) if (min..=max).contains(&d) => Ok(d),
        _ => Err(ConfigError::invalid(&named(key), value, &range)),
    }
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
    fn only_the_id_is_required() {
        let config = Config::load(None, env(&[("CLI_ID", "3")])).unwrap();
        assert_eq!(config.id, 3);
        assert_eq!(config.server_address, "127.0.0.1:12345");
        assert_eq!(config.data_path, PathBuf::from(".data/dataset-3.csv"));
        assert_eq!(config.batch_max_amount, 100);
        assert_eq!(config.batch_window, 64);
        assert_eq!(config.retry_period, Duration::from_secs(5));
        assert_eq!(config.retry, RetryPolicy::default());
        assert_eq!(config.bet, None);
        let err = Config::load(None, env(&[])).unwrap_err();
        assert!(err.to_string().contains("CLI_ID"), "{err}");
    }

    #[test]
    fn the_course_yaml_is_read_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(
            &path,
            "id: 2\nserver:\n  address: \"server:12345\"\nlog:\n  level: \"debug\"\nbatch:\n  maxAmount: 50\n\
             winners:\n  retryPeriod: \"200ms\"\ndata:\n  path: /data/agency.csv\n",
        )
        .unwrap();
        let config =
            Config::load(Some(&path), env(&[("CLI_BATCH_MAX_AMOUNT", "7"), ("CLI_ID", "4")])).unwrap();
        assert_eq!(config.id, 4, "environment over file");
        assert_eq!(config.batch_max_amount, 7, "environment over file");
        assert_eq!(config.server_address, "server:12345");
        assert_eq!(config.log_level, LevelFilter::Debug);
        assert_eq!(config.retry_period, Duration::from_millis(200));
        assert_eq!(config.data_path, PathBuf::from("/data/agency.csv"));
    }

    #[test]
    fn the_shipped_config_file_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/client.yaml");
        let from_file = Config::load(Some(&path), env(&[("CLI_ID", "2")])).unwrap();
        assert_eq!(from_file, Config::load(None, env(&[("CLI_ID", "2")])).unwrap());
    }

    #[test]
    fn the_bet_comes_whole_from_the_environment_or_not_at_all() {
        let full = env(&[
            ("CLI_ID", "1"),
            ("NOMBRE", "Santiago Lionel"),
            ("APELLIDO", "Lorca"),
            ("DOCUMENTO", "30904465"),
            ("NACIMIENTO", "1999-03-17"),
        ]);
        let config = Config::load(None, full).unwrap();
        assert_eq!(config.bet.unwrap()[1], "Lorca");
        let err =
            Config::load(None, env(&[("CLI_ID", "1"), ("NOMBRE", "Ana"), ("DOCUMENTO", "1")])).unwrap_err();
        assert!(err.to_string().ends_with("missing: APELLIDO, NACIMIENTO"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (var, value, key) in [
            ("CLI_ID", "0", "id"),
            ("CLI_ID", "uno", "id"),
            ("CLI_BATCH_MAX_AMOUNT", "0", "batch.maxAmount"),
            ("CLI_WINNERS_RETRY_PERIOD", "5", "winners.retryPeriod"),
            ("CLI_WINNERS_RETRY_PERIOD", "0", "winners.retryPeriod"),
            ("CLI_LOG_LEVEL", "chatty", "log.level"),
            ("CLI_SERVER_TIMEOUT", "soon", "server.timeout"),
            ("CLI_RETRY_INITIAL", "0", "retry.initial"),
            ("CLI_BATCH_WINDOW", "0", "batch.window"),
            ("CLI_BATCH_WINDOW", "65", "batch.window"),
            ("CLI_RETRY_TOTAL", "forever", "retry.total"),
        ] {
            let vars = if var == "CLI_ID" { vec![(var, value)] } else { vec![("CLI_ID", "1"), (var, value)] };
            let err = Config::load(None, env(&vars)).unwrap_err();
            assert!(err.to_string().starts_with(key), "{var}={value}: {err}");
        }
    }
}
