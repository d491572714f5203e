//! A bounded pool of database connections, each with the engine's statements prepared.
//!
//! Small on purpose (a `Mutex` and a `Condvar`): no thread of its own, connections are made
//! on demand by the thread that needs one, and a connection the server closed (a restart, an
//! outage, a killed backend) is dropped when it comes back instead of being handed out
//! again. At most `size` connections exist at once; a checkout waits for one at most
//! `timeout`, so an agency connection never hangs on a database that does not answer.

use std::{
    sync::{Condvar, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use postgres::{Client, NoTls, Statement};

/// The statements every connection prepares once, when made: each later use is one round
/// trip (bind and execute), with no parse or plan.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `lottery_stage(...)`: commits a batch or says why not.
    pub stage: Statement,
    /// `lottery_stage_group(...)`: the same for a group of batches, in one transaction.
    pub stage_group: Statement,
    /// `lottery_finish(...)`: marks an agency done or says why not.
    pub finish: Statement,
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
    "SELECT o_outcome, o_number, o_winners FROM lottery_stage($1, $2, $3, $4, $5, $6, $7, $8, $9)";
const STAGE_GROUP: &str = "SELECT o_index, o_outcome, o_number, o_winners \
                           FROM lottery_stage_group($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
const FINISH: &str =
    "SELECT o_outcome, o_expected, o_bets, o_winners, o_pending, o_total FROM lottery_finish($1, $2)";
const ADMIT: &str = "SELECT a.last_sequence, a.done, b.bets, b.winners, a.bets, b.first_bet, b.digest \
                     FROM agencies a LEFT JOIN batches b ON b.agency = a.agency AND b.sequence = $2 \
                     WHERE a.agency = $1";
const AGENCY: &str = "SELECT last_sequence, bets, winners, done FROM agencies WHERE agency = $1";
const DIGESTS: &str = "SELECT digest FROM batches WHERE agency = $1";
const PROGRESS: &str =
    "SELECT count(*) FILTER (WHERE NOT done), coalesce(sum(winners), 0)::bigint FROM agencies";

/// One pooled connection and its prepared statements.
pub(crate) struct Conn {
    /// The client; blocking (it runs its own small runtime per connection).
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
    fn connect(config: &postgres::Config) -> Result<Conn, postgres::Error> {
        let mut client = config.connect(NoTls)?;
        let statements = Statements {
            stage: client.prepare(STAGE)?,
            stage_group: client.prepare(STAGE_GROUP)?,
            finish: client.prepare(FINISH)?,
            admit: client.prepare(ADMIT)?,
            agency: client.prepare(AGENCY)?,
            digests: client.prepare(DIGESTS)?,
            progress: client.prepare(PROGRESS)?,
        };
        Ok(Conn { client, statements })
    }
}

/// Why no connection could be had.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    /// Making a new connection failed.
    Connect(postgres::Error),
    /// Every connection stayed in use for the whole timeout.
    Timeout(Duration),
}

/// The pool. Shared by every agency connection of a central.
#[derive(Debug)]
pub(crate) struct Pool {
    config: postgres::Config,
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
    /// within `timeout` or failing.
    pub(crate) fn new(config: postgres::Config, size: usize, timeout: Duration) -> Pool {
        Pool {
            config,
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

    /// An idle connection, or a new one if fewer than `size` exist, or the first one returned
    /// within the timeout.
    pub(crate) fn get(&self) -> Result<Lease<'_>, CheckoutError> {
        let deadline = Instant::now() + self.timeout;
        let mut state = self.lock();
        loop {
            if let Some(conn) = state.idle.pop() {
                return Ok(Lease { pool: self, conn: Some(conn) });
            }
            if state.open < self.size {
                state.open += 1;
                drop(state);
                // Connecting takes a round trip or more: never under the lock.
                return match Conn::connect(&self.config) {
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
