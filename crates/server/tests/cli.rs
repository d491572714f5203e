//! The `server` binary's command line and log filter, as a user meets them: `--help` and
//! `--version` exit 0 (a flag is never read as a config path), an unknown flag or an extra
//! argument exits 2, and `RUST_LOG` is applied over `LOGGING_LEVEL`.

use std::{
    net::TcpListener,
    process::{Command, Output},
};

const CONFIG_LINE: &str = "INFO     action: config | result: success";
const START_FAILED: &str = "ERROR    action: start | result: fail";

fn server(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_server")).args(args).output().expect("run server")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_and_version_exit_0_on_standard_output() {
    for help in [&["--help"][..], &["-h"], &["config.ini", "--help"]] {
        let out = server(help);
        assert_eq!(out.status.code(), Some(0), "{help:?}: {out:?}");
        let said = text(&out.stdout);
        assert!(said.contains("Usage: server [CONFIG.ini]\n       server <COMMAND>"), "{said}");
        assert!(said.contains("Exit status"), "{said}");
    }
    // Each subcommand has a help of its own.
    for (command, usage) in [
        ("healthcheck", "Usage: server healthcheck [CONFIG.ini]"),
        ("export-winners", "Usage: server export-winners [CONFIG.ini] OUT.csv"),
    ] {
        let out = server(&[command, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
        let said = text(&out.stdout);
        assert!(said.contains(usage) && !said.contains("Commands:"), "{command}: {said}");
    }
    for version in ["--version", "-V"] {
        let out = server(&[version]);
        assert_eq!(out.status.code(), Some(0), "{version}: {out:?}");
        assert_eq!(text(&out.stdout), format!("server {}\n", env!("CARGO_PKG_VERSION")));
        assert!(out.stderr.is_empty(), "{out:?}");
    }
}

#[test]
fn unknown_flags_and_extra_arguments_exit_2() {
    for (args, says) in [
        (&["--verbose"][..], "unexpected argument '--verbose'"),
        (&["-x", "config.ini"], "unexpected argument '-x'"),
        (&["--port=1"], "unexpected argument '--port'"),
        (&["a.ini", "b.ini"], "'b.ini'"),
        (&["healthcheck", "a.ini", "b.ini"], "unexpected argument 'b.ini'"),
        (&["export-winners"], "required arguments were not provided"),
        (&["export-winners", "a.ini", "out.csv", "c"], "unexpected value 'c'"),
    ] {
        let out = server(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let said = text(&out.stderr);
        assert!(said.contains(says) && said.contains("Usage: server"), "{args:?}: {said}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}

/// Runs a central that logs its settings and then fails to start (its port is taken), with
/// `env` added: what it printed on standard error.
fn failed_start(env: &[(&str, &str)]) -> String {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let port = taken.local_addr().expect("local address").port().to_string();
    let dir = tempfile::Builder::new().prefix("server-cli-").tempdir().expect("a scratch directory");
    let storage = dir.path().join("winners.csv");
    let mut command = Command::new(env!("CARGO_BIN_EXE_server"));
    command
        .env_remove("RUST_LOG")
        .env_remove("LOGGING_LEVEL")
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", &port)
        .env("SERVER_STORAGE_PATH", &storage)
        .envs(env.iter().copied());
    let out = command.output().expect("run server");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    text(&out.stderr)
}

#[test]
fn rust_log_is_applied_over_logging_level() {
    let default = failed_start(&[]);
    assert!(default.contains(CONFIG_LINE) && default.contains(START_FAILED), "{default}");

    let quieter = failed_start(&[("RUST_LOG", "error")]);
    assert!(!quieter.contains(CONFIG_LINE) && quieter.contains(START_FAILED), "{quieter}");

    let louder = failed_start(&[("LOGGING_LEVEL", "ERROR"), ("RUST_LOG", "info")]);
    assert!(louder.contains(CONFIG_LINE), "a bare level in RUST_LOG wins: {louder}");

    let by_module = failed_start(&[("LOGGING_LEVEL", "ERROR"), ("RUST_LOG", "server=info")]);
    assert!(by_module.contains(CONFIG_LINE), "{by_module}");
    let other_module = failed_start(&[("LOGGING_LEVEL", "ERROR"), ("RUST_LOG", "client=info")]);
    assert!(!other_module.contains(CONFIG_LINE) && other_module.contains(START_FAILED), "{other_module}");

    let blank = failed_start(&[("LOGGING_LEVEL", "ERROR"), ("RUST_LOG", "")]);
    assert!(!blank.contains(CONFIG_LINE) && blank.contains(START_FAILED), "{blank}");
}

#[test]
fn help_lists_every_setting_with_its_default() {
    let said = text(&server(&["--help"]).stdout);
    for setting in server::config::SETTINGS {
        let default = format!("default: {}; accepts: {}\n", setting.default, setting.range());
        assert!(
            said.contains(&format!("  {}\n", setting.key)) && said.contains(&default),
            "{}: {said}",
            setting.key
        );
    }
}

#[test]
fn a_typo_in_the_file_exits_2_naming_the_closest_key() {
    let dir = tempfile::Builder::new().prefix("server-cli-").tempdir().expect("a scratch directory");
    let path = dir.path().join("server.ini");
    std::fs::write(&path, "[DEFAULT]\nSERVER_AGENCEIS = 5\n").expect("write the file");
    let out = server(&[path.to_str().expect("a UTF-8 path")]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "action: config | result: fail | error: unknown setting SERVER_AGENCEIS; did you mean SERVER_AGENCIES?\n"
    );
}

#[test]
fn a_typo_in_a_variable_is_warned_of_and_the_central_goes_on() {
    let said = failed_start(&[("SERVER_AGENCEIS", "5")]);
    let warnings: Vec<_> =
        said.lines().filter(|line| line.contains("result: warning | unknown variable")).collect();
    assert_eq!(warnings.len(), 1, "{said}");
    assert!(
        warnings[0].ends_with("unknown variable SERVER_AGENCEIS, ignored; did you mean SERVER_AGENCIES?"),
        "{said}"
    );
    assert!(said.contains(START_FAILED), "it went on to start: {said}");
}
