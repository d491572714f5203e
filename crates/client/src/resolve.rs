//! Name resolution with a deadline.
//!
//! `ToSocketAddrs` calls the system resolver (`getaddrinfo`), which blocks with no timeout of
//! ours: an agency cut off from its DNS server waited about ten seconds per lookup, outside
//! every timeout and retry budget it was given. Here a lookup of a name runs on a helper
//! thread and the caller waits for it at most its timeout.
//!
//! A lookup that misses its deadline cannot be cancelled (`getaddrinfo` has no cancel), so its
//! thread is left to finish on its own: it only ever sends one result into a channel nobody
//! reads any more, then ends, within the resolver's own timeout (`RES_OPTIONS`, a few seconds
//! per server). That is the one thread of the agency that is not joined, on purpose; at most
//! [`MAX_PENDING`] of them exist at once, so retries cannot pile them up. An address that is
//! already numeric (`127.0.0.1:12345`) needs no lookup and no thread.

use std::{
    io,
    net::{SocketAddr, ToSocketAddrs},
    sync::{
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

/// Most lookups left running past their deadline at once; past it a new lookup fails at
/// once, as the resolver is evidently not answering.
pub const MAX_PENDING: usize = 4;

/// Lookups running now, abandoned ones included.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// The addresses `address` (`host:port`) resolves to, waiting at most `timeout` for them.
///
/// # Errors
/// [`io::ErrorKind::TimedOut`] when the resolver does not answer in time (or too many earlier
/// lookups are still unanswered); the resolver's own error otherwise.
pub fn resolve(address: &str, timeout: Duration) -> io::Result<Vec<SocketAddr>> {
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let owned = address.to_owned();
    resolve_with(address, timeout, move || owned.to_socket_addrs().map(Iterator::collect))
}

/// [`resolve`] with the lookup given, so tests can use a resolver they control.
///
/// # Errors
/// As [`resolve`].
pub fn resolve_with(
    address: &str,
    timeout: Duration,
    lookup: impl FnOnce() -> io::Result<Vec<SocketAddr>> + Send + 'static,
) -> io::Result<Vec<SocketAddr>> {
    if RUNNING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("cannot resolve {address}: {MAX_PENDING} earlier lookups are still unanswered"),
        ));
    }
    let (send, receive) = mpsc::channel();
    let spawned = thread::Builder::new().name("resolve".into()).spawn(move || {
        // The receiver may be gone (the caller gave up): the result is then dropped.
        let _ = send.send(lookup());
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    });
    if let Err(e) = spawned {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        return Err(e);
    }
    // The handle is dropped, not joined: see the module's documentation.
    match receive.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("cannot resolve {address}: no answer from the resolver within {timeout:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::mpsc,
        time::{Duration, Instant},
    };

    use super::*;

    #[test]
    fn a_numeric_address_needs_no_lookup() {
        let addrs = resolve("127.0.0.1:9", Duration::from_millis(1)).unwrap();
        assert_eq!(addrs, ["127.0.0.1:9".parse::<SocketAddr>().unwrap()]);
    }

    #[test]
    fn an_answer_in_time_is_returned() {
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(
            resolve_with("central:7", Duration::from_secs(20), move || Ok(vec![addr])).unwrap(),
            [addr]
        );
        let err = resolve_with("central:7", Duration::from_secs(20), || {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such host"))
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_resolver_that_does_not_answer_is_given_up_at_the_timeout() {
        // The resolver answers only when the test lets it, long after the deadline.
        let (release, wait) = mpsc::channel::<()>();
        let (done, finished) = mpsc::channel();
        let start = Instant::now();
        let err = resolve_with("central:7", Duration::from_millis(200), move || {
            let _ = wait.recv();
            let _ = done.send(());
            Ok(Vec::new())
        })
        .unwrap_err();
        let took = start.elapsed();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("within 200ms"), "{err}");
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(10), "{took:?}");
        // The abandoned lookup still ends once its resolver answers.
        drop(release);
        finished.recv_timeout(Duration::from_secs(20)).unwrap();
    }
}
