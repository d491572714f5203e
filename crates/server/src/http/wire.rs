//! HTTP/1.1 on one connection, as much as a read-only listener needs: one request head read
//! (bounded in size and time), one answer written with `Connection: close`, then the
//! connection ends. No body is read: every path is a `GET`.

use std::{
    io::{self, Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

/// Longest request head taken: a browser's is well under 2 KiB.
const MAX_HEAD: usize = 8 * 1024;

/// How long a client has to send its request head, and each write of the answer may take: a
/// silent or slow client holds one of the few connection slots for at most this long.
pub(super) const PATIENCE: Duration = Duration::from_secs(5);

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Asked {
    /// `GET`, `HEAD`, ...
    pub(super) method: String,
    /// The request target, query included.
    pub(super) target: String,
    /// Whether the `Accept` header asks for OpenMetrics (Prometheus does).
    pub(super) openmetrics: bool,
}

/// An answer.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) content_type: &'static str,
    pub(super) body: String,
}

/// Reads one request head; `Ok(None)` when the client closed first, an error on a timeout, a
/// head too long or not HTTP.
pub(super) fn read_request(stream: &mut TcpStream) -> io::Result<Option<Asked>> {
    let deadline = Instant::now() + PATIENCE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too long"));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request head too slow"));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk)? {
            0 if head.is_empty() => return Ok(None),
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    parse(&head).map(Some).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an HTTP request"))
}

fn parse(head: &[u8]) -> Option<Asked> {
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, target, version) = (request_line.next()?, request_line.next()?, request_line.next()?);
    if !version.starts_with("HTTP/1.") || request_line.next().is_some() {
        return None;
    }
    let openmetrics = lines.filter_map(|line| line.split_once(':')).any(|(name, value)| {
        name.trim().eq_ignore_ascii_case("accept") && value.contains("application/openmetrics-text")
    });
    Some(Asked { method: method.to_owned(), target: target.to_owned(), openmetrics })
}

/// Writes `answer` (its head only for `HEAD`), each write within [`PATIENCE`].
pub(super) fn write_answer(stream: &mut TcpStream, answer: &Answer, head_only: bool) -> io::Result<()> {
    stream.set_write_timeout(Some(PATIENCE))?;
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        answer.status,
        reason(answer.status),
        answer.content_type,
        answer.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(answer.body.as_bytes())?;
    }
    stream.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_says_its_method_target_and_whether_it_wants_openmetrics() {
        let head = b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nACCEPT: application/openmetrics-text;version=1.0.0\r\n\r\n";
        assert_eq!(
            parse(head),
            Some(Asked { method: "GET".into(), target: "/metrics?x=1".into(), openmetrics: true })
        );
        assert_eq!(parse(b"GET / HTTP/1.0\r\n\r\n").map(|a| a.openmetrics), Some(false));
        for bad in
            [&b"GET /\r\n\r\n"[..], b"GET / SMTP/1.0\r\n\r\n", b"\xff\r\n\r\n", b"GET / HTTP/1.1 x\r\n\r\n"]
        {
            assert_eq!(parse(bad), None);
        }
    }
}
