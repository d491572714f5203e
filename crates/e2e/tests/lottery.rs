//! The whole lottery with real processes: a central on 127.0.0.1 and `client` binaries, each
//! result checked against the winning rule computed independently (`testkit::reference`).

mod common;

use std::time::Duration;

use common::{agency, assert_success, expected_rows, fields_of, Central, PATIENCE};
use protocol::{Connection, Request, Response};
use testkit::{datasets, reference};

#[test]
fn five_agencies_at_once_get_exact_counts_and_the_total() {
    let mut central = Central::start(5, &[]);
    let sizes = [2_700, 2_550, 1_600, 920, 99];
    let datasets: Vec<_> = sizes.iter().zip(1u64..).map(|(&n, seed)| datasets::generate(seed, n)).collect();
    let mut clients: Vec<_> = (1u32..)
        .zip(&datasets)
        .map(|(id, rows)| {
            let path = central.dataset(id, rows);
            agency(&central, id, &path, &[("CLI_BATCH_MAX_AMOUNT", "37")])
        })
        .collect();
    for client in &mut clients {
        assert_success(client);
    }

    let expected_total: usize = datasets.iter().map(|rows| reference::winners(rows).len()).sum();
    let mut expected_file = Vec::new();
    for ((id, rows), client) in (1u32..).zip(&datasets).zip(&clients) {
        let winners = reference::winners(rows).len();
        let summary = fields_of(client, &["action: agency_summary | result: success"]);
        assert_eq!(summary["agency"], id.to_string());
        assert_eq!(summary["bets"], rows.len().to_string(), "agency {id}");
        assert_eq!(summary["skipped"], "0");
        assert_eq!(summary["winners"], winners.to_string(), "agency {id}");
        assert_eq!(summary["winner_rate"], format!("{:.2}%", winners as f64 * 100.0 / rows.len() as f64));
        let total = fields_of(client, &["action: total_winners | result: success"]);
        assert_eq!(total["winners"], expected_total.to_string(), "agency {id}");
        let tally = central.tally(id);
        assert_eq!((tally.bets, tally.winners, tally.done), (rows.len() as u64, winners as u64, true));
        expected_file.extend(expected_rows(id, rows));
    }
    expected_file.sort();
    assert_eq!(central.sorted_winner_rows(), expected_file);
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn a_query_while_an_agency_is_still_loading_gets_pending_with_the_count() {
    let mut central = Central::start(3, &[]);
    let first_rows = datasets::generate(11, 300);
    let first = agency(&central, 1, &central.dataset(1, &first_rows), &[]);
    let line =
        first.wait_for(&["action: total_winners | result: in_progress", "agencies_pending: 2"], PATIENCE);
    assert!(line.is_some(), "agency 1 is told two agencies are pending:\n{}", first.transcript());

    // Agency 2 starts loading: one batch in, not done. Agency 3 has not even connected.
    let mut second = Connection::new(std::net::TcpStream::connect(central.addr).unwrap());
    second.get_ref().set_read_timeout(Some(PATIENCE)).unwrap();
    let second_rows = datasets::generate(12, 40);
    let bets: protocol::WireBets = second_rows
        .iter()
        .map(|[f, l, d, b]| protocol::WireBet {
            first_name: f.clone(),
            last_name: l.clone(),
            document: d.clone(),
            birthdate: b.clone(),
        })
        .collect();
    assert!(matches!(
        second.call(&Request::BetBatch { agency: 2, sequence: 1, bets }),
        Ok(Response::BatchResult { .. })
    ));
    let mut asker = Connection::new(std::net::TcpStream::connect(central.addr).unwrap());
    assert_eq!(
        asker.call(&Request::WinnersQuery { agency: 2 }).unwrap(),
        Response::Pending { agencies_pending: 2 }
    );
    assert_eq!(second.call(&Request::AgencyDone { agency: 2, batches: 1 }).unwrap(), Response::Ack);
    assert_eq!(
        asker.call(&Request::WinnersQuery { agency: 2 }).unwrap(),
        Response::Pending { agencies_pending: 1 }
    );
    assert!(
        first
            .wait_for(&["action: total_winners | result: in_progress", "agencies_pending: 1"], PATIENCE)
            .is_some(),
        "agency 1 sees the count drop:\n{}",
        first.transcript()
    );

    // Agency 3 has an empty dataset: it still finishes, and the lottery with it.
    let mut third = agency(&central, 3, &central.dataset(3, &[]), &[]);
    assert_success(&mut third);
    let summary = fields_of(&third, &["action: agency_summary | result: success"]);
    assert_eq!((summary["bets"].as_str(), summary["winners"].as_str()), ("0", "0"));
    assert_eq!(summary["winner_rate"], "0.00%");

    let mut first = first;
    assert_success(&mut first);
    let expected = reference::winners(&first_rows).len() + reference::winners(&second_rows).len();
    for client in [&first, &third] {
        assert_eq!(
            fields_of(client, &["action: total_winners | result: success"])["winners"],
            expected.to_string()
        );
    }
    assert_eq!(
        asker.call(&Request::WinnersQuery { agency: 3 }).unwrap(),
        Response::Total { winners: expected as u64 }
    );
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn invalid_rows_are_skipped_logged_with_their_line_and_counted() {
    let mut central = Central::start(1, &[]);
    let path = central.dir.path().join("mixed.csv");
    let valid = datasets::generate(21, 60);
    let mut text = String::new();
    for (i, [f, l, d, b]) in valid.iter().enumerate() {
        text.push_str(&format!("{f},{l},{d},{b}\n"));
        if i == 1 {
            text.push_str("Ana,Díaz,12.345.678,2000-01-01\n"); // line 3
        }
        if i == 9 {
            text.push_str("Ana,Díaz,1234,2001-02-29\n"); // line 12
            text.push_str(",Díaz,1234,2001-02-28\n"); // line 13
            text.push_str("Ana,Díaz,1234\n"); // line 14
        }
    }
    std::fs::write(&path, text).unwrap();
    let mut client = agency(&central, 1, &path, &[]);
    assert_success(&mut client);
    let summary = fields_of(&client, &["action: agency_summary | result: success"]);
    assert_eq!(summary["bets"], "60");
    assert_eq!(summary["skipped"], "4");
    assert_eq!(summary["winners"], reference::winners(&valid).len().to_string());
    let shown = path.display().to_string();
    for (line, reason) in
        [(3, "document"), (12, "birthdate"), (13, "first_name is empty"), (14, "expected 4 fields")]
    {
        let needle = format!("{shown}:{line}: ");
        assert!(
            client.wait_for(&["action: read_bet | result: fail", &needle, reason], PATIENCE).is_some(),
            "{needle}"
        );
    }
    assert_eq!(central.sorted_winner_rows(), {
        let mut rows = expected_rows(1, &valid);
        rows.sort();
        rows
    });
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn a_single_bet_from_the_environment_is_checked_and_logged() {
    let mut central = Central::start(1, &[]);
    let nowhere = central.dir.path().join("unused.csv");
    for (first, last, document, birthdate, won) in [
        ("Kiara Valentina", "Basile", "32250087", "1987-05-17", true),
        ("Santiago Lionel", "Lorca", "30904465", "1999-03-17", false),
    ] {
        let mut client = agency(
            &central,
            1,
            &nowhere,
            &[("NOMBRE", first), ("APELLIDO", last), ("DOCUMENTO", document), ("NACIMIENTO", birthdate)],
        );
        assert_success(&mut client);
        let line = format!(
            "action: bet_checked | result: success | agency: 1 | document: {document} | winner: {won}"
        );
        assert!(client.wait_for(&[&line], Duration::ZERO).is_some(), "{}", client.transcript());
    }
    assert_eq!(central.sorted_winner_rows(), ["1,Kiara Valentina,Basile,32250087,1987-05-17"]);
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn an_invalid_single_bet_fails_with_its_reason() {
    let mut central = Central::start(1, &[]);
    let mut client = agency(
        &central,
        1,
        &central.dir.path().join("unused.csv"),
        &[("NOMBRE", "Ana"), ("APELLIDO", "Díaz"), ("DOCUMENTO", "30.904.465"), ("NACIMIENTO", "1999-03-17")],
    );
    assert_eq!(client.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1));
    assert!(client.wait_for(&["action: bet_checked | result: fail", "30.904.465"], Duration::ZERO).is_some());
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn an_unreachable_central_is_a_clear_error_and_exit_1() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dataset.csv");
    datasets::write(&data, &datasets::generate(3, 10)).unwrap();
    let mut client = testkit::process::LoggedChild::spawn(
        std::process::Command::new(testkit::central::binary("client"))
            .env_clear()
            .env("CLI_ID", "1")
            .env("CLI_SERVER_ADDRESS", format!("127.0.0.1:{port}"))
            .env("CLI_DATA_PATH", &data)
            .env("CLI_RETRY_INITIAL", "20ms")
            .env("CLI_RETRY_MAX", "100ms")
            .env("CLI_RETRY_TOTAL", "300ms"),
    );
    assert_eq!(client.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1));
    let line =
        client.wait_for(&["action: connect | result: fail"], Duration::ZERO).expect("a connect failure line");
    assert!(line.contains("gave up after 5 retries in "), "{line}");
    assert!(line.contains("(300ms of it waiting between them): cannot connect to the central"), "{line}");
    let retries = client.lines().iter().filter(|l| l.contains("action: retry | result: in_progress")).count();
    assert_eq!(retries, 5, "20 + 40 + 80 + 100 + 60 ms:\n{}", client.transcript());
    assert!(!client.transcript().contains("panicked"), "{}", client.transcript());
}

#[test]
fn a_missing_dataset_is_a_clear_error_and_exit_1() {
    let mut central = Central::start(1, &[]);
    let mut client = agency(&central, 1, &central.dir.path().join("absent.csv"), &[]);
    assert_eq!(client.wait_exit(PATIENCE).and_then(|s| s.code()), Some(1));
    assert!(client
        .wait_for(&["action: read_dataset | result: fail", "absent.csv"], Duration::ZERO)
        .is_some());
    // The central stops cleanly: SIGTERM, exit 0.
    central.stop();
}

#[test]
fn an_agency_uploads_and_asks_for_the_total_over_one_connection() {
    // Two agencies, the first done early: its total queries (held, then answered) go over
    // the connection its upload used, so each agency costs the central one connection (one
    // thread, one TLS handshake and one proof when those are on).
    let mut central = Central::start(2, &[]);
    let mut first = agency(&central, 1, &central.dataset(1, &datasets::generate(31, 500)), &[]);
    assert!(first.wait_for(&["action: total_winners | result: in_progress"], PATIENCE).is_some());
    let mut second = agency(&central, 2, &central.dataset(2, &datasets::generate(32, 300)), &[]);
    assert_success(&mut first);
    assert_success(&mut second);
    for client in [&first, &second] {
        let closes = client.lines().iter().filter(|l| l.contains("action: close_connection")).count();
        assert_eq!(closes, 1, "one connection, closed once:\n{}", client.transcript());
    }
    central.stop();
    let served = central
        .process
        .lines()
        .iter()
        .filter(|l| l.contains("action: close_connection") && l.contains("reason: closed by peer"))
        .count();
    assert_eq!(served, 2, "the central served two connections:\n{}", central.process.transcript());
}
