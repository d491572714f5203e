//! The `client` binary's command line and log filter, as a user meets them: `--help` and
//! `--version` exit 0, an unknown flag or an extra argument exits 2, and `RUST_LOG` is
//! applied over `CLI_LOG_LEVEL`. No central is needed: nothing here gets that far.

use std::process::{Command, Output};

fn client(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_client"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("CLI_LOG_LEVEL")
        .envs(env.iter().copied())
        .output()
        .expect("run client")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_version_and_unknown_flags() {
    for help in ["--help", "-h"] {
        let out = client(&[help], &[]);
        assert_eq!(out.status.code(), Some(0), "{help}: {out:?}");
        assert!(text(&out.stdout).starts_with("usage: client [CONFIG.yaml]"), "{out:?}");
    }
    for version in ["--version", "-V"] {
        let out = client(&[version], &[]);
        assert_eq!(out.status.code(), Some(0), "{version}: {out:?}");
        assert_eq!(text(&out.stdout), format!("client {}\n", env!("CARGO_PKG_VERSION")));
    }
    for (args, says) in [
        (&["--id=1"][..], "unknown option '--id=1'"),
        (&["a.yaml", "b.yaml"], "unexpected argument 'b.yaml'"),
    ] {
        let out = client(args, &[("CLI_ID", "1")]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(text(&out.stderr).contains(says), "{args:?}: {out:?}");
    }
}

#[test]
fn rust_log_is_applied_over_the_log_level_setting() {
    // An invalid bet: the agency logs its settings (INFO), then fails (ERROR) before any I/O.
    let bet = [
        ("CLI_ID", "1"),
        ("NOMBRE", "Ana"),
        ("APELLIDO", "Díaz"),
        ("DOCUMENTO", "x1"),
        ("NACIMIENTO", "1987-05-17"),
    ];
    let run = |extra: &[(&'static str, &'static str)]| {
        let env: Vec<_> = bet.iter().chain(extra).copied().collect();
        let out = client(&[], &env);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let said = text(&out.stderr);
        (
            said.contains("INFO     action: config | result: success"),
            said.contains("ERROR    action: bet_checked | result: fail"),
            said,
        )
    };
    let (config, failed, said) = run(&[]);
    assert!(config && failed, "{said}");
    let (config, failed, said) = run(&[("RUST_LOG", "error")]);
    assert!(!config && failed, "{said}");
    let (config, _, said) = run(&[("CLI_LOG_LEVEL", "error"), ("RUST_LOG", "client=info")]);
    assert!(config, "{said}");
}

#[test]
fn a_dataset_that_cannot_be_read_fails_at_once_before_any_connection() {
    // A port nothing listens on: bound, then released. With the file read first, the agency
    // never reaches its connection retries (60 s by default).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let address = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("dataset.csv");
    std::fs::create_dir(&folder).unwrap();
    for (path, why) in [(dir.path().join("missing.csv"), "No such file"), (folder, "it is a directory")] {
        let started = std::time::Instant::now();
        let path_text = path.display().to_string();
        let out =
            client(&[], &[("CLI_ID", "1"), ("CLI_SERVER_ADDRESS", &address), ("CLI_DATA_PATH", &path_text)]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let said = text(&out.stderr);
        let failure: Vec<_> = said.lines().filter(|l| l.contains("result: fail")).collect();
        assert_eq!(failure.len(), 1, "one line: {said}");
        assert!(failure[0].contains(&path_text) && failure[0].contains(why), "{said}");
        assert!(!said.contains("action: retry"), "no connection was tried: {said}");
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
