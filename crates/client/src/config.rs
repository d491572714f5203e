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
    settings::{unknown_key, ConfigError, Parse, Setting},
};

use crate::{duration, retry::RetryPolicy};

/// Every setting an agency reads: its YAML path in the file and the environment variable
/// that wins over it. The loader, `--help` and the test on `docs/configuration.md` read this
/// table; a new setting is one more row.
pub const SETTINGS: &[Setting<Config>] = &[
    Setting {
        key: "id",
        var: "CLI_ID",
        default: "required",
        meaning: "the agency's number, 1 to SERVER_AGENCIES",
        parse: Parse::Number {
            min: 1,
            max: MAX_AGENCY as u64,
            unit: "an agency number",
            set: |c, v| c.id = v as u32,
        },
    },
    text(
        "server.address",
        "CLI_SERVER_ADDRESS",
        "127.0.0.1:12345",
        "host:port",
        "the central's address",
        |c, v| {
            if v.is_empty() {
                return Err(ConfigError::invalid("server.address", v, "host:port"));
            }
            c.server_address = v.to_owned();
            Ok(())
        },
    ),
    text(
        "server.timeout",
        "CLI_SERVER_TIMEOUT",
        "60s",
        "1ms to 1h",
        "longest wait to resolve and connect (together), or for an answer",
        |c, v| ranged_duration("server.timeout", v).map(|d| c.server_timeout = d),
    ),
    text(
        "log.level",
        "CLI_LOG_LEVEL",
        "info",
        "debug, info, warn, error, off",
        "least severe level logged",
        |c, v| {
            c.log_level = parse_level(v).ok_or_else(|| {
                ConfigError::invalid("log.level", v, "one of debug, info, warn, error, off")
            })?;
            Ok(())
        },
    ),
    text("data.path", "CLI_DATA_PATH", ".data/dataset-ID.csv", "a path", "the agency's dataset", |c, v| {
        c.data_path = PathBuf::from(v);
        Ok(())
    }),
    Setting {
        key: "batch.maxAmount",
        var: "CLI_BATCH_MAX_AMOUNT",
        default: "100",
        meaning: "most bets per batch (and never over 8 KiB)",
        parse: Parse::Number {
            min: 1,
            max: MAX_BATCH_AMOUNT as u64,
            unit: "bets",
            set: |c, v| c.batch_max_amount = v as usize,
        },
    },
    Setting {
        key: "batch.window",
        var: "CLI_BATCH_WINDOW",
        default: "256",
        meaning: "batches sent before waiting for the first answer",
        parse: Parse::Number {
            min: 1,
            max: protocol::MAX_WINDOW as u64,
            unit: "batches",
            set: |c, v| c.batch_window = v as usize,
        },
    },
    text(
        "winners.retryPeriod",
        "CLI_WINNERS_RETRY_PERIOD",
        "5s",
        "1ms to 1h",
        "period between two total queries",
        |c, v| ranged_duration("winners.retryPeriod", v).map(|d| c.retry_period = d),
    ),
    text(
        "retry.initial",
        "CLI_RETRY_INITIAL",
        "100ms",
        "1ms to 1h",
        "first wait after a failed connection or a Busy, Overloaded or Storage answer; doubles after each",
        |c, v| ranged_duration("retry.initial", v).map(|d| c.retry.initial = d),
    ),
    text("retry.max", "CLI_RETRY_MAX", "5s", "1ms to 1h", "longest single wait", |c, v| {
        ranged_duration("retry.max", v).map(|d| c.retry.max = d)
    }),
    text(
        "retry.total",
        "CLI_RETRY_TOTAL",
        "60s",
        "1ms to 24h",
        "most waited in one outage; then the agency gives up (exit 1)",
        |c, v| ranged_duration("retry.total", v).map(|d| c.retry.total = d),
    ),
    text("credentials.key", "CLI_KEY", "unset", "a file", "the agency's private key", |c, v| {
        c.key_path = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
        Ok(())
    }),
    text(
        "tls.ca",
        "CLI_TLS_CA",
        "unset (plain TCP)",
        "a file",
        "TLS, trusting only this authority",
        |c, v| {
            c.tls_ca = Some(PathBuf::from(v)).filter(|p| !p.as_os_str().is_empty());
            Ok(())
        },
    ),
    text(
        "tls.name",
        "CLI_TLS_NAME",
        "the host of server.address",
        "a DNS name or IP",
        "the name the central's certificate must carry",
        |c, v| {
            c.tls_name = Some(v.to_owned()).filter(|v| !v.is_empty());
            Ok(())
        },
    ),
];

/// A row for text checked by `set`.
const fn text(
    key: &'static str,
    var: &'static str,
    default: &'static str,
    accepted: &'static str,
    meaning: &'static str,
    set: fn(&mut Config, &str) -> Result<(), ConfigError>,
) -> Setting<Config> {
    Setting { key, var, default, meaning, parse: Parse::Text { accepted, set } }
}

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
    /// Batches sent before waiting for the first answer (`batch.window`, default 256, at most
    /// 256): more than one lets the central answer several with one disk sync, and keeps the
    /// agency reading its file while the central checks, stores and syncs.
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
    /// A missing or unreadable file, a key the file has but no setting, a missing agency id,
    /// an incomplete bet, or a value that does not parse, naming the key.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = path {
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Yaml));
        }
        for setting in SETTINGS {
            if let Some(value) = env(setting.var) {
                builder = builder
                    .set_override(setting.key, value)
                    .map_err(|e| ConfigError::new(format!("{}: {e}", setting.var)))?;
            }
        }
        let raw = builder.build().map_err(|e| ConfigError::new(format!("cannot read configuration: {e}")))?;
        check_keys(&raw)?;
        let get = |key: &str| raw.get_string(key).ok().map(|v| v.trim().to_owned());
        if get("id").is_none() {
            return Err(ConfigError::new("id (CLI_ID) is required: the agency's number"));
        }
        let mut config = Config::blank();
        for setting in SETTINGS {
            if let Some(value) = get(setting.key) {
                setting.apply(&mut config, &value, &named(setting.key))?;
            }
        }
        if config.data_path.as_os_str().is_empty() {
            config.data_path = PathBuf::from(format!(".data/dataset-{}.csv", config.id));
        }
        config.bet = bet_from(&env)?;
        Ok(config)
    }

    /// The defaults, before the table's settings are read (the id is required, the dataset's
    /// default follows it).
    fn blank() -> Config {
        Config {
            id: 0,
            server_address: "127.0.0.1:12345".into(),
            server_timeout: Duration::from_secs(60),
            log_level: LevelFilter::Info,
            data_path: PathBuf::new(),
            batch_max_amount: 100,
            batch_window: 256,
            retry_period: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            bet: None,
            key_path: None,
            tls_ca: None,
            tls_name: None,
        }
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
    match SETTINGS.iter().find(|s| s.key == key) {
        Some(setting) => format!("{key} ({})", setting.var),
        None => key.to_owned(),
    }
}

/// Refuses a key in the file that no setting has (a typo would otherwise be ignored), naming
/// the closest known one.
fn check_keys(raw: &config::Config) -> Result<(), ConfigError> {
    let mut keys = Vec::new();
    let table = raw.clone().try_deserialize::<config::Map<String, config::Value>>().unwrap_or_default();
    flatten(String::new(), table, &mut keys);
    let known = || SETTINGS.iter().map(|s| s.key);
    match keys.iter().find(|key| !known().any(|k| k == key.as_str())) {
        Some(unknown) => Err(unknown_key(unknown, known())),
        None => Ok(()),
    }
}

/// The dotted paths of every leaf of a YAML table (`batch.maxAmount`).
fn flatten(prefix: String, table: config::Map<String, config::Value>, keys: &mut Vec<String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
        match value.clone().into_table() {
            Ok(inner) if !inner.is_empty() => flatten(path, inner, keys),
            _ => keys.push(path),
        }
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

/// A warning line for each environment variable starting with `CLI_` that names no
/// setting of an agency, with the closest one: a typo there would otherwise be ignored.
#[must_use]
pub fn environment_warnings() -> Vec<String> {
    let known: Vec<&str> = SETTINGS.iter().map(|s| s.var).collect();
    runtime::settings::unknown_variables(runtime::settings::environment_names(), "CLI_", &known)
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
        assert_eq!(config.batch_window, 256);
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
            ("CLI_BATCH_WINDOW", "257", "batch.window"),
            ("CLI_RETRY_TOTAL", "forever", "retry.total"),
        ] {
            let vars = if var == "CLI_ID" { vec![(var, value)] } else { vec![("CLI_ID", "1"), (var, value)] };
            let err = Config::load(None, env(&vars)).unwrap_err();
            assert!(err.to_string().starts_with(key), "{var}={value}: {err}");
        }
    }

    #[test]
    fn an_unknown_key_in_the_file_names_the_closest_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "batch:\n  maxAmmount: 10\n").unwrap();
        let err = Config::load(Some(&path), env(&[("CLI_ID", "1")])).unwrap_err();
        assert_eq!(err.to_string(), "unknown setting batch.maxAmmount; did you mean batch.maxAmount?");
    }

    #[test]
    fn the_table_states_the_defaults() {
        let defaults = Config::load(None, env(&[("CLI_ID", "2")])).unwrap();
        // The rows whose default is a value (not "required", "unset" or a description).
        let valued = |s: &&Setting<Config>| !["id", "data.path", "credentials.key"].contains(&s.key);
        for setting in SETTINGS.iter().filter(valued).filter(|s| !s.default.contains(' ')) {
            let mut config = defaults.clone();
            setting.apply(&mut config, setting.default, setting.key).unwrap();
            assert_eq!(config, defaults, "{}", setting.key);
        }
    }

    #[test]
    fn the_docs_list_exactly_the_table_s_settings() {
        runtime::settings::assert_documented(
            SETTINGS,
            include_str!("../../../docs/configuration.md"),
            "the agency's",
        );
    }
}
