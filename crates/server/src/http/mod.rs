//! The read-only HTTP listener (`SERVER_HTTP_PORT`): what an operator and Prometheus see of a
//! central. Another entry layer beside `net`, on its own port; it calls down into the lottery
//! (status, readiness) and reads the metrics, and nothing calls into it but the accept loop,
//! which starts it and stops it.
//!
//! - `GET /metrics`: the Prometheus text format (`crate::metrics`);
//! - `GET /healthz`: 200 while the central serves;
//! - `GET /readyz`: 200 when the store answers within a second, else 503;
//! - `GET /status.json`: the draw and every agency's counts;
//! - `GET /`: the status page (`page.html`), which fetches `/status.json` every second.
//!
//! Nothing served changes anything, and nothing served names a person: agency numbers and
//! counts only. One thread of ours accepts, and each connection is answered on a thread of its
//! own ([`MAX_CONNECTIONS`] at most, each with read and write timeouts: `wire.rs`), one
//! request and `Connection: close`; the stop cuts every open connection and joins every
//! thread, so nothing of the listener outlives the central.

mod routes;
mod wire;

use std::{
    collections::HashMap,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use socket2::SockRef;

pub use routes::Observed;

/// Most HTTP connections answered at once: Prometheus and a few open status pages need far
/// fewer; one past them is closed at once (the page and Prometheus try again within seconds).
pub const MAX_CONNECTIONS: usize = 8;

/// A bound listener, not yet answering.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
}

/// A running listener: [`Running::stop`] ends it.
#[derive(Debug)]
pub struct Running {
    listener: Arc<TcpListener>,
    stopping: Arc<AtomicBool>,
    /// The accept loop's; it returns how many connection threads panicked.
    thread: JoinHandle<usize>,
    addr: SocketAddr,
}

/// The connections being answered, by number: what the stop cuts.
type Open = Mutex<HashMap<u64, TcpStream>>;

impl Bound {
    /// Binds `addr` (port 0: a free one), so a taken port stops the central at start.
    ///
    /// # Errors
    /// When the address cannot be bound.
    pub fn bind(addr: SocketAddr) -> std::io::Result<Bound> {
        Ok(Bound { listener: TcpListener::bind(addr)? })
    }

    /// The address bound.
    ///
    /// # Errors
    /// When the socket cannot report it.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Starts answering requests with what `observed` shows.
    ///
    /// # Errors
    /// When the thread cannot start.
    pub fn start(self, observed: Observed) -> std::io::Result<Running> {
        let addr = self.listener.local_addr()?;
        let listener = Arc::new(self.listener);
        let stopping = Arc::new(AtomicBool::new(false));
        let (accepting, stop) = (Arc::clone(&listener), Arc::clone(&stopping));
        let observed = Arc::new(observed);
        let thread = thread::Builder::new()
            .name("http".to_owned())
            .spawn(move || accept_loop(&accepting, &stop, &observed))?;
        log::info!("action: http_listen | result: success | address: {addr}");
        Ok(Running { listener, stopping, thread, addr })
    }
}

impl Running {
    /// Stops accepting, cuts every open connection and joins every thread; a request being
    /// answered finishes first (a readiness probe takes at most about a second).
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Shutting a listening socket down makes the accept blocked on it return (Linux).
        let _ = SockRef::from(&*self.listener).shutdown(Shutdown::Both);
        match self.thread.join() {
            Ok(0) => log::info!("action: http_stop | result: success | address: {}", self.addr),
            Ok(panicked) => {
                log::error!(
                    "action: http_stop | result: fail | error: {panicked} HTTP connection thread(s) panicked"
                );
            }
            Err(_) => {
                log::error!("action: http_stop | result: fail | error: the HTTP accept thread panicked")
            }
        }
    }
}

/// Accepts until the stop, then cuts the open connections and joins their threads; returns
/// how many of them panicked.
fn accept_loop(listener: &TcpListener, stopping: &AtomicBool, observed: &Arc<Observed>) -> usize {
    let open: Arc<Open> = Arc::default();
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut next = 0u64;
    let mut panicked = 0;
    loop {
        let accepted = listener.accept();
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        panicked += join_finished(&mut workers);
        match accepted {
            Ok((stream, _)) if workers.len() >= MAX_CONNECTIONS => drop(stream),
            Ok((stream, peer)) => {
                next += 1;
                if let Some(worker) = spawn_connection(stream, peer, next, &open, observed) {
                    workers.push(worker);
                }
            }
            Err(e) => {
                runtime::throttled!(
                    crate::lottery::WARNINGS,
                    "http_accept",
                    log::Level::Warn,
                    "action: http_accept | result: fail | error: {e}"
                );
                // Out of descriptors, say: it clears only as connections close.
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // A client that sent nothing is waiting in a read: cut, it returns at once.
    for stream in lock(&open).values() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    panicked + workers.into_iter().map(JoinHandle::join).filter(Result::is_err).count()
}

/// Registers `stream` as open number `id` and answers it on a thread of its own.
fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    open: &Arc<Open>,
    observed: &Arc<Observed>,
) -> Option<JoinHandle<()>> {
    let registered = stream.try_clone().ok()?;
    lock(open).insert(id, registered);
    let (open_here, observed) = (Arc::clone(open), Arc::clone(observed));
    let spawned = thread::Builder::new().name("http-conn".to_owned()).spawn(move || {
        answer_one(stream, peer, &observed);
        lock(&open_here).remove(&id);
    });
    match spawned {
        Ok(worker) => Some(worker),
        Err(e) => {
            lock(open).remove(&id);
            log::warn!("action: http_connection | result: fail | peer: {peer} | error: {e}");
            None
        }
    }
}

/// One request, one answer; a client that went away or stalled is not worth more than a
/// debug line.
fn answer_one(mut stream: TcpStream, peer: SocketAddr, observed: &Observed) {
    let asked = match wire::read_request(&mut stream) {
        Ok(Some(asked)) => asked,
        Ok(None) => return,
        Err(e) => {
            log::debug!("action: http_request | result: fail | peer: {peer} | error: {e}");
            let bad =
                wire::Answer { status: 400, content_type: "text/plain", body: "bad request\n".to_owned() };
            let _ = wire::write_answer(&mut stream, &bad, false);
            return;
        }
    };
    let answer = routes::answer(&asked, observed);
    if let Err(e) = wire::write_answer(&mut stream, &answer, asked.method == "HEAD") {
        log::debug!("action: http_request | result: fail | peer: {peer} | error: {e}");
    }
}

/// Joins the threads that have ended; returns how many of them panicked.
fn join_finished(workers: &mut Vec<JoinHandle<()>>) -> usize {
    let (done, running): (Vec<_>, Vec<_>) = workers.drain(..).partition(JoinHandle::is_finished);
    *workers = running;
    done.into_iter().map(JoinHandle::join).filter(Result::is_err).count()
}

/// The open connections; a panic elsewhere leaves the map whole (an insert or a remove).
fn lock(open: &Open) -> std::sync::MutexGuard<'_, HashMap<u64, TcpStream>> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}
