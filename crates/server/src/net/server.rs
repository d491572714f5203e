//! The accept loop: one thread per connection, a cap on how many at once, and a shutdown that
//! joins them all.
//!
//! The loop owns every connection thread's `JoinHandle`; finished threads are joined as new
//! connections arrive, so the list holds only live ones, and at shutdown every remaining one
//! is joined before the lottery closes its store and `run` returns. The loop knows nothing of
//! storage: it hands each connection the shared [`Lottery`].

use std::{
    io::{self, ErrorKind},
    net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs},
    sync::Arc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use log::Level;
use protocol::{Connection, ErrorKind as WireErrorKind, Response};
use runtime::throttled;
use socket2::{Domain, Protocol, Socket, Type};

use super::{
    connections::{Connections, Refusal, Registration, Standing},
    descriptors,
    handler::{self, Limits},
    peers::{Backoff, WARNINGS},
    shutdown::{ShutdownHandle, FORCE_CLOSE_AFTER},
};
use crate::{config::Config, error::ServerError, http, lottery::Lottery, metrics::Metrics, store};

/// At most one warning line this often for connections refused at the cap: a flood of
/// connections must not become a flood of log lines.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(1);

/// Stack of a connection thread. The deepest path (a TLS handshake, a batch's checks, a
/// database call) fits with a wide margin in debug builds, which use the most stack; std's
/// default of 2 MiB would reserve four times as much address space for each of thousands of
/// connections (docs/scale.md has the figures).
const CONNECTION_STACK: usize = 512 * 1024;

/// A bound central, ready to [`run`](Server::run).
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// Connections refused at the cap since the last warning, and when that was.
    busy: (u64, Option<Instant>),
    /// The lottery every connection thread answers with.
    lottery: Arc<Lottery>,
    connections: Arc<Connections>,
    shutdown: ShutdownHandle,
    limits: Limits,
    /// The HTTP listener (`SERVER_HTTP_PORT`), bound, started with the accept loop.
    http: Option<(http::Bound, http::Observed)>,
}

impl Server {
    /// Opens the store (recovering the lottery its journal holds, if any), then binds the listening socket; nothing is accepted yet.
    ///
    /// # Errors
    /// When the store cannot be opened (checked first, so a central that could not
    /// store anything never accepts a bet) or the address cannot be bound.
    pub fn bind(config: &Config) -> Result<Server, ServerError> {
        // Descriptors first: a central that could not serve its cap must not open anything.
        let cap = descriptors::fit_cap(config.max_connections, config.max_connections_chosen)
            .map_err(|too_few| ServerError::Descriptors(too_few.to_string()))?;
        // Credentials next: a central that could not check agencies must not open anything.
        let keys = config
            .agency_keys
            .as_deref()
            .map(security::AgencyKeys::load)
            .transpose()
            .map_err(ServerError::Credentials)?;
        let tls = config
            .tls
            .as_ref()
            .map(|(cert, key)| security::tls::server_config(cert, key))
            .transpose()
            .map_err(ServerError::Credentials)?;
        log_security(config, keys.as_ref(), tls.is_some());
        let metrics = Metrics::new(config.agencies);
        let store = store::open(&config.store(), metrics.sync_timer())?;
        let ip = if config.ip.is_empty() { "0.0.0.0" } else { config.ip.as_str() };
        let resolve = |source| ServerError::Resolve { ip: ip.to_owned(), source };
        let addr = (ip, config.port)
            .to_socket_addrs()
            .map_err(|e| resolve(Some(e)))?
            .next()
            .ok_or_else(|| resolve(None))?;
        let listener =
            listen(addr, config.listen_backlog).map_err(|source| ServerError::Bind { addr, source })?;
        let connections = Connections::new(cap, config.unproved_slots(cap));
        let own = listener.local_addr().map_err(ServerError::LocalAddr)?;
        let shutdown = ShutdownHandle::new(own, Arc::clone(&connections));
        let lottery =
            Arc::new(Lottery::new(store, keys, config.winner_delay, shutdown.clock(), Arc::clone(&metrics)));
        let http = bind_http(config, addr.ip(), &lottery, metrics, &connections)?;
        Ok(Server {
            listener,
            busy: (0, None),
            lottery,
            http,
            connections,
            shutdown,
            limits: Limits {
                idle_timeout: config.idle_timeout,
                frame_timeout: config.frame_timeout,
                max_frame_len: config.max_frame_len,
                budget: protocol::Budget::new(config.memory_budget),
                tls,
                proof_timeout: config.proof_timeout,
            },
        })
    }

    /// The address the central listens on (with the real port when 0 was asked).
    ///
    /// # Errors
    /// [`ServerError::LocalAddr`] when the socket cannot report it.
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(ServerError::LocalAddr)
    }

    /// A handle that stops [`run`](Server::run) from another thread.
    #[must_use]
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Accepts and serves connections until shutdown is triggered, then closes the listener,
    /// joins every connection thread and closes the lottery (its store's last sync).
    ///
    /// # Errors
    /// [`ServerError::CloseStore`] when that last sync fails.
    pub fn run(mut self) -> Result<(), ServerError> {
        let addr = self.local_addr()?;
        let http = match self.http.take() {
            Some((bound, observed)) => Some(bound.start(observed).map_err(ServerError::Http)?),
            None => None,
        };
        log::info!("action: accept_connections | result: in_progress | address: {addr}");
        let workers = self.accept_until_stopped();
        let lottery = Arc::clone(&self.lottery);
        self.wind_down(addr, workers);
        if let Some(http) = http {
            http.stop();
        }
        lottery.close()
    }

    /// Accepts and serves connections until the stop; returns every connection thread still
    /// to join.
    fn accept_until_stopped(&mut self) -> Vec<JoinHandle<()>> {
        let mut workers: Vec<JoinHandle<()>> = Vec::new();
        let mut backoff = Backoff::default();
        loop {
            let accepted = self.listener.accept();
            if self.shutdown.is_triggered() {
                return workers;
            }
            match accepted {
                Ok((stream, peer)) => {
                    backoff.succeeded();
                    join_finished(&mut workers);
                    log::debug!("action: accept_connection | result: success | peer: {peer}");
                    if let Some(worker) = self.admit(stream, peer) {
                        workers.push(worker);
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::ConnectionAborted | ErrorKind::Interrupted) => {}
                Err(e) => {
                    // Out of descriptors, say: it clears only as connections close, so wait
                    // longer each time rather than spin, and say so at most once a second.
                    let pause = backoff.failed();
                    throttled!(
                        WARNINGS,
                        "accept",
                        Level::Error,
                        "action: accept_connection | result: fail | error: {e} | retry_in_ms: {}",
                        pause.as_millis()
                    );
                    join_finished(&mut workers);
                    thread::sleep(pause);
                }
            }
        }
    }

    /// The stop, in its order: the listener closed, every waiter released, connections given
    /// until the force-close instant to end on their own (then cut, and the store's calls
    /// interrupted), every connection thread joined.
    fn wind_down(self, addr: SocketAddr, workers: Vec<JoinHandle<()>>) {
        let Server { listener, lottery, shutdown, connections, limits, .. } = self;
        drop(listener);
        log::info!("action: close_listener | result: success | address: {addr}");
        shutdown.trigger();
        // Connections waiting for room in the budget, or holding a total query, stop waiting.
        limits.budget.close();
        lottery.stop_holding();
        // Connections end on their own once their last answers are out; one whose peer does
        // not read, or whose write is stuck, is cut at the stop's force-close instant.
        if let Some(force_at) = shutdown.deadline(FORCE_CLOSE_AFTER) {
            if connections.wait_empty(force_at) > 0 {
                let cut = connections.force_close();
                lottery.interrupt();
                log::warn!("action: force_close | result: success | connections: {cut}");
            }
        }
        let threads = workers.len();
        let panicked = workers.into_iter().map(JoinHandle::join).filter(Result::is_err).count();
        if panicked > 0 {
            log::error!(
                "action: join_connections | result: fail | threads: {threads} | panicked: {panicked}"
            );
        } else {
            log::info!("action: join_connections | result: success | threads: {threads}");
        }
    }

    /// Registers the connection and starts its thread, or refuses it.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) -> Option<JoinHandle<()>> {
        let registration = self.register(&stream, peer)?;
        let lottery = Arc::clone(&self.lottery);
        let limits = self.limits.clone();
        let shutdown = self.shutdown.clone();
        let spawned = thread::Builder::new().name(format!("conn {peer}")).stack_size(CONNECTION_STACK).spawn(
            move || {
                // Held for the thread's life: its drop frees the connection's slot.
                handler::serve(stream, peer, &lottery, limits, &shutdown, &registration);
            },
        );
        match spawned {
            Ok(worker) => Some(worker),
            Err(e) => {
                throttled!(
                    WARNINGS,
                    "spawn_thread",
                    Level::Error,
                    "action: spawn_thread | result: fail | peer: {peer} | error: {e}"
                );
                None
            }
        }
    }

    /// Gives the connection a slot by the registry's rule, or refuses it (saying so, throttled,
    /// and telling a plain-TCP peer it is `Busy`).
    fn register(&mut self, stream: &TcpStream, peer: SocketAddr) -> Option<Registration> {
        let standing = if self.lottery.proofs_required() { Standing::Unproved } else { Standing::Working };
        match self.connections.register(stream, standing) {
            Ok((registration, evicted)) => {
                if evicted == Some(Standing::Waiting) {
                    // Its held query, if any, is answered `Pending` now; its agency asks again.
                    self.lottery.wake_released();
                }
                if evicted.is_some() {
                    log::debug!("action: evict_connection | result: success | standing: {evicted:?} | for_peer: {peer}");
                }
                Some(registration)
            }
            Err(Refusal::Full(max)) => {
                self.refuse_full(stream, peer, max);
                None
            }
            Err(Refusal::Closed) => None,
            Err(Refusal::Io(e)) => {
                throttled!(
                    WARNINGS,
                    "register",
                    Level::Warn,
                    "action: accept_connection | result: fail | peer: {peer} | error: {e}"
                );
                None
            }
        }
    }

    /// A newcomer when every slot is working: one warning a second at most, counted, and a
    /// `Busy` answer on plain TCP (under TLS a plaintext refusal would only garble the
    /// handshake: the socket is just closed).
    fn refuse_full(&mut self, stream: &TcpStream, peer: SocketAddr, max: usize) {
        self.busy.0 += 1;
        if self.busy.1.is_none_or(|last| last.elapsed() >= BUSY_LOG_EVERY) {
            log::warn!(
                "action: accept_connection | result: fail | peer: {peer} | error: at the limit of {max} connections | refused_since_last_line: {}",
                self.busy.0
            );
            self.busy = (0, Some(Instant::now()));
        }
        self.lottery.count_refusal(WireErrorKind::Busy);
        if self.limits.tls.is_none() {
            refuse_busy(stream, max);
        }
    }
}

/// Binds the HTTP listener when `SERVER_HTTP_PORT` asks for one, on the central's address.
fn bind_http(
    config: &Config,
    ip: std::net::IpAddr,
    lottery: &Arc<Lottery>,
    metrics: Arc<Metrics>,
    connections: &Arc<Connections>,
) -> Result<Option<(http::Bound, http::Observed)>, ServerError> {
    if config.http_port == 0 {
        return Ok(None);
    }
    let addr = SocketAddr::new(ip, config.http_port);
    let bound = http::Bound::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let open = Arc::clone(connections);
    let observed = http::Observed {
        lottery: Arc::clone(lottery),
        metrics,
        agencies: config.agencies,
        connections: Box::new(move || open.len()),
    };
    Ok(Some((bound, observed)))
}

/// Says how agencies are checked: one line, a warning when anyone may act for any agency.
fn log_security(config: &Config, keys: Option<&security::AgencyKeys>, tls: bool) {
    let transport = if tls { "tls" } else { "plain" };
    match keys {
        Some(keys) => {
            let missing: Vec<u32> = (1..=config.agencies).filter(|a| keys.get(*a).is_none()).collect();
            log::info!(
                "action: security | result: success | mode: keys | agencies_with_keys: {} | transport: {transport}",
                keys.len()
            );
            if !missing.is_empty() {
                log::warn!(
                    "action: security | result: warning | agencies_without_keys: {missing:?} | note: they cannot act until given one"
                );
            }
        }
        None => log::warn!(
            "action: security | result: warning | mode: open | transport: {transport} | note: SERVER_AGENCY_KEYS is not set, so any peer may act for any agency"
        ),
    }
}

/// Tells a connection over the cap why it is closed. The socket is new and its send buffer
/// empty, so this small write does not wait on the peer; the timeout is a safety net.
fn refuse_busy(stream: &TcpStream, max: usize) {
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let refusal = Response::Error {
        kind: WireErrorKind::Busy,
        message: format!("the central is serving its limit of {max} connections; try again later"),
    };
    let _ = Connection::new(stream).write_message(&refusal);
}

/// Joins the threads that have already ended (a join that returns at once), keeping the rest.
fn join_finished(workers: &mut Vec<JoinHandle<()>>) {
    let (finished, running): (Vec<_>, Vec<_>) = workers.drain(..).partition(JoinHandle::is_finished);
    *workers = running;
    for worker in finished {
        if worker.join().is_err() {
            log::error!("action: join_thread | result: fail | error: a connection thread panicked");
        }
    }
}

/// A listening socket with the configured backlog and `SO_REUSEADDR`, so a restarted central
/// can bind its port again while old connections linger in TIME_WAIT.
fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}
