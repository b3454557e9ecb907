//! The object-safe [`Executor`] trait and the [`RunQueue`] every executor provides.

use alloc::sync::Arc;
use core::future::Future;

use async_task::ScheduleInfo;

use crate::task::{spawn_blocking_with, spawn_with, Runnable};
use crate::{JoinHandle, TaskSet};

/// An executor's run queue: where a woken task goes to be run, the one
/// operation an executor must provide. (Named apart from async-task's
/// `Schedule`, the schedule function a task is built with: that function
/// calls [`schedule`](Self::schedule) here.)
///
/// `info.woken_while_running` is true when a task woke itself during its own
/// poll (a yield): fair schedulers send such a task to the back of the queue.
///
/// # Examples
///
/// ```
/// use std::collections::VecDeque;
/// use std::sync::{Arc, Mutex};
/// use unirun_core::{Executor, Runnable, RunQueue, ScheduleInfo};
///
/// // Tasks wait here until the owner runs them.
/// #[derive(Default)]
/// struct Queue(Mutex<VecDeque<Runnable>>);
///
/// impl RunQueue for Queue {
///     fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
///         self.0.lock().unwrap().push_back(runnable);
///     }
/// }
///
/// struct Manual(Arc<Queue>);
///
/// impl Executor for Manual {
///     fn run_queue(&self) -> Arc<dyn RunQueue> {
///         self.0.clone()
///     }
///     fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
///         self.0.clone()
///     }
/// }
///
/// let queue = Arc::new(Queue::default());
/// let ex: &dyn Executor = &Manual(queue.clone());
/// let handle = ex.spawn(async { 2 + 2 });
/// assert!(!handle.is_finished()); // queued, not run
///
/// let runnable = queue.0.lock().unwrap().pop_front().unwrap();
/// runnable.run();
/// assert_eq!(handle.join().unwrap(), 4);
/// ```
pub trait RunQueue: Send + Sync + 'static {
    /// Queues `runnable` to be run once.
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo);

    /// The set that tasks spawned through this queue join, so that shutdown
    /// can wait for them or cancel them. `None` (the default) tracks nothing.
    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        None
    }
}

/// Something that runs tasks: a thread pool, a single-threaded loop, a
/// process pool, a tokio or smol runtime.
///
/// The trait is object-safe, so libraries can take `&dyn Executor`,
/// `Box<dyn Executor>` or `Arc<dyn Executor>` and stay agnostic of the
/// backend. Spawning goes through [`spawn`](#method.spawn) and
/// [`spawn_blocking`](#method.spawn_blocking), defined on `dyn Executor`
/// itself, so every trait object has them. unirun's concrete executors have
/// the same methods of their own (with a faster, non-virtual schedule path);
/// generic code over `E: Executor` coerces with `let ex: &dyn Executor = &e;`.
/// Each spawn makes one allocation (the task).
///
/// Why not generic trait methods: a `where Self: Sized` method of an
/// object-safe trait cannot be called on a trait object, and an inherent
/// method of the same name on `dyn Executor` would make calls ambiguous.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::{Executor, TickExecutor};
///
/// fn start(ex: &dyn Executor) -> unirun_core::JoinHandle<u32> {
///     ex.spawn(async { 40 + 2 })
/// }
///
/// let ex = Arc::new(TickExecutor::new());
/// let handle = start(&*ex);
/// let dynamic: Arc<dyn Executor> = ex.clone();
/// let other = dynamic.spawn_blocking(|| "blocking");
/// ex.run_until_stalled();
/// assert_eq!(unirun_core::block_on(handle).unwrap(), 42);
/// assert_eq!(unirun_core::block_on(other).unwrap(), "blocking");
/// ```
pub trait Executor: Send + Sync {
    /// The run queue of async tasks.
    fn run_queue(&self) -> Arc<dyn RunQueue>;

    /// The run queue of blocking closures: a lane of threads that may
    /// block, where the executor has one.
    fn blocking_run_queue(&self) -> Arc<dyn RunQueue>;
}

impl dyn Executor + '_ {
    /// Spawns a future; its [`JoinHandle`] resolves to the future's output.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{Executor, TickExecutor};
    ///
    /// let tick = Arc::new(TickExecutor::new());
    /// let ex: Arc<dyn Executor> = tick.clone();
    /// let handle = ex.spawn(async { "hello" });
    /// tick.run_until_stalled();
    /// assert_eq!(handle.join().unwrap(), "hello");
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_on(self.run_queue(), future)
    }

    /// Runs a blocking closure where blocking is allowed (a separate lane of
    /// threads, where the executor has one); its [`JoinHandle`] resolves to
    /// the closure's return value.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{Executor, TickExecutor};
    ///
    /// let tick = Arc::new(TickExecutor::new());
    /// let ex: Arc<dyn Executor> = tick.clone();
    /// let handle = ex.spawn_blocking(|| (1..=4).product::<u32>());
    /// tick.run_until_stalled(); // a tick executor runs the closure inline
    /// assert_eq!(handle.join().unwrap(), 24);
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        spawn_blocking_on(self.blocking_run_queue(), f)
    }
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        (**self).run_queue()
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        (**self).blocking_run_queue()
    }
}

fn spawn_on<F>(queue: Arc<dyn RunQueue>, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks = queue.task_set().cloned();
    let (runnable, handle) = spawn_with(future, tasks.as_ref(), move |r, info| {
        queue.schedule(r, info)
    });
    runnable.schedule();
    handle
}

fn spawn_blocking_on<F, R>(queue: Arc<dyn RunQueue>, f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let tasks = queue.task_set().cloned();
    let (runnable, handle) =
        spawn_blocking_with(f, tasks.as_ref(), move |r, info| queue.schedule(r, info));
    runnable.schedule();
    handle
}
