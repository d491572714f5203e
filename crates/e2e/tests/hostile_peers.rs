//! Peers that try to starve the central, against the real `server` binary, each with an honest
//! `client` agency alongside that must finish with exactly the results the winning rule gives:
//! peers trickling their frames, peers sending big frames and never reading the answer, a
//! flood of empty batches, a flood of malformed frames, and a central out of file descriptors.
//!
//! The `client` binary is not this package's, so cargo gives no `CARGO_BIN_EXE_client`; it
//! sits beside `server` in the target directory, built by the same `cargo test --workspace`.
//! Run alone (`cargo test -p server --test hostile_peers`), build it first: `cargo build --bins`.

mod common;

use std::{
    io::Write,
    net::TcpStream,
    path::PathBuf,
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use common::{call, Central, PATIENCE};
use protocol::{Connection, ErrorKind, Request, Response};
use testkit::{
    datasets,
    process::{field, proc_status, LoggedChild},
    reference::{self, Row},
};

/// Longest an honest agency may take while hostile peers try: its retries included.
const HONEST_PATIENCE: Duration = Duration::from_secs(120);

/// The `client` binary next to this package's `server` binary.
fn client_binary() -> PathBuf {
    testkit::central::binary("client")
}

/// An honest agency uploading a dataset of its own, patient with a busy central.
struct Honest {
    id: u32,
    rows: Vec<Row>,
    process: LoggedChild,
    _dir: tempfile::TempDir,
}

impl Honest {
    fn start(central: &Central, id: u32, bets: usize) -> Honest {
        let dir = tempfile::Builder::new().prefix("honest-agency-").tempdir().expect("a scratch directory");
        let rows = datasets::generate(u64::from(id) * 7919, bets);
        let data = dir.path().join("dataset.csv");
        datasets::write(&data, &rows).expect("write a dataset");
        let mut command = Command::new(client_binary());
        command
            .env_clear()
            .env("CLI_ID", id.to_string())
            .env("CLI_SERVER_ADDRESS", central.addr.to_string())
            .env("CLI_DATA_PATH", &data)
            .env("CLI_BATCH_MAX_AMOUNT", "20")
            .env("CLI_SERVER_TIMEOUT", "10s")
            .env("CLI_WINNERS_RETRY_PERIOD", "50ms")
            .env("CLI_RETRY_INITIAL", "10ms")
            .env("CLI_RETRY_MAX", "200ms")
            .env("CLI_RETRY_TOTAL", "100s");
        Honest { id, rows, process: LoggedChild::spawn(&mut command), _dir: dir }
    }

    /// Waits for the agency to finish and checks its results, and the central's winners file
    /// for it, are exact.
    fn finish(mut self, central: &Central) {
        let status = self
            .process
            .wait_exit(HONEST_PATIENCE)
            .unwrap_or_else(|| panic!("the honest agency is still running:\n{}", self.process.transcript()));
        assert!(status.success(), "{status:?}\n{}", self.process.transcript());
        let summary = self
            .process
            .wait_for(&["action: agency_summary | result: success"], Duration::ZERO)
            .expect("a summary line");
        let winners = reference::winner_rows(self.id, &self.rows);
        assert_eq!(field(&summary, "bets"), Some(self.rows.len().to_string().as_str()), "{summary}");
        assert_eq!(field(&summary, "winners"), Some(winners.len().to_string().as_str()), "{summary}");
        let prefix = format!("{},", self.id);
        let mut mine: Vec<String> =
            central.winner_rows().into_iter().filter(|r| r.starts_with(&prefix)).collect();
        mine.sort();
        let mut expected = winners;
        expected.sort();
        assert_eq!(mine, expected, "the honest agency's winners, exactly");
    }
}

/// How many lines of the central's log hold every one of `needles`.
fn lines_with(central: &Central, needles: &[&str]) -> usize {
    central.process.lines().iter().filter(|l| needles.iter().all(|n| l.contains(n))).count()
}

/// Stops the central with SIGTERM and checks it stops cleanly, within a second of being asked
/// (plus room for a loaded machine).
fn stop(central: &mut Central) {
    central.process.sigterm();
    let asked = Instant::now();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(asked.elapsed() < Duration::from_secs(5), "stopped after {:?}", asked.elapsed());
    assert!(!central.process.transcript().contains("panicked"));
}

#[test]
fn trickling_peers_are_cut_off_and_an_agency_still_gets_in() {
    let mut central = Central::start(2, &[("SERVER_AGENCIES", "1"), ("SERVER_FRAME_TIMEOUT_SECS", "2")]);
    let addr = central.addr;
    let done = Arc::new(AtomicBool::new(false));
    // 256 peers, as many as the central's slots: each starts a frame and sends one more
    // byte a second, and connects again once cut off. One thread paces them all.
    let trickler = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let connect = || {
                let mut stream = TcpStream::connect(addr).ok()?;
                stream.write_all(&[0, 0, 0, 100, 0, 0, 0, 0]).ok()?; // Echo, 100 bytes to come
                                                                     // Never blocks: a peek tells a closed connection (or an answer) from a live one.
                stream.set_nonblocking(true).ok()?;
                Some(stream)
            };
            let open = |stream: &mut TcpStream| match stream.peek(&mut [0u8; 1]) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => stream.write_all(&[7]).is_ok(),
                _ => false,
            };
            let mut peers: Vec<Option<TcpStream>> = (0..256).map(|_| connect()).collect();
            let mut reconnects = 0u64;
            let give_up = Instant::now() + HONEST_PATIENCE;
            // Until the agency is done and the peers have come back at least once.
            while !(done.load(Ordering::SeqCst) && reconnects > 0) && Instant::now() < give_up {
                for peer in &mut peers {
                    let alive = peer.as_mut().is_some_and(open);
                    if !alive {
                        *peer = connect();
                        reconnects += 1;
                    }
                }
                // The pace of the slow peers themselves, not a synchronisation.
                thread::sleep(Duration::from_secs(1));
            }
            reconnects
        })
    };
    // Until the first cut-off every slot is held by a trickler.
    assert!(
        central.process.wait_for(&["reason: too slow"], PATIENCE).is_some(),
        "no trickling peer was cut off:\n{}",
        central.process.transcript()
    );
    let honest = Honest::start(&central, 1, 600);
    let honest_result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| honest.finish(&central)));
    done.store(true, Ordering::SeqCst);
    let reconnects = trickler.join().expect("the trickling thread");
    honest_result.unwrap_or_else(|e| std::panic::resume_unwind(e));
    assert!(reconnects > 0, "the tricklers were cut off and came back");
    stop(&mut central);
}

#[test]
fn big_frames_never_read_stay_within_the_memory_budget() {
    let mut central = Central::start(2, &[("SERVER_AGENCIES", "1"), ("SERVER_FRAME_TIMEOUT_SECS", "3")]);
    let addr = central.addr;
    let honest = Honest::start(&central, 1, 600);
    // 250 peers, each sending one 1 MiB echo (the largest frame) and never reading a byte.
    // Prefix, `Echo`'s index, the bytes' length, the bytes: 1 MiB of payload in all.
    let bytes = (1u64 << 20) - 12;
    let mut echo = vec![0, 0x10, 0, 0, 0, 0, 0, 0];
    echo.extend_from_slice(&bytes.to_be_bytes());
    echo.resize(4 + (1 << 20), 0x5a);
    let echo = Arc::new(echo);
    let peers: Vec<_> = (0..250)
        .map(|_| {
            let echo = Arc::clone(&echo);
            thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).expect("connect");
                stream.set_write_timeout(Some(PATIENCE)).expect("a write timeout");
                // The central may cut this peer off before taking it all: that is its right.
                let _ = stream.write_all(&echo);
                stream
            })
        })
        .collect();
    let held: Vec<TcpStream> = peers.into_iter().map(|p| p.join().expect("a peer thread")).collect();
    honest.finish(&central);
    let peak = proc_status(central.process.pid(), "VmHWM");
    drop(held);
    eprintln!("central peak RSS: {} MiB", peak / 1024);
    // The budget is 64 MiB; threads, buffers and the binary itself take the rest.
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB");
    stop(&mut central);
}

#[test]
fn empty_batches_are_refused_and_neither_memory_nor_the_journal_grows() {
    let mut central = Central::start(2, &[]);
    let journal = PathBuf::from(format!("{}.journal", central.winners_path().display()));
    let journal_before = std::fs::metadata(&journal).expect("the journal").len();
    let flood = |seconds: u64| {
        let mut conn = central.connect();
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut refused = 0u64;
        while Instant::now() < until {
            let empty = Request::BetBatch { agency: 2, sequence: 1, bets: protocol::WireBets::default() };
            match call(&mut conn, empty) {
                Response::Error { kind: ErrorKind::EmptyBatch, .. } => refused += 1,
                other => panic!("an empty batch was answered {other:?}"),
            }
        }
        refused
    };
    // A first short flood brings the central to its steady size; the second must not grow it.
    flood(1);
    let rss_before = proc_status(central.process.pid(), "VmRSS");
    let refused = flood(3);
    let rss_after = proc_status(central.process.pid(), "VmRSS");
    assert!(refused > 100, "only {refused} empty batches sent");
    assert_eq!(std::fs::metadata(&journal).expect("the journal").len(), journal_before, "nothing journaled");
    assert!(rss_after < rss_before + 8 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");
    // A batch declaring more bets than the cap is refused from its header, not decoded.
    let mut raw = central.raw();
    let mut lying = vec![0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1];
    lying.extend_from_slice(&u64::MAX.to_be_bytes());
    raw.write_all(&lying).expect("send a lying batch");
    match Connection::new(raw).read_message::<Response>() {
        Ok(Some(Response::Error { kind: ErrorKind::BatchTooLarge, .. })) => {}
        other => panic!("a lying batch was answered {other:?}"),
    }
    let honest = Honest::start(&central, 1, 300);
    assert_eq!(call(&mut central.connect(), Request::AgencyDone { agency: 2, batches: 0 }), Response::Ack);
    honest.finish(&central);
    stop(&mut central);
}

#[test]
fn a_flood_of_malformed_frames_leaves_the_log_small() {
    let mut central = Central::start(2, &[("SERVER_AGENCIES", "1")]);
    let honest = Honest::start(&central, 1, 300);
    let mut raw = central.raw();
    // The lines the flooding peer caused are the ones naming it.
    let peer = raw.local_addr().expect("the peer's address").to_string();
    let log_bytes = |c: &Central| {
        c.process.lines().iter().filter(|l| l.contains(&peer)).map(|l| l.len() + 1).sum::<usize>()
    };
    let reader = raw.try_clone().expect("clone the socket");
    // Answers are read on their own thread, so the flood never waits on them.
    let counter = thread::spawn(move || {
        let mut conn = Connection::new(reader);
        let mut malformed = 0u64;
        while let Ok(Some(Response::Error { kind: ErrorKind::Malformed, .. })) =
            conn.read_message::<Response>()
        {
            malformed += 1;
        }
        malformed
    });
    let garbage: Vec<u8> = [0u8, 0, 0, 4, 0, 0, 0, 99].repeat(256); // an unknown request, 256 times
    let started = Instant::now();
    let until = started + Duration::from_secs(5);
    while Instant::now() < until {
        raw.write_all(&garbage).expect("flood");
    }
    raw.shutdown(std::net::Shutdown::Write).expect("end the flood");
    let malformed = counter.join().expect("the answer reader");
    // How long the central was answering the flood: 5 s on an idle machine, longer on a busy
    // one, where it works through what the peer queued.
    let answering = started.elapsed().as_secs() + 1;
    honest.finish(&central);
    // Stopped, its output is read to the end.
    stop(&mut central);
    let grown = log_bytes(&central);
    eprintln!("{malformed} malformed frames answered, {grown} bytes of log about the peer");
    assert!(malformed > 10_000, "only {malformed} malformed frames answered");
    // At most a line a second for the warnings (each well under 256 bytes), plus the
    // connection's own few lines.
    assert!(
        grown < (answering as usize + 4) * 256,
        "{malformed} malformed frames wrote {grown} bytes of log:\n{}",
        central.process.transcript()
    );
    assert!(lines_with(&central, &["suppressed: "]) >= 1, "the suppressed lines are counted");
}

#[test]
fn accept_out_of_file_descriptors_backs_off_instead_of_spinning() {
    let dir = tempfile::Builder::new().prefix("server-nofile-").tempdir().expect("a scratch directory");
    let mut command = Command::new(testkit::central::binary("server"));
    command
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", "0")
        .env("SERVER_AGENCIES", "1")
        .env("SERVER_WINNER_DELAY_MS", "0")
        .env("SERVER_STORAGE_PATH", dir.path().join("winners.csv"));
    let mut process = LoggedChild::spawn(&mut command);
    let addr = process.listening_address(PATIENCE);
    // Started within its limit (the central checks its cap fits the descriptors at start);
    // then the limit drops under it, as when something else on the host takes descriptors.
    let lowered = Command::new("prlimit")
        .arg(format!("--pid={}", process.pid()))
        .arg("--nofile=24:24")
        .status()
        .expect("run prlimit");
    assert!(lowered.success(), "prlimit could not lower the central's limit");
    // More connections than descriptors: the kernel queues the rest, and `accept` fails.
    let held: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(addr).expect("connect")).collect();
    assert!(
        process.wait_for(&["action: accept_connection | result: fail"], PATIENCE).is_some(),
        "accept never failed:\n{}",
        process.transcript()
    );
    let since = Instant::now();
    let failures_at = |p: &LoggedChild| {
        p.lines().iter().filter(|l| l.contains("action: accept_connection | result: fail")).count()
    };
    let first = failures_at(&process);
    // Watch the failures for three seconds: a wait with a deadline on a line that must not come.
    let _ = process.wait_for(&["no such line"], Duration::from_secs(3));
    let lines = failures_at(&process) - first;
    let secs = since.elapsed().as_secs() + 1;
    assert!(lines as u64 <= secs, "{lines} accept failure lines in {secs} s:\n{}", process.transcript());
    // Once descriptors are free again the central serves as before.
    drop(held);
    // Queued behind the held ones, it is accepted once their threads have ended; one accepted
    // while their descriptors are still being freed is closed for want of one (the registry's
    // clone fails), so ask again until the deadline.
    let deadline = Instant::now() + PATIENCE;
    let answer = loop {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
        match Connection::new(stream).call(&Request::Echo(b"alive".to_vec())) {
            Ok(answer) => break answer,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not served yet: {e}");
                thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("never served again: {e}\n{}", process.transcript()),
        }
    };
    assert_eq!(answer, Response::Echo(b"alive".to_vec()));
    process.sigterm();
    assert!(process.wait_exit(PATIENCE).expect("the central exits").success(), "{}", process.transcript());
}
