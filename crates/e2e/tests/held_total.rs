//! A total query the central may hold (`Request::AwaitWinners`), with a real central: the
//! total arrives the moment the last agency is done, a hold with nothing to report ends with
//! the partial answer, the stop answers every held query at once, and an agency that asks
//! every 30 s still learns the total as soon as there is one.

mod common;

use std::{
    thread,
    time::{Duration, Instant},
};

use common::{agency, assert_success, call, fields_of, losing_bet, winning_bet, Central, PATIENCE};
use protocol::{Request, Response};
use testkit::datasets;

/// Far longer than any test here waits: an answer that comes sooner was not the hold's end.
const LONG_HOLD_MS: u32 = 20_000;

#[test]
fn a_held_query_is_answered_the_moment_the_last_agency_is_done() {
    let mut central = Central::start(2, &[]);
    let mut first = central.connect();
    let bets = vec![winning_bet(), losing_bet(), winning_bet()];
    assert!(matches!(
        call(&mut first, Request::BetBatch { agency: 1, sequence: 1, bets: bets.into() }),
        Response::BatchResult { .. }
    ));
    assert_eq!(call(&mut first, Request::AgencyDone { agency: 1, batches: 1 }), Response::Ack);

    let mut asker = central.connect();
    // Taken here, not in the thread, which a busy machine may start late: the 300 ms below
    // are counted from the same instant.
    let asked = Instant::now();
    let held = thread::spawn(move || {
        let answer = call(&mut asker, Request::AwaitWinners { agency: 1, hold_ms: LONG_HOLD_MS });
        (answer, Instant::now(), asked)
    });
    thread::sleep(Duration::from_millis(300));
    let mut second = central.connect();
    assert_eq!(call(&mut second, Request::AgencyDone { agency: 2, batches: 0 }), Response::Ack);
    let done_at = Instant::now();
    let (answer, answered_at, asked) = held.join().expect("the asking thread");
    assert_eq!(answer, Response::Total { winners: 2 });
    assert!(
        answered_at.duration_since(asked) >= Duration::from_millis(300),
        "held while agency 2 was loading, not answered pending at once"
    );
    assert!(
        answered_at.saturating_duration_since(done_at) < Duration::from_secs(2),
        "answered when the lottery completed, not at the end of a {LONG_HOLD_MS} ms hold: {:?}",
        answered_at.duration_since(asked)
    );
    central.stop();
}

#[test]
fn a_hold_with_nothing_to_report_ends_with_the_partial_answer() {
    let mut central = Central::start(3, &[]);
    let mut asker = central.connect();
    let asked = Instant::now();
    assert_eq!(
        call(&mut asker, Request::AwaitWinners { agency: 1, hold_ms: 400 }),
        Response::Pending { agencies_pending: 3 }
    );
    let took = asked.elapsed();
    assert!(took >= Duration::from_millis(400), "held for its 400 ms: {took:?}");
    assert!(took < Duration::from_secs(5), "and not much longer: {took:?}");
    // No hold: the course's query, answered at once.
    let asked = Instant::now();
    assert_eq!(
        call(&mut asker, Request::AwaitWinners { agency: 1, hold_ms: 0 }),
        Response::Pending { agencies_pending: 3 }
    );
    assert!(asked.elapsed() < Duration::from_millis(300));
    central.stop();
}

#[test]
fn what_was_asked_before_a_held_query_is_answered_before_its_hold() {
    // One write, as an agency pipelines: the echo's answer could be held to leave with the
    // next one, but the next one may wait seconds, so it goes out first.
    let mut central = Central::start(2, &[]);
    let mut asker = central.connect();
    let asked = Instant::now();
    asker
        .write_messages(&[
            Request::Echo(b"first".to_vec()),
            Request::AwaitWinners { agency: 1, hold_ms: 3_000 },
        ])
        .expect("the requests");
    assert_eq!(asker.read_message::<Response>().expect("an answer"), Some(Response::Echo(b"first".to_vec())));
    let took = asked.elapsed();
    assert!(took < Duration::from_millis(1_500), "answered before the 3 s hold, not after it: {took:?}");
    assert_eq!(
        asker.read_message::<Response>().expect("an answer"),
        Some(Response::Pending { agencies_pending: 2 })
    );
    assert!(asked.elapsed() >= Duration::from_millis(3_000), "the query was held");
    central.stop();
}

#[test]
fn the_stop_answers_every_held_query_within_its_second() {
    let mut central = Central::start(2, &[]);
    let holders: Vec<_> = (0..4)
        .map(|i| {
            let mut conn = central.connect();
            conn.write_message(&Request::AwaitWinners { agency: 1 + i % 2, hold_ms: LONG_HOLD_MS })
                .expect("send the query");
            conn
        })
        .collect();
    // Let every query reach its hold.
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    central.process.sigterm();
    let status = central.process.wait_exit(PATIENCE).expect("the central exits");
    let took = started.elapsed();
    assert!(status.success(), "{status:?}\n{}", central.process.transcript());
    assert!(took < Duration::from_secs(1), "stopping took {took:?}\n{}", central.process.transcript());
    for mut conn in holders {
        assert_eq!(
            conn.read_message::<Response>().expect("an answer, not a broken stream"),
            Some(Response::Pending { agencies_pending: 2 }),
            "a held query is answered with what is known when the stop begins"
        );
    }
}

#[test]
fn an_agency_asking_every_30_s_learns_the_total_as_soon_as_there_is_one() {
    let mut central = Central::start(2, &[]);
    let rows = datasets::generate(21, 300);
    let mut first = agency(&central, 1, &central.dataset(1, &rows), &[("CLI_WINNERS_RETRY_PERIOD", "30s")]);
    first
        .wait_for(&["action: agency_summary | result: success"], PATIENCE)
        .unwrap_or_else(|| panic!("agency 1 uploads:\n{}", first.transcript()));
    // Agency 1 now waits on its first query; agency 2 comes later and finishes.
    thread::sleep(Duration::from_millis(300));
    let second_started = Instant::now();
    let mut second = agency(&central, 2, &central.dataset(2, &datasets::generate(22, 100)), &[]);
    assert_success(&mut second);
    assert_success(&mut first);
    let took = second_started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "agency 1 got the total with agency 2's end, not 30 s after asking: {took:?}\n{}",
        first.transcript()
    );
    let total = fields_of(&first, &["action: total_winners | result: success"]);
    let from_second = fields_of(&second, &["action: total_winners | result: success"]);
    assert_eq!(total["winners"], from_second["winners"]);
    assert!(
        first.wait_for(&["action: total_winners | result: in_progress"], Duration::ZERO).is_none(),
        "no partial answer: the lottery completed within agency 1's first hold\n{}",
        first.transcript()
    );
    central.stop();
}
