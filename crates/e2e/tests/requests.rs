//! The central's answers to each request, and its refusals, on the real binary over TCP.

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use common::{call, losing_bet, winning_bet, wire, Central, PATIENCE};
use protocol::{Connection, ErrorKind, Request, Response};

fn refusal_kind(response: Response) -> ErrorKind {
    match response {
        Response::Error { kind, .. } => kind,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn echo_answers_the_very_bytes_it_was_sent() {
    let central = Central::start(2, &[]);
    let mut raw = central.raw();
    // Echo("hola"): length 16, variant 0, length-prefixed bytes.
    let frame = [0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, b'h', b'o', b'l', b'a'];
    raw.write_all(&frame).unwrap();
    let mut answer = [0u8; 20];
    raw.read_exact(&mut answer).unwrap();
    assert_eq!(answer, frame);
}

#[test]
fn a_full_lottery_between_two_agencies() {
    let central = Central::start(2, &[]);
    let mut one = central.connect();
    let mut two = central.connect();
    assert_eq!(
        call(&mut one, Request::WinnersQuery { agency: 1 }),
        Response::Pending { agencies_pending: 2 }
    );
    let batch = vec![losing_bet(), winning_bet(), losing_bet(), winning_bet()];
    assert_eq!(
        call(&mut one, Request::BetBatch { agency: 1, sequence: 1, bets: batch.into() }),
        Response::BatchResult { sequence: 1, winners: vec![1, 3] }
    );
    assert_eq!(
        call(&mut one, Request::BetBatch { agency: 1, sequence: 2, bets: vec![winning_bet()].into() }),
        Response::BatchResult { sequence: 2, winners: vec![0] }
    );
    assert_eq!(call(&mut one, Request::AgencyDone { agency: 1, batches: 2 }), Response::Ack);
    assert_eq!(
        call(&mut one, Request::WinnersQuery { agency: 1 }),
        Response::Pending { agencies_pending: 1 }
    );
    assert_eq!(call(&mut two, Request::AgencyDone { agency: 2, batches: 0 }), Response::Ack);
    assert_eq!(call(&mut one, Request::WinnersQuery { agency: 1 }), Response::Total { winners: 3 });
    assert_eq!(call(&mut two, Request::WinnersQuery { agency: 2 }), Response::Total { winners: 3 });
    assert_eq!(central.winner_rows(), vec!["1,Kiara Valentina,Basile,32250087,1987-05-17"; 3]);
    assert!(central
        .process
        .wait_for(&["action: lottery_complete | result: success | winners: 3"], PATIENCE)
        .is_some());
}

#[test]
fn an_invalid_bet_refuses_the_whole_batch_and_stores_nothing() {
    let central = Central::start(2, &[]);
    let mut conn = central.connect();
    let bets = vec![winning_bet(), wire("Ana", "Díaz", "12.345.678", "2000-01-01")];
    let Response::Error { kind, message } =
        call(&mut conn, Request::BetBatch { agency: 1, sequence: 1, bets: bets.into() })
    else {
        panic!("expected a refusal")
    };
    assert_eq!(kind, ErrorKind::InvalidBet);
    assert!(message.contains("bet 2") && message.contains("12.345.678"), "{message}");
    for bad_date in ["2001-02-29", "29/02/2000"] {
        let bets = vec![wire("Ana", "Díaz", "1", bad_date)];
        let response = call(&mut conn, Request::BetBatch { agency: 1, sequence: 1, bets: bets.into() });
        assert_eq!(refusal_kind(response), ErrorKind::InvalidBet);
    }
    // The refused batches did not count: batch 1 is still the next one, and nothing was written.
    assert_eq!(
        call(&mut conn, Request::BetBatch { agency: 1, sequence: 1, bets: vec![losing_bet()].into() }),
        Response::BatchResult { sequence: 1, winners: vec![] }
    );
    assert!(central.winner_rows().is_empty());
}

#[test]
fn unknown_agencies_out_of_order_batches_and_finished_agencies_are_refused() {
    let central = Central::start(2, &[]);
    let mut conn = central.connect();
    for agency in [0, 3] {
        let response =
            call(&mut conn, Request::BetBatch { agency, sequence: 1, bets: vec![losing_bet()].into() });
        assert_eq!(refusal_kind(response), ErrorKind::UnknownAgency, "agency {agency}");
        assert_eq!(refusal_kind(call(&mut conn, Request::WinnersQuery { agency })), ErrorKind::UnknownAgency);
    }
    let response =
        call(&mut conn, Request::BetBatch { agency: 1, sequence: 2, bets: vec![losing_bet()].into() });
    assert_eq!(refusal_kind(response), ErrorKind::OutOfSequence);
    assert_eq!(
        refusal_kind(call(&mut conn, Request::AgencyDone { agency: 1, batches: 1 })),
        ErrorKind::OutOfSequence
    );
    assert_eq!(call(&mut conn, Request::AgencyDone { agency: 1, batches: 0 }), Response::Ack);
    let response =
        call(&mut conn, Request::BetBatch { agency: 1, sequence: 1, bets: vec![losing_bet()].into() });
    assert_eq!(refusal_kind(response), ErrorKind::AgencyFinished);
    assert_eq!(
        refusal_kind(call(&mut conn, Request::AgencyDone { agency: 1, batches: 0 })),
        ErrorKind::AgencyFinished
    );
}

#[test]
fn a_malformed_frame_is_answered_and_the_connection_goes_on() {
    let central = Central::start(2, &[]);
    let mut raw = central.raw();
    // A whole frame whose payload names no message (variant 99), then an empty frame.
    raw.write_all(&[0, 0, 0, 4, 0, 0, 0, 99, 0, 0, 0, 0]).unwrap();
    let mut conn = Connection::new(raw);
    assert_eq!(refusal_kind(conn.read_message().unwrap().unwrap()), ErrorKind::Malformed);
    assert_eq!(refusal_kind(conn.read_message().unwrap().unwrap()), ErrorKind::Malformed);
    assert_eq!(
        call(&mut conn, Request::Echo(b"still here".to_vec())),
        Response::Echo(b"still here".to_vec())
    );
}

#[test]
fn an_oversized_frame_is_refused_then_the_connection_closed() {
    let central = Central::start(2, &[("SERVER_MAX_FRAME_BYTES", "1024")]);
    for prefix in [[0, 0, 4, 1], [0xff, 0xff, 0xff, 0xff]] {
        let mut raw = central.raw();
        raw.write_all(&prefix).unwrap();
        let mut conn = Connection::new(raw);
        assert_eq!(refusal_kind(conn.read_message().unwrap().unwrap()), ErrorKind::FrameTooLarge);
        assert_eq!(conn.read_message::<Response>().unwrap(), None);
    }
    let mut conn = central.connect();
    assert_eq!(call(&mut conn, Request::Echo(vec![9])), Response::Echo(vec![9]));
}

#[test]
fn bare_connect_and_close_is_harmless_and_quiet() {
    let central = Central::start(2, &[]);
    for _ in 0..200 {
        drop(TcpStream::connect(central.addr).unwrap());
    }
    let mut conn = central.connect();
    assert_eq!(call(&mut conn, Request::Echo(vec![1, 2])), Response::Echo(vec![1, 2]));
    // At the default level the probes left no line: only the start-up lines are there.
    let lines = central.process.lines();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0].contains("action: config")
            && lines[1].contains("action: security | result: warning | mode: open")
            && lines[2].contains("action: store_open | result: success | mode: new")
            && lines[3].contains("action: accept_connections"),
        "{lines:#?}"
    );
}

#[test]
fn past_the_connection_cap_a_newcomer_is_told_busy() {
    let central = Central::start(2, &[("SERVER_MAX_CONNECTIONS", "4")]);
    let mut held: Vec<_> = (0..4).map(|_| central.connect()).collect();
    for conn in &mut held {
        assert_eq!(call(conn, Request::Echo(vec![0])), Response::Echo(vec![0]));
    }
    let mut extra = central.connect();
    assert_eq!(refusal_kind(extra.read_message().unwrap().unwrap()), ErrorKind::Busy);
    assert_eq!(extra.read_message::<Response>().unwrap(), None);
    // Closing one frees a slot once its thread sees the close.
    drop(held.pop());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut conn = central.connect();
        match conn.call(&Request::Echo(vec![5])) {
            Ok(Response::Echo(bytes)) => {
                assert_eq!(bytes, [5]);
                break;
            }
            Ok(Response::Error { kind: ErrorKind::Busy, .. }) | Err(_) if Instant::now() < deadline => {}
            other => panic!("no slot freed: {other:?}"),
        }
    }
}

#[test]
fn an_idle_connection_is_closed_after_the_timeout() {
    let central = Central::start(2, &[("SERVER_IDLE_TIMEOUT_SECS", "1")]);
    let mut raw = central.raw();
    let started = Instant::now();
    let mut buf = [0u8; 1];
    assert_eq!(raw.read(&mut buf).unwrap(), 0);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(10), "{waited:?}");
    assert!(central.process.wait_for(&["action: idle_timeout"], PATIENCE).is_some());
}

#[test]
fn a_peer_vanishing_mid_frame_does_not_disturb_another() {
    let central = Central::start(2, &[]);
    let mut honest = central.connect();
    assert_eq!(
        call(&mut honest, Request::BetBatch { agency: 1, sequence: 1, bets: vec![winning_bet()].into() }),
        Response::BatchResult { sequence: 1, winners: vec![0] }
    );
    {
        let mut rogue = central.raw();
        rogue.write_all(&[0, 0, 1, 0, 0, 0, 0, 1, 0xde, 0xad]).unwrap();
    }
    assert!(central
        .process
        .wait_for(&["action: read_request | result: fail", "mid-frame"], PATIENCE)
        .is_some());
    assert_eq!(
        call(&mut honest, Request::BetBatch { agency: 1, sequence: 2, bets: vec![winning_bet()].into() }),
        Response::BatchResult { sequence: 2, winners: vec![0] }
    );
    assert_eq!(call(&mut honest, Request::AgencyDone { agency: 1, batches: 2 }), Response::Ack);
    assert_eq!(central.winner_rows().len(), 2);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let central = Central::start(2, &[]);
    let mut conn = central.connect();
    // Sent without waiting: batches (held for a shared sync) with an echo (answered at once)
    // among them, then a replay of batch 1 and the done.
    let mut requests: Vec<Request> = (1..=6)
        .map(|sequence| Request::BetBatch {
            agency: 1,
            sequence,
            bets: vec![losing_bet(), winning_bet()].into(),
        })
        .collect();
    requests.insert(3, Request::Echo(b"between".to_vec()));
    requests.push(Request::BetBatch {
        agency: 1,
        sequence: 1,
        bets: vec![losing_bet(), winning_bet()].into(),
    });
    requests.push(Request::AgencyDone { agency: 1, batches: 6 });
    for request in &requests {
        conn.write_message(request).unwrap();
    }
    let mut expected: Vec<Response> =
        (1..=6).map(|sequence| Response::BatchResult { sequence, winners: vec![1] }).collect();
    expected.insert(3, Response::Echo(b"between".to_vec()));
    expected.push(Response::BatchResult { sequence: 1, winners: vec![1] });
    expected.push(Response::Ack);
    for want in expected {
        assert_eq!(conn.read_message::<Response>().unwrap(), Some(want));
    }
    assert_eq!(central.winner_rows().len(), 6);
}

#[test]
fn a_slow_batchs_answer_goes_out_as_the_next_batch_is_checked_not_after_it() {
    // 10 bets at 50 ms: each batch's check takes 500 ms. Two sent at once: the first answer
    // goes out within the second batch's first check (its sync and write overlap it), so at
    // about 500 ms; held through the second check it would come after 1 s.
    let central = Central::start(1, &[("SERVER_WINNER_DELAY_MS", "50")]);
    let mut conn = central.connect();
    let mut first = vec![losing_bet(); 10];
    first[4] = winning_bet();
    let sent = Instant::now();
    conn.write_message(&Request::BetBatch { agency: 1, sequence: 1, bets: first.into() }).unwrap();
    conn.write_message(&Request::BetBatch { agency: 1, sequence: 2, bets: vec![losing_bet(); 10].into() })
        .unwrap();
    assert_eq!(
        conn.read_message::<Response>().unwrap(),
        Some(Response::BatchResult { sequence: 1, winners: vec![4] })
    );
    let first_at = sent.elapsed();
    assert_eq!(
        conn.read_message::<Response>().unwrap(),
        Some(Response::BatchResult { sequence: 2, winners: vec![] })
    );
    let second_at = sent.elapsed();
    assert!(first_at >= Duration::from_millis(500), "after its own check: {first_at:?}");
    assert!(first_at < Duration::from_millis(900), "not held through the next check: {first_at:?}");
    // The two checks back to back: the first batch's sync and answer took none of the second's
    // time beyond its own 500 ms.
    assert!(second_at >= Duration::from_millis(1_000), "{second_at:?}");
    assert!(second_at < Duration::from_millis(1_400), "{second_at:?}");
    assert_eq!(central.tally(1).bets, 20);
}

#[test]
fn the_pending_count_is_logged_at_info_only_when_it_changes() {
    let central = Central::start(2, &[]);
    let mut one = central.connect();
    for _ in 0..3 {
        assert_eq!(
            call(&mut one, Request::WinnersQuery { agency: 1 }),
            Response::Pending { agencies_pending: 2 }
        );
    }
    assert_eq!(call(&mut one, Request::AgencyDone { agency: 1, batches: 0 }), Response::Ack);
    for _ in 0..2 {
        assert_eq!(
            call(&mut one, Request::WinnersQuery { agency: 1 }),
            Response::Pending { agencies_pending: 1 }
        );
    }
    let changed = "INFO     action: winners_query | result: in_progress | agency: 1 | agencies_pending: 1";
    central.process.wait_for(&[changed], PATIENCE).expect("the change is logged at INFO");
    let info: Vec<_> = central
        .process
        .lines()
        .into_iter()
        .filter(|l| l.contains("INFO     action: winners_query | result: in_progress"))
        .collect();
    assert_eq!(info.len(), 2, "one INFO line per count, not per query: {info:#?}");
}
