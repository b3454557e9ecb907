//! One task of a [`JoinSet`](super::JoinSet) (or of a managed
//! `compat::tokio` handle): the future or closure wrapped with a
//! [`Control`] that aborts it from inside, so an abort behaves as tokio's.
//!
//! Why not `JoinHandle::abort`: the core cancels a waiting task by dropping
//! it from the executor's side, and discards a running blocking closure's
//! output. Here the abort is a flag the task itself reads: an async task
//! that sees it drops its future *inside its own poll* (a panic in that
//! drop is the task's panic, and the handle resolves only once the future
//! is gone), and a blocking closure that already started ignores it and
//! returns its real result. Both resolve through the task's one
//! `JoinHandle`, so the outcome is never lost.
//!
//! Protocol (all under one mutex, no lock-free step): a poll stores its
//! waker and reads `aborted` in one critical section before polling the
//! future; `abort` sets `aborted` and takes the stored waker in one
//! critical section, then wakes it. Either the poll saw the flag (it
//! cancels now) or it stored its waker first (the abort wakes it, and the
//! next poll cancels). A task not yet polled is queued already.

use std::cell::Cell;
use std::future::Future;
use std::num::NonZeroU64;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::{JoinError, JoinHandle};

/// The output of a controlled task: `Err` when it was aborted before it
/// produced a value.
pub(crate) type Outcome<T> = Result<T, Aborted>;

/// A task stopped by its [`Control`] before producing a value.
#[derive(Debug)]
pub(crate) struct Aborted;

/// Source of task ids: unique for the process's lifetime, never zero.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the controlled task this thread is polling or running.
    static CURRENT: Cell<Option<NonZeroU64>> = const { Cell::new(None) };
}

/// The id of the controlled task running on this thread, if any.
#[cfg_attr(not(feature = "tokio-backend"), allow(dead_code))]
pub(crate) fn current_id() -> Option<NonZeroU64> {
    CURRENT.try_with(Cell::get).ok().flatten()
}

/// Makes `id` current on this thread until dropped.
struct EnterId(Option<NonZeroU64>);

impl EnterId {
    fn new(id: NonZeroU64) -> Self {
        EnterId(CURRENT.with(|c| c.replace(Some(id))))
    }
}

impl Drop for EnterId {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Shared between a task and the handles that can abort it.
pub(crate) struct Control {
    id: NonZeroU64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    aborted: bool,
    /// A blocking closure started: aborting it no longer has an effect.
    started: bool,
    /// The future or closure is gone (completed, aborted or dropped).
    done: bool,
    /// The waker of the task's last poll, for `abort` to wake.
    waker: Option<Waker>,
}

impl Control {
    fn new() -> Arc<Self> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Arc::new(Control {
            id: NonZeroU64::new(id).expect("task ids start at 1 and would take centuries to wrap"),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn id(&self) -> NonZeroU64 {
        self.id
    }

    /// Asks the task to stop: an async task stops at its next poll (woken
    /// for it), a blocking closure only if it has not started.
    pub(crate) fn abort(&self) {
        let waker = {
            let mut state = self.lock();
            state.aborted = true;
            state.waker.take()
        };
        // Woken outside the lock: waking may run a schedule function.
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the future or closure is gone. It turns true just before
    /// the task's output is stored, so the handle may still be a moment
    /// from ready.
    pub(crate) fn is_finished(&self) -> bool {
        self.lock().done
    }

    /// Before a poll: whether the task was aborted; if not, `waker` is
    /// recorded for a later `abort`.
    fn aborted_or_register(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if state.aborted {
            return true;
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            // The replaced waker is dropped after unlocking.
            let old = state.waker.replace(waker.clone());
            drop(state);
            drop(old);
        }
        false
    }

    /// Before a blocking closure runs: whether it may (it was not aborted).
    fn start(&self) -> bool {
        let mut state = self.lock();
        state.started = !state.aborted;
        state.started
    }
}

/// Marks the task done when the future or closure is dropped.
struct DoneGuard(Arc<Control>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.lock();
            state.done = true;
            state.waker.take()
        };
        drop(waker);
    }
}

pin_project_lite::pin_project! {
    /// A future that stops itself when its [`Control`] says so.
    pub(crate) struct Controlled<F> {
        // Dropped in place when the task is aborted; declared before the
        // guard, so the task is marked done only once the future is gone.
        #[pin]
        inner: Option<F>,
        done: DoneGuard,
    }
}

impl<F: Future> Future for Controlled<F> {
    type Output = Outcome<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let control = &this.done.0;
        let _id = EnterId::new(control.id);
        if control.aborted_or_register(cx.waker()) {
            // Dropped here, inside the task: a panic in the future's
            // destructor is this task's panic.
            this.inner.set(None);
            return Poll::Ready(Err(Aborted));
        }
        match this.inner.as_mut().as_pin_mut() {
            Some(future) => future.poll(cx).map(Ok),
            None => Poll::Ready(Err(Aborted)),
        }
    }
}

/// Wraps `future` so that a [`Control`] can abort it; returns both.
pub(crate) fn controlled<F: Future>(future: F) -> (Controlled<F>, Arc<Control>) {
    let control = Control::new();
    let future = Controlled {
        inner: Some(future),
        done: DoneGuard(control.clone()),
    };
    (future, control)
}

/// Wraps a blocking closure so that a [`Control`] can stop it before it
/// starts (only then); returns both.
pub(crate) fn controlled_blocking<F, R>(f: F) -> (impl FnOnce() -> Outcome<R>, Arc<Control>)
where
    F: FnOnce() -> R,
{
    let control = Control::new();
    let done = DoneGuard(control.clone());
    let closure = move || {
        let done = done;
        if !done.0.start() {
            return Err(Aborted);
        }
        let _id = EnterId::new(done.0.id);
        Ok(f())
    };
    (closure, control)
}

/// A controlled task: its handle, and the control that aborts it.
pub(crate) struct Task<T> {
    pub(crate) handle: JoinHandle<Outcome<T>>,
    pub(crate) control: Arc<Control>,
}

impl<T> Task<T> {
    pub(crate) fn abort(&self) {
        self.control.abort();
    }

    #[cfg_attr(not(feature = "tokio-backend"), allow(dead_code))]
    pub(crate) fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        Pin::new(&mut self.handle)
            .poll(cx)
            .map(|outcome| match outcome {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(Aborted)) => Err(JoinError::cancelled()),
                Err(err) => Err(err),
            })
    }
}
