//! Deadlines that count bytes on the wire, against the real `server` binary with agency keys
//! and TLS: peers trickling a real TLS ClientHello are cut at the frame deadline from their
//! first byte while keyed TLS agencies finish exact and the central still stops within a
//! second; a TLS record whose bytes trickle is cut at the frame deadline, not answered.

mod common;

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use common::{assert_success, fields_of, Central, Credentials};
use protocol::{Connection, Request, Response};
use security::{generate, tls, Stream};
use testkit::{datasets, process::LoggedChild, reference};

/// The central's connection slots in the handshake test.
const SLOTS: usize = 1024;
/// Peers trickling handshakes: the share of the slots unproved connections may hold (25 % by
/// default), so no trickler evicts another and the deadline is what cuts them.
const TRICKLERS: usize = SLOTS / 4;
/// The frame deadline of the handshake test: above the tricklers' gap, so per-read timeouts
/// alone never cut them.
const FRAME: Duration = Duration::from_secs(3);
/// A trickler's pause between two bytes.
const GAP: Duration = Duration::from_secs(2);
/// What a cut may come after the deadline on a loaded machine: 256 peers and the central on
/// two shared cores.
const CUT_MARGIN: Duration = Duration::from_secs(2);
/// Bound on the keyed agencies' whole run while the tricklers hold their share of the slots
/// and reconnect as soon as they are cut. An agency's connection, unproved until its `Prove`,
/// either finds a free slot or evicts the oldest unproved one (docs/security.md, "Before the
/// proof"), so it never waits on a trickler: its run is its own (under 1 s measured), plus
/// its retries if a trickler's reconnect evicts it before it proves (one round trip of
/// exposure, each retry within 200 ms). 30 s is the other identity tests' patience and
/// leaves room for a loaded machine.
const AGENCIES_WITHIN: Duration = Duration::from_secs(30);
/// The stop's patience, as the other stop tests hold it.
const STOP_WITHIN: Duration = Duration::from_secs(1);

/// What these tests need of a credentials set beyond `common`'s.
impl Credentials {
    fn path(&self, file: impl Fn(&Path) -> std::path::PathBuf) -> String {
        file(self.dir.path()).display().to_string()
    }

    /// A central with the agencies' keys and TLS, `extra` on top.
    fn central(&self, agencies: u32, extra: &[(&str, &str)]) -> Central {
        let keys = self.path(generate::agencies_file);
        let cert = self.path(generate::central_cert);
        let key = self.path(generate::central_key);
        let env =
            [
                &[
                    ("SERVER_AGENCY_KEYS", keys.as_str()),
                    ("SERVER_TLS_CERT", &cert),
                    ("SERVER_TLS_KEY", &key),
                ][..],
                extra,
            ]
            .concat();
        Central::start(agencies, &env)
    }

    fn client_config(&self) -> Arc<rustls::ClientConfig> {
        tls::client_config(&generate::ca_cert(self.dir.path())).expect("the authority")
    }
}

/// The first flight of a real rustls client: its ClientHello record, as a peer would send it.
fn client_hello(credentials: &Credentials) -> Vec<u8> {
    let name = tls::server_name("localhost:0").expect("a name");
    let mut conn = rustls::ClientConnection::new(credentials.client_config(), name).expect("a client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("the ClientHello");
    assert!(hello.len() > 100 && hello[0] == 22, "a handshake record of {} bytes", hello.len());
    hello
}

/// Peers sending a ClientHello one byte every [`GAP`], reconnecting as soon as they are cut.
struct Tricklers {
    stop: Arc<AtomicBool>,
    /// Time from each cut connection's first byte to its cut.
    cuts: Arc<Mutex<Vec<Duration>>>,
    /// Connections refused `Busy` (all slots taken): not cuts.
    refused: Arc<AtomicUsize>,
    /// Connections that sent their first byte.
    sending: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Tricklers {
    fn start(addr: SocketAddr, hello: &[u8]) -> Tricklers {
        let stop = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(AtomicUsize::new(0));
        let sending = Arc::new(AtomicUsize::new(0));
        let threads = (0..TRICKLERS)
            .map(|_| {
                let (stop, cuts, refused, sending, hello) = (
                    Arc::clone(&stop),
                    Arc::clone(&cuts),
                    Arc::clone(&refused),
                    Arc::clone(&sending),
                    hello.to_vec(),
                );
                thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            match trickle_once(addr, &hello, &stop, &sending) {
                                Trickle::Cut(after) => cuts.lock().expect("the cuts").push(after),
                                Trickle::Refused => {
                                    refused.fetch_add(1, Ordering::Relaxed);
                                    // At the peer's own pace: a full central is not hammered.
                                    thread::sleep(GAP);
                                }
                                Trickle::Stopped => {}
                            }
                        }
                    })
                    .expect("a trickler thread")
            })
            .collect();
        Tricklers { stop, cuts, refused, sending, threads }
    }

    /// Stops every trickler (each within one [`GAP`]) and joins them.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().expect("a trickler ends");
        }
    }
}

/// How one trickled connection ended.
enum Trickle {
    /// Closed by the central this long after the first byte, without a word.
    Cut(Duration),
    /// Answered (a `Busy` refusal), then closed.
    Refused,
    /// The test ended first.
    Stopped,
}

/// One connection sending `hello` a byte every [`GAP`]; the wait for an answer is the pause.
/// A connection that ends before its first pause is over was refused (`Busy`, written to a
/// peer whose byte then resets it), not held: not a cut.
fn trickle_once(addr: SocketAddr, hello: &[u8], stop: &AtomicBool, sending: &AtomicUsize) -> Trickle {
    let Ok(mut socket) = TcpStream::connect(addr) else { return Trickle::Refused };
    socket.set_read_timeout(Some(GAP)).expect("a read timeout");
    let mut first = None;
    let mut answer = [0u8; 64];
    for (sent, &byte) in hello.iter().enumerate() {
        if stop.load(Ordering::Relaxed) {
            return Trickle::Stopped;
        }
        let ended = match socket.write_all(&[byte]) {
            Err(_) => true,
            Ok(()) => {
                if first.is_none() {
                    first = Some(Instant::now());
                    sending.fetch_add(1, Ordering::Relaxed);
                }
                match socket.read(&mut answer) {
                    Ok(0) => true,
                    Ok(_) => return Trickle::Refused,
                    Err(e) => {
                        !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
                    }
                }
            }
        };
        if ended {
            return match first {
                Some(since) if sent > 0 => Trickle::Cut(since.elapsed()),
                _ => Trickle::Refused,
            };
        }
    }
    panic!("a whole ClientHello trickled through without a cut")
}

/// Polls `condition` until it holds or `within` passes; whether it held.
fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// Keyed TLS agencies 1 to `n`, each over its own 300 bets, retrying fast on `Busy`.
fn start_agencies(
    central: &Central,
    credentials: &Credentials,
    n: u32,
) -> Vec<(Vec<reference::Row>, LoggedChild)> {
    let ca = credentials.path(generate::ca_cert);
    (1..=n)
        .map(|id| {
            let rows = datasets::generate(900 + u64::from(id), 300);
            let data = central.dataset(id, &rows);
            let key = generate::agency_key(credentials.dir.path(), id).display().to_string();
            let env = [
                ("CLI_KEY", key.as_str()),
                ("CLI_TLS_CA", &ca),
                ("CLI_TLS_NAME", "localhost"),
                ("CLI_SERVER_TIMEOUT", "10s"),
                ("CLI_WINNERS_RETRY_PERIOD", "50ms"),
                ("CLI_RETRY_INITIAL", "10ms"),
                ("CLI_RETRY_MAX", "200ms"),
                ("CLI_RETRY_TOTAL", "120s"),
            ];
            (rows, central.agency(id, &data, &env))
        })
        .collect()
}

/// Waits for every agency within `within` of `started`, and checks each summary, each total
/// and the winners file exact.
fn assert_exact(
    central: &Central,
    agencies: &mut [(Vec<reference::Row>, LoggedChild)],
    started: Instant,
    within: Duration,
) {
    let expected: Vec<Vec<String>> = agencies
        .iter()
        .enumerate()
        .map(|(i, (rows, _))| reference::winner_rows(i as u32 + 1, rows))
        .collect();
    let total: usize = expected.iter().map(Vec::len).sum();
    for (i, (_, agency)) in agencies.iter_mut().enumerate() {
        let left = within.saturating_sub(started.elapsed());
        let status = agency.wait_exit(left).unwrap_or_else(|| {
            panic!("agency {} not done within {within:?}:\n{}", i + 1, agency.transcript())
        });
        assert!(status.success(), "{status:?}\n{}", agency.transcript());
        assert_success(agency);
        let summary = fields_of(agency, &["action: agency_summary"]);
        assert_eq!(summary["bets"], "300", "agency {}", i + 1);
        assert_eq!(summary["winners"], expected[i].len().to_string(), "agency {}", i + 1);
        let answer = fields_of(agency, &["action: total_winners | result: success"]);
        assert_eq!(answer["winners"], total.to_string(), "agency {}", i + 1);
    }
    let mut rows: Vec<String> = expected.into_iter().flatten().collect();
    rows.sort();
    assert_eq!(central.sorted_winner_rows(), rows, "the winners file holds the agencies' winners");
}

#[test]
fn trickled_tls_handshakes_are_cut_at_the_frame_deadline_and_keyed_agencies_finish() {
    let credentials = Credentials::new(2);
    let frame = FRAME.as_secs().to_string();
    let slots = SLOTS.to_string();
    let mut central =
        credentials.central(2, &[("SERVER_FRAME_TIMEOUT_SECS", &frame), ("SERVER_MAX_CONNECTIONS", &slots)]);
    let tricklers = Tricklers::start(central.addr, &client_hello(&credentials));
    // The agencies come once every trickler is at it, holding all the slots it can.
    let all = wait_until(common::PATIENCE, || tricklers.sending.load(Ordering::Relaxed) >= TRICKLERS);
    assert!(all, "the tricklers never all connected:\n{}", central.process.transcript());
    let started = Instant::now();
    let mut agencies = start_agencies(&central, &credentials, 2);
    assert_exact(&central, &mut agencies, started, AGENCIES_WITHIN);
    println!("keyed TLS agencies finished in {:?} among {TRICKLERS} tricklers", started.elapsed());

    // Every trickler was cut at least once by now (the agencies needed their slots).
    let cut_once =
        wait_until(FRAME + CUT_MARGIN + GAP, || tricklers.cuts.lock().expect("the cuts").len() >= TRICKLERS);
    // The cuts so far: a stopping central closes connections for another reason.
    let cuts = std::mem::take(&mut *tricklers.cuts.lock().expect("the cuts"));
    let refused = tricklers.refused.load(Ordering::Relaxed);
    println!("{refused} trickler connections refused Busy");

    // Stopped while the tricklers are still at it.
    let stopping = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(common::PATIENCE).expect("the central exits");
    let took = stopping.elapsed();
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(took < STOP_WITHIN, "stopping took {took:?}");
    tricklers.stop();

    assert!(
        cut_once && cuts.len() >= TRICKLERS,
        "only {} cuts:\n{}",
        cuts.len(),
        central.process.transcript()
    );
    let slowest = cuts.iter().max().expect("cuts");
    let fastest = cuts.iter().min().expect("cuts");
    // Cut earlier is possible too: a newcomer evicts the oldest unproved connection when
    // their share of the slots is full.
    println!("{} cuts, from {fastest:?} to {slowest:?} after the first byte", cuts.len());
    assert!(*slowest <= FRAME + CUT_MARGIN, "a trickler was cut only after {slowest:?}");
    let line = central.process.wait_for(
        &["action: accept_connection | result: fail", "TLS handshake: the peer did not send"],
        Duration::ZERO,
    );
    assert!(line.is_some(), "no too-slow handshake logged:\n{}", central.process.transcript());
}

/// Pieces a trickled record is cut into, and the pause between two.
const PIECES: usize = 10;
const PIECE_GAP: Duration = Duration::from_millis(300);

/// `request` as a frame's bytes.
fn framed(request: &Request) -> Vec<u8> {
    let mut conn = Connection::new(std::io::Cursor::new(Vec::new()));
    conn.write_message(request).expect("a frame");
    conn.get_ref().get_ref().clone()
}

#[test]
fn a_trickled_tls_record_is_cut_at_the_frame_deadline_not_answered() {
    let credentials = Credentials::new(1);
    let mut central = credentials.central(1, &[("SERVER_FRAME_TIMEOUT_SECS", "1")]);
    let socket = TcpStream::connect(central.addr).expect("connect");
    socket.set_read_timeout(Some(common::PATIENCE)).expect("a timeout");
    let name = tls::server_name("localhost:0").expect("a name");
    let Ok(Stream::Client(mut tls)) = Stream::connect_tls(socket, credentials.client_config(), name) else {
        panic!("a TLS client stream")
    };
    // A whole record is answered: the connection and this test's TLS are sound.
    let answer = Connection::new(&mut *tls).call(&Request::Echo(b"whole".to_vec())).expect("an echo");
    assert_eq!(answer, Response::Echo(b"whole".to_vec()));

    // The next one's record, sent in pieces over PIECES x PIECE_GAP (2.7 s) against a 1 s deadline.
    let frame = framed(&Request::Echo(b"trickled".to_vec()));
    tls.conn.writer().write_all(&frame).expect("plaintext in");
    let mut record = Vec::new();
    tls.conn.write_tls(&mut record).expect("the record");
    let socket = &mut tls.sock;
    socket.set_read_timeout(Some(PIECE_GAP)).expect("a timeout");
    let first = Instant::now();
    let mut received = Vec::new();
    let mut cut = None;
    let mut pieces = record.chunks(record.len().div_ceil(PIECES));
    while cut.is_none() && first.elapsed() < Duration::from_secs(15) {
        if let Some(piece) = pieces.next() {
            if socket.write_all(piece).is_err() {
                cut = Some(first.elapsed());
                break;
            }
        }
        let mut buf = [0u8; 4096];
        match socket.read(&mut buf) {
            Ok(0) => cut = Some(first.elapsed()),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => cut = Some(first.elapsed()),
        }
    }
    // Whatever came back holds no answer (a close_notify at most).
    tls.conn.read_tls(&mut received.as_slice()).expect("ciphertext in");
    let _ = tls.conn.process_new_packets();
    let mut plain = [0u8; 64];
    let answered = matches!(tls.conn.reader().read(&mut plain), Ok(n) if n > 0);
    assert!(!answered, "the trickled record was answered after {:?}", first.elapsed());
    let cut = cut.unwrap_or_else(|| panic!("not cut within 15 s:\n{}", central.process.transcript()));
    println!("the trickled record was cut {cut:?} after its first byte");
    assert!(cut >= Duration::from_millis(900) && cut <= Duration::from_secs(2), "cut after {cut:?}");
    let line = central.process.wait_for(
        &[
            "action: read_request | result: fail",
            "did not send a whole frame or take a whole answer within 1s",
        ],
        common::PATIENCE,
    );
    assert!(line.is_some(), "no too-slow read logged:\n{}", central.process.transcript());
    central.stop();
}
