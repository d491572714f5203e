//! The command line every binary shares: `-h`/`--help` and `-V`/`--version` answered on
//! standard output with exit 0, the way Rust tools answer them, and a flag the program does
//! not know refused on standard error with its usage and exit 2.

use std::{ffi::OsString, process::ExitCode};

/// Exit status for a command line the program does not understand (as clap and the shells use).
const USAGE_ERROR: u8 = 2;

/// What a binary says about itself.
#[derive(Debug, Clone, Copy)]
pub struct Program {
    /// The binary's name, as typed.
    pub name: &'static str,
    /// Its version: the crate's `CARGO_PKG_VERSION`, taken in the binary's own crate.
    pub version: &'static str,
    /// The usage line, `usage: NAME ...`.
    pub usage: &'static str,
    /// What follows the usage line in `--help`: what it does, settings, exit status.
    pub about: &'static str,
}

impl Program {
    /// Answers `-h`/`--help` or `-V`/`--version` when either is among `args` (the arguments
    /// after the program's name): `Some(exit code)` when the process must exit now, having
    /// printed the help or the version.
    #[must_use]
    pub fn answer_help_or_version(&self, args: &[OsString]) -> Option<ExitCode> {
        self.answer_help_listing(args, "")
    }

    /// [`Program::answer_help_or_version`], the help ending with `settings` (the list of
    /// every setting, from the binary's settings table).
    #[must_use]
    pub fn answer_help_listing(&self, args: &[OsString], settings: &str) -> Option<ExitCode> {
        for arg in args {
            if arg == "-h" || arg == "--help" {
                println!("{}\n\n{}", self.usage, self.about.trim_end());
                if !settings.is_empty() {
                    println!("\n{}", settings.trim_end());
                }
                return Some(ExitCode::SUCCESS);
            }
            if arg == "-V" || arg == "--version" {
                println!("{} {}", self.name, self.version);
                return Some(ExitCode::SUCCESS);
            }
        }
        None
    }

    /// Says on standard error what is wrong with the command line, then the usage; the exit
    /// code to return (2).
    #[must_use]
    pub fn usage_error(&self, what: &str) -> ExitCode {
        eprintln!("{}: {what}\n{}\nFor more, try '{} --help'.", self.name, self.usage, self.name);
        ExitCode::from(USAGE_ERROR)
    }

    /// The positional arguments of a program that takes no flags: at most `max` of them.
    ///
    /// # Errors
    /// An argument that looks like a flag (`-x`, `--x`; a lone `-` is a positional), or more
    /// than `max` arguments: the exit code of [`Program::usage_error`], already reported.
    pub fn positionals(&self, args: Vec<OsString>, max: usize) -> Result<Vec<OsString>, ExitCode> {
        if let Some(flag) = args.iter().find(|a| is_flag(a)) {
            return Err(self.usage_error(&format!("unknown option '{}'", flag.to_string_lossy())));
        }
        if args.len() > max {
            let extra = args[max].to_string_lossy().into_owned();
            return Err(self.usage_error(&format!("unexpected argument '{extra}'")));
        }
        Ok(args)
    }
}

/// Whether `arg` is written as a flag: a dash and something after it.
#[must_use]
pub fn is_flag(arg: &OsString) -> bool {
    let bytes = arg.as_encoded_bytes();
    bytes.len() > 1 && bytes[0] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROGRAM: Program =
        Program { name: "demo", version: "1.2.3", usage: "usage: demo [FILE]", about: "" };

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn help_and_version_are_answered_anywhere() {
        assert!(PROGRAM.answer_help_or_version(&args(&["x", "--version"])).is_some());
        assert!(PROGRAM.answer_help_or_version(&args(&["-h"])).is_some());
        assert!(PROGRAM.answer_help_or_version(&args(&["config.ini"])).is_none());
    }

    #[test]
    fn flags_and_extra_arguments_are_refused() {
        assert_eq!(PROGRAM.positionals(args(&["a.ini"]), 1).ok(), Some(args(&["a.ini"])));
        assert_eq!(PROGRAM.positionals(args(&["-"]), 1).ok(), Some(args(&["-"])));
        assert!(PROGRAM.positionals(args(&["--verbose"]), 1).is_err());
        assert!(PROGRAM.positionals(args(&["a", "b"]), 1).is_err());
    }
}
