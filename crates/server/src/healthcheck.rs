//! `server healthcheck`: is a central serving on this host?
//!
//! A `FROM scratch` image has no shell, curl or netcat, so the container's health check is
//! the server binary itself: it connects to the port its settings name, sends an `Echo` and
//! expects the same bytes back. Passing means the central accepts, reads, answers and writes;
//! a listening socket alone would not prove that. Under TLS the probe speaks TLS too, trusting
//! exactly the central's own certificate (`SERVER_TLS_CERT`): it checks itself.
//!
//! With the HTTP listener on (`SERVER_HTTP_PORT`), the probe asks `GET /readyz` instead:
//! ready means the store answers too (the journal writable, the database reachable), which an
//! echo never touches.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpStream, ToSocketAddrs},
    time::Duration,
};

use protocol::{Connection, Request, Response};
use security::{tls, Stream};

use crate::Config;

/// What the probe sends; the central logs echoes at debug level only, so probes every few
/// seconds do not flood its log.
const PROBE: &[u8] = b"healthcheck";

/// Sends one `Echo` to the central that `config` describes, on this host, and checks the
/// answer. An empty or unspecified listen address is reached through loopback.
///
/// # Errors
/// A sentence for the operator: why the central is not healthy.
pub fn probe(config: &Config, timeout: Duration) -> Result<SocketAddr, String> {
    if config.http_port != 0 {
        return readiness(config, timeout);
    }
    let address = local_address(config, config.port)?;
    let stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    let stream = match &config.tls {
        Some((cert, _)) => {
            let pinned = tls::pinned_client_config(cert).map_err(|e| e.to_string())?;
            let name = tls::server_name(&address.to_string())?;
            Stream::connect_tls(stream, pinned, name).map_err(|e| format!("no TLS with {address}: {e}"))?
        }
        None => Stream::Plain(stream),
    };
    let mut connection = Connection::new(stream);
    match connection.call(&Request::Echo(PROBE.to_vec())) {
        Ok(Response::Echo(bytes)) if bytes == PROBE => Ok(address),
        Ok(other) => Err(format!("{address} answered {other:?} to an echo")),
        Err(e) => Err(format!("no echo from {address}: {e}")),
    }
}

/// The central's address on this host for `port`: an empty or unspecified listen address is
/// reached through loopback.
fn local_address(config: &Config, port: u16) -> Result<SocketAddr, String> {
    let host = match config.ip.as_str() {
        "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        ip => ip,
    };
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} names no address"))
}

/// `GET /readyz` on the HTTP listener: healthy only on a `200`.
fn readiness(config: &Config, timeout: Duration) -> Result<SocketAddr, String> {
    let address = local_address(config, config.http_port)?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("cannot ask {address}: {e}"))?;
    // A status line and a short body; more is not needed to decide, and not read.
    let mut answer = Vec::new();
    stream.take(4096).read_to_end(&mut answer).map_err(|e| format!("no answer from {address}: {e}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) == Some("200") {
        Ok(address)
    } else {
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
        Err(format!("http://{address}/readyz answered {status:?}: {body}"))
    }
}
