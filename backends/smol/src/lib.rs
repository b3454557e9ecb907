//! The smol backend of unirun: unirun tasks, with unirun's [`JoinHandle`]
//! and [`JoinError`](unirun_core::JoinError), running on an
//! [`async_executor::Executor`].
//!
//! # Design
//!
//! A [`SmolPool`] owns an executor and `workers` threads named `{name}-{i}`
//! that drive it (each runs the executor until the pool shuts down). A
//! [`Handle`] can also wrap an executor the caller drives
//! ([`Handle::from_executor`]); that one is never shut down by unirun.
//!
//! Tasks are allocated by the core ([`unirun_core::spawn_with`]), so they
//! return unirun's [`JoinHandle`] and a panic arrives as a `JoinError` with
//! its message and location. Each time a task is scheduled its [`Runnable`]
//! goes to the executor as a small task that runs it once. Blocking closures
//! run on the smol stack's blocking pool (the `blocking` crate). When the
//! executor is dropped, the runnables it holds are dropped, which cancels
//! their tasks: handles never hang.
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
use std::sync::Arc;
use std::thread;

use async_executor::Executor as SmolExecutor;
use unirun_core::{Executor, JoinHandle, Runnable, Schedule, ScheduleInfo, TaskSet};

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
    name: String,
    workers: usize,
    spawn: Arc<AsyncHook>,
    blocking: Arc<BlockingHook>,
}

/// Hands each wake-up of a task to the executor as a task that runs it once.
struct AsyncHook(Arc<SmolExecutor<'static>>);

impl Schedule for AsyncHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        self.0
            .spawn(async move {
                runnable.run();
            })
            .detach();
    }
}

/// Runs blocking closures on the `blocking` crate's pool.
struct BlockingHook;

impl Schedule for BlockingHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        blocking::unblock(move || {
            runnable.run();
        })
        .detach();
    }
}

impl Handle {
    fn new(executor: Arc<SmolExecutor<'static>>, name: String, workers: usize) -> Self {
        Handle {
            inner: Arc::new(Inner {
                name,
                workers,
                spawn: Arc::new(AsyncHook(executor)),
                blocking: Arc::new(BlockingHook),
            }),
        }
    }

    /// Wraps an executor the caller drives (borrowed: unirun never stops it).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let ex = Arc::new(async_executor::Executor::new());
    /// let handle = unirun_smol::Handle::from_executor(ex.clone());
    /// let task = handle.spawn(async { 3 });
    /// assert_eq!(futures_lite::future::block_on(ex.run(task)).unwrap(), 3);
    /// ```
    pub fn from_executor(executor: Arc<SmolExecutor<'static>>) -> Handle {
        Handle::new(executor, "smol".to_string(), 0)
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
    /// use std::sync::Arc;
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
        let hook = self.inner.spawn.clone();
        let (runnable, handle) =
            unirun_core::spawn_with(future, tasks, move |r, info| hook.schedule(r, info));
        runnable.schedule();
        handle
    }

    /// Runs a blocking closure on the blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().spawn_blocking(|| 6 * 7).join().unwrap(), 42);
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_blocking_inner(None, f)
    }

    /// Runs a blocking closure as a member of `tasks`; see
    /// [`spawn_in`](Self::spawn_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
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
        self.spawn_blocking_inner(Some(tasks), f)
    }

    fn spawn_blocking_inner<F, R>(&self, tasks: Option<&Arc<TaskSet>>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let hook = self.inner.blocking.clone();
        let (runnable, handle) =
            unirun_core::spawn_blocking_with(f, tasks, move |r, info| hook.schedule(r, info));
        runnable.schedule();
        handle
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

    /// Most threads the blocking pool grows to: the `blocking` crate's cap
    /// (500, or its `BLOCKING_MAX_THREADS` environment variable).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_smol::SmolPool::builder().workers(1).build().unwrap();
    /// assert!(pool.handle().max_blocking_threads() >= 1);
    /// ```
    pub fn max_blocking_threads(&self) -> usize {
        std::env::var("BLOCKING_MAX_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n: &usize| (1..=10_000).contains(n))
            .unwrap_or(500)
    }
}

impl Executor for Handle {
    fn scheduler(&self) -> Arc<dyn Schedule> {
        self.inner.spawn.clone()
    }

    fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        self.inner.blocking.clone()
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

    /// Thread name prefix: threads are `{name}-{i}` (default `unirun-smol`).
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
    /// When the OS refuses a thread (those already started are stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_smol::SmolPool::builder().build().is_ok());
    /// ```
    pub fn build(self) -> io::Result<SmolPool> {
        let executor = Arc::new(SmolExecutor::new());
        let (stop, stopped) = async_channel::bounded::<()>(1);
        let mut pool = SmolPool {
            handle: Handle::new(executor.clone(), self.name.clone(), self.workers),
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

/// An async-executor driven by named threads, owned by unirun: shutting it
/// down (or dropping it) stops and joins the threads and cancels the tasks
/// still pending.
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
    /// once the last handle lets go of the executor. The same as dropping
    /// the pool.
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
}

impl Drop for SmolPool {
    fn drop(&mut self) {
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

impl fmt::Debug for SmolPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmolPool")
            .field("handle", &self.handle)
            .finish()
    }
}
