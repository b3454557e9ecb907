//! The pool's reply watcher: one thread (`unirun-replies`) that waits for
//! the replies of calls whose handles are awaited (or detached, aborted,
//! polled with `is_finished`), so no blocking-lane thread is held per call.
//!
//! # Why
//!
//! A call awaited from an async task used to have its reader scheduled on
//! the blocking lane, where a lane thread blocked on the worker's reply
//! pipe: one lane wake-up per call, and with calls queued behind busy
//! workers one more for the next reader, on top of the worker's round trip.
//! Here a single thread waits with `poll(2)` on the reply pipes of every
//! watched call at once. When one is readable (the reply is there, or the
//! worker died and the pipe reached end of file), the thread runs that
//! call's reader task in place: the reader reads the reply, hands the
//! worker back (which sends the next queued request on it at once) and
//! completes the handle, which wakes the awaiting task. The critical path
//! per call is then the worker's round trip, as for a pipe echo.
//!
//! # Protocol and liveness
//!
//! [`Replies::watch`] hands over a reader whose request is written, with
//! the reply pipe it will read; the reader owns the worker and so its pipe,
//! and only this thread runs or drops it from then on, so the descriptor
//! stays open while it is polled. Everything is under one mutex, no
//! lock-free handoff: the thread takes new entries and sets `polling`
//! under the lock before it polls, and `watch` writes one wake byte into
//! the thread's own pipe when (and only when) it adds an entry while the
//! thread polls and no byte is pending; the thread drains that byte under
//! the lock after the poll. So an entry added while the thread polls
//! wakes it, and one added otherwise is taken before the next poll.
//!
//! A watched call ends: its worker replies, or dies (crash, a kill by the
//! deadline watcher, a shutdown), and either makes its pipe readable. Calls
//! whose reader keeps a deadline itself (the deadline watcher could not
//! start) or whose write failed are not watched: they go to the lane, as
//! before. The thread starts with the first watched call; [`Replies::stop`]
//! (the pool's shutdown or drop) makes later calls go to the lane and joins
//! the thread, which ends once the readers it holds ran (a shutdown kills
//! their workers first, so they end at once). The pool cannot be dropped
//! while the thread holds a reader (each holds the pool).

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use unirun_core::Runnable;
use unirun_platform::process as sys;

/// What the thread and the callers share, under one lock.
#[derive(Default)]
struct Watched {
    /// Readers handed over since the thread last looked, with their reply
    /// pipes.
    entries: Vec<(RawFd, Runnable)>,
    /// The thread's wake pipe (read end, write end), made with the thread.
    wake: Option<(OwnedFd, OwnedFd)>,
    /// The thread is in (or about to enter) `poll`.
    polling: bool,
    /// A wake byte is in the pipe.
    woken: bool,
    started: bool,
    /// The thread (or its pipe) could not be made: readers go to the lane.
    failed: bool,
    stop: bool,
}

struct Shared {
    watched: Mutex<Watched>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// See the module docs.
pub(super) struct Replies {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Replies {
    pub(super) fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                watched: Mutex::new(Watched::default()),
            }),
            thread: Mutex::new(None),
        }
    }

    /// Hands `reader`, whose reply comes on `fd`, to the watcher thread
    /// (started on first use); gives it back when the watcher is stopped
    /// or cannot run, for the caller to schedule on its lane.
    pub(super) fn watch(&self, fd: RawFd, reader: Runnable) -> Result<(), Runnable> {
        let mut watched = self.shared.lock();
        if watched.stop || watched.failed {
            return Err(reader);
        }
        if !watched.started && !self.start(&mut watched) {
            watched.failed = true;
            return Err(reader);
        }
        watched.entries.push((fd, reader));
        if watched.polling && !watched.woken {
            if let Some((_, write)) = &watched.wake {
                // One byte into an empty pipe (`woken` was clear): does not
                // block. Should it fail, the thread still sees the entry at
                // its next wake-up, which some watched reply will cause.
                let _ = sys::write_all(write.as_fd(), &[1]);
            }
            watched.woken = true;
        }
        Ok(())
    }

    /// Makes the wake pipe and starts the thread; whether it runs.
    fn start(&self, watched: &mut Watched) -> bool {
        let Ok(wake) = sys::pipe() else {
            return false;
        };
        let wake_read = wake.0.as_raw_fd();
        watched.wake = Some(wake);
        let shared = self.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("unirun-replies".into())
            .spawn(move || watch_loop(&shared, wake_read));
        match spawned {
            Ok(thread) => {
                watched.started = true;
                *self.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(thread);
                true
            }
            Err(_) => {
                watched.wake = None;
                false
            }
        }
    }

    /// Stops taking readers and joins the thread once it ran those it
    /// holds (unless called on the thread itself: it then ends on its
    /// own after this).
    pub(super) fn stop(&self) {
        {
            let mut watched = self.shared.lock();
            watched.stop = true;
            if watched.polling && !watched.woken {
                if let Some((_, write)) = &watched.wake {
                    let _ = sys::write_all(write.as_fd(), &[1]);
                }
                watched.woken = true;
            }
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }

    /// Whether the watcher thread runs (for tests).
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|thread| !thread.is_finished())
    }
}

/// The thread: polls the held readers' pipes and its wake pipe, runs the
/// readers whose pipe is readable; ends when stopped and holding none.
fn watch_loop(shared: &Shared, wake: RawFd) {
    let mut held: Vec<(RawFd, Runnable)> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut ready: Vec<Runnable> = Vec::new();
    loop {
        {
            let mut watched = shared.lock();
            watched.polling = false;
            if watched.woken {
                // `watch` wrote the byte under this lock: it is there.
                let mut byte = [0u8; 1];
                let Some((read, _)) = &watched.wake else {
                    unreachable!("the wake pipe lives as long as the thread");
                };
                let _ = sys::read_until(read.as_fd(), &mut byte, None);
                watched.woken = false;
            }
            held.append(&mut watched.entries);
            if held.is_empty() && watched.stop {
                return;
            }
            watched.polling = true;
        }
        fds.clear();
        fds.push(libc::pollfd {
            fd: wake,
            events: libc::POLLIN,
            revents: 0,
        });
        fds.extend(held.iter().map(|&(fd, _)| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        }));
        // SAFETY: `fds` is a live, writable array of `fds.len()` pollfds.
        // The descriptors are open: the wake pipe lives in `shared` until
        // the thread ends, and each reply pipe is owned by the worker its
        // held reader owns (only this thread runs or drops those readers).
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if rc < 0 {
            if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                // `poll` itself failed (out of memory): read each held
                // reply in turn instead, each read ending as a watched
                // call does.
                for (_, reader) in held.drain(..) {
                    reader.run();
                }
            }
            continue;
        }
        // Back to front, so `swap_remove` moves only entries already seen.
        for at in (0..held.len()).rev() {
            if fds[at + 1].revents != 0 {
                ready.push(held.swap_remove(at).1);
            }
        }
        for reader in ready.drain(..) {
            // The reply (or end of file) is there: the read does not wait
            // for more than the rest of a frame the worker is writing.
            reader.run();
        }
    }
}
