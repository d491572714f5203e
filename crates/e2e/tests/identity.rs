//! Nobody acts for an agency but that agency, on the real binaries: a central with the
//! agencies' public keys, over plain TCP and over TLS; forged requests for another agency
//! with no credential, a wrong credential, agency 2's credential claiming agency 1, a plain
//! peer on a TLS port, and two uploaders with one id. Each time the honest agencies'
//! summaries, totals and the winners file are exact, and each refusal is logged.

mod common;

use std::{net::TcpStream, time::Duration};

use common::{assert_success, fields_of, Central, Credentials, PATIENCE};
use protocol::{Connection, ErrorKind, Request, Response, WireBet};
use security::{generate, proof, tls, AgencyKey, Challenge, Stream};
use testkit::{datasets, process::LoggedChild, reference};

fn pairs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// A connection to the central, plain or TLS (trusting the set's authority).
fn connect(central: &Central, credentials: &Credentials, tls_on: bool) -> Connection<Stream> {
    let socket = TcpStream::connect(central.addr).expect("connect");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let stream = if tls_on {
        let config = tls::client_config(&generate::ca_cert(credentials.dir.path())).expect("the CA");
        Stream::connect_tls(socket, config, tls::server_name("localhost:0").expect("a name")).expect("TLS")
    } else {
        Stream::Plain(socket)
    };
    Connection::new(stream)
}

fn call(conn: &mut Connection<Stream>, request: &Request) -> Response {
    conn.call(request).unwrap_or_else(|e| panic!("{request:?}: {e}"))
}

fn refusal(response: Response) -> ErrorKind {
    match response {
        Response::Error { kind, .. } => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Proves `key`'s agency on `conn`, claiming `claimed`.
fn prove(conn: &mut Connection<Stream>, key: &AgencyKey, claimed: u32) -> Response {
    let Response::Challenge { nonce } = call(conn, &Request::Hello { agency: claimed }) else {
        panic!("no challenge")
    };
    let challenge = Challenge::from_bytes(&nonce).expect("a challenge");
    let binding = conn.get_ref().binding().expect("a binding").material;
    call(
        conn,
        &Request::Prove { agency: claimed, signature: proof::sign(key, &challenge, &binding).to_vec() },
    )
}

fn bet(n: u64) -> WireBet {
    WireBet {
        first_name: "Forged".into(),
        last_name: "Bet".into(),
        document: n.to_string(),
        birthdate: "1990-01-01".into(),
    }
}

/// Honest agencies 1 to `n` over their own datasets: started, then checked exact.
struct Honest {
    rows: Vec<Vec<testkit::reference::Row>>,
    agencies: Vec<LoggedChild>,
}

impl Honest {
    fn start(central: &Central, credentials: &Credentials, n: u32, tls: bool) -> Honest {
        let rows: Vec<_> = (1..=n).map(|id| datasets::generate(500 + u64::from(id), 300)).collect();
        let agencies = (1..=n)
            .map(|id| {
                let data = central.dataset(id, &rows[id as usize - 1]);
                let mut env = credentials.agency_env(id, tls);
                env.push(("CLI_SERVER_TIMEOUT".into(), "20s".into()));
                central.agency(id, &data, &pairs(&env))
            })
            .collect();
        Honest { rows, agencies }
    }

    fn assert_exact(mut self, central: &Central) {
        let expected: Vec<Vec<String>> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, rows)| reference::winner_rows(i as u32 + 1, rows))
            .collect();
        let total: usize = expected.iter().map(Vec::len).sum();
        for (i, agency) in self.agencies.iter_mut().enumerate() {
            assert_success(agency);
            let summary = fields_of(agency, &["action: agency_summary"]);
            assert_eq!(summary["bets"], "300", "agency {}", i + 1);
            assert_eq!(summary["winners"], expected[i].len().to_string(), "agency {}", i + 1);
            let answer = fields_of(agency, &["action: total_winners | result: success"]);
            assert_eq!(answer["winners"], total.to_string(), "agency {}", i + 1);
        }
        let mut rows: Vec<String> = expected.into_iter().flatten().collect();
        rows.sort();
        assert_eq!(central.sorted_winner_rows(), rows, "the winners file holds the honest winners only");
    }
}

fn count_lines(central: &Central, needles: &[&str]) -> usize {
    central.process.lines().iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
}

/// The attack of the issue: before the agencies start, a peer with no credential sends
/// `AgencyDone` for agency 3, a forged batch for agency 2 and two for agency 1; every one is
/// refused, and the honest lottery ends exact. A batch too large for an unproved connection
/// (over its few KiB) is refused before it is read, and that connection closed.
fn forged_requests_without_a_credential(tls_on: bool) {
    let credentials = Credentials::new(3);
    let mut central = Central::start(3, &pairs(&credentials.central_env(tls_on)));
    let mut forger = connect(&central, &credentials, tls_on);
    assert_eq!(
        refusal(call(&mut forger, &Request::AgencyDone { agency: 3, batches: 0 })),
        ErrorKind::Unauthenticated
    );
    // Small enough to be read before the proof (4 KiB); a bigger frame is not even read.
    let forged = Request::BetBatch { agency: 2, sequence: 1, bets: (0..40).map(bet).collect() };
    assert_eq!(refusal(call(&mut forger, &forged)), ErrorKind::Unauthenticated);
    for sequence in 1..=2 {
        let forged = Request::BetBatch { agency: 1, sequence, bets: (0..60).map(bet).collect() };
        assert_eq!(refusal(call(&mut forger, &forged)), ErrorKind::Unauthenticated);
    }
    let mut large = connect(&central, &credentials, tls_on);
    let forged = Request::BetBatch { agency: 1, sequence: 1, bets: (0..512).map(bet).collect() };
    assert_eq!(refusal(call(&mut large, &forged)), ErrorKind::FrameTooLarge);
    drop(large);
    assert_eq!(refusal(call(&mut forger, &Request::Resume { agency: 1 })), ErrorKind::Unauthenticated);
    // A held total query is refused at once, not held.
    let asked = std::time::Instant::now();
    let held = Request::AwaitWinners { agency: 1, hold_ms: 20_000 };
    assert_eq!(refusal(call(&mut forger, &held)), ErrorKind::Unauthenticated);
    assert!(asked.elapsed() < Duration::from_secs(5), "refused, not held: {:?}", asked.elapsed());
    // Echo needs no identity (the netcat check).
    assert_eq!(call(&mut forger, &Request::Echo(b"hola".to_vec())), Response::Echo(b"hola".to_vec()));
    assert!(
        count_lines(
            &central,
            &["action: authenticate | result: fail", "kind: unauthenticated", "peer: 127.0.0.1:"]
        ) >= 1
    );
    drop(forger);
    Honest::start(&central, &credentials, 3, tls_on).assert_exact(&central);
    central.stop();
}

#[test]
fn forged_requests_without_a_credential_are_refused_over_plain_tcp() {
    forged_requests_without_a_credential(false);
}

#[test]
fn forged_requests_without_a_credential_are_refused_over_tls() {
    forged_requests_without_a_credential(true);
}

/// Agency 2's key claiming agency 1 is refused; proved as agency 2, a request for agency 1 is
/// refused as not its agency, each with one line naming the peer.
fn another_agencys_credential(tls_on: bool) {
    let credentials = Credentials::new(2);
    let mut central = Central::start(2, &pairs(&credentials.central_env(tls_on)));
    let key2 = AgencyKey::load(&credentials.key(2)).expect("agency 2's key");
    let mut conn = connect(&central, &credentials, tls_on);
    assert_eq!(refusal(prove(&mut conn, &key2, 1)), ErrorKind::Unauthenticated);
    assert_eq!(prove(&mut conn, &key2, 2), Response::Ack);
    let forged = Request::BetBatch { agency: 1, sequence: 1, bets: vec![bet(1)].into() };
    assert_eq!(refusal(call(&mut conn, &forged)), ErrorKind::NotYourAgency);
    assert_eq!(
        refusal(call(&mut conn, &Request::AgencyDone { agency: 1, batches: 0 })),
        ErrorKind::NotYourAgency
    );
    // Its own agency, it may act for.
    assert!(matches!(call(&mut conn, &Request::Resume { agency: 2 }), Response::Resumed { bets: 0, .. }));
    central
        .process
        .wait_for(&["action: authorize | result: fail", "kind: not_your_agency"], PATIENCE)
        .expect("a line");
    drop(conn);
    Honest::start(&central, &credentials, 2, tls_on).assert_exact(&central);
    central.stop();
}

#[test]
fn agency_2s_credential_cannot_act_for_agency_1_over_plain_tcp() {
    another_agencys_credential(false);
}

#[test]
fn agency_2s_credential_cannot_act_for_agency_1_over_tls() {
    another_agencys_credential(true);
}

/// An agency with a key the central does not know, or none, is refused, says so and exits 1;
/// nothing is stored for it. Over TLS its proof goes out with its first request, unanswered
/// until then, and the refusal is read there.
fn a_wrong_credential_or_none(tls_on: bool) {
    let credentials = Credentials::new(2);
    let other = Credentials::new(2);
    let mut central = Central::start(2, &pairs(&credentials.central_env(tls_on)));
    let data = central.dataset(1, &datasets::generate(7, 50));
    // Agency 1's key from another set: the central does not know it.
    let mut env = credentials.agency_env(1, tls_on);
    env.retain(|(name, _)| name != "CLI_KEY");
    env.push(("CLI_KEY".into(), other.key(1).display().to_string()));
    let mut wrong = central.agency(1, &data, &pairs(&env));
    let status = wrong.wait_exit(PATIENCE).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", wrong.transcript());
    assert!(
        wrong.wait_for(&["result: fail", "unauthenticated"], Duration::ZERO).is_some(),
        "{}",
        wrong.transcript()
    );
    // No key at all.
    let mut env = credentials.agency_env(1, tls_on);
    env.retain(|(name, _)| name != "CLI_KEY");
    let mut none = central.agency(1, &data, &pairs(&env));
    let status = none.wait_exit(PATIENCE).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", none.transcript());
    assert!(
        none.wait_for(&["result: fail", "unauthenticated"], Duration::ZERO).is_some(),
        "{}",
        none.transcript()
    );
    // Asked with agency 1's real key: nothing is stored for it.
    let mut conn = connect(&central, &credentials, tls_on);
    let key1 = AgencyKey::load(&credentials.key(1)).expect("agency 1's key");
    assert_eq!(prove(&mut conn, &key1, 1), Response::Ack);
    assert!(
        matches!(
            call(&mut conn, &Request::Resume { agency: 1 }),
            Response::Resumed { last_sequence: 0, bets: 0, .. }
        ),
        "nothing was stored for agency 1"
    );
    drop(conn);
    central.stop();
}

#[test]
fn an_agency_with_a_wrong_credential_or_none_is_refused_and_says_so() {
    a_wrong_credential_or_none(false);
}

#[test]
fn an_agency_with_a_wrong_credential_or_none_is_refused_and_says_so_over_tls() {
    a_wrong_credential_or_none(true);
}

#[test]
fn a_key_of_another_agency_is_a_setting_error_before_anything_is_sent() {
    let credentials = Credentials::new(2);
    let mut central = Central::start(2, &pairs(&credentials.central_env(false)));
    let data = central.dataset(1, &datasets::generate(7, 10));
    let mut client = central.agency(1, &data, &[("CLI_KEY", credentials.key(2).to_str().expect("a path"))]);
    let status = client.wait_exit(PATIENCE).expect("it exits");
    assert_eq!(status.code(), Some(2), "{}", client.transcript());
    assert!(
        client.wait_for(&["agency 2's key, not agency 1's"], Duration::ZERO).is_some(),
        "{}",
        client.transcript()
    );
    central.stop();
}

#[test]
fn a_plain_peer_on_a_tls_port_is_cut_off_and_tls_agencies_finish() {
    let credentials = Credentials::new(2);
    let mut central = Central::start(2, &pairs(&credentials.central_env(true)));
    let mut plain = connect(&central, &credentials, false);
    assert!(plain.call(&Request::Echo(b"hola".to_vec())).is_err(), "no answer in plain TCP");
    central
        .process
        .wait_for(&["action: accept_connection | result: fail", "TLS handshake"], PATIENCE)
        .expect("a line");
    // A plain agency cannot get in either; TLS agencies can.
    Honest::start(&central, &credentials, 2, true).assert_exact(&central);
    assert!(count_lines(&central, &["TLS handshake"]) >= 1);
    central.stop();
}

#[test]
fn two_uploaders_with_one_id_are_never_merged() {
    // One agency in the lottery, so the one left can finish and get its total.
    let credentials = Credentials::new(1);
    let mut central = Central::start(1, &pairs(&credentials.central_env(false)));
    let ours = datasets::generate(21, 3_000);
    let theirs = datasets::generate(22, 3_000);
    let (a, b) = (central.dataset(1, &ours), {
        let path = central.dir.path().join("copied-config-dataset.csv");
        datasets::write(&path, &theirs).expect("a dataset");
        path
    });
    let env = credentials.agency_env(1, false);
    let mut first = central.agency(1, &a, &pairs(&env));
    let mut second = central.agency(1, &b, &pairs(&env));
    let (s1, s2) = (first.wait_exit(PATIENCE), second.wait_exit(PATIENCE));
    let codes = [s1.and_then(|s| s.code()), s2.and_then(|s| s.code())];
    // Whichever commits batch 1 first goes on; the other is refused at its first batch and
    // stops: exactly one fails, the other finishes.
    let (winner, loser, rows) = match codes {
        [Some(0), Some(1)] => (&first, &second, &ours),
        [Some(1), Some(0)] => (&second, &first, &theirs),
        other => panic!("exactly one must fail: {other:?}\n{}\n{}", first.transcript(), second.transcript()),
    };
    assert!(
        loser.wait_for(&["result: fail", "same id"], Duration::ZERO).is_some(),
        "the failing one says why:\n{}",
        loser.transcript()
    );
    // The other's upload is exact, and nothing of the loser's is in the file: never a merge.
    let mut expected = reference::winner_rows(1, rows);
    let fields = fields_of(winner, &["action: agency_summary"]);
    assert_eq!(fields["bets"], "3000");
    assert_eq!(fields["winners"], expected.len().to_string());
    expected.sort();
    assert_eq!(central.sorted_winner_rows(), expected, "never a merge");
    central.stop();
}

#[test]
fn an_agency_finding_its_upload_done_checks_it_is_its_own() {
    // Open (no keys): a peer marks agency 1 done with nothing uploaded; agency 1 must not
    // report a summary of 0 bets, but fail saying the central does not hold its dataset.
    let mut central = Central::start(2, &[]);
    let mut forger = Connection::new(Stream::Plain(central.raw()));
    assert_eq!(call(&mut forger, &Request::AgencyDone { agency: 1, batches: 0 }), Response::Ack);
    let data = central.dataset(1, &datasets::generate(31, 40));
    let mut agency = central.agency(1, &data, &[]);
    let status = agency.wait_exit(PATIENCE).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", agency.transcript());
    assert!(
        agency.wait_for(&["result: fail", "same id"], Duration::ZERO).is_some(),
        "{}",
        agency.transcript()
    );
    assert!(agency.wait_for(&["action: agency_summary"], Duration::ZERO).is_none(), "no summary of 0 bets");

    // Agency 2 uploads its dataset; started again over another dataset it fails too.
    let ours = central.dataset(2, &datasets::generate(32, 40));
    let first = central.agency(2, &ours, &[("CLI_WINNERS_RETRY_PERIOD", "10ms")]);
    first
        .wait_for(&["action: agency_summary | result: success | agency: 2"], PATIENCE)
        .expect("its upload ends");
    drop(first);
    let theirs = central.dir.path().join("another.csv");
    datasets::write(&theirs, &datasets::generate(33, 40)).expect("a dataset");
    let mut again = central.agency(2, &theirs, &[]);
    let status = again.wait_exit(PATIENCE).expect("it exits");
    assert_eq!(status.code(), Some(1), "{}", again.transcript());
    assert!(again.wait_for(&["result: fail", "same id"], Duration::ZERO).is_some(), "{}", again.transcript());
    central.stop();
}

/// Over TLS 1.3 an agency proves by signing the session, with no challenge: its `Prove` and
/// its first request go in one flight and come back in order, while a session proof on a
/// session the agency did not agree to (an older agency, without the ALPN name) is refused,
/// and such an agency still proves with `Hello` and a challenge.
#[test]
fn over_tls_a_signed_session_proves_an_agency_in_the_same_flight_as_its_first_request() {
    let credentials = Credentials::new(2);
    let mut central = Central::start(2, &pairs(&credentials.central_env(true)));
    let key = AgencyKey::load(&credentials.key(1)).expect("agency 1's key");
    let mut conn = connect(&central, &credentials, true);
    let binding = conn.get_ref().binding().expect("a binding");
    assert!(binding.fresh, "the central agreed to session proofs over TLS 1.3");
    // Agency 1's session proof claiming agency 2 is refused; then its own, pipelined.
    let forged =
        Request::Prove { agency: 2, signature: proof::sign_session(&key, &binding.material).to_vec() };
    assert_eq!(refusal(call(&mut conn, &forged)), ErrorKind::Unauthenticated);
    let own = Request::Prove { agency: 1, signature: proof::sign_session(&key, &binding.material).to_vec() };
    // In one write, as the agency sends them: both answers come back in order.
    conn.write_messages(&[own, Request::Resume { agency: 1 }]).expect("the proof and the resume");
    assert_eq!(conn.read_message::<Response>().expect("an answer"), Some(Response::Ack));
    let resumed = conn.read_message::<Response>().expect("an answer");
    assert!(matches!(resumed, Some(Response::Resumed { bets: 0, .. })), "{resumed:?}");
    drop(conn);

    // An agency that does not name session proofs: its session is no challenge.
    let socket = TcpStream::connect(central.addr).expect("connect");
    socket.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut older =
        (*tls::client_config(&generate::ca_cert(credentials.dir.path())).expect("the CA")).clone();
    older.alpn_protocols.clear();
    let name = tls::server_name("localhost:0").expect("a name");
    let mut conn = Connection::new(Stream::connect_tls(socket, older.into(), name).expect("TLS"));
    let binding = conn.get_ref().binding().expect("a binding");
    assert!(!binding.fresh);
    let unasked =
        Request::Prove { agency: 1, signature: proof::sign_session(&key, &binding.material).to_vec() };
    assert_eq!(refusal(call(&mut conn, &unasked)), ErrorKind::Unauthenticated);
    assert_eq!(prove(&mut conn, &key, 1), Response::Ack);
    drop(conn);
    Honest::start(&central, &credentials, 2, true).assert_exact(&central);
    central.stop();
}
