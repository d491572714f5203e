//! The command line every binary shares: clap, each binary's flags derived beside its code.
//! `-h`/`--help` and `-V`/`--version` are answered on standard output with exit 0; a flag
//! the program does not know, a missing or extra argument is refused on standard error with
//! the usage and exit 2 (clap's statuses, the shells' convention); `--flag=value` and
//! `--flag value` are the same.

use clap::Parser;

/// Parses this process's arguments into `T`, or exits (0 after help or version, 2 for a
/// command line it does not understand). `settings`, when not empty, ends `--help`: the list
/// of every setting, from the binary's settings table.
#[must_use]
pub fn parse<T: Parser>(settings: &str) -> T {
    parse_from(std::env::args_os(), settings)
}

/// [`parse`] over `args` (the program's name first).
#[must_use]
pub fn parse_from<T: Parser>(args: impl IntoIterator<Item = std::ffi::OsString>, settings: &str) -> T {
    let mut command = T::command();
    if !settings.is_empty() {
        let before = command.get_after_help().map(ToString::to_string).unwrap_or_default();
        command = command.after_help(format!("{}\n\n{}", settings.trim_end(), before.trim_end()));
    }
    let matches = command.get_matches_from(args);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command line like datagen's.
    #[derive(Parser, Debug, PartialEq)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long, default_value = ".data")]
        dir: String,
        #[arg(long, default_value_t = 5)]
        agencies: u32,
    }

    #[test]
    fn a_value_may_follow_an_equals_sign_or_a_space() {
        let args = |list: &[&str]| list.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let expected = Demo { dir: "/tmp/x".into(), agencies: 3 };
        assert_eq!(parse_from::<Demo>(args(&["demo", "--dir=/tmp/x", "--agencies", "3"]), ""), expected);
        assert_eq!(
            parse_from::<Demo>(args(&["demo", "--dir", "/tmp/x", "--agencies=3"]), "settings"),
            expected
        );
    }
}
