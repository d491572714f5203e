//! The `bench` binary's command line: `--help` and `--version` exit 0 without running
//! anything, and any argument (it takes none; its settings are environment variables) exits 2.

use std::process::Command;

#[test]
fn help_version_and_arguments() {
    let bench = env!("CARGO_BIN_EXE_bench");
    let help = Command::new(bench).arg("--help").output().expect("run bench");
    assert_eq!(help.status.code(), Some(0), "{help:?}");
    let said = String::from_utf8_lossy(&help.stdout);
    assert!(said.contains("Usage: bench") && said.contains("BENCH_RUNS"), "{said}");

    let version = Command::new(bench).arg("-V").output().expect("run bench");
    assert_eq!(version.status.code(), Some(0), "{version:?}");
    assert_eq!(String::from_utf8_lossy(&version.stdout), format!("bench {}\n", env!("CARGO_PKG_VERSION")));

    for args in [&["--quick"][..], &["course"]] {
        let out = Command::new(bench).args(args).output().expect("run bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }
}
