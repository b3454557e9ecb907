//! [`TickExecutor`]: a single-threaded executor driven by its caller's loop.

use alloc::sync::Arc;
use core::fmt;
use core::future::Future;

use async_task::ScheduleInfo;
use concurrent_queue::ConcurrentQueue;

use crate::task::{spawn_blocking_with, spawn_with, Runnable};
use crate::{Executor, JoinHandle, RunQueue, TaskSet};

/// An executor with no threads of its own: tasks run when the owner calls
/// [`try_tick`](Self::try_tick) or [`run_until_stalled`](Self::run_until_stalled),
/// e.g. from an embedded main loop. Works without `std`.
///
/// Wakers may fire from any thread. They are **not** safe to fire from an
/// interrupt handler: a wake pushes to an unbounded queue, which may
/// allocate, and a member of a [`TaskSet`] takes the set's spin lock when it
/// waits, which an interrupt arriving on the same core would spin on
/// forever. From an interrupt, set a flag or use a fixed-size channel that
/// the main loop drains. Blocking closures run inline when ticked: there is
/// no other thread to send them to.
///
/// # Examples
///
/// ```
/// use unirun_core::TickExecutor;
///
/// let ex = TickExecutor::new();
/// let a = ex.spawn(async { 1 });
/// let b = ex.spawn(async { 2 });
/// assert_eq!(ex.run_until_stalled(), 2);
/// assert_eq!(unirun_core::block_on(async { a.await.unwrap() + b.await.unwrap() }), 3);
/// ```
pub struct TickExecutor {
    queue: Arc<Queue>,
}

struct Queue {
    ready: ConcurrentQueue<Runnable>,
    /// Every task spawned here; closed when the executor is dropped.
    tasks: Arc<TaskSet>,
}

impl RunQueue for Queue {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        // The queue is closed only when the executor is dropped: then the
        // runnable is dropped, which cancels its task.
        drop(self.ready.push(runnable));
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.tasks)
    }
}

impl TickExecutor {
    /// Creates an empty executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = unirun_core::TickExecutor::new();
    /// assert!(ex.is_empty());
    /// assert_eq!(ex.run_until_stalled(), 0);
    /// ```
    pub fn new() -> Self {
        Self {
            queue: Arc::new(Queue {
                ready: ConcurrentQueue::unbounded(),
                tasks: Arc::new(TaskSet::new()),
            }),
        }
    }

    /// Spawns a future; it runs on a later tick.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = unirun_core::TickExecutor::new();
    /// let handle = ex.spawn(async { 6 * 7 });
    /// assert!(!handle.is_finished()); // spawning does not run it
    /// ex.run_until_stalled();
    /// assert_eq!(handle.join().unwrap(), 42);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_in(&self.queue.tasks.clone(), future)
    }

    /// Spawns a future as a member of `tasks` (instead of this executor's own
    /// set), so the caller can wait for or cancel a group of tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{TaskSet, TickExecutor};
    ///
    /// let ex = TickExecutor::new();
    /// let group = Arc::new(TaskSet::new());
    /// let member = ex.spawn_in(&group, std::future::pending::<()>());
    /// let outsider = ex.spawn(async { "untouched" });
    /// group.close(); // cancels the group, nothing else
    /// ex.run_until_stalled();
    /// assert!(member.join().unwrap_err().is_cancelled());
    /// assert_eq!(outsider.join().unwrap(), "untouched");
    /// ```
    pub fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let queue = self.queue.clone();
        let (runnable, handle) =
            spawn_with(future, Some(tasks), move |r, info| queue.schedule(r, info));
        runnable.schedule();
        handle
    }

    /// Queues a blocking closure; it runs inline on a later tick.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = unirun_core::TickExecutor::new();
    /// let caller = std::thread::current().id();
    /// let handle = ex.spawn_blocking(move || std::thread::current().id() == caller);
    /// ex.run_until_stalled();
    /// assert!(handle.join().unwrap()); // it ran on the ticking thread
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let queue = self.queue.clone();
        let (runnable, handle) = spawn_blocking_with(f, Some(&self.queue.tasks), move |r, info| {
            queue.schedule(r, info)
        });
        runnable.schedule();
        handle
    }

    /// Runs one queued task; returns whether there was one.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = unirun_core::TickExecutor::new();
    /// let a = ex.spawn(async { 'a' });
    /// let b = ex.spawn(async { 'b' });
    /// assert!(ex.try_tick());
    /// assert!(a.is_finished() && !b.is_finished());
    /// assert!(ex.try_tick());
    /// assert!(!ex.try_tick()); // nothing left
    /// ```
    pub fn try_tick(&self) -> bool {
        match self.queue.ready.pop() {
            Ok(runnable) => {
                crate::task::run(runnable);
                true
            }
            Err(_) => false,
        }
    }

    /// Runs tasks until none is ready; returns how many ran.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = unirun_core::TickExecutor::new();
    /// let forever = ex.spawn(std::future::pending::<()>());
    /// let quick = ex.spawn(async { 1 });
    /// // Both run once; the pending one waits for a wake-up that never comes.
    /// assert_eq!(ex.run_until_stalled(), 2);
    /// assert!(quick.is_finished() && !forever.is_finished());
    /// assert_eq!(ex.run_until_stalled(), 0);
    /// ```
    pub fn run_until_stalled(&self) -> usize {
        let mut ran = 0;
        while self.try_tick() {
            ran += 1;
        }
        ran
    }

    /// Whether no task is ready to run.
    ///
    /// # Examples
    ///
    /// ```
    /// let ex = unirun_core::TickExecutor::new();
    /// assert!(ex.is_empty());
    /// let handle = ex.spawn(async {});
    /// assert!(!ex.is_empty());
    /// ex.run_until_stalled();
    /// assert!(ex.is_empty());
    /// # drop(handle);
    /// ```
    pub fn is_empty(&self) -> bool {
        self.queue.ready.is_empty()
    }
}

impl Default for TickExecutor {
    fn default() -> Self {
        Self::new()
    }
}

impl Executor for TickExecutor {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        self.queue.clone()
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        self.queue.clone()
    }
}

impl Drop for TickExecutor {
    fn drop(&mut self) {
        // Cancel queued tasks; later wake-ups are dropped by the closed queue,
        // and closing the set wakes the waiting ones so that happens now.
        self.queue.ready.close();
        self.queue.tasks.close();
        while let Ok(runnable) = self.queue.ready.pop() {
            crate::task::cancel(runnable);
        }
    }
}

impl fmt::Debug for TickExecutor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickExecutor")
            .field("ready", &self.queue.ready.len())
            .finish()
    }
}
