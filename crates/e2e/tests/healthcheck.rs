//! `server healthcheck`, the container's health check, against a real central.

mod common;

use std::process::Command;

use common::Central;

fn healthcheck(port: u16) -> (bool, String) {
    let output = Command::new(testkit::central::binary("server"))
        .arg("healthcheck")
        .env_clear()
        .env("SERVER_PORT", port.to_string())
        .output()
        .expect("run server healthcheck");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_serving_central_is_healthy() {
    let central = Central::start(2, &[]);
    let (healthy, out) = healthcheck(central.addr.port());
    assert!(healthy, "{out}");
    assert!(out.contains("action: healthcheck | result: success"), "{out}");
}

#[test]
fn probes_leave_no_line_at_the_default_level() {
    // Docker probes every 2 s for the central's whole life: that must not fill its log.
    let central = Central::start(2, &[]);
    for _ in 0..5 {
        assert!(healthcheck(central.addr.port()).0);
    }
    // A real agency's connection is still logged, and after the probes' closes would be.
    let mut conn = central.connect();
    conn.write_message(&protocol::Request::WinnersQuery { agency: 1 }).unwrap();
    let _ = conn.read_message::<protocol::Response>().unwrap();
    drop(conn);
    central.process.wait_for(&["action: close_connection"], common::PATIENCE).expect("the close is logged");
    let lines = central.process.lines();
    let closes: Vec<&String> = lines.iter().filter(|l| l.contains("action: close_connection")).collect();
    assert_eq!(closes.len(), 1, "{lines:#?}");
    assert!(closes[0].contains("requests: 1 | reason: closed by peer"), "{lines:#?}");
    assert!(!lines.iter().any(|l| l.contains("action: echo")), "{lines:#?}");
}

#[test]
fn a_port_nobody_serves_is_unhealthy_with_a_reason() {
    // Bind and drop a listener: its port is then closed on loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (healthy, out) = healthcheck(port);
    assert!(!healthy, "{out}");
    assert!(out.contains("action: healthcheck | result: fail | error: cannot connect"), "{out}");
}

#[test]
fn a_listener_that_never_answers_is_unhealthy() {
    // Accepts (the kernel does) but never replies: the probe must give up, not hang.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (healthy, out) = healthcheck(listener.local_addr().unwrap().port());
    assert!(!healthy, "{out}");
    assert!(out.contains("no echo"), "{out}");
}
