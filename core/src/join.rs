//! [`JoinHandle`]: the one handle type every backend returns.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use alloc::boxed::Box;
use async_task::FallibleTask;

use crate::sync::SpinLock;
use crate::task::TaskOutput;
use crate::JoinError;

/// An owned permission to await a task's output.
///
/// Resolves to `Ok(value)`, or to a [`JoinError`] when the task panicked, was
/// cancelled (by [`abort`](Self::abort) or by its executor shutting down), or,
/// on the process backend, crashed or timed out. Dropping a `JoinHandle`
/// detaches the task: it runs on and its output is discarded.
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
    Local(FallibleTask<TaskOutput<T>>),
    Foreign(Box<dyn ForeignJoin<T>>),
}

impl<T> Task<T> {
    fn is_finished(&self) -> bool {
        match self {
            Task::Local(task) => task.is_finished(),
            Task::Foreign(task) => task.is_finished(),
        }
    }
}

/// A foreign executor's join handle, seen through a unirun [`JoinHandle`]
/// (see [`JoinHandle::from_foreign`]).
///
/// This is the extension point for backends onto executors that allocate
/// their own tasks (tokio, async-executor): they spawn the user's future
/// wrapped in [`TaskFuture`](crate::TaskFuture), so a panic is caught with
/// its message and location and the output is already a
/// `Result<T, JoinError>`, and hand their own join handle to unirun. One
/// foreign task per spawn, instead of one per wake-up through
/// [`spawn_with`](crate::spawn_with).
///
/// # Examples
///
/// ```
/// use std::task::{Context, Poll};
/// use unirun_core::{ForeignJoin, JoinError, JoinHandle};
///
/// /// A "foreign" task that is already done.
/// struct Done(Option<u8>);
///
/// impl ForeignJoin<u8> for Done {
///     fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u8, JoinError>> {
///         Poll::Ready(self.0.take().ok_or_else(JoinError::cancelled))
///     }
///     fn is_finished(&self) -> bool {
///         true
///     }
///     fn abort(self: Box<Self>) {}
/// }
///
/// let handle = JoinHandle::from_foreign(Done(Some(7)));
/// assert!(handle.is_finished());
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 7);
/// ```
pub trait ForeignJoin<T>: Send {
    /// Polls for the task's outcome: its output, or why there is none (a
    /// foreign cancellation is [`JoinError::cancelled`]). Called again
    /// after `Ready` only if the caller misbehaves; may then panic.
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;

    /// Whether the task has finished (completed, panicked or been cancelled).
    fn is_finished(&self) -> bool;

    /// Cancels the task; the handle is gone afterwards. Called outside
    /// unirun's locks, so it may run the future's destructor.
    fn abort(self: Box<Self>);
}

impl<T> JoinHandle<T> {
    pub(crate) fn from_task(task: async_task::Task<TaskOutput<T>>) -> Self {
        Self {
            task: SpinLock::new(Some(Task::Local(task.fallible()))),
        }
    }

    /// Wraps a foreign executor's join handle, so a backend onto that
    /// executor returns the same `JoinHandle` as every other; see
    /// [`ForeignJoin`] for the contract and an example.
    pub fn from_foreign(task: impl ForeignJoin<T> + 'static) -> Self {
        Self {
            task: SpinLock::new(Some(Task::Foreign(Box::new(task)))),
        }
    }

    /// Cancels the task if it has not finished yet.
    ///
    /// A task that is waiting is dropped at once; one running right now is
    /// dropped when its current poll returns. Awaiting the handle afterwards
    /// yields `Err(cancelled)`; a task that had already finished keeps its
    /// output. Blocking closures that already started run to completion, but
    /// their output is discarded.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::TickExecutor;
    ///
    /// let ex = TickExecutor::new();
    /// let handle = ex.spawn(std::future::pending::<()>());
    /// handle.abort();
    /// ex.run_until_stalled();
    /// assert!(unirun_core::block_on(handle).unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&self) {
        let task = self.task.with(|slot| match slot {
            Some(task) if !task.is_finished() => slot.take(),
            _ => None,
        });
        // Cancelled outside the lock: that may run the future's destructor,
        // which is user code.
        match task {
            Some(Task::Local(task)) => drop(task),
            Some(Task::Foreign(task)) => task.abort(),
            None => {}
        }
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.task
            .with(|slot| slot.as_ref().is_none_or(Task::is_finished))
    }

    /// Lets the task run on without anyone awaiting it; the same as dropping the handle.
    pub fn detach(self) {
        drop(self);
    }

    /// Blocks this thread until the task finishes, like
    /// `std::thread::JoinHandle::join`.
    ///
    /// On a unirun worker thread the wait keeps running the pool's other tasks,
    /// so joining a task queued behind the caller cannot deadlock.
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
    pub fn join(self) -> Result<T, JoinError> {
        crate::block_on(self)
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.task.get_mut();
        let output = match slot.as_mut() {
            None => return Poll::Ready(Err(JoinError::cancelled())),
            Some(Task::Local(task)) => match Pin::new(task).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(output) => output.unwrap_or_else(|| Err(JoinError::cancelled())),
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
        match self.task.get_mut().take() {
            Some(Task::Local(task)) => task.detach(),
            // Dropping a foreign handle detaches, by `ForeignJoin`'s contract.
            Some(Task::Foreign(task)) => drop(task),
            None => {}
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
