//! How a managed spawn gets a thread, and never waits for one where std
//! would not.
//!
//! std gives every spawn an OS thread of its own, so closures that wait for
//! each other (a barrier of 1,000, a chain of nested spawn + join) always
//! make progress. A pooled spawn must keep that promise. Each spawn's
//! closure sits in a [`Shared`] slot, and whoever *claims* it first runs it:
//! - a job on the shared default executor's blocking lane, submitted first;
//! - a dedicated OS thread, started when the lane cannot promise the job a
//!   thread (below), when the lane drops the job without running it (its
//!   executor was reset), or when [`Shared::thread`] is asked for the thread
//!   before the closure started.
//!
//! **When the lane promises a thread.** Right after submitting, the spawn
//! reads the lane's counters in one consistent snapshot and keeps the lane
//! only when `threads - waiting + queued <= cap`. The queue is served in
//! order, and our job is in it (or already started): the closures ahead of
//! it are counted in `queued`, the ones running in `threads - waiting`
//! (threads that are starting or between closures count as running, which
//! only errs towards starting a dedicated thread). Only the closures ahead
//! of ours can take a lane thread before ours does, so even if every one of
//! them blocks for good, fewer than `cap` threads are taken when our job
//! reaches the front, and the lane grows or wakes a thread for it (its
//! "no queued closure is left without a thread" rule). Otherwise a
//! dedicated thread races the lane for the closure; whoever loses finds the
//! slot empty and returns at once.
//!
//! A dedicated thread enters the shared default's scope when it has one
//! (`UNIRUN_THREAD_MODE=gil`, or a forking default), as the lane's jobs do,
//! so `Handle::current` and nested scopes see the same scope from both.
//! Neither ever holds a serialized default's gil: std's threads are
//! independent, and a closure blocked in `recv` must not keep its sender
//! from running (see the `gil` module's rule and its liveness argument).
//!
//! **Why `join` ends.** It waits on the slot's condition variable until the
//! closure's result is stored. A waiting closure is claimed: by the lane
//! (by the argument above), by a racing dedicated thread, or, if the lane
//! drops the job unrun, by the thread its drop starts. A claimed closure
//! stores its result when it returns (a panic is caught first), as std's
//! `join` waits for the thread to return.

use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, Thread};

use crate::scope::ScopeState;
use crate::Handle;

/// A closure handed to [`launch`].
pub(super) type Job<T> = Box<dyn FnOnce() -> T + Send + 'static>;

/// The closure as the slot keeps it: it stores its own result.
type Erased = Box<dyn FnOnce() + Send + 'static>;

/// One spawn: its closure until claimed, then its result.
pub(super) struct Shared<T> {
    slot: Mutex<Slot<T>>,
    /// Signalled when the result is stored.
    done: Condvar,
    /// The thread running the closure; set under `slot`'s lock by whoever
    /// claims it, so it is set exactly when the slot leaves `Waiting`.
    thread: OnceLock<Thread>,
    /// The name asked for with `Builder::name`: the closure then runs on
    /// a dedicated thread of that name.
    name: Option<String>,
    /// The shared default's scope, when it has one (serialized or forking):
    /// a dedicated thread enters it as the lane's jobs do.
    scope: Option<Arc<ScopeState>>,
}

enum Slot<T> {
    /// Not started: the closure, for whoever claims it first.
    Waiting(Erased),
    Running,
    Done(thread::Result<T>),
    /// The result was taken by `join`.
    Joined,
}

/// Starts `f` on a pooled thread, or on a dedicated one when the pool cannot
/// promise it a thread (see the module docs).
///
/// # Errors
///
/// As std's `Builder::spawn`: the OS error when the shared default could
/// not start its pool and a dedicated thread is refused too (`f` is
/// dropped, unrun).
pub(super) fn launch<T: Send + 'static>(
    f: Job<T>,
    name: Option<String>,
) -> std::io::Result<Arc<Shared<T>>> {
    let handle = crate::get_executor();
    let shared = Shared::new(f, name, handle.scope().cloned());
    // A named closure gets a thread of its own, named as std names it, so
    // `thread::current().name()` inside it is that name (naming is rare).
    if shared.name.is_some() || handle.backend().is_refused() {
        return launch_dedicated(shared);
    }
    let claim = Claim(shared.clone());
    // Detached: the result travels through `shared`.
    drop(handle.spawn_independent(move || claim.run_here()));
    if !lane_has_room(&handle) {
        // If the OS refuses a thread, the lane job still claims it later.
        let _ = shared.rescue();
    }
    Ok(shared)
}

/// [`launch`] on a dedicated thread (a named closure, or the shared
/// default has no pool because the OS refused its threads), or the OS
/// error as std gives it. Cold.
#[cold]
#[inline(never)]
fn launch_dedicated<T>(shared: Arc<Shared<T>>) -> std::io::Result<Arc<Shared<T>>> {
    match shared.rescue() {
        Ok(()) => Ok(shared),
        Err(err) => {
            // The closure never runs: taken out of its slot (ending the
            // cycle through it) and dropped outside the lock (user code).
            let unrun = std::mem::replace(&mut *shared.lock(), Slot::Joined);
            drop(unrun);
            Err(err)
        }
    }
}

/// Whether the lane that just received a job promises it a thread even if
/// every closure ahead of it blocks for good (see the module docs).
fn lane_has_room(handle: &Handle) -> bool {
    // A lane we cannot see into: a thread of its own, as std gives.
    let Some(stats) = handle.backend().lane_stats() else {
        return false;
    };
    stats.threads.saturating_sub(stats.idle) + stats.queued <= stats.cap
}

impl<T: Send + 'static> Shared<T> {
    /// A spawn whose closure waits to be claimed.
    fn new(f: Job<T>, name: Option<String>, scope: Option<Arc<ScopeState>>) -> Arc<Self> {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Running),
            done: Condvar::new(),
            thread: OnceLock::new(),
            name,
            scope,
        });
        // The closure holds its slot until it runs or is dropped; the cycle
        // ends when it is taken out of the slot.
        let owner = shared.clone();
        let erased: Erased = Box::new(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(f));
            owner.finish(result);
        });
        *shared.lock() = Slot::Waiting(erased);
        shared
    }
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Claims the closure if nobody has, starting it on a dedicated OS
    /// thread. Returns the OS error when that thread cannot start (the
    /// closure then waits for its lane job again).
    fn rescue(&self) -> std::io::Result<()> {
        let mut slot = self.lock();
        let Slot::Waiting(_) = &*slot else {
            return Ok(());
        };
        let Slot::Waiting(f) = std::mem::replace(&mut *slot, Slot::Running) else {
            unreachable!("matched above")
        };
        // Pass the closure through a cell so that a refused spawn, which
        // drops its closure, leaves it for us to put back.
        let cell = Arc::new(Mutex::new(Some(f)));
        let mut builder = thread::Builder::new();
        if let Some(name) = &self.name {
            builder = builder.name(name.clone());
        }
        let (theirs, scope) = (cell.clone(), self.scope.clone());
        // Starting the thread under the lock is safe: the new thread takes
        // the lock only after its closure returned.
        match builder.spawn(move || {
            let f = theirs.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(f) = f {
                let _enter = scope.as_deref().map(ScopeState::enter_unlocked);
                f();
            }
        }) {
            Ok(started) => {
                let _ = self.thread.set(started.thread().clone());
                Ok(())
            }
            Err(err) => {
                let f = cell.lock().unwrap_or_else(PoisonError::into_inner).take();
                *slot = Slot::Waiting(f.expect("a refused spawn never ran its closure"));
                Err(err)
            }
        }
    }

    /// Stores the result and wakes `join`.
    fn finish(&self, result: thread::Result<T>) {
        *self.lock() = Slot::Done(result);
        self.done.notify_all();
    }

    /// Waits for the closure to return; its result, or its panic payload.
    pub(super) fn join(&self) -> thread::Result<T> {
        let mut slot = self.lock();
        loop {
            match std::mem::replace(&mut *slot, Slot::Joined) {
                Slot::Done(result) => return result,
                Slot::Joined => unreachable!("a handle joins once"),
                other => {
                    *slot = other;
                    slot = self.done.wait(slot).unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }

    /// Whether the closure has returned.
    pub(super) fn is_finished(&self) -> bool {
        matches!(*self.lock(), Slot::Done(_) | Slot::Joined)
    }

    /// The thread running the closure. If it has not started yet, it starts
    /// now on a dedicated thread, so this never waits for the pool.
    ///
    /// # Panics
    ///
    /// If the closure had not started and the OS refuses a thread, as
    /// `std::thread::spawn` panics then.
    pub(super) fn thread(&self) -> &Thread {
        if let Some(thread) = self.thread.get() {
            return thread;
        }
        if let Err(err) = self.rescue() {
            panic!("failed to spawn thread: {err}");
        }
        self.thread
            .get()
            .expect("a claimed closure has its thread recorded")
    }
}

/// The lane's claim on a closure. Dropped unrun (its executor was reset
/// under it), it hands the closure to a dedicated thread instead.
struct Claim<T>(Arc<Shared<T>>);

impl<T> Claim<T> {
    /// Runs the closure on this (lane) thread, if nobody claimed it yet.
    fn run_here(&self) {
        let shared = &self.0;
        let f = {
            let mut slot = shared.lock();
            if !matches!(*slot, Slot::Waiting(_)) {
                return;
            }
            let Slot::Waiting(f) = std::mem::replace(&mut *slot, Slot::Running) else {
                unreachable!("matched above")
            };
            let _ = shared.thread.set(thread::current());
            f
        };
        // Catches its own panic and stores the result.
        f();
    }
}

impl<T> Drop for Claim<T> {
    fn drop(&mut self) {
        // Nothing to do when the closure was claimed (the usual case). If
        // even a dedicated thread is refused, `join` reports it as std's
        // `spawn` would have: the closure never runs, so store a panic.
        if self.0.rescue().is_err() {
            let mut slot = self.0.lock();
            if matches!(*slot, Slot::Waiting(_)) {
                let payload: Box<dyn std::any::Any + Send> =
                    Box::new("failed to spawn thread for a cancelled pooled closure");
                let unrun = std::mem::replace(&mut *slot, Slot::Done(Err(payload)));
                drop(slot);
                self.0.done.notify_all();
                // The closure's destructor is user code: outside the lock.
                drop(unrun);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread;

    use unirun_test_support::watchdog;

    use super::{Claim, Shared};

    #[test]
    fn a_job_dropped_unrun_still_runs_on_a_thread_of_its_own() {
        watchdog("a job dropped unrun", dropped_unrun);
    }

    fn dropped_unrun() {
        let (tx, rx) = mpsc::channel();
        let shared = Shared::new(
            Box::new(move || {
                tx.send(thread::current().id()).unwrap();
                thread::current().name().map(String::from)
            }),
            Some("rescued".into()),
            None,
        );
        // What the lane does to a job it cancels: drops it without running.
        drop(Claim(shared.clone()));
        let ran_on = rx.recv().unwrap();
        assert_ne!(ran_on, thread::current().id());
        assert_eq!(shared.join().unwrap().as_deref(), Some("rescued"));
        assert_eq!(shared.thread().id(), ran_on);
    }

    #[test]
    fn thread_before_the_start_starts_it_without_waiting() {
        watchdog("thread() before the start", thread_before_the_start);
    }

    fn thread_before_the_start() {
        let (release, gate) = mpsc::channel::<()>();
        let shared = Shared::new(
            Box::new(move || {
                gate.recv().unwrap();
                thread::current().id()
            }),
            None,
            None,
        );
        // Nobody claimed it (no lane job at all): `thread()` starts it.
        let id = shared.thread().id();
        assert!(!shared.is_finished());
        release.send(()).unwrap();
        assert_eq!(shared.join().unwrap(), id);
        assert!(shared.is_finished());
        // A claim that comes later finds the slot taken and does nothing.
        Claim(shared.clone()).run_here();
    }

    #[test]
    fn the_first_claim_wins() {
        let shared = Shared::new(Box::new(|| thread::current().id()), None, None);
        let claim = Claim(shared.clone());
        claim.run_here();
        assert_eq!(shared.thread().id(), thread::current().id());
        // Dropping a claim that ran starts nothing more.
        drop(claim);
        assert_eq!(shared.join().unwrap(), thread::current().id());
    }
}
