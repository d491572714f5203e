//! What a peer without a key can still take, on plain TCP with keys configured: unproved
//! connections share a bounded part of the slots (a newcomer evicts the oldest), must prove
//! within their own deadline whatever they echo, and may send only small frames, so they
//! reserve nothing of the memory budget (`net/connections.rs`, `net/handler.rs`).
//!
//! Run alone, build the binaries first: `cargo build --bins`.

mod common;

use std::{
    io::Write,
    net::TcpStream,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::{Duration, Instant},
};

use common::{expected_rows, fields_of, Central};
use protocol::{Connection, Request, Response};
use security::generate;
use testkit::{datasets, reference};

/// Keyed agencies must finish within this, hostile peers or not.
const BOUND: Duration = Duration::from_secs(30);

/// Credentials for `agencies` agencies, and the central's settings that require them.
fn credentials(agencies: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a scratch directory");
    generate::write(dir.path(), agencies, &["localhost".into(), "127.0.0.1".into()]).expect("credentials");
    dir
}

/// Keyless peers run by one thread until dropped: each connection sends `opening` once, then
/// `every` period an `Echo`; a connection the central cut is opened again.
struct Hostile {
    stop: Arc<AtomicBool>,
    /// How many times a connection was found cut and opened again.
    cuts: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Hostile {
    fn start(central: &Central, peers: usize, opening: Vec<u8>, every: Duration) -> Hostile {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = central.addr;
        let flag = Arc::clone(&stop);
        let cuts = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&cuts);
        let thread = thread::spawn(move || {
            let open = || {
                let mut s = TcpStream::connect(addr).ok()?;
                s.set_write_timeout(Some(Duration::from_millis(200))).ok()?;
                s.write_all(&opening).ok()?;
                Some(s)
            };
            let mut sockets: Vec<Option<TcpStream>> = (0..peers).map(|_| open()).collect();
            let mut framer = Connection::new(std::io::Cursor::new(Vec::new()));
            framer.write_message(&Request::Echo(b"hi".to_vec())).expect("an echo frame");
            let echo = framer.get_ref().get_ref().clone();
            while !flag.load(Ordering::SeqCst) {
                for socket in &mut sockets {
                    let alive = socket.as_mut().is_some_and(|s| s.write_all(&echo).is_ok());
                    if !alive {
                        counted.fetch_add(1, Ordering::SeqCst);
                        *socket = open();
                    }
                }
                let until = Instant::now() + every;
                while Instant::now() < until && !flag.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Hostile { stop, cuts, thread: Some(thread) }
    }
}

impl Hostile {
    /// Waits until the peers were cut at least `count` times (or 30 s passed); returns how
    /// many times they were.
    fn wait_cuts(&self, count: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.cuts.load(Ordering::SeqCst) < count && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs `count` keyed agencies at once and checks each is exact, all within [`BOUND`].
fn keyed_agencies_finish_exact(central: &Central, keys: &tempfile::TempDir, count: u32) {
    let began = Instant::now();
    let rows: Vec<_> = (1..=count).map(|id| datasets::generate(900 + u64::from(id), 150)).collect();
    let mut clients: Vec<_> = (1u32..)
        .zip(&rows)
        .map(|(id, rows)| {
            let path = central.dataset(id, rows);
            let key = generate::agency_key(keys.path(), id).display().to_string();
            common::retrying_agency(central, id, &path, &[("CLI_KEY", key.as_str())])
        })
        .collect();
    for client in &mut clients {
        let left = BOUND.saturating_sub(began.elapsed());
        let status = client
            .wait_exit(left)
            .unwrap_or_else(|| panic!("not done within {BOUND:?}:\n{}", client.transcript()));
        assert!(status.success(), "{status:?}\n{}", client.transcript());
    }
    let total: usize = rows.iter().map(|rows| reference::winners(rows).len()).sum();
    let mut expected = Vec::new();
    for ((id, rows), client) in (1u32..).zip(&rows).zip(&clients) {
        let summary = fields_of(client, &["action: agency_summary | result: success"]);
        assert_eq!(summary["winners"], reference::winners(rows).len().to_string(), "agency {id}");
        let answer = fields_of(client, &["action: total_winners | result: success"]);
        assert_eq!(answer["winners"], total.to_string(), "agency {id}");
        expected.extend(expected_rows(id, rows));
    }
    expected.sort();
    assert_eq!(central.sorted_winner_rows(), expected);
}

/// A keyed central for `agencies` agencies, `extra` on top.
fn keyed_central(keys: &tempfile::TempDir, agencies: u32, extra: &[(&str, &str)]) -> Central {
    let file = generate::agencies_file(keys.path()).display().to_string();
    Central::start(agencies, &[&[("SERVER_AGENCY_KEYS", file.as_str())][..], extra].concat())
}

#[test]
fn keyless_peers_holding_slots_with_echoes_do_not_keep_keyed_agencies_out() {
    let keys = credentials(5);
    let mut central = keyed_central(&keys, 5, &[]);
    let began = Instant::now();
    // More than the 256 slots, each echoing every 2 s, reconnecting whenever cut.
    let hostile = Hostile::start(&central, 300, Vec::new(), Duration::from_secs(2));
    keyed_agencies_finish_exact(&central, &keys, 5);
    // Two rounds of echoes at least: every round finds the evicted ones cut.
    let cut = hostile.wait_cuts(300);
    drop(hostile);
    let secs = began.elapsed().as_secs() + 1;
    // Each cut is a close the peers provoked: logged at most once a second per kind (two
    // kinds here: evicted, no proof in time), with the count of the suppressed ones. The
    // agencies' own connections close with a line each: a few per agency.
    let lines = central.process.lines();
    let closes = lines.iter().filter(|l| l.contains("action: close_connection")).count() as u64;
    eprintln!("{cut} cuts in {secs} s: {closes} close lines, {} lines in all", lines.len());
    assert!(cut >= 300, "only {cut} cuts: the flood provoked too little to test the log");
    assert!(closes <= 2 * (secs + 1) + 4 * 5, "{cut} cuts wrote {closes} close lines in {secs} s");
    central.stop();
}

#[test]
fn keyless_peers_announcing_large_frames_do_not_delay_an_honest_echo_or_agency() {
    let keys = credentials(3);
    let mut central = keyed_central(&keys, 3, &[]);
    // Each announces a 1 MiB frame and sends nothing more: 200 of them would hold 400 MiB of
    // a 64 MiB budget if announcing reserved anything.
    let announce = (1u32 << 20).to_be_bytes().to_vec();
    let hostile = Hostile::start(&central, 200, announce, Duration::from_secs(2));
    for _ in 0..5 {
        let asked = Instant::now();
        let mut honest = central.connect();
        let answer = honest.call(&Request::Echo(b"ping".to_vec())).expect("an echo answer");
        assert_eq!(answer, Response::Echo(b"ping".to_vec()));
        assert!(asked.elapsed() < Duration::from_secs(1), "the echo waited {:?}", asked.elapsed());
    }
    keyed_agencies_finish_exact(&central, &keys, 3);
    drop(hostile);
    central.stop();
}

#[test]
fn an_unproved_connection_is_closed_at_its_proof_deadline_even_while_it_echoes() {
    let keys = credentials(1);
    let mut central = keyed_central(&keys, 1, &[("SERVER_PROOF_TIMEOUT_SECS", "2")]);
    let mut peer = central.connect();
    let opened = Instant::now();
    let closed = loop {
        assert!(opened.elapsed() < Duration::from_secs(10), "still open after 10 s of echoes");
        match peer.call(&Request::Echo(b"keep me".to_vec())) {
            Ok(answer) => assert_eq!(answer, Response::Echo(b"keep me".to_vec())),
            Err(_) => break opened.elapsed(),
        }
        thread::sleep(Duration::from_millis(300));
    };
    assert!(closed >= Duration::from_secs(2), "closed before its deadline: {closed:?}");
    assert!(closed < Duration::from_secs(3), "closed {closed:?} after opening, past its 2 s deadline");
    central.stop();
}
