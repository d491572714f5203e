//! A national lottery on one central: a thousand agencies started at once, every one exact.
//!
//! Agencies done with their upload keep their connection to wait for the total; with fewer
//! slots than agencies they used to fill every slot and keep the rest out for good. Here a
//! full table evicts a waiting connection (`net/connections.rs`), so every lottery the
//! settings accept completes: at the default cap, below it, and across a restart.
//!
//! Run alone, build the binaries first: `cargo build --bins`.

mod common;

use std::time::{Duration, Instant};

use common::{assert_success, expected_rows, fields_of, retrying_agency, Central};
use testkit::{
    datasets,
    process::LoggedChild,
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
