//! Errors for settings that cannot be read, said so a person can fix them.

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
}
