//! A national lottery on one central: a thousand agencies started at once, every one exact.
//!
//! Agencies done with their upload keep their connection to wait for the total; with fewer
//! slots than agencies they used to fill every slot and keep the rest out for good. Here a
//! full table evicts a waiting connection (`net/connections.rs`), so every lottery the
//! settings accept completes: at the default cap, below it, and across a restart.
//!
//! Run alone, build the binaries first: `cargo build --bins`.

mod common;

use std::{
    net::{SocketAddr, TcpStream},
    thread,
    time::{Duration, Instant},
};

use common::{assert_success, expected_rows, fields_of, retrying_agency, winning_bet, Central};
use protocol::{Connection, Request, Response};
use testkit::{
    datasets,
    process::{proc_status, LoggedChild},
    reference::{self, Row},
};

/// Agency `id`'s dataset: 100 to 200 bets.
fn dataset(id: u32) -> Vec<Row> {
    datasets::generate(u64::from(id) * 104_729, 100 + (id as usize * 37) % 101)
}

/// Starts agencies `1..=count` at once against `central`, each with its own dataset.
fn start_all(central: &Central, count: u32) -> (Vec<Vec<Row>>, Vec<LoggedChild>) {
    let rows: Vec<_> = (1..=count).map(dataset).collect();
    let clients = (1u32..)
        .zip(&rows)
        .map(|(id, rows)| {
            let path = central.dataset(id, rows);
            retrying_agency(central, id, &path, &[("CLI_WINNERS_RETRY_PERIOD", "500ms")])
        })
        .collect();
    (rows, clients)
}

/// Waits for every agency and checks each one's summary and total, its tally at the central
/// and the winners file, against the reference.
fn assert_exact(central: &Central, rows: &[Vec<Row>], clients: &mut [LoggedChild]) {
    for client in clients.iter_mut() {
        assert_success(client);
    }
    let expected_total: usize = rows.iter().map(|rows| reference::winners(rows).len()).sum();
    let mut expected_file = Vec::new();
    for ((id, rows), client) in (1u32..).zip(rows).zip(clients.iter()) {
        let winners = reference::winners(rows).len();
        let summary = fields_of(client, &["action: agency_summary | result: success"]);
        assert_eq!(summary["bets"], rows.len().to_string(), "agency {id}");
        assert_eq!(summary["winners"], winners.to_string(), "agency {id}");
        let total = fields_of(client, &["action: total_winners | result: success"]);
        assert_eq!(total["winners"], expected_total.to_string(), "agency {id}");
        expected_file.extend(expected_rows(id, rows));
    }
    expected_file.sort();
    assert_eq!(central.sorted_winner_rows(), expected_file);
}

#[test]
fn a_thousand_agencies_finish_exact_at_the_default_settings() {
    let mut central = Central::start(1000, &[]);
    let began = Instant::now();
    let (rows, mut clients) = start_all(&central, 1000);
    assert_exact(&central, &rows, &mut clients);
    eprintln!("1000 agencies, default settings: {:?}", began.elapsed());
    central.stop();
}

#[test]
fn a_thousand_agencies_finish_exact_with_a_tenth_as_many_slots() {
    let mut central = Central::start(1000, &[("SERVER_MAX_CONNECTIONS", "100")]);
    let began = Instant::now();
    let (rows, mut clients) = start_all(&central, 1000);
    assert_exact(&central, &rows, &mut clients);
    eprintln!("1000 agencies, 100 slots: {:?}", began.elapsed());
    central.stop();
}

#[test]
fn waiting_agencies_never_starve_uploading_ones_across_a_restart() {
    let mut central = Central::start(300, &[("SERVER_MAX_CONNECTIONS", "40")]);
    let (rows, mut clients) = start_all(&central, 300);
    // Stop in the middle: once some agencies are done and waiting, while others still upload.
    let some_done = clients.iter().take(300).filter(|client| {
        client.wait_for(&["action: agency_summary | result: success"], Duration::from_millis(1)).is_some()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while some_done.clone().count() < 20 {
        assert!(Instant::now() < deadline, "no agency finished its upload");
        std::thread::sleep(Duration::from_millis(20));
    }
    let done_before = some_done.count();
    assert!(done_before < 300, "every agency finished before the stop: the test proves nothing");
    central.stop();
    central.restart(&[]);
    assert_exact(&central, &rows, &mut clients);
    central.stop();
}

/// Resident KiB of the process's mappings, by mapping size, largest total first: thread
/// stacks are the many mappings of the stack's size.
fn resident_by_mapping_size(pid: u32) -> Vec<(u64, u64, u64)> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read /proc smaps");
    let mut by_size = std::collections::BTreeMap::<u64, (u64, u64)>::new();
    let mut size = 0;
    for line in smaps.lines() {
        let kib = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if line.starts_with("Size:") {
            size = kib(line);
        } else if line.starts_with("Rss:") {
            let entry = by_size.entry(size).or_default();
            *entry = (entry.0 + 1, entry.1 + kib(line));
        }
    }
    let mut sizes: Vec<_> = by_size.into_iter().map(|(size, (count, rss))| (size, count, rss)).collect();
    sizes.sort_by_key(|(_, _, rss)| std::cmp::Reverse(*rss));
    sizes.truncate(4);
    sizes
}

/// One agency done with its upload, left holding a total query: two 400-bet batches sent in
/// one write (32 KiB, enough to fill the central's full read buffer), then `AgencyDone`.
fn upload_then_wait(addr: SocketAddr, agency: u32) -> Connection<TcpStream> {
    let mut conn = Connection::new(TcpStream::connect(addr).expect("connect"));
    let batch = |sequence| Request::BetBatch { agency, sequence, bets: vec![winning_bet(); 400].into() };
    let requests = [batch(1), batch(2), Request::AgencyDone { agency, batches: 2 }];
    conn.write_messages(&requests).expect("an upload");
    for _ in &requests {
        let answer = conn.read_message::<Response>().expect("an answer").expect("not closed");
        assert!(!matches!(answer, Response::Error { .. }), "agency {agency}: {answer:?}");
    }
    conn.write_message(&Request::AwaitWinners { agency, hold_ms: protocol::MAX_HOLD_MS }).expect("a query");
    conn
}

/// The memory a waiting connection keeps: 2 000 agencies uploaded and now wait for the total
/// (one agency never finishes, so none is answered). Prints the figures docs/scale.md gives.
#[test]
fn two_thousand_waiting_agencies_keep_little_memory() {
    const WAITING: u32 = 2000;
    // Idle long enough for the first ones to be still there when the last one is.
    let mut central = Central::start(WAITING + 1, &[("SERVER_IDLE_TIMEOUT_SECS", "600")]);
    let pid = central.process.pid();
    let (rss_idle, threads_idle) = (proc_status(pid, "VmRSS"), proc_status(pid, "Threads"));
    let agencies: Vec<u32> = (1..=WAITING).collect();
    let addr = central.addr;
    let conns: Vec<Connection<TcpStream>> = thread::scope(|scope| {
        let workers: Vec<_> = agencies
            .chunks(250)
            .map(|chunk| scope.spawn(|| chunk.iter().map(|a| upload_then_wait(addr, *a)).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("an uploading thread")).collect()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while proc_status(pid, "Threads") < threads_idle + u64::from(WAITING) {
        assert!(Instant::now() < deadline, "not every connection has its thread");
        thread::sleep(Duration::from_millis(20));
    }
    let (rss, hwm, size) = (proc_status(pid, "VmRSS"), proc_status(pid, "VmHWM"), proc_status(pid, "VmSize"));
    let per_connection = (rss - rss_idle) / u64::from(WAITING);
    let mappings = resident_by_mapping_size(pid);
    // The thread stacks: one mapping per connection, all of one size.
    let (stack_size, _, stacks) =
        *mappings.iter().find(|(_, count, _)| *count >= u64::from(WAITING)).expect("the stacks' mappings");
    let stack = stacks / u64::from(WAITING);
    let rest = per_connection.saturating_sub(stack);
    eprintln!(
        "{WAITING} waiting: VmRSS {rss} KiB ({rss_idle} KiB idle), {per_connection} KiB a connection: {stack} KiB of its \
         {stack_size} KiB stack touched, {rest} KiB else; VmHWM {hwm} KiB, VmSize {size} KiB; by mapping size {mappings:?}"
    );
    // Kept, the 32 KiB read buffer and the 16 KiB payload each connection filled would be
    // more than this on their own.
    assert!(rest < 32, "{rest} KiB kept by each waiting connection besides its stack");
    drop(conns);
    central.stop();
}
