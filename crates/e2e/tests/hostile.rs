//! Hostile input and overload against the real `server` binary, each with an honest `client`
//! agency uploading alongside: whatever the hostile peer does, it gets a typed `Error` frame
//! or a closed connection with one log line, the central never dies, and the honest agency
//! finishes with exactly the results the winning rule gives.

mod common;

use std::{
    io::{ErrorKind as IoErrorKind, Read, Write},
    net::{Shutdown, TcpStream},
    path::PathBuf,
    thread,
    time::{Duration, Instant},
};

use common::{assert_success, expected_rows, fields_of, retrying_agency, Central, PATIENCE};
use protocol::{Connection, ErrorKind, Request, Response, WireBet};
use testkit::{
    datasets::{self, Rng},
    process::LoggedChild,
    reference::{self, Row},
};

/// A central for two agencies (1 is honest, 2 is the hostile peer's, or nobody's) checking
/// each bet at 1 ms, and agency 1 uploading 600 bets meanwhile.
struct Scene {
    central: Central,
    honest: LoggedChild,
    rows: Vec<Row>,
}

impl Scene {
    fn start(env: &[(&str, &str)]) -> Scene {
        let mut all = vec![("SERVER_WINNER_DELAY_MS", "1")];
        all.extend_from_slice(env);
        let central = Central::start(2, &all);
        let rows = datasets::generate(31, 600);
        let path: PathBuf = central.dir.path().join("dataset-1.csv");
        datasets::write(&path, &rows).expect("write a dataset");
        let honest = retrying_agency(&central, 1, &path, &[("CLI_BATCH_MAX_AMOUNT", "20")]);
        Scene { central, honest, rows }
    }

    fn connect(&self) -> Connection<TcpStream> {
        Connection::new(self.raw())
    }

    fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.central.addr).expect("connect to the central");
        stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
        stream.set_write_timeout(Some(PATIENCE)).expect("set a write timeout");
        stream
    }

    /// Closes agency 2 (unless the test did) and checks the central is alive and the honest
    /// agency's results are exact.
    fn finish(mut self, agency_two_batches: Option<u64>) {
        if let Some(batches) = agency_two_batches {
            assert_eq!(call(&mut self.connect(), Request::AgencyDone { agency: 2, batches }), Response::Ack);
        }
        assert_success(&mut self.honest);
        let winners = reference::winners(&self.rows).len();
        let summary = fields_of(&self.honest, &["action: agency_summary | result: success"]);
        assert_eq!(summary["bets"], self.rows.len().to_string());
        assert_eq!(summary["winners"], winners.to_string());
        let total = fields_of(&self.honest, &["action: total_winners | result: success"]);
        let rows = self.central.sorted_winner_rows();
        assert_eq!(total["winners"], rows.len().to_string());
        let mine: Vec<String> = rows.into_iter().filter(|r| r.starts_with("1,")).collect();
        let mut expected = expected_rows(1, &self.rows);
        expected.sort();
        assert_eq!(mine, expected, "the honest agency's winners, exactly");
        let transcript = self.central.process.transcript();
        assert!(!transcript.contains("panicked"), "{transcript}");
        assert!(self.central.process.wait_exit(Duration::ZERO).is_none(), "the central is still up");
    }

    /// Waits until the central's log holds `n` lines with every one of `needles` (its output
    /// is read by another thread, so a line may trail the answer it came with); returns how
    /// many it holds then.
    fn wait_lines(&self, needles: &[&str], n: usize) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let count = self.lines_with(needles);
            if count >= n || Instant::now() >= deadline {
                return count;
            }
            // A pause of 50 ms on the output (no line holds this needle), then count again.
            let _ = self.central.process.wait_for(&["\u{0}never printed"], Duration::from_millis(50));
        }
    }

    /// Lines of the central's log holding every one of `needles`.
    fn lines_with(&self, needles: &[&str]) -> usize {
        self.central.process.lines().iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
    }
}

fn call(conn: &mut Connection<TcpStream>, request: Request) -> Response {
    conn.call(&request).unwrap_or_else(|e| panic!("{request:?} failed: {e}"))
}

fn refusal(response: Response) -> ErrorKind {
    match response {
        Response::Error { kind, .. } => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn bet(n: u64) -> WireBet {
    WireBet {
        first_name: "Iñaki".into(),
        last_name: "Güemes".into(),
        document: (10_000_000 + n).to_string(),
        birthdate: "1970-01-01".into(),
    }
}

/// Reads until the central closes the connection; true if it did within [`PATIENCE`].
fn closed_by_central(stream: &mut TcpStream) -> bool {
    let mut sink = [0u8; 512];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == IoErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_zero_length_frame_is_answered_malformed_and_the_connection_goes_on() {
    let scene = Scene::start(&[]);
    let mut raw = scene.raw();
    raw.write_all(&[0, 0, 0, 0]).unwrap();
    let mut conn = Connection::new(raw);
    assert_eq!(refusal(conn.read_message().unwrap().unwrap()), ErrorKind::Malformed);
    assert_eq!(call(&mut conn, Request::Echo(vec![7])), Response::Echo(vec![7]));
    assert!(scene
        .central
        .process
        .wait_for(&["action: read_request | result: fail", "malformed"], PATIENCE)
        .is_some());
    scene.finish(Some(0));
}

#[test]
fn a_frame_one_byte_over_the_maximum_is_refused_and_closed() {
    let scene = Scene::start(&[("SERVER_MAX_FRAME_BYTES", "8192")]);
    let mut raw = scene.raw();
    raw.write_all(&8193u32.to_be_bytes()).unwrap();
    let mut conn = Connection::new(raw.try_clone().unwrap());
    assert_eq!(refusal(conn.read_message().unwrap().unwrap()), ErrorKind::FrameTooLarge);
    assert!(closed_by_central(&mut raw));
    assert!(scene
        .central
        .process
        .wait_for(&["frame of 8193 bytes exceeds the maximum of 8192"], PATIENCE)
        .is_some());
    scene.finish(Some(0));
}

#[test]
fn a_frame_claiming_4_gib_is_refused_before_anything_is_allocated() {
    let scene = Scene::start(&[]);
    let began = Instant::now();
    for _ in 0..20 {
        let mut raw = scene.raw();
        raw.write_all(&[0xff; 4]).unwrap();
        let mut conn = Connection::new(raw.try_clone().unwrap());
        assert_eq!(refusal(conn.read_message().unwrap().unwrap()), ErrorKind::FrameTooLarge);
        assert!(closed_by_central(&mut raw));
    }
    // Closes a peer provokes are logged like its warnings: at most one a second.
    assert!(scene.wait_lines(&["reason: frame too large"], 1) >= 1, "the closes are logged");
    let closes = scene.lines_with(&["reason: frame too large"]) as u64;
    assert!(closes <= began.elapsed().as_secs() + 1, "{closes} close lines for 20 peers");
    // Warnings about peers are rate-limited: at most one a second, the rest counted.
    let warnings = scene.lines_with(&["frame of 4294967295 bytes exceeds the maximum"]);
    assert!((1..=20).contains(&warnings), "{warnings} warning lines");
    scene.finish(Some(0));
}

#[test]
fn a_frame_cut_off_midway_closes_that_connection_with_one_line() {
    let scene = Scene::start(&[]);
    let mut raw = scene.raw();
    raw.write_all(&[0, 0, 0, 100, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0]).unwrap();
    raw.shutdown(Shutdown::Write).unwrap();
    assert!(closed_by_central(&mut raw));
    assert!(scene
        .central
        .process
        .wait_for(&["connection closed mid-frame (14 of 104 bytes)"], PATIENCE)
        .is_some());
    assert_eq!(scene.lines_with(&["mid-frame"]), 1);
    scene.finish(Some(0));
}

#[test]
fn random_bytes_get_an_error_or_a_close_never_a_crash() {
    let scene = Scene::start(&[("SERVER_IDLE_TIMEOUT_SECS", "2")]);
    let mut rng = Rng::new(99);
    for _ in 0..100 {
        let mut raw = scene.raw();
        let n = rng.below(300) as usize;
        let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        // The central may close before all is written (a refused length); that is fine.
        let _ = raw.write_all(&bytes);
        let _ = raw.shutdown(Shutdown::Write);
        assert!(closed_by_central(&mut raw), "the central closes every garbage connection");
    }
    scene.finish(Some(0));
}

#[test]
fn valid_frames_of_the_wrong_message_at_the_wrong_moment_are_refused() {
    let scene = Scene::start(&[]);
    let mut conn = scene.connect();
    // A response sent as a request: variant 3 is `WinnersQuery { agency: u32 }` as a request,
    // and `Total { winners: u64 }` leaves four bytes over.
    let mut raw = scene.raw();
    raw.write_all(&[0, 0, 0, 12, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 9]).unwrap();
    let mut as_response = Connection::new(raw);
    assert_eq!(refusal(as_response.read_message().unwrap().unwrap()), ErrorKind::Malformed);
    // Done before any batch, claiming three.
    assert_eq!(
        refusal(call(&mut conn, Request::AgencyDone { agency: 2, batches: 3 })),
        ErrorKind::OutOfSequence
    );
    // A batch skipping ahead.
    let skip = Request::BetBatch { agency: 2, sequence: 5, bets: vec![bet(1)].into() };
    assert_eq!(refusal(call(&mut conn, skip)), ErrorKind::OutOfSequence);
    let first = Request::BetBatch { agency: 2, sequence: 1, bets: vec![bet(1), bet(2)].into() };
    assert!(matches!(call(&mut conn, first.clone()), Response::BatchResult { sequence: 1, .. }));
    // The same batch again is answered again, not stored again; another batch under its
    // sequence is refused.
    assert!(matches!(call(&mut conn, first), Response::BatchResult { sequence: 1, .. }));
    // A conflict closes the connection: nothing pipelined after it is taken.
    let impostor = Request::BetBatch { agency: 2, sequence: 1, bets: vec![bet(3)].into() };
    assert_eq!(refusal(call(&mut conn, impostor)), ErrorKind::Conflict);
    assert!(matches!(conn.read_message::<Response>(), Ok(None) | Err(_)), "closed after a conflict");
    // The same size with other bets is refused too: batches are recognised by content.
    let mut conn = scene.connect();
    let same_size = Request::BetBatch { agency: 2, sequence: 1, bets: vec![bet(1), bet(3)].into() };
    assert_eq!(refusal(call(&mut conn, same_size)), ErrorKind::Conflict);
    let mut conn = scene.connect();
    assert_eq!(call(&mut conn, Request::AgencyDone { agency: 2, batches: 1 }), Response::Ack);
    let late = Request::BetBatch { agency: 2, sequence: 2, bets: vec![bet(4)].into() };
    assert_eq!(refusal(call(&mut conn, late)), ErrorKind::AgencyFinished);
    assert_eq!(
        refusal(call(&mut conn, Request::AgencyDone { agency: 2, batches: 1 })),
        ErrorKind::AgencyFinished
    );
    assert_eq!(refusal(call(&mut conn, Request::Resume { agency: 9 })), ErrorKind::UnknownAgency);
    assert_eq!(
        call(&mut conn, Request::Resume { agency: 2 }),
        Response::Resumed {
            last_sequence: 1,
            bets: 2,
            winners: 0,
            done: true,
            digest: common::upload_digest(&[bet(1), bet(2)])
        }
    );
    scene.finish(None);
}

#[test]
fn a_batch_over_the_bet_cap_is_refused_whole() {
    let scene = Scene::start(&[]);
    let mut conn = scene.connect();
    let bets: Vec<WireBet> = (0..513).map(bet).collect();
    let started = Instant::now();
    let response = call(&mut conn, Request::BetBatch { agency: 2, sequence: 1, bets: bets.into() });
    assert_eq!(refusal(response), ErrorKind::BatchTooLarge);
    assert!(started.elapsed() < Duration::from_millis(500), "refused before checking 513 bets at 1 ms");
    assert_eq!(
        call(&mut conn, Request::Resume { agency: 2 }),
        Response::Resumed { last_sequence: 0, bets: 0, winners: 0, done: false, digest: [0; 16] }
    );
    scene.finish(Some(0));
}

#[test]
fn bare_connect_and_close_many_times_leaves_no_trace() {
    let scene = Scene::start(&[]);
    for _ in 0..500 {
        drop(TcpStream::connect(scene.central.addr).unwrap());
    }
    // At the default level a probe leaves nothing: no line of a connection without requests.
    assert_eq!(scene.lines_with(&["requests: 0"]), 0, "{}", scene.central.process.transcript());
    scene.finish(Some(0));
}

#[test]
fn a_slow_sender_at_one_byte_a_second_is_served_and_blocks_no_one() {
    // Slow, but within the deadline for a whole frame.
    let scene = Scene::start(&[("SERVER_FRAME_TIMEOUT_SECS", "30")]);
    let mut raw = scene.raw();
    let frame = [0, 0, 0, 8, 0, 0, 0, 3, 0, 0, 0, 2]; // WinnersQuery { agency: 2 }
    for byte in frame {
        raw.write_all(&[byte]).unwrap();
        // The pace of the slow peer itself, not a synchronisation.
        thread::sleep(Duration::from_secs(1));
    }
    let mut conn = Connection::new(raw);
    // Twelve seconds: the honest agency is done by now, agency 2 is not.
    assert_eq!(conn.read_message::<Response>().unwrap(), Some(Response::Pending { agencies_pending: 1 }));
    assert!(scene.honest.wait_for(&["action: agency_summary | result: success"], Duration::ZERO).is_some());
    scene.finish(Some(0));
}

#[test]
fn a_silent_peer_is_closed_after_the_idle_timeout() {
    let scene = Scene::start(&[("SERVER_IDLE_TIMEOUT_SECS", "1")]);
    let mut silent = scene.raw();
    let started = Instant::now();
    assert!(closed_by_central(&mut silent));
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(scene.central.process.wait_for(&["action: idle_timeout | result: success"], PATIENCE).is_some());
    scene.finish(Some(0));
}

#[test]
fn peers_vanishing_mid_frame_disturb_no_one() {
    let scene = Scene::start(&[]);
    let began = Instant::now();
    for _ in 0..20 {
        let mut rogue = scene.raw();
        rogue.write_all(&[0, 0, 1, 0, 0, 0, 0, 1, 0xde, 0xad]).unwrap();
        drop(rogue);
    }
    // Closes a peer provokes are logged like its warnings: at most one a second.
    assert!(scene.wait_lines(&["reason: read failed"], 1) >= 1, "the closes are logged");
    let closes = scene.lines_with(&["reason: read failed"]) as u64;
    assert!(closes <= began.elapsed().as_secs() + 1, "{closes} close lines for 20 peers");
    // Warnings about peers are rate-limited: at most one a second, the rest counted.
    let warnings = scene.lines_with(&["mid-frame"]);
    assert!((1..=20).contains(&warnings), "{warnings} warning lines");
    scene.finish(Some(0));
}

#[test]
fn a_thousand_connections_held_over_the_cap_are_told_busy_and_the_agency_still_finishes() {
    let scene = Scene::start(&[("SERVER_MAX_CONNECTIONS", "50")]);
    let held: Vec<TcpStream> = (0..1000).map(|_| scene.raw()).collect();
    let is_busy = |stream: &TcpStream, wait: Duration| {
        stream.set_read_timeout(Some(wait)).unwrap();
        let mut conn = Connection::new(stream.try_clone().unwrap());
        matches!(conn.read_message::<Response>(), Ok(Some(Response::Error { kind: ErrorKind::Busy, .. })))
    };
    // The accept loop takes connections in order and answers a refused one before the next:
    // once the last is answered, every earlier one has its answer waiting (or holds a slot).
    assert!(is_busy(&held[999], PATIENCE), "the last of a thousand is told busy");
    let busy = 1 + held[..999].iter().filter(|s| is_busy(s, Duration::from_millis(20))).count();
    // 50 slots, shared by these and the honest agency's connection (and one or two of its
    // closed ones whose thread has not ended yet).
    assert!((950..=953).contains(&busy), "{busy} told busy");
    let warnings = scene.lines_with(&["at the limit of 50 connections"]);
    assert!((1..=20).contains(&warnings), "{warnings} warning lines for {busy} refusals");
    drop(held);
    scene.finish(Some(0));
}
