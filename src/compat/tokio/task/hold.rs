//! Keeps a tokio runtime's shutdown waiting for a managed blocking closure,
//! as tokio's own drop waits for its blocking closures.
//!
//! A managed `spawn_blocking` runs on unirun's lane, which the runtime knows
//! nothing of. So next to the closure, a small task (a [`Guard`]) is
//! spawned onto the runtime: it completes when the closure ends. If the
//! runtime shuts down first, it drops the guard with its other tasks, and
//! the guard's drop hands a [`Waiter`] to the runtime's own blocking pool,
//! whose shutdown (the last step of the runtime's drop, after every task
//! was dropped) waits for its threads: so the runtime's drop waits for the
//! closure, in tokio's order, and its `shutdown_timeout` bounds the wait.
//! Where the pool refuses the waiter (a multi-thread runtime's pool may
//! already be shutting down while its workers drop tasks), the waiter is
//! dropped on the worker, and waits there: tokio waits for its workers too.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// Where the closure is.
#[derive(Default)]
struct State {
    /// The closure was handed to the lane: a guard dropped from now on
    /// waits (before, nothing would run it yet, and the caller may be the
    /// thread the guard is dropped on).
    armed: bool,
    /// The closure returned, panicked or was dropped unrun.
    done: bool,
    /// The guard task's waker while it waits.
    waker: Option<Waker>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    done: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Moved into the closure: dropping it (when the closure ends, however it
/// ends) releases the runtime's shutdown.
pub(super) struct Hold(Arc<Shared>);

/// Where the guard waits from: call [`Armed::arm`] once the closure is on
/// the lane.
pub(super) struct Armed(Arc<Shared>);

impl Armed {
    pub(super) fn arm(self) {
        self.0.lock().armed = true;
    }
}

/// Spawns the guard onto `runtime`; the closure carries the [`Hold`].
pub(super) fn hold(runtime: &tokio::runtime::Handle) -> (Hold, Armed) {
    let shared = Arc::new(Shared::default());
    // Detached: it ends by itself when the closure does.
    drop(runtime.spawn(Guard {
        shared: shared.clone(),
        runtime: runtime.clone(),
    }));
    (Hold(shared.clone()), Armed(shared))
}

impl Drop for Hold {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.done = true;
            state.waker.take()
        };
        self.0.done.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The task on the runtime standing for the closure. (Its handle on the
/// runtime is released when the closure ends, or when the runtime drops
/// the task.)
struct Guard {
    shared: Arc<Shared>,
    runtime: tokio::runtime::Handle,
}

impl Future for Guard {
    type Output = ();

    /// The flag and the waker share one lock: `Hold::drop` either sees the
    /// waker stored here or sets the flag before this poll reads it.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.shared.lock();
        if state.done {
            return Poll::Ready(());
        }
        state.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Guard {
    /// Dropped unfinished only by the runtime's shutdown: the wait for the
    /// closure goes to the runtime's blocking pool (see the module doc).
    fn drop(&mut self) {
        let pending = {
            let state = self.shared.lock();
            state.armed && !state.done
        };
        if pending {
            let waiter = Waiter(self.shared.clone());
            drop(self.runtime.spawn_blocking(move || drop(waiter)));
        }
    }
}

/// Waits for the closure when dropped, on whichever thread drops it.
struct Waiter(Arc<Shared>);

impl Drop for Waiter {
    /// The wait ends: the closure is on unirun's lane, which runs it (or
    /// drops it unrun at its own shutdown), and either way `Hold` is
    /// dropped and notifies.
    fn drop(&mut self) {
        let mut state = self.0.lock();
        while state.armed && !state.done {
            state = self
                .0
                .done
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}
