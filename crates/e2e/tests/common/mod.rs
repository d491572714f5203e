//! What several end-to-end test files share, on top of `testkit::central` (the one launcher
//! of a central): agencies with the two retry profiles the tests use, checks of an agency's
//! log lines, bets and calls for tests that speak the protocol by hand, and a set of
//! agencies' credentials.

#![allow(dead_code)] // Each test file uses its own share of these helpers.

use std::{
    collections::BTreeMap,
    net::TcpStream,
    path::{Path, PathBuf},
    time::Duration,
};

use protocol::{Connection, Request, Response, WireBet};
use security::generate;
pub use testkit::central::{Central, PATIENCE};
use testkit::{
    process::{field, LoggedChild},
    reference::{self, Row},
};

/// Starts agency `id` over `data` with the client's own retry settings and a 20 s timeout per
/// answer, `extra` on top.
pub fn agency(central: &Central, id: u32, data: &Path, extra: &[(&str, &str)]) -> LoggedChild {
    central.agency(id, data, &[&[("CLI_SERVER_TIMEOUT", "20s")][..], extra].concat())
}

/// Starts agency `id` over `data` retrying fast (a central that crashes and comes back is met
/// within milliseconds), `extra` on top.
pub fn retrying_agency(central: &Central, id: u32, data: &Path, extra: &[(&str, &str)]) -> LoggedChild {
    let fast_retries = [
        ("CLI_SERVER_TIMEOUT", "10s"),
        ("CLI_RETRY_INITIAL", "10ms"),
        ("CLI_RETRY_MAX", "200ms"),
        ("CLI_RETRY_TOTAL", "40s"),
    ];
    central.agency(id, data, &[&fast_retries[..], extra].concat())
}

/// Waits for a client to exit and asserts it succeeded.
pub fn assert_success(client: &mut LoggedChild) {
    let status =
        client.wait_exit(PATIENCE).unwrap_or_else(|| panic!("still running:\n{}", client.transcript()));
    assert!(status.success(), "{status:?}\n{}", client.transcript());
}

/// The `key: value` fields of the first line with all of `needles`, already printed.
pub fn fields_of(client: &LoggedChild, needles: &[&str]) -> BTreeMap<String, String> {
    let line = client
        .wait_for(needles, Duration::ZERO)
        .unwrap_or_else(|| panic!("no line with {needles:?} in:\n{}", client.transcript()));
    ["agency", "bets", "skipped", "winners", "winner_rate", "agencies_pending"]
        .iter()
        .filter_map(|key| field(&line, key).map(|v| ((*key).to_owned(), v.to_owned())))
        .collect()
}

/// The winners file rows `agency`'s `rows` must produce, as the central writes them.
pub fn expected_rows(agency: u32, rows: &[Row]) -> Vec<String> {
    reference::winner_rows(agency, rows)
}

/// A bet that wins (its FNV-1a hash is divisible by 17).
pub fn winning_bet() -> WireBet {
    wire("Kiara Valentina", "Basile", "32250087", "1987-05-17")
}

/// A bet that loses.
pub fn losing_bet() -> WireBet {
    wire("Santiago Lionel", "Lorca", "30904465", "1999-03-17")
}

/// A bet as it travels, from its four fields.
pub fn wire(first: &str, last: &str, document: &str, birthdate: &str) -> WireBet {
    WireBet {
        first_name: first.into(),
        last_name: last.into(),
        document: document.into(),
        birthdate: birthdate.into(),
    }
}

/// Sends a request and returns the answer, failing the test on a transport error.
pub fn call(conn: &mut Connection<TcpStream>, request: Request) -> Response {
    conn.call(&request).unwrap_or_else(|e| panic!("{request:?} failed: {e}"))
}

/// The digest an agency's upload of `bets` has, from its first bet: what `Resumed` reports.
pub fn upload_digest(bets: &[WireBet]) -> [u8; 16] {
    let bets: Vec<protocol::Bet> =
        bets.iter().cloned().map(|b| protocol::Bet::try_from(b).expect("a valid bet")).collect();
    protocol::Digest::of_bets(0, &bets).to_bytes()
}

/// A credentials set for `agencies` agencies, in its own scratch folder.
pub struct Credentials {
    /// The set's folder, removed when the test ends.
    pub dir: tempfile::TempDir,
}

impl Credentials {
    pub fn new(agencies: u32) -> Credentials {
        let dir = tempfile::tempdir().expect("a scratch directory");
        generate::write(dir.path(), agencies, &["localhost".into(), "127.0.0.1".into()])
            .expect("credentials");
        Credentials { dir }
    }
    pub fn keys(&self) -> String {
        generate::agencies_file(self.dir.path()).display().to_string()
    }
    pub fn key(&self, agency: u32) -> PathBuf {
        generate::agency_key(self.dir.path(), agency)
    }
    pub fn central_env(&self, tls: bool) -> Vec<(String, String)> {
        let mut env = vec![("SERVER_AGENCY_KEYS".to_owned(), self.keys())];
        if tls {
            env.push((
                "SERVER_TLS_CERT".into(),
                generate::central_cert(self.dir.path()).display().to_string(),
            ));
            env.push(("SERVER_TLS_KEY".into(), generate::central_key(self.dir.path()).display().to_string()));
        }
        env
    }
    pub fn agency_env(&self, agency: u32, tls: bool) -> Vec<(String, String)> {
        let mut env = vec![("CLI_KEY".to_owned(), self.key(agency).display().to_string())];
        if tls {
            env.push(("CLI_TLS_CA".into(), generate::ca_cert(self.dir.path()).display().to_string()));
            env.push(("CLI_TLS_NAME".into(), "localhost".into()));
        }
        env
    }
}

/// Waits until `central` says it opened its store on PostgreSQL; fails with its log if not.
pub fn assert_opened_database(central: &Central) {
    assert!(
        central
            .process
            .wait_for(&["action: store_open | result: success", "engine: postgres"], PATIENCE)
            .is_some(),
        "the central did not open the database:\n{}",
        central.process.transcript()
    );
}
