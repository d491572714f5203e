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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_key_value_and_expectation() {
        assert_eq!(parse::<u16>("SERVER_PORT", " 80 ", "a port"), Ok(80));
        let err = parse::<u16>("SERVER_PORT", "http", "a port number").unwrap_err();
        assert_eq!(err.to_string(), "SERVER_PORT: \"http\" is not a port number");
    }
}
