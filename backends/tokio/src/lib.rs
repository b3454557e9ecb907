//! The tokio backend of unirun: unirun tasks, with unirun's [`JoinHandle`]
//! and `JoinError`, running on a tokio runtime.
//!
//! # Design
//!
//! A [`Handle`] points at a tokio runtime, either the *ambient* one the
//! calling code already runs in ([`Handle::current`]; it is borrowed and never
//! shut down) or one a [`TokioRuntime`] owns: a multi-thread runtime with
//! `workers` worker threads, a blocking pool capped at
//! `max_blocking_threads`, and threads named `{name}-{i}`.
//!
//! Each spawn is one tokio task (or one blocking-pool job) running the
//! future wrapped in the core's [`TaskFuture`], which catches a panic with
//! its message and location and keeps the task in its scope's
//! [`TaskSet`] (outside a scope, the lighter [`CatchPanic`], which only
//! catches panics and keeps the task as small as tokio's own); tokio's join
//! handle is wrapped into unirun's [`JoinHandle`]
//! ([`JoinHandle::from_foreign`]), so callers get `abort`, `join` and
//! `is_finished` and the same `JoinError` as on the threads backend. A
//! runtime that shut down drops the tasks it still holds: their handles
//! resolve to `Err(cancelled)`, never hang.
//!
//! Code that spawns through the object-safe [`Executor`] trait gets tasks
//! allocated by the core instead ([`unirun_core::spawn_with`]): each time
//! such a task is scheduled, its [`Runnable`] goes to tokio as a small task
//! that runs it once.
//!
//! Dropping a [`TokioRuntime`] never panics, wherever it happens: on a
//! thread where tokio forbids blocking (inside async code), the runtime is
//! handed to a plain thread named `{name}-shutdown` that shuts it down.
//!
//! # Features
//!
//! This crate has no cargo features of its own; the `unirun` facade enables
//! it with its `tokio-backend` feature.
//!
//! # Examples
//!
//! ```
//! use unirun_tokio::TokioRuntime;
//!
//! let runtime = TokioRuntime::builder().workers(2).name("io").build().unwrap();
//! let handle = runtime.handle();
//! let task = handle.spawn(async { 40 + 2 });
//! let blocking = handle.spawn_blocking(|| "blocking");
//! assert_eq!(task.join().unwrap(), 42);
//! assert_eq!(blocking.join().unwrap(), "blocking");
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use std::pin::Pin;
use std::task::{Context, Poll};

use unirun_core::{
    CatchPanic, Executor, ForeignJoin, JoinError, JoinHandle, Runnable, Schedule, ScheduleInfo,
    TaskFuture, TaskSet,
};

/// Default cap of tokio's blocking pool (tokio's own default).
const DEFAULT_MAX_BLOCKING: usize = 512;

/// Spawns `future` on the runtime behind a tokio handle and returns
/// unirun's [`JoinHandle`]: the cheapest way in when the caller already has
/// the tokio handle (no [`Handle`] is built).
///
/// # Examples
///
/// ```
/// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
/// let task = unirun_tokio::spawn_on(rt.handle(), async { 9 });
/// assert_eq!(task.join().unwrap(), 9);
/// ```
pub fn spawn_on<F>(tokio: &tokio::runtime::Handle, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    spawn_in_on(tokio, None, future)
}

/// One tokio task per unirun task: the future, wrapped so a panic keeps
/// its message and location, goes to tokio as is.
fn spawn_in_on<F>(
    tokio: &tokio::runtime::Handle,
    tasks: Option<&Arc<TaskSet>>,
    future: F,
) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let task = match tasks {
        Some(tasks) => tokio.spawn(TaskFuture::new(future, Some(tasks.clone()))),
        // Without a set, only the panic capture: the task stays as small
        // as tokio's own would be.
        None => tokio.spawn(CatchPanic::new(future)),
    };
    JoinHandle::from_foreign(TokioJoin(task))
}

/// Runs `f` on tokio's blocking pool, one blocking task per call.
fn spawn_blocking_in_on<F, R>(
    tokio: &tokio::runtime::Handle,
    tasks: Option<&Arc<TaskSet>>,
    f: F,
) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // Ready at its first poll (with the output, or cancelled if the set
    // closed meanwhile), so `block_on` returns at once.
    let task = TaskFuture::new(async move { f() }, tasks.cloned());
    let task = tokio.spawn_blocking(move || unirun_core::block_on(task));
    JoinHandle::from_foreign(TokioJoin(task))
}

/// A tokio join handle seen through unirun's [`JoinHandle`].
struct TokioJoin<T>(tokio::task::JoinHandle<Result<T, JoinError>>);

impl<T: Send + 'static> ForeignJoin<T> for TokioJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        Pin::new(&mut self.0).poll(cx).map(|outcome| match outcome {
            Ok(output) => output,
            // Panics were caught inside the task; this one came from a
            // destructor, after the output.
            Err(err) if err.is_panic() => Err(JoinError::panicked(err.into_panic(), None)),
            Err(_) => Err(JoinError::cancelled()),
        })
    }

    fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    fn abort(&mut self) {
        self.0.abort();
    }
}

/// A reference to a tokio runtime that spawns unirun tasks on it.
///
/// `Clone + Send + Sync`; implements [`Executor`].
///
/// # Examples
///
/// ```
/// use unirun_core::Executor;
///
/// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
/// let handle = runtime.handle();
/// let ex: &dyn Executor = &handle;
/// assert_eq!(ex.spawn(async { 7 }).join().unwrap(), 7);
/// ```
#[derive(Clone)]
pub struct Handle {
    inner: Arc<Inner>,
}

struct Inner {
    tokio: tokio::runtime::Handle,
    name: String,
    workers: usize,
    max_blocking: usize,
    ambient: bool,
    spawn: Arc<AsyncHook>,
    blocking: Arc<BlockingHook>,
}

/// Hands each wake-up of an async task to tokio as a task that runs it once.
struct AsyncHook(tokio::runtime::Handle);

impl Schedule for AsyncHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        // Dropping tokio's handle detaches its task; if the runtime is shut
        // down, tokio drops the future, and with it the runnable: the unirun
        // task is cancelled and its handle resolves to `Err(cancelled)`.
        drop(self.0.spawn(async move {
            runnable.run();
        }));
    }
}

/// Runs blocking closures on tokio's blocking pool.
struct BlockingHook(tokio::runtime::Handle);

impl Schedule for BlockingHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        drop(self.0.spawn_blocking(move || {
            runnable.run();
        }));
    }
}

impl Handle {
    fn new(
        tokio: tokio::runtime::Handle,
        name: String,
        workers: usize,
        max_blocking: usize,
        ambient: bool,
    ) -> Self {
        Handle {
            inner: Arc::new(Inner {
                spawn: Arc::new(AsyncHook(tokio.clone())),
                blocking: Arc::new(BlockingHook(tokio.clone())),
                tokio,
                name,
                workers,
                max_blocking,
                ambient,
            }),
        }
    }

    /// The tokio runtime the calling code runs in, borrowed (it is never
    /// shut down through unirun); `None` outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_tokio::Handle::current().is_none());
    ///
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// rt.block_on(async {
    ///     let handle = unirun_tokio::Handle::current().expect("inside a runtime");
    ///     assert!(handle.is_ambient());
    ///     assert_eq!(handle.spawn(async { 5 }).await.unwrap(), 5);
    /// });
    /// ```
    pub fn current() -> Option<Handle> {
        let tokio = tokio::runtime::Handle::try_current().ok()?;
        Some(Handle::from_tokio(tokio))
    }

    /// Wraps an existing tokio runtime handle (borrowed: never shut down
    /// through unirun).
    ///
    /// # Examples
    ///
    /// ```
    /// let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    /// let handle = unirun_tokio::Handle::from_tokio(rt.handle().clone());
    /// assert_eq!(handle.spawn(async { 1 }).join().unwrap(), 1);
    /// ```
    pub fn from_tokio(tokio: tokio::runtime::Handle) -> Handle {
        let workers = tokio.metrics().num_workers();
        Handle::new(
            tokio,
            "tokio".to_string(),
            workers,
            DEFAULT_MAX_BLOCKING,
            true,
        )
    }

    /// Spawns a future on the runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let task = runtime.handle().spawn(async { "hi" });
    /// assert_eq!(task.join().unwrap(), "hi");
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
    /// use std::sync::{Arc, Mutex, PoisonError};
    /// use unirun_core::TaskSet;
    ///
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let set = Arc::new(TaskSet::new());
    /// let task = runtime.handle().spawn_in(&set, std::future::pending::<()>());
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
        spawn_in_on(&self.inner.tokio, tasks, future)
    }

    /// Runs a blocking closure on tokio's blocking pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert_eq!(runtime.handle().spawn_blocking(|| 6 * 7).join().unwrap(), 42);
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
    /// use std::sync::{Arc, Mutex, PoisonError};
    ///
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let set = Arc::new(unirun_core::TaskSet::new());
    /// assert_eq!(runtime.handle().spawn_blocking_in(&set, || 3).join().unwrap(), 3);
    /// assert!(set.is_empty());
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
        spawn_blocking_in_on(&self.inner.tokio, tasks, f)
    }

    /// Whether the runtime is borrowed (the ambient one, or wrapped with
    /// [`from_tokio`](Self::from_tokio)) rather than owned by a
    /// [`TokioRuntime`].
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert!(!runtime.handle().is_ambient());
    /// ```
    pub fn is_ambient(&self) -> bool {
        self.inner.ambient
    }

    /// The thread name prefix (`tokio` for a borrowed runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).name("net").build().unwrap();
    /// assert_eq!(runtime.handle().name(), "net");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of tokio worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(2).build().unwrap();
    /// assert_eq!(runtime.handle().num_workers(), 2);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.inner.workers
    }

    /// Most threads tokio's blocking pool may grow to (tokio's default, 512,
    /// for a borrowed runtime, whose setting cannot be read).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().max_blocking_threads(8).build().unwrap();
    /// assert_eq!(runtime.handle().max_blocking_threads(), 8);
    /// ```
    pub fn max_blocking_threads(&self) -> usize {
        self.inner.max_blocking
    }

    /// The underlying tokio handle, e.g. to `enter()` the runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let _guard = runtime.handle().tokio().enter();
    /// assert!(unirun_tokio::Handle::current().is_some());
    /// ```
    pub fn tokio(&self) -> &tokio::runtime::Handle {
        &self.inner.tokio
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
        self.inner.blocking.clone()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("unirun_tokio::Handle")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .field("max_blocking_threads", &self.inner.max_blocking)
            .field("ambient", &self.inner.ambient)
            .finish()
    }
}

/// Settings for a [`TokioRuntime`].
///
/// # Examples
///
/// ```
/// let runtime = unirun_tokio::TokioRuntime::builder()
///     .workers(2)
///     .max_blocking_threads(16)
///     .name("api")
///     .build()
///     .unwrap();
/// assert_eq!(runtime.handle().num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct Builder {
    workers: Option<usize>,
    max_blocking: usize,
    name: String,
}

impl Builder {
    /// Worker threads (default: tokio's, one per CPU). Zero counts as one.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert_eq!(runtime.handle().num_workers(), 1);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// Cap of the blocking pool (default 512). Zero counts as one.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().max_blocking_threads(4).build().unwrap();
    /// assert_eq!(runtime.handle().max_blocking_threads(), 4);
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking = n.max(1);
        self
    }

    /// Thread name prefix: threads are `{name}-{i}` (default `unirun-tokio`).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).name("net").build().unwrap();
    /// let name = runtime.handle().spawn(async { std::thread::current().name().map(String::from) });
    /// assert!(name.join().unwrap().unwrap().starts_with("net-"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Starts the runtime.
    ///
    /// # Errors
    ///
    /// When the OS refuses what the runtime needs (threads, an I/O driver).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_tokio::TokioRuntime::builder().build().is_ok());
    /// ```
    pub fn build(self) -> io::Result<TokioRuntime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        let counter = Arc::new(AtomicUsize::new(0));
        let prefix = self.name.clone();
        builder
            .enable_all()
            .max_blocking_threads(self.max_blocking)
            .thread_name_fn(move || {
                format!("{prefix}-{}", counter.fetch_add(1, Ordering::Relaxed))
            });
        if let Some(n) = self.workers {
            builder.worker_threads(n);
        }
        let runtime = builder.build()?;
        let workers = runtime.handle().metrics().num_workers();
        let handle = Handle::new(
            runtime.handle().clone(),
            self.name,
            workers,
            self.max_blocking,
            false,
        );
        Ok(TokioRuntime {
            runtime: Some(runtime),
            handle,
        })
    }
}

/// A tokio runtime owned by unirun: shut down when dropped, without ever
/// panicking or blocking an async worker.
///
/// # Examples
///
/// ```
/// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
/// let task = runtime.handle().spawn(async { 1 });
/// assert_eq!(task.join().unwrap(), 1);
///
/// // Dropping it inside another runtime's task is fine.
/// let outer = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
/// outer.block_on(async move { drop(runtime) });
/// ```
pub struct TokioRuntime {
    /// Taken by `Drop`.
    runtime: Option<tokio::runtime::Runtime>,
    handle: Handle,
}

impl TokioRuntime {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().name("x").build().unwrap();
    /// assert_eq!(runtime.handle().name(), "x");
    /// ```
    pub fn builder() -> Builder {
        Builder {
            workers: None,
            max_blocking: DEFAULT_MAX_BLOCKING,
            name: "unirun-tokio".to_string(),
        }
    }

    /// A handle that spawns on this runtime.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert!(!runtime.handle().is_ambient());
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Drives `future` to completion on the calling thread, inside the
    /// runtime's context (so tokio's timers and I/O work in it).
    ///
    /// # Panics
    ///
    /// When called inside async code, as tokio's `Runtime::block_on` does.
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// let task = runtime.handle().spawn(async { 2 });
    /// assert_eq!(runtime.block_on(task).unwrap(), 2);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("the runtime is present until drop")
            .block_on(future)
    }
}

impl TokioRuntime {
    /// Shuts the runtime down, waiting at most `timeout` for its blocking
    /// threads (tokio's `Runtime::shutdown_timeout`): threads still inside a
    /// closure then are left behind and exit when it returns. Where blocking
    /// is not allowed (inside async code) the wait moves to a helper thread
    /// and this returns at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// runtime.shutdown_timeout(Duration::from_millis(10));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: std::time::Duration) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let in_async =
            tokio::runtime::Handle::try_current().is_ok() || unirun_core::on_worker_thread();
        if !in_async {
            runtime.shutdown_timeout(timeout);
            return;
        }
        // The runtime waits in a shared slot, so a failed thread spawn does
        // not drop it here.
        let slot = Arc::new(Mutex::new(Some(runtime)));
        let theirs = slot.clone();
        let spawned = thread::Builder::new()
            .name(format!("{}-shutdown", self.handle.name()))
            .spawn(move || {
                if let Some(runtime) = take(&theirs) {
                    runtime.shutdown_timeout(timeout);
                }
            });
        if spawned.is_err() {
            if let Some(runtime) = take(&slot) {
                // Does not wait for the workers, and never panics.
                runtime.shutdown_background();
            }
        }
    }
}

impl Drop for TokioRuntime {
    fn drop(&mut self) {
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        // tokio panics when a runtime is dropped where blocking is not
        // allowed; a runtime context or a unirun worker is such a place.
        let in_async =
            tokio::runtime::Handle::try_current().is_ok() || unirun_core::on_worker_thread();
        if !in_async {
            drop(runtime);
            return;
        }
        // The runtime waits in a shared slot, so a failed thread spawn does
        // not drop it here.
        let slot = Arc::new(Mutex::new(Some(runtime)));
        let theirs = slot.clone();
        let spawned = thread::Builder::new()
            .name(format!("{}-shutdown", self.handle.name()))
            .spawn(move || drop(take(&theirs)));
        if spawned.is_err() {
            if let Some(runtime) = take(&slot) {
                // Does not wait for the workers, and never panics.
                runtime.shutdown_background();
            }
        }
    }
}

fn take(slot: &Mutex<Option<tokio::runtime::Runtime>>) -> Option<tokio::runtime::Runtime> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl fmt::Debug for TokioRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioRuntime")
            .field("handle", &self.handle)
            .finish()
    }
}
