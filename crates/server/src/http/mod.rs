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
//! counts only. Requests are answered one at a time by one thread of ours, joined at the stop;
//! tiny_http reads them on threads of its own and closes its accept loop when dropped.

mod routes;

use std::{
    net::{SocketAddr, TcpListener},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    thread::{self, JoinHandle},
};

pub use routes::Observed;

/// A bound listener, not yet answering.
#[derive(Debug)]
pub struct Bound {
    listener: TcpListener,
}

/// A running listener: [`Running::stop`] ends it.
pub struct Running {
    server: Arc<tiny_http::Server>,
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running").field("addr", &self.addr).finish_non_exhaustive()
    }
}

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
    /// When tiny_http cannot take the socket or the thread cannot start.
    pub fn start(self, observed: Observed) -> std::io::Result<Running> {
        let addr = self.listener.local_addr()?;
        let server = tiny_http::Server::from_listener(self.listener, None).map_err(std::io::Error::other)?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let (serving, stop) = (Arc::clone(&server), Arc::clone(&stopping));
        let thread = thread::Builder::new().name("http".to_owned()).spawn(move || {
            serve(&serving, &stop, &observed);
        })?;
        log::info!("action: http_listen | result: success | address: {addr}");
        Ok(Running { server, stopping, thread, addr })
    }
}

impl Running {
    /// Stops answering and joins the thread; a request being answered finishes first (a
    /// readiness probe takes at most about a second).
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        if self.thread.join().is_err() {
            log::error!("action: http_stop | result: fail | error: the HTTP thread panicked");
        } else {
            log::info!("action: http_stop | result: success | address: {}", self.addr);
        }
        // The last reference: dropping it closes tiny_http's accept loop.
        drop(self.server);
    }
}

/// Answers requests until the stop.
fn serve(server: &tiny_http::Server, stopping: &AtomicBool, observed: &Observed) {
    loop {
        match server.recv() {
            Ok(request) => routes::answer(request, observed),
            Err(_) if stopping.load(Ordering::SeqCst) => return,
            Err(e) => {
                runtime::throttled!(
                    crate::lottery::WARNINGS,
                    "http_recv",
                    log::Level::Warn,
                    "action: http_request | result: fail | error: {e}"
                );
            }
        }
        if stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}
