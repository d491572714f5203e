//! `datagen` and `expect` answer `--help` and `--version` with exit 0 and refuse an unknown
//! flag with exit 2, as the real binaries.

use std::process::{Command, Output};

fn run(binary: &str, args: &[&str]) -> Output {
    Command::new(binary).args(args).output().expect("run the binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_version_and_unknown_flags() {
    for (name, binary) in
        [("datagen", env!("CARGO_BIN_EXE_datagen")), ("expect", env!("CARGO_BIN_EXE_expect"))]
    {
        for help in ["--help", "-h"] {
            let out = run(binary, &[help]);
            assert_eq!(out.status.code(), Some(0), "{name} {help}: {out:?}");
            assert!(text(&out.stdout).contains(&format!("Usage: {name} ")), "{name} {help}: {out:?}");
        }
        for version in ["--version", "-V"] {
            let out = run(binary, &[version]);
            assert_eq!(out.status.code(), Some(0), "{name} {version}: {out:?}");
            assert_eq!(text(&out.stdout), format!("{name} {}\n", env!("CARGO_PKG_VERSION")));
        }
        let out = run(binary, &["--frobnicate"]);
        assert_eq!(out.status.code(), Some(2), "{name} --frobnicate: {out:?}");
        assert!(text(&out.stderr).contains("unexpected argument '--frobnicate'"), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    // A value that is not a number, and a flag without its value.
    assert_eq!(run(env!("CARGO_BIN_EXE_datagen"), &["--agencies", "many"]).status.code(), Some(2));
    assert_eq!(run(env!("CARGO_BIN_EXE_datagen"), &["--dir"]).status.code(), Some(2));
    assert_eq!(run(env!("CARGO_BIN_EXE_expect"), &["--dir", "x"]).status.code(), Some(2));
    assert_eq!(run(env!("CARGO_BIN_EXE_datagen"), &["--dir=x", "extra"]).status.code(), Some(2));
}

#[test]
fn a_flag_s_value_may_follow_an_equals_sign() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let target = dir.path().join("x");
    let dir_flag = format!("--dir={}", target.display());
    let out = run(env!("CARGO_BIN_EXE_datagen"), &[&dir_flag, "--agencies=1", "--rows=3"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let written = std::fs::read_to_string(target.join("dataset-1.csv")).expect("the dataset");
    assert_eq!(written.lines().count(), 3, "{written}");
}
