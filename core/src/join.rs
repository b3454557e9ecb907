//! [`JoinHandle`]: the one handle type every backend returns.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use async_task::FallibleTask;

use crate::foreign::Foreign;
use crate::sync::SpinLock;
use crate::task::TaskOutput;
use crate::{ForeignJoin, JoinError};

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
    Foreign(Foreign<T>),
}

impl<T> Task<T> {
    fn is_finished(&self) -> bool {
        match self {
            Task::Local(task) => task.is_finished(),
            Task::Foreign(task) => task.is_finished(),
        }
    }
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
            Some(Task::Foreign(mut task)) => task.abort(),
            None => {}
        }
    }

    /// Whether the task has finished (completed, panicked or been cancelled).
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
    /// assert!(aborted.is_finished());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task
            .with(|slot| slot.as_ref().is_none_or(Task::is_finished))
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
