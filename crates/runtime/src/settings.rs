//! The settings every binary reads: one table row per setting (its key, variable, default,
//! range and meaning), errors said so a person can fix them, and the closest known key for a
//! typo. The loaders, `--help` and the tests on `docs/configuration.md` all read the table.

use std::fmt;

/// A setting that could not be read: names the key, the value, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with a message of its own.
    #[must_use]
    pub fn new(message: impl Into<String>) -> ConfigError {
        ConfigError(message.into())
    }

    /// `key: "value" is not <expected>`.
    #[must_use]
    pub fn invalid(key: &str, value: &str, expected: &str) -> ConfigError {
        ConfigError(format!("{key}: {value:?} is not {expected}"))
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Parses `value` (trimmed) for `key`.
///
/// # Errors
/// [`ConfigError::invalid`] when it does not parse.
pub fn parse<T: std::str::FromStr>(key: &str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value.trim().parse().map_err(|_| ConfigError::invalid(key, value, expected))
}

/// Parses `value` (trimmed) for `key` as a number from `min` to `max`; `unit` says what it
/// counts ("seconds").
///
/// # Errors
/// [`ConfigError::invalid`] naming the key, the value and the range, when it does not parse
/// or is outside the range.
pub fn in_range<T>(key: &str, value: &str, min: T, max: T, unit: &str) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display,
{
    let refuse = || ConfigError::invalid(key, value, &format!("{unit} from {min} to {max}"));
    let parsed: T = value.trim().parse().map_err(|_| refuse())?;
    if parsed < min || parsed > max {
        return Err(refuse());
    }
    Ok(parsed)
}

/// How a setting's text becomes part of a configuration `C`.
pub enum Parse<C: 'static> {
    /// A whole number from `min` to `max`, counting `unit` ("seconds"); `set` stores it.
    Number {
        /// Least value accepted.
        min: u64,
        /// Greatest value accepted.
        max: u64,
        /// What it counts, for the error line.
        unit: &'static str,
        /// Stores the checked number.
        set: fn(&mut C, u64),
    },
    /// Any other text: `set` checks and stores it; `accepted` says what it takes.
    Text {
        /// What the setting takes, for `--help` and the docs ("csv, course").
        accepted: &'static str,
        /// Checks and stores the text.
        set: fn(&mut C, &str) -> Result<(), ConfigError>,
    },
}

/// One setting of a binary: a row of its table.
pub struct Setting<C: 'static> {
    /// The key in the file: an INI key, or a YAML path such as `batch.maxAmount`.
    pub key: &'static str,
    /// The environment variable that overrides it (the key itself for the central).
    pub var: &'static str,
    /// The default, as text.
    pub default: &'static str,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// How its value is read and checked.
    pub parse: Parse<C>,
}

impl<C> Setting<C> {
    /// The values accepted: `min to max` for a number, else the row's own words.
    #[must_use]
    pub fn range(&self) -> String {
        match &self.parse {
            Parse::Number { min, max, .. } => format!("{min} to {max}"),
            Parse::Text { accepted, .. } => (*accepted).to_owned(),
        }
    }

    /// Reads `value` into `config`; errors name the setting as `name`.
    ///
    /// # Errors
    /// [`ConfigError::invalid`] when the value does not parse or is out of range.
    pub fn apply(&self, config: &mut C, value: &str, name: &str) -> Result<(), ConfigError> {
        match &self.parse {
            Parse::Number { min, max, unit, set } => {
                set(config, in_range(name, value, *min, *max, unit)?);
                Ok(())
            }
            Parse::Text { set, .. } => set(config, value),
        }
    }
}

/// The `--help` lines listing every setting of `table`: key, variable, default, range and
/// meaning.
#[must_use]
pub fn help<C>(table: &[Setting<C>]) -> String {
    let mut text = String::from("Settings (the file's key, the environment variable that wins over it):\n");
    for s in table {
        let name = if s.key == s.var { s.key.to_owned() } else { format!("{} ({})", s.key, s.var) };
        text.push_str(&format!(
            "  {name}\n      {}\n      default: {}; accepts: {}\n",
            s.meaning,
            s.default,
            s.range()
        ));
    }
    text
}

/// The known name closest to `unknown` (edit distance, ignoring case), if one is near enough
/// to be the name meant: at most a third of its letters differ.
#[must_use]
pub fn closest<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = unknown.to_lowercase();
    known
        .into_iter()
        .map(|name| (distance(&lower, &name.to_lowercase()), name))
        .filter(|(d, name)| *d <= name.len().max(3) / 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| name)
}

/// Levenshtein distance: the fewest insertions, deletions and substitutions from `a` to `b`.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The error for a key in a file that no setting has, naming the closest known key.
#[must_use]
pub fn unknown_key<'a>(key: &str, known: impl IntoIterator<Item = &'a str>) -> ConfigError {
    match closest(key, known) {
        Some(near) => ConfigError::new(format!("unknown setting {key}; did you mean {near}?")),
        None => ConfigError::new(format!("unknown setting {key}")),
    }
}

/// The environment variables among `vars` that start with `prefix` but name no setting, each
/// with a warning line naming the closest known variable.
#[must_use]
pub fn unknown_variables(
    vars: impl IntoIterator<Item = String>,
    prefix: &str,
    known: &[&str],
) -> Vec<String> {
    vars.into_iter()
        .filter(|var| var.starts_with(prefix) && !known.contains(&var.as_str()))
        .map(|var| match closest(&var, known.iter().copied()) {
            Some(near) => format!("unknown variable {var}, ignored; did you mean {near}?"),
            None => format!("unknown variable {var}, ignored"),
        })
        .collect()
}

/// Asserts that `docs` (docs/configuration.md) holds `table` exactly, as [`documented`] checks;
/// on failure shows the table it should hold. For the binaries' tests.
///
/// # Panics
/// When it does not.
pub fn assert_documented<C>(table: &[Setting<C>], docs: &str, whose: &str) {
    assert!(
        documented(table, docs),
        "docs/configuration.md must hold {whose} table, between blank lines:\n{}",
        markdown(table)
    );
}

/// Whether `docs` holds `table`'s Markdown table whole, alone between blank lines (so a row
/// added or left out in the docs is a difference), and each key and variable of `table` once.
#[must_use]
pub fn documented<C>(table: &[Setting<C>], docs: &str) -> bool {
    let unique = |names: Vec<&str>| names.iter().all(|n| names.iter().filter(|m| *m == n).count() == 1);
    unique(table.iter().map(|s| s.key).collect())
        && unique(table.iter().map(|s| s.var).collect())
        && docs.contains(&format!("\n\n{}\n", markdown(table)))
}

/// The Markdown table of `table` that `docs/configuration.md` carries: key (and variable,
/// when it differs), default, range, meaning. The docs' tests check the file holds it as is.
#[must_use]
pub fn markdown<C>(table: &[Setting<C>]) -> String {
    let with_var = table.iter().any(|s| s.key != s.var);
    let mut text = if with_var {
        String::from("| key | environment | default | range | meaning |\n|---|---|---|---|---|\n")
    } else {
        String::from("| key | default | range | meaning |\n|---|---|---|---|\n")
    };
    for s in table {
        let var = if with_var { format!(" `{}` |", s.var) } else { String::new() };
        text.push_str(&format!("| `{}` |{var} {} | {} | {} |\n", s.key, s.default, s.range(), s.meaning));
    }
    text
}

/// The names of this process's environment variables (those that are valid UTF-8; no
/// setting has another).
pub fn environment_names() -> impl Iterator<Item = String> {
    std::env::vars_os().filter_map(|(name, _)| name.into_string().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_key_value_and_expectation() {
        assert_eq!(parse::<u16>("SERVER_PORT", " 80 ", "a port"), Ok(80));
        let err = parse::<u16>("SERVER_PORT", "http", "a port number").unwrap_err();
        assert_eq!(err.to_string(), "SERVER_PORT: \"http\" is not a port number");
    }

    #[test]
    fn ranges_are_inclusive_and_named_in_the_error() {
        assert_eq!(in_range("K", "1", 1u32, 10, "seconds"), Ok(1));
        assert_eq!(in_range("K", " 10 ", 1u32, 10, "seconds"), Ok(10));
        for bad in ["0", "11", "-1", "x", "18446744073709551616"] {
            let err = in_range("K", bad, 1u32, 10, "seconds").unwrap_err();
            assert_eq!(err.to_string(), format!("K: {bad:?} is not seconds from 1 to 10"));
        }
    }

    #[test]
    fn the_closest_key_is_named_and_a_far_one_is_not() {
        let known = ["SERVER_AGENCIES", "SERVER_AGENCY_KEYS", "SERVER_PORT"];
        assert_eq!(closest("SERVER_AGENCEIS", known), Some("SERVER_AGENCIES"));
        assert_eq!(closest("server_port", known), Some("SERVER_PORT"));
        assert_eq!(closest("batch.maxAmmount", ["batch.maxAmount", "batch.window"]), Some("batch.maxAmount"));
        assert_eq!(closest("COLOUR", known), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        let warned =
            unknown_variables(["SERVER_PROT".into(), "SERVER_PORT".into(), "PATH".into()], "SERVER_", &known);
        assert_eq!(warned, ["unknown variable SERVER_PROT, ignored; did you mean SERVER_PORT?"]);
    }

    #[test]
    fn the_docs_hold_the_table_exactly() {
        fn set(_: &mut (), _: &str) -> Result<(), ConfigError> {
            Ok(())
        }
        let row = |key| Setting {
            key,
            var: key,
            default: "1",
            meaning: "m",
            parse: Parse::Text { accepted: "a", set },
        };
        let table = [row("A"), row("B")];
        let docs = format!("# Settings\n\n{}\nMore.\n", markdown(&table));
        assert!(documented(&table, &docs));
        assert!(!documented(&table[..1], &docs), "a row more in the docs");
        assert!(!documented(&[row("A"), row("B"), row("C")], &docs), "a row less in the docs");
        assert!(
            !documented(&[row("A"), row("A")], &format!("\n\n{}\n", markdown(&[row("A"), row("A")]))),
            "a key twice"
        );
    }
}
