//! The `datagen` binary never touches a dataset that is already there: run for real over a
//! folder holding a user's file, it writes only the missing ones.

use std::{fs, path::Path, process::Command};

/// A dataset the user brought: not what `datagen` would write for agency 1.
const USERS_FILE: &[u8] = b"Ana,D\xc3\xadaz,30904465,1999-03-17\nTom\xc3\xa1s,Lorca,1,2000-02-29\n";

fn datagen(dir: &Path, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_datagen"))
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("run datagen");
    assert!(out.status.success(), "datagen: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn lines(path: &Path) -> usize {
    fs::read(path).expect("read a dataset").iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn an_existing_dataset_is_kept_and_only_missing_ones_are_written() {
    let dir = tempfile::Builder::new().prefix("datagen-keep-").tempdir().expect("a scratch directory");
    fs::write(dir.path().join("dataset-1.csv"), USERS_FILE).unwrap();
    // One more of the user's, in the middle, and empty: empty is still the user's file.
    fs::write(dir.path().join("dataset-4.csv"), b"").unwrap();

    let said = datagen(dir.path(), &["--agencies", "6", "--rows", "30"]);

    assert_eq!(
        fs::read(dir.path().join("dataset-1.csv")).unwrap(),
        USERS_FILE,
        "agency 1's file was rewritten"
    );
    assert_eq!(fs::read(dir.path().join("dataset-4.csv")).unwrap(), b"", "agency 4's file was rewritten");
    for agency in [2, 3, 5, 6] {
        assert_eq!(lines(&dir.path().join(format!("dataset-{agency}.csv"))), 30, "agency {agency}");
    }
    assert!(said.contains("kept") && said.contains("dataset-1.csv (already there)"), "{said}");
    assert_eq!(said.matches("wrote").count(), 4, "{said}");
}

#[test]
fn a_second_run_rewrites_nothing_even_with_other_sizes_or_seed() {
    let dir = tempfile::Builder::new().prefix("datagen-again-").tempdir().expect("a scratch directory");
    datagen(dir.path(), &["--agencies", "3", "--rows", "10"]);
    let before: Vec<Vec<u8>> =
        (1..=3).map(|a| fs::read(dir.path().join(format!("dataset-{a}.csv"))).unwrap()).collect();

    let said = datagen(dir.path(), &["--agencies", "3", "--rows", "99", "--seed", "5"]);

    let after: Vec<Vec<u8>> =
        (1..=3).map(|a| fs::read(dir.path().join(format!("dataset-{a}.csv"))).unwrap()).collect();
    assert_eq!(before, after);
    assert_eq!(said.matches("kept").count(), 3, "{said}");
    assert!(!said.contains("wrote"), "{said}");
}

#[test]
fn the_same_seed_writes_the_same_bytes() {
    let (a, b) = (
        tempfile::Builder::new().prefix("datagen-seed-a-").tempdir().expect("a scratch directory"),
        tempfile::Builder::new().prefix("datagen-seed-b-").tempdir().expect("a scratch directory"),
    );
    datagen(a.path(), &["--agencies", "2", "--rows", "50"]);
    datagen(b.path(), &["--agencies", "2", "--rows", "50"]);
    for name in ["dataset-1.csv", "dataset-2.csv"] {
        assert_eq!(fs::read(a.path().join(name)).unwrap(), fs::read(b.path().join(name)).unwrap(), "{name}");
    }
}

#[test]
fn a_directory_where_a_dataset_belongs_is_refused_with_what_to_do() {
    let dir = tempfile::Builder::new().prefix("datagen-dir-").tempdir().expect("a scratch directory");
    // What Docker leaves where a mounted file was missing.
    fs::create_dir(dir.path().join("dataset-2.csv")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_datagen"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--agencies", "2", "--rows", "3"])
        .output()
        .expect("run datagen");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    let path = dir.path().join("dataset-2.csv");
    assert_eq!(
        said.trim_end(),
        format!(
            "datagen: {} is a directory, not a dataset; remove it (rmdir {}) and run again",
            path.display(),
            path.display()
        ),
        "one line saying what to do"
    );
}
