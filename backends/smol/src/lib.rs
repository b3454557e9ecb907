//! The smol backend of unirun: unirun tasks, with unirun's [`JoinHandle`]
//! and `JoinError`, running on an
//! [`async_executor::Executor`].
//!
//! # Design
//!
//! A [`SmolPool`] owns an executor and `workers` threads named `{name}-{i}`
//! that drive it (each runs the executor until the pool shuts down). A
//! [`Handle`] can also wrap an executor the caller drives
//! ([`Handle::from_executor`]); that one is never shut down by unirun.
//!
//! Each spawn is one executor task running the future wrapped in the core's
//! [`TaskFuture`] (a panic is caught with its message and location; scope
//! membership through [`TaskSet`]; outside a scope the lighter
//! [`CatchPanic`], panics only), and the executor's task handle is
//! wrapped into unirun's [`JoinHandle`] ([`JoinHandle::from_foreign`]).
//! Blocking closures run on unirun's elastic blocking lane
//! ([`BlockingLane`]), threads named
//! `{name}-blocking-{i}`. Each handle has one lane: a [`SmolPool`] owns its
//! lane and joins its threads when it shuts down; the lane of a
//! [`Handle::from_executor`] is owned by that handle and its clones, and
//! joined when the last of them is dropped. When the executor is dropped,
//! the tasks it holds are cancelled:
//! handles never hang. Code that spawns through the object-safe
//! [`Executor`] trait gets core-allocated tasks whose [`Runnable`] goes to
//! the executor as a small task per wake-up.
//!
//! # Features
//!
//! This crate has no cargo features of its own; the `unirun` facade enables
//! it with its `smol-backend` feature.
//!
//! # Examples
//!
//! ```
//! use unirun_smol::SmolPool;
//!
//! let pool = SmolPool::builder().workers(2).name("smol").build().unwrap();
//! let handle = pool.handle();
//! assert_eq!(handle.spawn(async { 40 + 2 }).join().unwrap(), 42);
//! assert_eq!(handle.spawn_blocking(|| "blocking").join().unwrap(), "blocking");
//! pool.shutdown();
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Weak};
use std::thread;

/// The async-executor crate, so callers can name the executor type that
/// [`Handle::from_executor`] takes.
pub use async_executor;
use async_executor::Executor as SmolExecutor;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_task::FallibleTask;
use std::time::{Duration, Instant};
use unirun_blocking::BlockingLane;
pub use unirun_blocking::LaneStats;
use unirun_core::{
    CatchPanic, Executor, ForeignJoin, JoinError, JoinHandle, Runnable, Schedule, ScheduleInfo,
    TaskFuture, TaskSet,
};

/// A reference to an async-executor that spawns unirun tasks on it.
///
/// `Clone + Send + Sync`; implements [`Executor`].
///
/// # Examples
///
/// ```
/// use unirun_core::Executor;
///
/// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
/// let handle = pool.handle();
/// let ex: &dyn Executor = &handle;
/// assert_eq!(ex.spawn(async { 7 }).join().unwrap(), 7);
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    /// Weak: an owned executor goes away with its pool, cancelling the
    /// tasks it still holds; later spawns are cancelled at once.
    executor: Weak<SmolExecutor<'static>>,
    name: String,
    workers: usize,
    spawn: Arc<AsyncHook>,
    /// Blocking closures. Shut down by the owning [`SmolPool`], or, for a
    /// caller's executor, when the last handle drops this `Inner`.
    lane: BlockingLane,
    max_blocking: usize,
}

/// Hands each wake-up of a task to the executor as a task that runs it once.
struct AsyncHook(Weak<SmolExecutor<'static>>);

impl Schedule for AsyncHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        // Without an executor the runnable is dropped: the task is cancelled.
        if let Some(executor) = self.0.upgrade() {
            executor
                .spawn(async move {
                    runnable.run();
                })
                .detach();
        }
    }
}

/// An async-task handle seen through unirun's [`JoinHandle`]: dropping it
/// detaches the task (async-task's own handle would cancel it).
struct SmolJoin<T>(Option<FallibleTask<Result<T, JoinError>>>);

impl<T: Send + 'static> ForeignJoin<T> for SmolJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let Some(task) = self.0.as_mut() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        Pin::new(task)
            .poll(cx)
            .map(|output| output.unwrap_or_else(|| Err(JoinError::cancelled())))
    }

    fn is_finished(&self) -> bool {
        self.0.as_ref().is_none_or(FallibleTask::is_finished)
    }

    fn abort(&mut self) {
        // Dropping async-task's handle cancels the task.
        drop(self.0.take());
    }
}

impl<T> Drop for SmolJoin<T> {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.detach();
        }
    }
}

impl Handle {
    fn new(
        executor: &Arc<SmolExecutor<'static>>,
        name: String,
        workers: usize,
        lane: BlockingLane,
    ) -> Self {
        Handle {
            inner: Arc::new(Inner {
                executor: Arc::downgrade(executor),
                max_blocking: lane.stats().cap,
                lane,
                name,
                workers,
                spawn: Arc::new(AsyncHook(Arc::downgrade(executor))),
            }),
        }
    }

    /// Wraps an executor the caller drives (borrowed: unirun never stops
    /// it). The handle does not keep the executor alive: once the caller
    /// drops it, spawns through the handle are cancelled at once.
    ///
    /// Blocking closures go to a lane of threads named `smol-blocking-{i}`
    /// (default cap) that this handle owns with its clones: it is shut down,
    /// and its threads joined, when the last clone is dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    ///
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let handle = unirun_smol::Handle::from_executor(ex.clone());
    /// let task = handle.spawn(async { 3 });
    /// assert_eq!(futures_lite::future::block_on(ex.run(task)).unwrap(), 3);
    /// ```
    pub fn from_executor(executor: Arc<SmolExecutor<'static>>) -> Handle {
        let name = "smol".to_string();
        let lane = BlockingLane::builder().name(name.clone()).build();
        // The default cap is never 0, so the builder cannot fail.
        let lane = lane.unwrap_or_else(|_| unreachable!("the default lane settings are valid"));
        Handle::new(&executor, name, 0, lane)
    }

    /// Spawns a future on the executor.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().spawn(async { "hi" }).join().unwrap(), "hi");
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(None, future)
    }

    /// Spawns a future as a member of `tasks`, so their owner can wait for
    /// it or cancel it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    ///
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// let set = Arc::new(unirun_core::TaskSet::new());
    /// let task = pool.handle().spawn_in(&set, std::future::pending::<()>());
    /// set.close();
    /// assert!(task.join().unwrap_err().is_cancelled());
    /// ```
    pub fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_inner(Some(tasks), future)
    }

    fn spawn_inner<F>(&self, tasks: Option<&Arc<TaskSet>>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // One executor task per unirun task, the future wrapped so a panic
        // keeps its message and location.
        let Some(executor) = self.inner.executor.upgrade() else {
            return JoinHandle::from_foreign(SmolJoin::<F::Output>(None));
        };
        let task = match tasks {
            Some(tasks) => executor.spawn(TaskFuture::new(future, Some(tasks.clone()))),
            None => executor.spawn(CatchPanic::new(future)),
        };
        JoinHandle::from_foreign(SmolJoin(Some(task.fallible())))
    }

    /// Runs a blocking closure on the handle's blocking lane, on a thread
    /// named `{name}-blocking-{i}`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("ev").build().unwrap();
    /// assert_eq!(pool.handle().spawn_blocking(|| 6 * 7).join().unwrap(), 42);
    /// let name = pool.handle().spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(name.join().unwrap().unwrap().starts_with("ev-blocking-"));
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.lane.spawn_blocking(f)
    }

    /// Runs a blocking closure as a member of `tasks`; see
    /// [`spawn_in`](Self::spawn_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Weak};
    ///
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// let set = Arc::new(unirun_core::TaskSet::new());
    /// assert_eq!(pool.handle().spawn_blocking_in(&set, || 3).join().unwrap(), 3);
    /// ```
    pub fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.lane.spawn_blocking_in(tasks, f)
    }

    /// The thread name prefix (`smol` for a caller's executor).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("ev").build().unwrap();
    /// assert_eq!(pool.handle().name(), "ev");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of threads driving the executor (0 for a caller's executor).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(2).build().unwrap();
    /// assert_eq!(pool.handle().num_workers(), 2);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.inner.workers
    }

    /// The configured cap of the blocking lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder()
    ///     .workers(1)
    ///     .max_blocking_threads(8)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.handle().max_blocking_threads(), 8);
    /// ```
    pub fn max_blocking_threads(&self) -> usize {
        self.inner.max_blocking
    }

    /// The blocking lane's current size.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().blocking_stats().threads, 0); // started on demand
    /// pool.handle().spawn_blocking(|| ()).join().unwrap();
    /// assert!(pool.handle().blocking_stats().threads >= 1);
    /// ```
    pub fn blocking_stats(&self) -> LaneStats {
        self.inner.lane.stats()
    }
}

impl unirun_core::BackendHandle for Handle {
    fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Handle::spawn_in(self, tasks, future)
    }

    fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Handle::spawn_blocking_in(self, tasks, f)
    }

    fn name(&self) -> &str {
        Handle::name(self)
    }

    fn num_workers(&self) -> usize {
        Handle::num_workers(self)
    }

    fn max_blocking_threads(&self) -> usize {
        Handle::max_blocking_threads(self)
    }
}

impl Executor for Handle {
    fn scheduler(&self) -> Arc<dyn Schedule> {
        self.inner.spawn.clone()
    }

    fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        self.inner.lane.scheduler()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("unirun_smol::Handle")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .finish()
    }
}

/// Settings for a [`SmolPool`].
///
/// # Examples
///
/// ```
/// let pool = unirun_smol::SmolPool::builder().workers(2).name("ev").build().unwrap();
/// assert_eq!(pool.handle().num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    workers: usize,
    name: String,
    max_blocking: Option<usize>,
    keep_alive: Option<Duration>,
}

impl Builder {
    /// Threads driving the executor (default: available parallelism). Zero
    /// counts as one.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().num_workers(), 1);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Most threads of the blocking lane; defaults to
    /// [`unirun_blocking::default_blocking_cap`] (at least 512).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().max_blocking_threads(2).build().unwrap();
    /// assert_eq!(pool.handle().max_blocking_threads(), 2);
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking = Some(n);
        self
    }

    /// How long an idle blocking thread waits for work before it exits
    /// (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = unirun_smol::SmolPool::builder()
    ///     .keep_alive(Duration::from_secs(1))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.handle().spawn_blocking(|| 1).join().unwrap(), 1);
    /// ```
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = Some(keep_alive);
        self
    }

    /// Thread name prefix: threads are `{name}-{i}`, blocking threads
    /// `{name}-blocking-{i}` (default `unirun-smol`).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("ev").build().unwrap();
    /// let name = pool.handle().spawn(async { std::thread::current().name().map(String::from) });
    /// assert_eq!(name.join().unwrap().as_deref(), Some("ev-0"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the driver threads.
    ///
    /// # Errors
    ///
    /// When the OS refuses a thread (those already started are stopped), or
    /// `max_blocking_threads` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_smol::SmolPool::builder().build().is_ok());
    /// assert!(unirun_smol::SmolPool::builder().max_blocking_threads(0).build().is_err());
    /// ```
    pub fn build(self) -> io::Result<SmolPool> {
        let mut lane = BlockingLane::builder().name(self.name.clone());
        if let Some(n) = self.max_blocking {
            lane = lane.max_threads(n);
        }
        if let Some(keep_alive) = self.keep_alive {
            lane = lane.keep_alive(keep_alive);
        }
        let lane = lane.build()?;
        let executor = Arc::new(SmolExecutor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let mut pool = SmolPool {
            handle: Handle::new(&executor, self.name.clone(), self.workers, lane),
            executor: Some(executor.clone()),
            stop: Some(stop),
            threads: Vec::with_capacity(self.workers),
        };
        for i in 0..self.workers {
            let (executor, stopped) = (executor.clone(), stopped.clone());
            let thread = thread::Builder::new()
                .name(format!("{}-{i}", self.name))
                .spawn(move || {
                    // Runs tasks until the pool closes the channel.
                    let _ = futures_lite::future::block_on(executor.run(stopped.recv()));
                })?;
            pool.threads.push(thread);
        }
        Ok(pool)
    }
}

/// An async-executor driven by named threads, owned by unirun, with its own
/// blocking lane: shutting it down (or dropping it) stops and joins the
/// driver threads, cancels the tasks still pending, then shuts down the
/// lane (closures already queued still run) and joins its threads.
///
/// # Examples
///
/// ```
/// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
/// let task = pool.handle().spawn(async { 1 });
/// assert_eq!(task.join().unwrap(), 1);
/// drop(pool);
/// ```
pub struct SmolPool {
    handle: Handle,
    /// The pool's own reference, dropped at shutdown.
    executor: Option<Arc<SmolExecutor<'static>>>,
    /// Dropping it closes the channel the driver threads wait on.
    stop: Option<async_channel::Sender<()>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl SmolPool {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().name("x").build().unwrap();
    /// assert_eq!(pool.handle().name(), "x");
    /// ```
    pub fn builder() -> Builder {
        Builder {
            workers: thread::available_parallelism().map_or(1, |n| n.get()),
            name: "unirun-smol".to_string(),
            max_blocking: None,
            keep_alive: None,
        }
    }

    /// A handle that spawns on this pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().num_workers(), 1);
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops and joins the driver threads; tasks still pending are cancelled
    /// once the last handle lets go of the executor. Then the blocking lane
    /// stops: closures already queued still run, closures submitted later
    /// are cancelled, and every lane thread is joined (so a closure that
    /// never returns keeps this waiting). The same as dropping the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).name("gone").build().unwrap();
    /// pool.shutdown();
    /// ```
    pub fn shutdown(self) {
        drop(self);
    }

    /// [`shutdown`](Self::shutdown) bounded by `timeout` for the blocking
    /// lane: driver threads are stopped and joined (they run no user code
    /// between polls), then lane threads still inside a closure when
    /// `timeout` has passed are left behind, detached, and exit as soon as
    /// their closure returns. Returns whether every lane thread was joined.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// let (release, stuck) = std::sync::mpsc::channel::<()>();
    /// let (started_tx, started) = std::sync::mpsc::channel();
    /// let waiting = pool.handle().spawn_blocking(move || {
    ///     started_tx.send(()).unwrap();
    ///     stuck.recv().is_ok()
    /// });
    /// started.recv().unwrap();
    /// assert!(!pool.shutdown_timeout(Duration::from_millis(10)));
    /// release.send(()).unwrap();
    /// let _ = waiting.join(); // resolves: finished on its detached thread
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        self.stop_drivers();
        let remaining = deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        // Takes the lane's threads: the `Drop` that follows joins none.
        self.handle.inner.lane.shutdown_timeout(remaining)
    }

    /// Stops and joins the driver threads, then lets go of the executor.
    fn stop_drivers(&mut self) {
        drop(self.stop.take());
        let me = thread::current().id();
        for thread in self.threads.drain(..) {
            // A pool dropped by one of its own tasks cannot join itself.
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        drop(self.executor.take());
    }
}

impl Drop for SmolPool {
    fn drop(&mut self) {
        self.stop_drivers();
        // Blocking closures are joined last: a task cancelled above may
        // have been what one of them waited for.
        self.handle.inner.lane.shutdown();
    }
}

impl fmt::Debug for SmolPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolPool")
            .field("handle", &self.handle)
            .finish()
    }
}
