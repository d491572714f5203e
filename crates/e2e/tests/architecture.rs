//! The rules of ARCHITECTURE.md that the compiler does not keep by itself, kept by reading the
//! source: which crate may name the encoding or the database driver, and which layer of the
//! central may name which. (What sits behind a seam is private to its folder, so the compiler
//! already refuses a call around the seam; these rules are about the names a layer may even
//! mention.)

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `.rs` file under `dir`, recursively.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The lines of `path` that are code: not comments.
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    let text = fs::read_to_string(path).expect("a readable source file");
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            !line.starts_with("//")
        })
        .map(|(i, line)| (i + 1, line.to_owned()))
        .collect()
}

/// Every place under `dir` (relative to the root) whose code mentions one of `names`,
/// outside the files `allowed` (paths relative to the root).
fn mentions(dir: &str, names: &[&str], allowed: &[&str]) -> Vec<String> {
    let root = root();
    let mut found = Vec::new();
    for file in sources(&root.join(dir)) {
        let relative = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy().into_owned();
        if allowed.iter().any(|a| relative.starts_with(a)) {
            continue;
        }
        for (number, line) in code_lines(&file) {
            if names.iter().any(|name| line.contains(name)) {
                found.push(format!("{relative}:{number}: {line}"));
            }
        }
    }
    found
}

#[test]
fn only_the_codec_knows_the_encoding() {
    let found = mentions(
        "crates",
        &["bincode"],
        &["crates/protocol/src/codec.rs", "crates/e2e/tests/architecture.rs"],
    );
    assert!(found.is_empty(), "bincode named outside protocol::codec:\n{}", found.join("\n"));
}

#[test]
fn only_the_database_engine_talks_to_the_database() {
    let found = mentions(
        "crates/server/src",
        &["postgres::Client", "postgres::Config", "postgres::NoTls", "postgres::Error", "postgres::types"],
        &["crates/server/src/store/postgres/", "crates/server/src/store/tests/"],
    );
    assert!(found.is_empty(), "the driver named outside store/postgres:\n{}", found.join("\n"));
}

#[test]
fn the_central_s_layers_call_only_downward() {
    // (layer, the names it must not mention): the store knows no layer above it and no
    // setting of the central's; the lottery knows no socket layer; the connection layer never
    // reaches past the lottery into an engine; the HTTP listener reads the lottery only.
    let rules: [(&str, &[&str]); 4] = [
        (
            "crates/server/src/store",
            &["crate::lottery", "crate::net", "crate::http", "crate::config", "crate::error"],
        ),
        (
            "crates/server/src/lottery",
            &["crate::net", "crate::http", "crate::config", "TcpStream", "TcpListener"],
        ),
        (
            "crates/server/src/net",
            &["store::Engine", "store::journal", "store::postgres", "crate::http::routes"],
        ),
        ("crates/server/src/http", &["crate::net", "crate::store"]),
    ];
    let mut found = Vec::new();
    for (layer, names) in rules {
        found.extend(mentions(layer, names, &[]));
    }
    assert!(found.is_empty(), "an arrow that goes up or around a layer:\n{}", found.join("\n"));
}

#[test]
fn the_store_holds_no_socket() {
    // No lock of the store is ever held across network I/O: the store has no socket to
    // wait on (the database engine's connections are the driver's, inside store/postgres).
    let found =
        mentions("crates/server/src/store", &["TcpStream", "TcpListener", "protocol::Connection"], &[]);
    assert!(found.is_empty(), "a socket in the store:\n{}", found.join("\n"));
}
