//! The pool's deadline watcher: kills a worker whose call runs past the
//! pool's timeout, so a reader can wait for the reply in one blocking
//! `read` instead of `poll` + `read` (one system call less per call: about
//! a tenth of a pipe round trip).
//!
//! A call is registered when its request is sent ([`Deadlines::watch`],
//! which fixes the deadline under the lock) and forgotten by its reader
//! right after the read, before the worker is handed back or reaped
//! ([`Deadlines::forget`]). The watcher kills only registered workers, under
//! the same lock, so it never kills a worker that serves another call, nor
//! a reused pid (a worker is reaped only after it is forgotten, and until
//! then it stays a zombie: a direct worker as our child, a server's worker
//! as the server's, which restores `SIGCHLD`'s default for itself; a host
//! that has its children reaped by the kernel gets its pool workers from
//! a fork server for this reason, see "Hosts that ignore `SIGCHLD`" in the
//! `fork` module docs). A killed
//! worker's reply pipe reaches end of file (no other process holds its
//! write end), so the read ends; `forget` then says the call expired.
//!
//! The watcher thread (`unirun-deadlines`) starts with the first timed call
//! and is joined by [`Deadlines::stop`] (the pool's shutdown or drop). It
//! sleeps until the earliest registered deadline, or at most one timeout:
//! every deadline is "registration time + the pool's timeout", fixed under
//! the lock, so a call registered while it sleeps has a deadline no earlier
//! than its wake-up, and registering never needs to wake it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use unirun_platform::process::{self as sys, Pid};

use super::helper::HelperThread;

#[derive(Default)]
struct Watched {
    /// Busy workers and their calls' deadlines.
    calls: Vec<(Pid, Instant)>,
    /// Workers killed for their deadline, until their reader forgets them.
    expired: Vec<Pid>,
    stop: bool,
    started: bool,
    /// The thread could not be started: callers poll instead.
    failed: bool,
}

struct Shared {
    watched: Mutex<Watched>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See the module docs.
pub(super) struct Deadlines {
    timeout: Duration,
    shared: Arc<Shared>,
    thread: HelperThread,
}

impl Deadlines {
    pub(super) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            shared: Arc::new(Shared {
                watched: Mutex::new(Watched::default()),
                wake: Condvar::new(),
            }),
            thread: HelperThread::new(),
        }
    }

    /// Registers busy worker `pid`'s call, sent now; returns its deadline
    /// when the watcher enforces it, `None` when the caller must (the
    /// watcher could not start, or it stopped).
    pub(super) fn watch(&self, pid: Pid) -> Option<Instant> {
        let mut watched = self.shared.lock();
        if watched.stop || watched.failed {
            return None;
        }
        if !watched.started {
            let shared = self.shared.clone();
            let timeout = self.timeout;
            let spawned = std::thread::Builder::new()
                .name("unirun-deadlines".into())
                .spawn(move || watch_loop(&shared, timeout));
            match spawned {
                Ok(thread) => {
                    watched.started = true;
                    self.thread.started(thread);
                }
                Err(_) => {
                    watched.failed = true;
                    return None;
                }
            }
        }
        let deadline = Instant::now() + self.timeout;
        watched.calls.push((pid, deadline));
        Some(deadline)
    }

    /// Unregisters `pid`'s call (its reply was read, or its read ended);
    /// returns whether the watcher killed the worker for its deadline.
    pub(super) fn forget(&self, pid: Pid) -> bool {
        let mut watched = self.shared.lock();
        if let Some(at) = watched.calls.iter().position(|&(p, _)| p == pid) {
            watched.calls.swap_remove(at);
            return false;
        }
        match watched.expired.iter().position(|&p| p == pid) {
            Some(at) => {
                watched.expired.swap_remove(at);
                true
            }
            None => false,
        }
    }

    /// Stops the watcher and joins it; later calls are not watched.
    pub(super) fn stop(&self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_all();
        self.thread.join();
    }

    /// Whether the watcher thread runs (for tests).
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.thread.running()
    }

    /// In a forked child: the watcher thread does not exist here, so it is
    /// neither joined nor detached.
    pub(super) fn forget_thread(&mut self) {
        self.thread.forget();
    }
}

fn watch_loop(shared: &Shared, timeout: Duration) {
    let mut watched = shared.lock();
    let mut horizon = Instant::now() + timeout;
    loop {
        if watched.stop {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < watched.calls.len() {
            let (pid, deadline) = watched.calls[i];
            if deadline <= now {
                watched.calls.swap_remove(i);
                let _ = sys::kill(pid, libc::SIGKILL);
                watched.expired.push(pid);
            } else {
                i += 1;
            }
        }
        if now >= horizon {
            horizon = now + timeout;
        }
        let next = watched
            .calls
            .iter()
            .map(|&(_, deadline)| deadline)
            .min()
            .map_or(horizon, |deadline| deadline.min(horizon));
        watched = shared
            .wake
            .wait_timeout(watched, next.saturating_duration_since(now))
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
