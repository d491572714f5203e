//! The signal thread: turns the first SIGTERM or SIGINT into a call to a stop function, so
//! the rest of the process learns of it through its own means (a shutdown handle, a flag),
//! never from inside a signal handler.

use std::{
    io,
    sync::{atomic::AtomicBool, Arc},
    thread::{self, JoinHandle},
};

use signal_hook::{
    consts::{SIGINT, SIGTERM, SIGXFSZ},
    iterator::{Handle, Signals},
};

/// A running signal thread; [`SignalWatcher::stop`] ends and joins it.
#[derive(Debug)]
pub struct SignalWatcher {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalWatcher {
    /// Starts watching SIGTERM and SIGINT; on the first one, logs it and calls `on_signal`; a
    /// second one ends the process at once with status 128 + its number (130, 143).
    ///
    /// # Errors
    /// When the handlers cannot be installed or the thread cannot start.
    pub fn start(on_signal: impl FnOnce() + Send + 'static) -> io::Result<SignalWatcher> {
        let mut signals = Signals::new([SIGTERM, SIGINT])?;
        let handle = signals.handle();
        let thread = thread::Builder::new().name("signals".into()).spawn(move || {
            let mut arrived = signals.forever();
            if let Some(signal) = arrived.next() {
                log::info!("action: signal | result: success | signal: {}", name(signal));
                on_signal();
            }
            // The graceful stop is bounded, but whoever sends a second signal wants the
            // process gone now. Nothing is lost: only what is on disk was ever acknowledged.
            if let Some(signal) = arrived.next() {
                log::warn!(
                    "action: signal | result: success | signal: {} | note: a second signal, exiting at once",
                    name(signal)
                );
                std::process::exit(128 + signal);
            }
        })?;
        Ok(SignalWatcher { handle, thread })
    }

    /// Stops watching (whether or not a signal came) and joins the thread.
    pub fn stop(self) {
        self.handle.close();
        if self.thread.join().is_err() {
            log::error!("action: join_signal_thread | result: fail");
        }
    }
}

fn name(signal: i32) -> &'static str {
    if signal == SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// Keeps SIGXFSZ from killing the process. Its default action ends a process that writes
/// past its file size limit (`ulimit -f`, `prlimit --fsize`); with a handler installed the
/// write fails with `EFBIG` instead, which the caller can answer and recover from like any
/// other full disk.
///
/// # Errors
/// When the handler cannot be installed.
pub fn survive_file_size_limit() -> io::Result<()> {
    // The flag is never read: the handler exists only to replace the default action.
    signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false))).map(drop)
}
