//! A bounded pool of database connections, each with the engine's statements prepared, and
//! the blocking [`Client`] they are made of.
//!
//! Small on purpose (a `Mutex` and a `Condvar`): no thread of its own, connections are made
//! on demand by the thread that needs one, and a connection the server closed (a restart, an
//! outage, a killed backend) is dropped when it comes back instead of being handed out
//! again. At most `size` connections exist at once; a checkout waits for one at most
//! `timeout`, so an agency connection never hangs on a database that does not answer.
//!
//! Why a client of our own rather than the `postgres` crate's: a database that stopped
//! answering (its processes frozen, its host gone silent) leaves a call blocked until the
//! kernel gives up on the socket, which may be never, and the central's stop joins every
//! thread. The driver's cancel token asks the server to cancel, which a frozen server cannot
//! do. So every call here runs on the driver's async core (`tokio-postgres`, one small
//! runtime per connection, as the `postgres` crate does) and races a [`Cut`]: when the stop
//! cuts, each call in flight drops its connection (closing the socket) and returns the
//! driver's "connection closed" error at once, and every later call and connect fails too.
//! What such a call sent may still commit; its caller acknowledges nothing, and the key on
//! (agency, sequence) makes the agency's resend a replay.

use std::{
    collections::VecDeque,
    future::Future,
    io,
    pin::{pin, Pin},
    sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_core::Stream;
use postgres::{fallible_iterator::FallibleIterator, types::ToSql, Error, Row, Statement};
use tokio_postgres::{tls::NoTlsStream, AsyncMessage, NoTls, Notification, RowStream, Socket, ToStatement};

/// The stop's word to every database call of one engine: once cut, calls in flight end at
/// once and no new one starts. Set once, never cleared.
#[derive(Debug, Default)]
pub(crate) struct Cut {
    /// Whether it was cut; a std `Mutex` so threads can wait on it ([`Cut::wait`]).
    cut: Mutex<bool>,
    /// Wakes threads in [`Cut::wait`].
    changed: Condvar,
    /// Wakes calls blocked on a database (each on its connection's own runtime).
    calls: tokio::sync::Notify,
}

impl Cut {
    /// Ends every call in flight and refuses every later one.
    pub(crate) fn cut(&self) {
        *self.lock() = true;
        self.changed.notify_all();
        self.calls.notify_waiters();
    }

    /// Whether [`Cut::cut`] was called.
    pub(crate) fn is_cut(&self) -> bool {
        *self.lock()
    }

    /// Waits until cut or `timeout` passes; returns whether it was cut.
    pub(crate) fn wait(&self, timeout: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, timeout, |cut| !*cut)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }

    fn lock(&self) -> MutexGuard<'_, bool> {
        // One boolean: a panic elsewhere cannot leave it half-written.
        self.cut.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The database refused or could not be reached.
    Database(Error),
    /// The connection's runtime could not be made (out of descriptors, say).
    Runtime(io::Error),
    /// The engine was cut (the central is stopping).
    Cut,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Database(e) => write!(f, "{e}"),
            ConnectError::Runtime(e) => write!(f, "cannot start a connection's runtime: {e}"),
            ConnectError::Cut => f.write_str("the central is stopping: no new database call"),
        }
    }
}

/// A blocking connection to the database whose every call ends when its [`Cut`] is cut.
pub(crate) struct Client {
    client: tokio_postgres::Client,
    driver: Driver,
}

/// What runs a connection: its runtime, the connection's I/O half (`None` once lost or cut:
/// its socket is closed then) and the notifications it received.
struct Driver {
    runtime: tokio::runtime::Runtime,
    connection: Option<tokio_postgres::Connection<Socket, NoTlsStream>>,
    notifications: VecDeque<Notification>,
    cut: Arc<Cut>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("closed", &self.is_closed()).finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the database of `config` (its connect timeout holds), unless `cut` is or
    /// gets cut first.
    ///
    /// # Errors
    /// [`ConnectError::Database`] when the database cannot be reached or refuses,
    /// [`ConnectError::Cut`] when cut, [`ConnectError::Runtime`].
    pub(crate) fn connect(config: &tokio_postgres::Config, cut: &Arc<Cut>) -> Result<Client, ConnectError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ConnectError::Runtime)?;
        let connected = runtime.block_on(async {
            // Made before the check, so a cut between the two still wakes it.
            let notified = pin!(cut.calls.notified());
            if cut.is_cut() {
                return None;
            }
            let connect = pin!(config.connect(NoTls));
            FirstOf { notified, future: connect }.await
        });
        match connected {
            None => Err(ConnectError::Cut),
            Some(Err(e)) => Err(ConnectError::Database(e)),
            Some(Ok((client, connection))) => Ok(Client {
                client,
                driver: Driver {
                    runtime,
                    connection: Some(connection),
                    notifications: VecDeque::new(),
                    cut: Arc::clone(cut),
                },
            }),
        }
    }

    /// Whether the connection is lost (closed by the server, broken, or cut): it is never
    /// used again.
    pub(crate) fn is_closed(&self) -> bool {
        self.driver.connection.is_none() || self.client.is_closed()
    }

    /// Prepares `query` on this connection.
    ///
    /// # Errors
    /// The database's, or "connection closed" when lost or cut.
    pub(crate) fn prepare(&mut self, query: &str) -> Result<Statement, Error> {
        self.driver.block_on(self.client.prepare(query))
    }

    /// Runs `query` and returns every row.
    ///
    /// # Errors
    /// As [`Client::prepare`].
    pub(crate) fn query<T>(&mut self, query: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error>
    where
        T: ?Sized + ToStatement,
    {
        self.driver.block_on(self.client.query(query, params))
    }

    /// Runs `query`, which returns exactly one row.
    ///
    /// # Errors
    /// As [`Client::prepare`], and when it returns no row or several.
    pub(crate) fn query_one<T>(&mut self, query: &T, params: &[&(dyn ToSql + Sync)]) -> Result<Row, Error>
    where
        T: ?Sized + ToStatement,
    {
        self.driver.block_on(self.client.query_one(query, params))
    }

    /// Runs `query`, which returns at most one row.
    ///
    /// # Errors
    /// As [`Client::prepare`], and when it returns several rows.
    pub(crate) fn query_opt<T>(
        &mut self,
        query: &T,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error>
    where
        T: ?Sized + ToStatement,
    {
        self.driver.block_on(self.client.query_opt(query, params))
    }

    /// Runs `query` with no parameters and returns its rows one at a time as they arrive
    /// (a large result is never held whole).
    ///
    /// # Errors
    /// As [`Client::prepare`].
    pub(crate) fn query_rows<T>(&mut self, query: &T) -> Result<Rows<'_>, Error>
    where
        T: ?Sized + ToStatement,
    {
        let stream = self.driver.block_on(self.client.query_raw(query, std::iter::empty::<i32>()))?;
        Ok(Rows { driver: &mut self.driver, stream: Box::pin(stream) })
    }

    /// Runs `sql` (one or more statements, no parameters), for their effect.
    ///
    /// # Errors
    /// As [`Client::prepare`].
    pub(crate) fn batch_execute(&mut self, sql: &str) -> Result<(), Error> {
        self.driver.block_on(self.client.batch_execute(sql))
    }

    /// The next notification this connection received (after `LISTEN`), waiting up to
    /// `timeout` for one; `None` when none came, or the connection is lost or cut
    /// ([`Client::is_closed`] tells which).
    pub(crate) fn next_notification(&mut self, timeout: Duration) -> Option<Notification> {
        let deadline = Instant::now() + timeout;
        let driver = &mut self.driver;
        let mut sleep = None;
        let waited = driver.drive(|cx, notifications, alive| {
            if let Some(notification) = notifications.pop_front() {
                return Poll::Ready(Ok(Some(notification)));
            }
            if !alive {
                return Poll::Ready(Ok(None));
            }
            // Made on the first poll: a timer needs the runtime it runs on.
            let sleep = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline.into())));
            sleep.as_mut().poll(cx).map(|()| Ok(None))
        });
        waited.unwrap_or(None)
    }
}

impl Driver {
    /// Runs `future` on this connection until it ends, or until the cut (then the connection
    /// is dropped and `future` ends with the driver's "connection closed").
    fn block_on<T>(&mut self, future: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let mut future = pin!(future);
        self.drive(|cx, _, _| future.as_mut().poll(cx))
    }

    /// Polls the connection (its I/O, its notifications) and `f` until `f` is ready; `f` is
    /// told whether the connection is still alive. A connection that fails, or is cut, is
    /// dropped: calls waiting on it end with "connection closed".
    fn drive<T>(
        &mut self,
        mut f: impl FnMut(&mut Context<'_>, &mut VecDeque<Notification>, bool) -> Poll<Result<T, Error>>,
    ) -> Result<T, Error> {
        let Driver { runtime, connection, notifications, cut } = self;
        let cut = Arc::clone(cut);
        runtime.block_on(async {
            // Made before the first check, so a cut between the check and the wait wakes it.
            let mut notified = pin!(cut.calls.notified());
            std::future::poll_fn(|cx| {
                if connection.is_some() && (cut.is_cut() || notified.as_mut().poll(cx).is_ready()) {
                    *connection = None;
                }
                while let Some(conn) = connection.as_mut() {
                    match conn.poll_message(cx) {
                        Poll::Ready(Some(Ok(AsyncMessage::Notification(n)))) => notifications.push_back(n),
                        Poll::Ready(Some(Ok(_))) => {}
                        Poll::Ready(Some(Err(e))) => {
                            *connection = None;
                            return Poll::Ready(Err(e));
                        }
                        Poll::Ready(None) => *connection = None,
                        Poll::Pending => break,
                    }
                }
                f(cx, notifications, connection.is_some())
            })
            .await
        })
    }
}

/// Rows of [`Client::query_rows`], fetched as they are read.
pub(crate) struct Rows<'a> {
    driver: &'a mut Driver,
    stream: Pin<Box<RowStream>>,
}

impl FallibleIterator for Rows<'_> {
    type Item = Row;
    type Error = Error;

    fn next(&mut self) -> Result<Option<Row>, Error> {
        let stream = &mut self.stream;
        self.driver.drive(|cx, _, _| stream.as_mut().poll_next(cx).map(Option::transpose))
    }
}

/// A future that ends with `future`'s output, or with `None` when `notified` fires first
/// (the cut).
struct FirstOf<'a, N, F> {
    notified: Pin<&'a mut N>,
    future: Pin<&'a mut F>,
}

impl<N: Future<Output = ()>, F: Future> Future for FirstOf<'_, N, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.notified.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        self.future.as_mut().poll(cx).map(Some)
    }
}

/// The statements every connection prepares once, when made: each later use is one round
/// trip (bind and execute), with no parse or plan.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `lottery_stage(...)`: commits a batch or says why not.
    pub stage: Statement,
    /// `lottery_stage_group(...)`: the same for a group of batches, in one transaction.
    pub stage_group: Statement,
    /// `lottery_finish_group(...)`: marks a group of agencies done, or says why not, in one
    /// transaction.
    pub finish_group: Statement,
    /// An agency's row and, if committed, its batch of a given sequence.
    pub admit: Statement,
    /// An agency's row.
    pub agency: Statement,
    /// The digests of an agency's committed batches.
    pub digests: Statement,
    /// Agencies not done, and the winners of all.
    pub progress: Statement,
}

const STAGE: &str =
    "SELECT o_outcome, o_number, o_winners FROM lottery_stage($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const STAGE_GROUP: &str = "SELECT o_index, o_outcome, o_number, o_winners \
                           FROM lottery_stage_group($1, $2, $3, $4, $5, $6)";
const FINISH_GROUP: &str = "SELECT o_index, o_outcome, o_expected, o_bets, o_winners, o_pending, o_total \
                            FROM lottery_finish_group($1, $2)";
const ADMIT: &str =
    "SELECT a.last_sequence, a.done, b.bets, b.winners, a.bets, b.first_bet, b.digest, a.last_digest \
                     FROM agencies a LEFT JOIN batches b ON b.agency = a.agency AND b.sequence = $2 \
                     WHERE a.agency = $1";
const AGENCY: &str = "SELECT last_sequence, bets, winners, done, last_digest FROM agencies WHERE agency = $1";
const DIGESTS: &str = "SELECT digest FROM batches WHERE agency = $1";
const PROGRESS: &str =
    "SELECT count(*) FILTER (WHERE NOT done), coalesce(sum(winners), 0)::bigint FROM agencies";

/// The progress query, for the completion listener too (`notify.rs`).
pub(crate) const PROGRESS_QUERY: &str = PROGRESS;

/// One pooled connection and its prepared statements.
pub(crate) struct Conn {
    /// The client; blocking (it runs its own small runtime per connection), cut at the stop.
    pub client: Client,
    /// Prepared on this connection (statements belong to one connection).
    pub statements: Statements,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("closed", &self.client.is_closed()).finish_non_exhaustive()
    }
}

impl Conn {
    fn connect(config: &tokio_postgres::Config, cut: &Arc<Cut>) -> Result<Conn, ConnectError> {
        let mut client = Client::connect(config, cut)?;
        let statements = Conn::prepare(&mut client).map_err(ConnectError::Database)?;
        Ok(Conn { client, statements })
    }

    fn prepare(client: &mut Client) -> Result<Statements, Error> {
        Ok(Statements {
            stage: client.prepare(STAGE)?,
            stage_group: client.prepare(STAGE_GROUP)?,
            finish_group: client.prepare(FINISH_GROUP)?,
            admit: client.prepare(ADMIT)?,
            agency: client.prepare(AGENCY)?,
            digests: client.prepare(DIGESTS)?,
            progress: client.prepare(PROGRESS)?,
        })
    }
}

/// Why a pool could not be filled.
#[derive(Debug)]
pub(crate) enum FillError {
    /// A connection could not be had.
    Checkout(CheckoutError),
    /// A connection was had, but warming it failed.
    Warm(Error),
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    /// Making a new connection failed (or the engine was cut).
    Connect(ConnectError),
    /// Every connection stayed in use for the whole timeout.
    Timeout(Duration),
}

/// The pool. Shared by every agency connection of a central.
#[derive(Debug)]
pub(crate) struct Pool {
    config: tokio_postgres::Config,
    /// The stop's cut, shared with every connection this pool makes.
    cut: Arc<Cut>,
    size: usize,
    timeout: Duration,
    /// Idle connections and how many exist in all; a std `Mutex` since it is held only to
    /// push or pop, never across a database call.
    state: Mutex<State>,
    /// Signalled when a connection comes back, or a slot frees.
    returned: Condvar,
}

#[derive(Debug, Default)]
struct State {
    idle: Vec<Conn>,
    /// Idle, checked out, or being connected: never more than `size`.
    open: usize,
}

impl Pool {
    /// A pool of at most `size` connections (at least 1) made from `config`, handing one out
    /// within `timeout` or failing; every connection's calls end when `cut` is cut.
    pub(crate) fn new(config: tokio_postgres::Config, size: usize, timeout: Duration, cut: Arc<Cut>) -> Pool {
        Pool {
            config,
            cut,
            size: size.max(1),
            timeout,
            state: Mutex::new(State::default()),
            returned: Condvar::new(),
        }
    }

    /// The most connections it makes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Makes every connection the pool may hold (each with its statements prepared), runs
    /// `warm` once on each, and leaves them idle.
    ///
    /// # Errors
    /// The first connection that could not be made, or the first `warm` that failed.
    pub(crate) fn fill(&self, mut warm: impl FnMut(&mut Conn) -> Result<(), Error>) -> Result<(), FillError> {
        // Every lease held until all are made: `get` hands out an idle one first, then makes
        // new ones while fewer than `size` exist.
        let mut leases = Vec::with_capacity(self.size);
        while leases.len() < self.size {
            let mut lease = self.get().map_err(FillError::Checkout)?;
            warm(lease.conn()).map_err(FillError::Warm)?;
            leases.push(lease);
        }
        Ok(())
    }

    /// An idle connection, or a new one if fewer than `size` exist, or the first one returned
    /// within the timeout.
    pub(crate) fn get(&self) -> Result<Lease<'_>, CheckoutError> {
        let deadline = Instant::now() + self.timeout;
        let mut state = self.lock();
        loop {
            if self.cut.is_cut() {
                return Err(CheckoutError::Connect(ConnectError::Cut));
            }
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease { pool: self, conn: Some(conn) });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                // Connecting takes a round trip or more: never under the lock.
                return match Conn::connect(&self.config, &self.cut) {
                    Ok(conn) => Ok(Lease { pool: self, conn: Some(conn) }),
                    Err(e) => {
                        self.lock().open -= 1;
                        self.returned.notify_one();
                        Err(CheckoutError::Connect(e))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CheckoutError::Timeout(self.timeout));
            }
            state = self.returned.wait_timeout(state, deadline - now).map(|(guard, _)| guard).unwrap_or_else(
                // Poison only marks that a holder panicked; push and pop leave the state whole.
                |poisoned| poisoned.into_inner().0,
            );
        }
    }

    /// Cuts every connection's calls and wakes every checkout waiting for one: the stop.
    pub(crate) fn interrupt(&self) {
        self.cut.cut();
        drop(self.lock());
        self.returned.notify_all();
    }

    /// Drops every idle connection (the engine's close).
    pub(crate) fn clear(&self) {
        let idle = {
            let mut state = self.lock();
            let idle = std::mem::take(&mut state.idle);
            state.open -= idle.len();
            idle
        };
        // Closing sends a Terminate message: outside the lock.
        drop(idle);
        self.returned.notify_all();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Poison only marks that a holder panicked; push and pop leave the state whole.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A checked-out connection, back to the pool on drop (or dropped if the server closed it).
#[derive(Debug)]
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    /// `Some` until dropped.
    conn: Option<Conn>,
}

impl Lease<'_> {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        // `conn` is `None` only inside `drop`.
        self.conn.as_mut().unwrap_or_else(|| unreachable!("a lease holds its connection until dropped"))
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if conn.client.is_closed() {
            // Lost (the server restarted or closed it): make room for a new one.
            self.pool.lock().open -= 1;
            drop(conn);
        } else {
            self.pool.lock().idle.push(conn);
        }
        self.pool.returned.notify_one();
    }
}
