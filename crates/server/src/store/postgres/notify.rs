//! The lottery's completion, heard from the database: how a central learns at once that the
//! last agency finished through another central on the same database.
//!
//! `lottery_finish_group` (see `schema.rs`) calls `pg_notify` on [`CHANNEL`] with the total when it
//! marks the last agency done. A notification is delivered only when its transaction commits,
//! so a central hears of a completion exactly when any query can see it. Each central keeps
//! one connection of its own (outside the pool, so a busy pool cannot delay it) that
//! `LISTEN`s on a thread of its own, and tells the lottery the total once.
//!
//! A notification sent while the listener was not connected (the database restarted, the
//! connection broke) is never delivered, so after every connect the listener `LISTEN`s
//! first and then asks the progress: a completion committed before the `LISTEN` is seen by
//! the query, one after it is notified. The thread ends once it has told the total, or at the
//! engine's close or interrupt (its [`Cut`]), and is joined then.

use std::{
    io,
    sync::Arc,
    thread::{self, JoinHandle},
    time::Duration,
};

use super::pool::{Client, Cut, PROGRESS_QUERY};

/// The channel `lottery_finish_group` notifies when the lottery completes; the payload is the
/// total of winners.
pub(crate) const CHANNEL: &str = "lottery_complete";

/// The longest pause between two attempts to connect while the database is unreachable.
const MOST_BACKOFF: Duration = Duration::from_secs(2);

/// How long one wait for a notification lasts before waiting again: a notification or the
/// cut ends it at once, so this only bounds how long a lost connection can go unnoticed.
const WAIT: Duration = Duration::from_secs(1);

/// What is told the total, once.
pub(crate) type Completed = Box<dyn FnOnce(u64) + Send>;

/// The listening thread. Stopped and joined by [`Listener::stop`] or on drop.
#[derive(Debug)]
pub(crate) struct Listener {
    /// Ends the thread's database calls and its waits at once.
    cut: Arc<Cut>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Starts listening on the database of `config` (named `location` in logs); `completed` is
    /// told the total when the lottery is (or already was) complete.
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub(crate) fn start(
        config: tokio_postgres::Config,
        location: String,
        completed: Completed,
    ) -> io::Result<Listener> {
        let cut = Arc::new(Cut::default());
        let thread = {
            let cut = Arc::clone(&cut);
            thread::Builder::new()
                .name("completion-listener".to_owned())
                .spawn(move || listen(&config, &cut, &location, completed))?
        };
        Ok(Listener { cut, thread: Some(thread) })
    }

    /// Ends every database call of the listener now, without waiting (the stop's interrupt).
    pub(crate) fn interrupt(&self) {
        self.cut.cut();
    }

    /// Ends the listener and joins its thread.
    pub(crate) fn stop(&mut self) {
        self.cut.cut();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                log::error!("action: completion_listen | result: fail | error: the listener panicked");
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The thread: watches until the total is known or it is cut, connecting again (with a
/// growing pause) whenever the connection is lost.
fn listen(config: &tokio_postgres::Config, cut: &Arc<Cut>, location: &str, completed: Completed) {
    let mut backoff = Duration::from_millis(100);
    let mut failing = false;
    loop {
        match watch(config, cut, location, &mut failing) {
            Ok(total) => {
                log::debug!(
                    "action: completion_heard | result: success | database: {location} | winners: {total}"
                );
                completed(total);
                return;
            }
            Err(_) if cut.is_cut() => return,
            Err(e) => {
                if !failing {
                    log::warn!(
                        "action: completion_listen | result: fail | database: {location} | error: {e} | \
                         retry_in_ms: {}",
                        backoff.as_millis()
                    );
                }
                failing = true;
                if cut.wait(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(MOST_BACKOFF);
            }
        }
    }
}

/// One connection's watch: `LISTEN`, then the progress, then notifications until one says
/// the total. `Err` when the connection cannot be made or is lost (or cut).
fn watch(
    config: &tokio_postgres::Config,
    cut: &Arc<Cut>,
    location: &str,
    failing: &mut bool,
) -> Result<u64, String> {
    let mut client = Client::connect(config, cut).map_err(|e| e.to_string())?;
    client.batch_execute(&format!("LISTEN {CHANNEL}")).map_err(|e| describe(&e))?;
    if *failing {
        log::info!("action: completion_listen | result: success | database: {location}");
        *failing = false;
    }
    loop {
        // After the LISTEN: a completion committed before it is counted here.
        let row = client.query_one(PROGRESS_QUERY, &[]).map_err(|e| describe(&e))?;
        let (pending, total): (i64, i64) = (row.get(0), row.get(1));
        if pending == 0 {
            return Ok(u64::try_from(total).unwrap_or_default());
        }
        loop {
            match client.next_notification(WAIT) {
                Some(notification) => match notification.payload().parse::<u64>() {
                    Ok(total) => return Ok(total),
                    // Not a total (sent by hand, say): ask the database instead.
                    Err(_) => break,
                },
                None if client.is_closed() => return Err("the listening connection was lost".to_owned()),
                None => {}
            }
        }
    }
}

fn describe(e: &postgres::Error) -> String {
    e.as_db_error().map_or_else(|| e.to_string(), |db| format!("{}: {}", db.severity(), db.message()))
}
