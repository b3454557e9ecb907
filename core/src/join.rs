//! [`JoinHandle`]: the one handle type every backend returns.

use alloc::boxed::Box;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use async_task::FallibleTask;

use crate::abandoned::Key;
use crate::foreign::Foreign;
use crate::sync::SpinLock;
use crate::task::{Stored, TaskOutput};
use crate::{ForeignJoin, JoinError};

/// An owned permission to await a task's output.
///
/// Resolves to `Ok(value)`, or to a [`JoinError`] when the task panicked, was
/// cancelled (by [`abort`](Self::abort) or by its executor shutting down), or,
/// on the process backend, crashed or timed out. Dropping a `JoinHandle`
/// detaches the task: it runs on and its output is discarded. A discarded
/// output whose destructor panics is contained: the panic hook reports it
/// as any panic, and the thread that dropped it keeps serving (tested by
/// `core/tests/output_drop.rs`).
///
/// A handle never hangs: when the task's executor goes away, pending tasks are
/// cancelled and their handles resolve to `Err(cancelled)`.
///
/// # Examples
///
/// ```
/// use unirun_core::TickExecutor;
///
/// let ex = TickExecutor::new();
/// let handle = ex.spawn(async { 1 + 1 });
/// assert!(!handle.is_finished());
/// ex.run_until_stalled();
/// assert!(handle.is_finished());
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 2);
/// ```
pub struct JoinHandle<T> {
    /// `None` once the task was aborted or its output taken.
    ///
    /// Invariant: `poll` reaches the slot through `&mut self` without locking;
    /// `abort`/`is_finished` take `&self` and must go through the lock, since a
    /// `JoinHandle` is `Sync`.
    task: SpinLock<Option<Task<T>>>,
}

/// The task behind a handle: one of ours, or a foreign executor's.
enum Task<T> {
    Local(Local<T>),
    /// Aborted, and its future perhaps not dropped yet.
    Cancelling(Box<Cancelling<T>>),
    /// Taken out of the slot by a call that runs user code with the lock
    /// released (an `abort`, or an `is_finished` checking a cancellation):
    /// not known to be finished.
    Aborting,
    /// A foreign task taken out of the slot by an `is_finished` that asks
    /// it with the lock released: not known to be finished. `true` once an
    /// `abort` came meanwhile: that call then aborts the task.
    Asking(bool),
    /// Finished while aborting; the outcome, not yet taken.
    Done(TaskOutput<T>),
    Foreign(Foreign<T>),
}

/// One of our tasks, and how to cancel it without losing sight of it.
struct Local<T> {
    task: FallibleTask<Stored<T>>,
    /// The task's identity in `abandoned`.
    key: Key,
    /// Boxes `task.cancel()`; made where `T: Send + 'static` is known.
    cancel: fn(FallibleTask<Stored<T>>) -> CancelFuture<T>,
}

/// `FallibleTask::cancel`: resolves once the future has been dropped.
type CancelFuture<T> = Pin<Box<dyn Future<Output = Option<TaskOutput<T>>> + Send>>;

/// An aborted task that may still be running.
struct Cancelling<T> {
    cancel: CancelFuture<T>,
    /// The task's identity in `abandoned`.
    key: Key,
    /// The waker the handle was last polled with, to poll `cancel` with
    /// from `is_finished` without taking the wake-up from the awaiter.
    waker: Option<Waker>,
}

/// Puts a task taken out of a handle's slot (left `Aborting`) back when
/// dropped, also if the user code run meanwhile unwinds, so
/// `JoinHandle::poll` never finds `Aborting`.
struct PutBack<'a, T> {
    slot: &'a SpinLock<Option<Task<T>>>,
    task: Option<Task<T>>,
}

impl<T> PutBack<'_, T> {
    /// The task, without putting it back.
    fn disarm(self) -> Option<Task<T>> {
        // Not dropped: `slot` is a reference, and `task` is moved out.
        let mut this = core::mem::ManuallyDrop::new(self);
        this.task.take()
    }
}

impl<T> Drop for PutBack<'_, T> {
    fn drop(&mut self) {
        let task = self.task.take();
        // Replaces `Aborting` or `Asking`, which have nothing to drop.
        self.slot.with(|slot| *slot = task);
    }
}

impl<T> Cancelling<T> {
    /// Polls the cancellation once with the awaiter's waker (so the
    /// awaiter's wake-up is not taken from it): the outcome, once the
    /// future is gone. Registering that waker clones it and drops the one
    /// registered before, which is user code: never called under the
    /// handle's lock.
    fn poll_finished(&mut self) -> Option<TaskOutput<T>> {
        let waker = self.waker.as_ref().unwrap_or(Waker::noop());
        match self.cancel.as_mut().poll(&mut Context::from_waker(waker)) {
            Poll::Ready(output) => Some(output.unwrap_or_else(|| unfinished(self.key))),
            Poll::Pending => None,
        }
    }
}

/// The outcome of a task dropped unfinished: cancelled, or the panic its
/// future's destructor raised on the way (see `abandoned`).
fn unfinished<T>(key: Key) -> TaskOutput<T> {
    Err(crate::abandoned::take(key).unwrap_or_else(JoinError::cancelled))
}

fn box_cancel<T: Send + 'static>(task: FallibleTask<Stored<T>>) -> CancelFuture<T> {
    Box::pin(async move { task.cancel().await.map(Stored::into_inner) })
}

impl<T> JoinHandle<T> {
    pub(crate) fn from_task(task: async_task::Task<Stored<T>>) -> Self
    where
        T: Send + 'static,
    {
        let key = crate::abandoned::key_of(task.metadata());
        // A panic recorded for an earlier task at this address is stale.
        crate::abandoned::forget(key);
        Self {
            task: SpinLock::new(Some(Task::Local(Local {
                task: task.fallible(),
                key,
                cancel: box_cancel::<T>,
            }))),
        }
    }

    /// Wraps a foreign executor's join handle, so a backend onto that
    /// executor returns the same `JoinHandle` as every other; see
    /// [`ForeignJoin`] for the contract and an example.
    pub fn from_foreign(task: impl ForeignJoin<T> + 'static) -> Self
    where
        T: 'static,
    {
        Self {
            task: SpinLock::new(Some(Task::Foreign(Foreign::new(task)))),
        }
    }

    /// Cancels the task if it has not finished yet.
    ///
    /// A task that is waiting is dropped by its executor promptly; one
    /// running right now is dropped when its current poll returns. Until
    /// then [`is_finished`](Self::is_finished) stays `false`. Awaiting the
    /// handle afterwards yields `Err(cancelled)`, once the future is gone; a
    /// task that had already finished keeps its output. A destructor that
    /// panics on the way is contained (the thread dropping the future keeps
    /// serving), and the handle resolves to that panic
    /// ([`JoinError::is_panic`]), as in tokio. Blocking
    /// closures that already started run to completion, but their output is
    /// discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::TickExecutor;
    ///
    /// let ex = TickExecutor::new();
    /// let handle = ex.spawn(std::future::pending::<()>());
    /// ex.run_until_stalled();
    /// handle.abort();
    /// assert!(!handle.is_finished()); // the executor has not dropped it yet
    /// ex.run_until_stalled();
    /// assert!(handle.is_finished());
    /// assert!(unirun_core::block_on(handle).unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        let task = self.task.with(|slot| match slot {
            Some(Task::Local(local)) if !local.task.is_finished() => slot.replace(Task::Aborting),
            // Asked whether it finished with the lock released: see
            // `is_finished`.
            Some(Task::Foreign(_)) => slot.replace(Task::Aborting),
            // Being asked by an `is_finished`, which aborts it afterwards.
            Some(Task::Asking(requested)) => {
                *requested = true;
                None
            }
            _ => None,
        });
        // Cancelled outside the lock: that may schedule the task or run the
        // future's destructor, which is user code.
        match task {
            Some(Task::Local(Local { task, key, cancel })) => {
                let mut cancel = cancel(task);
                let state = match cancel
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(output) => Task::Done(output.unwrap_or_else(|| unfinished(key))),
                    Poll::Pending => Task::Cancelling(Box::new(Cancelling {
                        cancel,
                        key,
                        waker: None,
                    })),
                };
                self.task.with(|slot| *slot = Some(state));
            }
            Some(task @ Task::Foreign(_)) => Self::abort_foreign(&self.task, task, false),
            _ => {}
        }
    }

    /// [`abort`](Self::abort) for a foreign task taken out of `slot` (left
    /// `Aborting`): asks it whether it finished (unless `unfinished` says
    /// it was just asked) and aborts it, both with the lock released (user
    /// code, which may ask this handle `is_finished`: it answers `false`
    /// meanwhile). A finished task is put back, to give its output; an
    /// aborted one is dropped, and the handle resolves to `cancelled`.
    #[cold]
    #[inline(never)]
    fn abort_foreign(slot: &SpinLock<Option<Task<T>>>, task: Task<T>, unfinished: bool) {
        let mut put_back = PutBack {
            slot,
            task: Some(task),
        };
        let finished = match put_back.task.as_mut() {
            Some(Task::Foreign(task)) => !unfinished && task.is_finished(),
            _ => unreachable!("put there just above"),
        };
        if finished {
            return;
        }
        let Some(Task::Foreign(mut task)) = put_back.task.take() else {
            unreachable!("put there just above");
        };
        task.abort();
        // The slot becomes empty (`cancelled`); the handle is dropped with
        // the lock released.
        drop(put_back);
        drop(task);
    }

    /// Whether the task has ended: completed, panicked, or been cancelled
    /// and dropped (after [`abort`](Self::abort), only once its future is
    /// actually gone).
    ///
    /// Never waits for other callers, and runs no user code under a lock:
    /// a call made while another call on the same handle runs user code
    /// answers `false`. That code is a foreign executor's
    /// [`ForeignJoin::is_finished`] or [`ForeignJoin::abort`] (which may
    /// ask this very handle), or, after an abort, the check of the
    /// cancellation (which may clone, wake or drop the awaiter's waker);
    /// the other call may come from another thread or from that code.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::TickExecutor;
    ///
    /// let ex = TickExecutor::new();
    /// let done = ex.spawn(async { 7 });
    /// let aborted = ex.spawn(std::future::pending::<()>());
    /// assert!(!done.is_finished());
    /// ex.run_until_stalled();
    /// assert!(done.is_finished());
    /// assert!(!aborted.is_finished()); // still waiting
    /// aborted.abort();
    /// ex.run_until_stalled(); // the executor drops the aborted future
    /// assert!(aborted.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        // A foreign task's check is the foreign handle's `is_finished`, and
        // an aborted task's polls its cancellation, which clones, drops or
        // wakes the awaiter's waker: user code either way, which may ask
        // this very handle `is_finished` again. So such a task is taken out
        // of the slot (`Aborting` holds the place: a nested or concurrent
        // caller sees "not finished", as while `abort` runs) and checked
        // with the lock released; the lock is only ever held for a look at
        // the slot.
        let taken = self.task.with(|slot| match slot {
            Some(Task::Local(local)) => Ok(local.task.is_finished()),
            Some(Task::Foreign(_)) => Err(slot.replace(Task::Asking(false))),
            Some(Task::Cancelling(_)) => Err(slot.replace(Task::Aborting)),
            Some(Task::Aborting | Task::Asking(_)) => Ok(false),
            Some(Task::Done(_)) | None => Ok(true),
        });
        match taken {
            Ok(finished) => finished,
            Err(task) => Self::check_unlocked(&self.task, task),
        }
    }

    /// [`is_finished`](Self::is_finished) for a task taken out of `slot`
    /// (left `Asking` or `Aborting`): a foreign one, asked unlocked, or one
    /// being cancelled, whose cancellation is polled unlocked; puts the
    /// task (or its outcome) back.
    #[cold]
    #[inline(never)]
    fn check_unlocked(slot: &SpinLock<Option<Task<T>>>, task: Option<Task<T>>) -> bool {
        // Put back also if the user code unwinds (a foreign handle's
        // `is_finished` may; a poll of async-task's cancellation cannot,
        // as it aborts on a panicking waker).
        let mut put_back = PutBack { slot, task };
        let output = match put_back.task.as_mut() {
            Some(Task::Foreign(task)) => {
                let finished = task.is_finished();
                Self::put_back_asked(put_back, finished);
                return finished;
            }
            Some(Task::Cancelling(cancelling)) => cancelling.poll_finished(),
            _ => unreachable!("taken out as `Foreign` or `Cancelling`"),
        };
        let Some(output) = output else {
            return false;
        };
        let cancelling = put_back.task.replace(Task::Done(output));
        drop(put_back);
        // The finished cancellation (and the waker it kept) is dropped with
        // the lock released.
        drop(cancelling);
        true
    }

    /// Puts back a foreign task that `is_finished` asked (the slot is
    /// `Asking`), unless an `abort` came meanwhile for a task that had not
    /// finished: this call then aborts it, as that `abort` would have.
    fn put_back_asked(put_back: PutBack<'_, T>, finished: bool) {
        let slot = put_back.slot;
        let task = put_back.disarm();
        let to_abort = slot.with(|slot| {
            if !finished && matches!(slot, Some(Task::Asking(true))) {
                *slot = Some(Task::Aborting);
                task
            } else {
                *slot = task;
                None
            }
        });
        if let Some(task) = to_abort {
            Self::abort_foreign(slot, task, true);
        }
    }

    /// Lets the task run on without anyone awaiting it; the same as dropping the handle.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use unirun_core::TickExecutor;
    ///
    /// let ex = TickExecutor::new();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = ran.clone();
    /// ex.spawn(async move { flag.store(true, Ordering::SeqCst) }).detach();
    /// ex.run_until_stalled();
    /// assert!(ran.load(Ordering::SeqCst)); // it ran although nobody awaited it
    /// ```
    pub fn detach(self) {
        let mut this = core::mem::ManuallyDrop::new(self);
        // The slot is emptied here and its (empty) storage needs no drop:
        // this skips the drop glue `drop(self)` would run after it.
        Self::release(this.task.get_mut().take());
    }

    /// Lets go of the task taken out of the slot: ours detaches, a foreign
    /// one is dropped (which detaches it, by `ForeignJoin`'s contract).
    #[inline]
    fn release(task: Option<Task<T>>) {
        match task {
            Some(Task::Local(local)) => local.task.detach(),
            // A foreign handle detaches when dropped; an aborted task's rest
            // detaches nothing new.
            other => drop(other),
        }
    }

    /// Blocks this thread until the task finishes, like
    /// `std::thread::JoinHandle::join`.
    ///
    /// On a unirun worker thread the worker's queues are handed to a new
    /// thread first (see [`block_on`](crate::block_on)), so joining a task
    /// queued behind the caller cannot deadlock.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::TickExecutor;
    ///
    /// let ex = TickExecutor::new();
    /// let handle = ex.spawn(async { "done" });
    /// ex.run_until_stalled();
    /// assert_eq!(handle.join().unwrap(), "done");
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn join(mut self) -> Result<T, JoinError> {
        // Kept until the wait below ends (the guest core comes back then).
        let mut _released = None;
        if let Some(Task::Foreign(task)) = self.task.get_mut() {
            // A foreign task that can finish on this thread (see
            // `ForeignJoin::join_here`) saves the wake-up; the same
            // preparation as `block_on`'s for a wait.
            _released = Some(crate::context::release_core());
            let mut waiting = crate::wait::Waiting::new();
            waiting.release();
            let output = task.join_here();
            drop(waiting);
            if let Some(output) = output {
                *self.task.get_mut() = None;
                return output;
            }
        }
        crate::block_on(self)
    }
}

// The handle never pins what it holds (a task's output is moved out, never
// polled), so it is `Unpin` whatever `T` is, as it always was.
impl<T> Unpin for JoinHandle<T> {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.task.get_mut();
        let output = match slot.as_mut() {
            None => return Poll::Ready(Err(JoinError::cancelled())),
            Some(Task::Local(local)) => match Pin::new(&mut local.task).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(output) => {
                    output.map_or_else(|| unfinished(local.key), Stored::into_inner)
                }
            },
            Some(Task::Cancelling(cancelling)) => match cancelling.cancel.as_mut().poll(cx) {
                Poll::Pending => {
                    if !cancelling
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        cancelling.waker = Some(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                Poll::Ready(output) => output.unwrap_or_else(|| unfinished(cancelling.key)),
            },
            // `abort` runs with `&self`, so it cannot overlap this `&mut self` poll.
            Some(Task::Aborting | Task::Asking(_)) => {
                unreachable!("abort and is_finished finish before the handle is polled")
            }
            Some(Task::Done(_)) => match slot.take() {
                Some(Task::Done(output)) => output,
                _ => unreachable!("matched `Done` just above"),
            },
            Some(Task::Foreign(task)) => match task.poll_join(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(output) => output,
            },
        };
        *slot = None;
        Poll::Ready(output)
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        Self::release(self.task.get_mut().take());
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
