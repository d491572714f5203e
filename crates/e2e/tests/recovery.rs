//! The central rebuilds its lottery from its files at start: per-agency counts, last
//! sequences and which agencies are done; a torn last journal record is cut off, never read
//! as data; a journal of another lottery stops the start.

mod common;

use std::{fs::OpenOptions, io::Write, time::Duration};

use common::{Central, PATIENCE};
use protocol::{Request, Response, WireBet};

fn wire(first: &str, last: &str, document: &str, birthdate: &str) -> WireBet {
    WireBet {
        first_name: first.into(),
        last_name: last.into(),
        document: document.into(),
        birthdate: birthdate.into(),
    }
}

/// Wins: its FNV-1a hash is divisible by 17.
fn winning() -> WireBet {
    wire("Kiara Valentina", "Basile", "32250087", "1987-05-17")
}

fn losing() -> WireBet {
    wire("Santiago Lionel", "Lorca", "30904465", "1999-03-17")
}

fn call(central: &Central, request: Request) -> Response {
    central.connect().call(&request).unwrap_or_else(|e| panic!("{request:?} failed: {e}"))
}

#[test]
fn a_restarted_central_resumes_the_lottery_and_replays_committed_batches() {
    let mut central = Central::start(2, &[]);
    let first = Request::BetBatch { agency: 1, sequence: 1, bets: vec![losing(), winning()].into() };
    assert_eq!(call(&central, first.clone()), Response::BatchResult { sequence: 1, winners: vec![1] });
    assert_eq!(call(&central, Request::AgencyDone { agency: 2, batches: 0 }), Response::Ack);
    central.stop();
    let before = std::fs::read(central.winners_path()).unwrap();

    central.restart(&[]);
    let line =
        central.process.wait_for(&["action: store_open | result: success | mode: recovered"], PATIENCE);
    let line = line.expect("a recovery line");
    assert!(line.contains("batches: 1 | bets: 2 | winners: 1 | agencies_done: 1"), "{line}");
    assert_eq!(
        call(&central, Request::Resume { agency: 1 }),
        Response::Resumed {
            last_sequence: 1,
            bets: 2,
            winners: 1,
            done: false,
            digest: common::upload_digest(&[losing(), winning()])
        }
    );
    // The batch again: its original answer, nothing written.
    assert_eq!(call(&central, first), Response::BatchResult { sequence: 1, winners: vec![1] });
    assert_eq!(std::fs::read(central.winners_path()).unwrap(), before);
    assert_eq!(
        call(&central, Request::WinnersQuery { agency: 1 }),
        Response::Pending { agencies_pending: 1 }
    );
    let second = Request::BetBatch { agency: 1, sequence: 2, bets: vec![winning()].into() };
    assert_eq!(call(&central, second), Response::BatchResult { sequence: 2, winners: vec![0] });
    assert_eq!(call(&central, Request::AgencyDone { agency: 1, batches: 2 }), Response::Ack);
    assert_eq!(call(&central, Request::WinnersQuery { agency: 2 }), Response::Total { winners: 2 });
    assert_eq!(central.sorted_winner_rows(), vec!["1,Kiara Valentina,Basile,32250087,1987-05-17"; 2]);
}

#[test]
fn a_torn_last_record_and_unacknowledged_rows_are_discarded_at_start() {
    let mut central = Central::start(1, &[]);
    let batch = Request::BetBatch { agency: 1, sequence: 1, bets: vec![winning()].into() };
    assert_eq!(call(&central, batch), Response::BatchResult { sequence: 1, winners: vec![0] });
    central.stop();
    let winners_before = std::fs::read(central.winners_path()).unwrap();
    // What a crash in the middle of the next commit leaves: its rows appended, its journal
    // record cut short (a length announcing 60 bytes, a checksum, then 9 bytes of body).
    let journal = central.dir.path().join("winners.csv.journal");
    OpenOptions::new()
        .append(true)
        .open(&journal)
        .unwrap()
        .write_all(&[0, 0, 0, 60, 1, 2, 3, 4, 1, 0, 0, 0, 1, 0, 0, 0, 0])
        .unwrap();
    let journal_len = std::fs::metadata(&journal).unwrap().len();
    OpenOptions::new()
        .append(true)
        .open(central.winners_path())
        .unwrap()
        .write_all(b"1,Torn,Row,1,2000-01-01\n")
        .unwrap();

    central.restart(&[]);
    assert!(
        central
            .process
            .wait_for(&["action: journal_repair | result: success", "discarded_bytes: 17"], PATIENCE)
            .is_some(),
        "{}",
        central.process.transcript()
    );
    assert!(central
        .process
        .wait_for(&["action: winners_repair | result: success", "discarded_bytes: 24"], Duration::ZERO)
        .is_some());
    assert_eq!(std::fs::metadata(&journal).unwrap().len(), journal_len - 17);
    assert_eq!(std::fs::read(central.winners_path()).unwrap(), winners_before);
    assert_eq!(
        call(&central, Request::Resume { agency: 1 }),
        Response::Resumed {
            last_sequence: 1,
            bets: 1,
            winners: 1,
            done: false,
            digest: common::upload_digest(&[winning()])
        }
    );
}

#[test]
fn a_journal_of_another_number_of_agencies_stops_the_start() {
    let mut central = Central::start(2, &[]);
    central.stop();
    let mut again = central.spawn_again(&[("SERVER_AGENCIES", "3")]);
    let status = again.wait_exit(PATIENCE).expect("the central exits");
    assert_eq!(status.code(), Some(1), "{}", again.transcript());
    let line =
        again.wait_for(&["action: start | result: fail"], Duration::ZERO).expect("a start failure line");
    assert!(line.contains("a lottery among 2 agencies but SERVER_AGENCIES is 3"), "{line}");
    assert!(line.contains("to start a new lottery"), "{line}");
    assert!(again.wait_for(&["accept_connections"], Duration::ZERO).is_none(), "it never listened");
}
