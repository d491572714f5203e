//! `server healthcheck`, the container's health check, against a real central.

mod common;

use std::process::Command;

use common::Central;

fn healthcheck(port: u16) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_server"))
        .arg("healthcheck")
        .env_clear()
        .env("SERVER_PORT", port.to_string())
        .output()
        .expect("run server healthcheck");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned())
}

#[test]
fn a_serving_central_is_healthy() {
    let central = Central::start(&[]);
    let (healthy, out) = healthcheck(central.addr.port());
    assert!(healthy, "{out}");
    assert!(out.contains("action: healthcheck | result: success"), "{out}");
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
