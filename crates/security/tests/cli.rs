//! The `credentials` binary's command line: a flag is refused (exit 2), never taken as a
//! host name, and nothing is written.

use std::process::Command;

#[test]
fn an_unknown_flag_exits_2_and_writes_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("credentials");
    for args in [&["1", "--force"][..], &["--force", "1"], &["1", "server", "-x"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_credentials")).arg(&dir).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.starts_with("credentials: unknown option '-"), "{args:?}: {said}");
        assert!(!dir.exists(), "{args:?}: nothing is written");
    }
    let out =
        Command::new(env!("CARGO_BIN_EXE_credentials")).arg(&dir).args(["1", "localhost"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(dir.join("agency-1.key").is_file());
}
