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
//!
//! Fork-aware: the slot is a fork-guarded lock, and it records the fork
//! generation its thread was started in. A forked child (where that thread
//! does not exist) sees the slot as empty, and its own leases start no
//! thread: jobs run on the calling thread there.

use std::sync::{mpsc, Arc, Mutex, PoisonError, Weak};
use std::thread;

use unirun_platform::fork_guard::ForkMutex;

type Job = Box<dyn FnOnce() + Send>;

/// The forker thread while someone holds it.
pub(crate) struct Forker {
    /// The job channel to the thread (`None` in a forked child's forker).
    /// A plain lock: only `run` outside a forked child takes it, and a
    /// child never touches an inherited one (see `run` and `Drop`).
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Option<thread::JoinHandle<()>>,
}

/// A share of the forker thread: the thread lives while one exists.
pub(crate) type Lease = Arc<Forker>;

/// The forker of this process, if one is leased, and the fork generation
/// (`unirun_core::fork_generation`) it was made in: one made in another
/// generation is an ancestor's, whose thread is not in this process.
///
/// Fork-guarded: unirun never forks while a thread holds it (one holds it
/// while starting the thread), so a child never finds it locked.
static FORKER: ForkMutex<(Weak<Forker>, usize)> = ForkMutex::new((Weak::new(), 0));

/// The running forker thread, started if none is; in a forked child, a
/// forker without a thread (its jobs run on the caller).
///
/// # Errors
///
/// If the thread cannot be started (the system's thread limit, memory).
/// This is an error rather than a panic because the slot is fork-guarded:
/// a panic while it is held needs stderr for its message, which a thread
/// that is about to fork may hold while it waits for this hold to end.
pub(crate) fn lease() -> std::io::Result<Lease> {
    lease_in(&FORKER, start_thread)
}

/// The forker thread's body: runs jobs until the last lease drops the
/// sender.
fn start_thread(rx: mpsc::Receiver<Job>) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("unirun-forker".into())
        .spawn(move || {
            // Ends when the last lease drops the sender.
            for job in rx {
                job();
            }
        })
}

/// [`lease`] over `slot`, starting a thread with `start` (separate so a
/// test can make thread creation fail).
fn lease_in(
    slot: &ForkMutex<(Weak<Forker>, usize)>,
    start: impl FnOnce(mpsc::Receiver<Job>) -> std::io::Result<thread::JoinHandle<()>>,
) -> std::io::Result<Lease> {
    let generation = unirun_core::fork_generation();
    let mut slot = slot.lock();
    if slot.1 == generation {
        if let Some(forker) = slot.0.upgrade() {
            return Ok(forker);
        }
    }
    if unirun_core::in_forked_child() {
        // No thread to start: `run` runs jobs here. Dropping it later
        // touches nothing (see `Drop`).
        let forker = Arc::new(Forker {
            jobs: Mutex::new(None),
            thread: None,
        });
        *slot = (Arc::downgrade(&forker), generation);
        return Ok(forker);
    }
    let (tx, rx) = mpsc::channel::<Job>();
    // No panic while the slot is held (see `lease`): a failure is returned,
    // and the guard drops on the way out.
    let thread = start(rx).map_err(|err| {
        std::io::Error::new(
            err.kind(),
            format!("could not start the unirun-forker thread: {err}"),
        )
    })?;
    let forker = Arc::new(Forker {
        jobs: Mutex::new(Some(tx)),
        thread: Some(thread),
    });
    *slot = (Arc::downgrade(&forker), generation);
    Ok(forker)
}

/// Whether this process's forker is leased (some lease is held); never an
/// ancestor's, inherited through a fork.
pub(crate) fn running() -> bool {
    let slot = FORKER.lock();
    slot.1 == unirun_core::fork_generation() && slot.0.strong_count() > 0
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{mpsc, Arc};
    use std::time::Duration;

    use unirun_platform::fork_guard;

    use super::{lease, lease_in, running, FORKER};
    use crate::{fork_call, ProcessOptions};
    use unirun_platform::fork_guard::ForkMutex;

    /// Only a safety net: a child stuck on an inherited lock is killed.
    fn safety_net() -> ProcessOptions {
        ProcessOptions::default().timeout(Duration::from_secs(20))
    }

    /// A thread holds the slot while a fork path starts: the fork waits for
    /// it, so the child finds the slot free and its lease works.
    #[test]
    fn a_fork_waits_for_a_thread_holding_the_forker_slot() {
        let (held_tx, held_rx) = mpsc::channel();
        let ended = Arc::new(AtomicBool::new(false));
        let holder = {
            let ended = ended.clone();
            std::thread::spawn(move || {
                let slot = FORKER.lock();
                held_tx.send(()).unwrap();
                // Let go once a fork waits for us; or, were the slot not
                // guarded, once the call ended without waiting.
                while !fork_guard::exclusive_pending() && !ended.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                drop(slot);
            })
        };
        held_rx.recv().unwrap();
        let out = fork_call(&safety_net(), || lease().unwrap().run(|| 7u8));
        ended.store(true, Ordering::SeqCst);
        holder.join().unwrap();
        assert_eq!(out.expect("the child leased the forker"), 7);
    }

    /// The parent's forker thread is not in a child: the child does not
    /// count it as running, and its own lease starts no thread.
    #[test]
    fn a_child_sees_the_parents_forker_as_absent_and_starts_no_thread() {
        let parents = lease().unwrap();
        assert!(running());
        let out = fork_call(&safety_net(), || {
            let inherited = running();
            let own = lease().unwrap();
            let threadless = own.thread.is_none();
            let ran_here = own.run(|| std::thread::current().id()) == std::thread::current().id();
            (inherited, threadless, ran_here)
        });
        drop(parents);
        assert_eq!(out.expect("the child replied"), (false, true, true));
    }

    /// Review fault: starting the forker thread panicked (`expect`) while
    /// the fork-guarded slot was held; the panic's message needs stderr,
    /// which a thread about to fork holds while it waits for that hold to
    /// end. Now the failure is an error, and the slot is free afterwards.
    #[test]
    fn a_forker_thread_that_cannot_start_is_an_error_not_a_panic_under_the_guard() {
        static SLOT: ForkMutex<(std::sync::Weak<super::Forker>, usize)> =
            ForkMutex::new((std::sync::Weak::new(), 0));
        let outcome = std::panic::catch_unwind(|| {
            lease_in(&SLOT, |_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::WouldBlock,
                    "no thread for you",
                ))
            })
            .err()
        });
        let err = outcome
            .expect("no panic while the slot is held")
            .expect("the failed start is an error");
        assert!(err.to_string().contains("unirun-forker"), "{err}");
        assert!(err.to_string().contains("no thread for you"), "{err}");
        // Nothing recorded, nothing held: a later start works.
        assert_eq!(SLOT.lock().0.strong_count(), 0);
        let (tx, rx) = mpsc::channel();
        let forker = lease_in(&SLOT, |jobs| {
            tx.send(()).unwrap();
            super::start_thread(jobs)
        })
        .unwrap();
        rx.recv().unwrap();
        assert_eq!(forker.run(|| 7u8), 7);
    }
}
