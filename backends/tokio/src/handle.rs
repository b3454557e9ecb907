//! [`Handle`]: a reference to a tokio runtime, ambient or owned, that
//! spawns unirun tasks on it.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use unirun_core::{
    Executor, ForeignRunQueue, JoinHandle, RunQueue, Runnable, ScheduleInfo, TaskSet,
};

use crate::join::Tokio;
use crate::DEFAULT_MAX_BLOCKING;

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
    tokio: Tokio<tokio::runtime::Handle>,
    name: String,
    workers: usize,
    max_blocking: usize,
    ambient: bool,
    /// Wake-ups of core-allocated tasks (`dyn Executor` spawns), each a
    /// small tokio task.
    spawn: Arc<ForeignRunQueue<Tokio<tokio::runtime::Handle>>>,
    /// Blocking closures of core-allocated tasks, each on tokio's blocking pool.
    blocking: Arc<BlockingHook>,
    /// For a [`TokioRuntime`](crate::TokioRuntime)'s handle, the fork
    /// generation its threads were started in (see
    /// `unirun_core::fork_generation`); `None` for a borrowed runtime.
    built_in: Option<usize>,
}

/// Runs blocking closures on tokio's blocking pool.
struct BlockingHook(tokio::runtime::Handle);

impl RunQueue for BlockingHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        drop(self.0.spawn_blocking(move || {
            runnable.run();
        }));
    }
}

impl Handle {
    pub(crate) fn new(
        tokio: tokio::runtime::Handle,
        name: String,
        workers: usize,
        max_blocking: usize,
        ambient: bool,
        built_in: Option<usize>,
    ) -> Self {
        Handle {
            inner: Arc::new(Inner {
                built_in,
                spawn: Arc::new(ForeignRunQueue(Tokio(tokio.clone()))),
                blocking: Arc::new(BlockingHook(tokio.clone())),
                tokio: Tokio(tokio),
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
            None,
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
        if self.is_inherited() {
            return crate::child::spawn(tasks, future);
        }
        unirun_core::spawn_foreign(&Tokio(&self.inner.tokio.0), tasks, future)
    }

    /// Whether this is the handle of a [`TokioRuntime`](crate::TokioRuntime)
    /// built in another process, inherited through `fork`: the runtime's
    /// threads do not exist here (a task queued on it would never run), so
    /// its tasks run on the thread that spawns or wakes them, as unirun's
    /// thread pools do in a forked child, and its blocking closures on the
    /// thread that submits them. A borrowed runtime is never inherited.
    ///
    /// Such tasks are polled outside any tokio runtime: to use tokio's
    /// timers or sockets there, enter one (the `unirun` facade's scopes
    /// enter the child's own unirun-io).
    ///
    /// # Examples
    ///
    /// ```
    /// let runtime = unirun_tokio::TokioRuntime::builder().workers(1).build().unwrap();
    /// assert!(!runtime.handle().is_inherited()); // built in this process
    /// ```
    #[inline]
    pub fn is_inherited(&self) -> bool {
        self.inner
            .built_in
            .is_some_and(|built_in| built_in != unirun_core::fork_generation())
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
        if self.is_inherited() {
            return crate::child::spawn_blocking(tasks, f);
        }
        Tokio(&self.inner.tokio.0).spawn_blocking(tasks, f)
    }

    /// Whether the runtime is borrowed (the ambient one, or wrapped with
    /// [`from_tokio`](Self::from_tokio)) rather than owned by a
    /// [`TokioRuntime`](crate::TokioRuntime).
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
        &self.inner.tokio.0
    }
}

impl Executor for Handle {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        if self.is_inherited() {
            return Arc::new(crate::child::Inline);
        }
        self.inner.spawn.clone()
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        if self.is_inherited() {
            return Arc::new(crate::child::RunNow);
        }
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
