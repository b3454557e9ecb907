//! The `unirun-forker` thread: where pool workers and the fork server are
//! forked from, alive exactly as long as someone needs it.
//!
//! `PR_SET_PDEATHSIG` fires when the *thread* that forked a child ends, so a
//! worker forked from a lane thread that retires would be killed under its
//! pool. Workers are therefore forked from this dedicated thread, which must
//! outlive every worker forked from it. Each [`ProcessPool`](crate::ProcessPool)
//! that forked a worker directly, and the fork server, hold a [`Lease`];
//! when the last lease goes (pools shut down or dropped, [`shutdown`](crate::shutdown)
//! stopping the server), the thread's job channel closes, the thread leaves
//! its loop and is joined, and a later lease starts a new one.

use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

/// The forker thread while someone holds it.
pub(crate) struct Forker {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// A share of the forker thread: the thread lives while one exists.
pub(crate) type Lease = Arc<Forker>;

static FORKER: Mutex<Weak<Forker>> = Mutex::new(Weak::new());

/// The running forker thread, started if none is.
///
/// # Panics
///
/// If the thread cannot be started.
pub(crate) fn lease() -> Lease {
    let mut slot = FORKER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(forker) = slot.upgrade() {
        return forker;
    }
    let (tx, rx) = mpsc::channel::<Job>();
    let thread = thread::Builder::new()
        .name("unirun-forker".into())
        .spawn(move || {
            // Ends when the last lease drops the sender.
            for job in rx {
                job();
            }
        })
        .expect("unirun: could not start the forker thread");
    let forker = Arc::new(Forker {
        jobs: Mutex::new(Some(tx)),
        thread: Some(thread),
    });
    *slot = Arc::downgrade(&forker);
    forker
}

/// Whether a forker thread is running (some lease is held).
pub(crate) fn running() -> bool {
    FORKER
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .strong_count()
        > 0
}

impl Forker {
    /// Runs `job` on the forker thread and waits for its result. In a forked
    /// child, where that thread does not exist, runs it here.
    pub(crate) fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> T {
        if unirun_core::in_forked_child() {
            return job();
        }
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .expect("the sender lives as long as the lease")
            .send(Box::new(move || {
                let _ = done_tx.send(job());
            }));
        sent.expect("the forker thread runs while a lease is held");
        // The job always sends (a panic in it would end the forker thread,
        // dropping `done_tx`: then this fails loudly instead of hanging).
        done_rx
            .recv()
            .expect("the forker thread died while running a job")
    }
}

impl Drop for Forker {
    fn drop(&mut self) {
        let sender = self
            .jobs
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self.thread.take();
        if unirun_core::in_forked_child() {
            // Inherited through a fork: the thread does not exist here, and
            // the channel's internals may be locked by it. Touch nothing.
            std::mem::forget(sender);
            std::mem::forget(thread);
            return;
        }
        drop(sender);
        if let Some(thread) = thread {
            if thread.thread().id() != thread::current().id() {
                // The loop ends as soon as it sees the channel closed: no
                // lease is left, so no job is queued or running.
                let _ = thread.join();
            }
        }
    }
}
