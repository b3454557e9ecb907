//! [`Builder`]: the settings of a [`ThreadPool`](crate::ThreadPool); `build`
//! lives beside the pool it starts.

use std::sync::Arc;
use std::time::Duration;

use crate::context::ContextSlot;
use crate::WorkerContext;

/// Configures a [`ThreadPool`](crate::ThreadPool).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let pool = unirun_threads::ThreadPool::builder()
///     .workers(2)
///     .name("ingest")
///     .max_blocking_threads(8)
///     .keep_alive(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// assert_eq!(pool.num_workers(), 2);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    pub(crate) workers: Option<usize>,
    pub(crate) name: String,
    pub(crate) max_blocking: Option<usize>,
    pub(crate) max_handoff: Option<usize>,
    pub(crate) keep_alive: Duration,
    pub(crate) stack_size: Option<usize>,
    pub(crate) context: Option<ContextSlot>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            workers: None,
            name: "unirun".into(),
            max_blocking: None,
            max_handoff: None,
            keep_alive: unirun_blocking::default_keep_alive(),
            stack_size: None,
            context: None,
        }
    }
}

impl Builder {
    /// Number of async worker threads; defaults to the CPU budget (affinity
    /// and cgroup quota included). Must be at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().workers(3).build().unwrap();
    /// assert_eq!(pool.num_workers(), 3);
    ///
    /// let err = ThreadPool::builder().workers(0).build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Thread name prefix: workers are `{name}-{i}`, blocking threads
    /// `{name}-blocking-{i}`. Defaults to `unirun`.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).name("ingest").build().unwrap();
    /// let thread = pool.spawn(async { std::thread::current().name().map(String::from) });
    /// assert_eq!(thread.join().unwrap().as_deref(), Some("ingest-0"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Most threads of the blocking lane; defaults to
    /// [`default_blocking_cap`](crate::default_blocking_cap) of the CPU budget (at least 512).
    /// Must be at least 1.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().workers(1).max_blocking_threads(2).build().unwrap();
    /// assert_eq!(pool.handle().max_blocking_threads(), 2);
    ///
    /// let err = ThreadPool::builder().max_blocking_threads(0).build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn max_blocking_threads(mut self, n: usize) -> Self {
        self.max_blocking = Some(n);
        self
    }

    /// Caps the threads that take a worker's queue over from a task
    /// blocked in `block_on` or `join`: at most `n` plus the number of
    /// workers live at once (a hand-off thread may go on serving the queue
    /// after the wait it was started for ended), so `n` such waits can
    /// always be blocked at once. Defaults to
    /// [`DEFAULT_MAX_HANDOFF_THREADS`](crate::DEFAULT_MAX_HANDOFF_THREADS).
    /// Must be at least 1.
    ///
    /// A task that blocks on a worker hands the worker's queue to a new
    /// thread, so work queued behind it still runs; each such wait costs a
    /// thread until it ends. Past the cap, or when the OS refuses the
    /// thread, the blocking call panics inside its task with a message that
    /// names the cap (or the OS error): the task's `JoinHandle` resolves to
    /// a panicked [`JoinError`](unirun_core::JoinError), the worker keeps its
    /// queue and serves on. Without a cap, thousands of nested waits use up
    /// the process's memory maps and the process aborts.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().workers(1).max_handoff_threads(1).build().unwrap();
    /// let handle = pool.handle();
    /// // One task blocked on a worker: its queue goes to the one hand-off thread.
    /// let inner = handle.clone();
    /// let one = handle.spawn(async move { inner.spawn(async { 7 }).join().unwrap() });
    /// assert_eq!(one.join().unwrap(), 7);
    ///
    /// let err = ThreadPool::builder().max_handoff_threads(0).build().unwrap_err();
    /// assert!(err.to_string().contains("max_handoff_threads"));
    /// ```
    pub fn max_handoff_threads(mut self, n: usize) -> Self {
        self.max_handoff = Some(n);
        self
    }

    /// How long an idle blocking thread waits for work before it exits.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = unirun_threads::ThreadPool::builder()
    ///     .workers(1)
    ///     .keep_alive(Duration::from_millis(1))
    ///     .build()
    ///     .unwrap();
    /// pool.spawn_blocking(|| ()).join().unwrap();
    ///
    /// // With nothing more to do, the blocking thread retires after the keep-alive.
    /// while pool.handle().blocking_stats().threads > 0 {
    ///     std::thread::yield_now();
    /// }
    /// ```
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Stack size of every thread the pool starts.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder()
    ///     .workers(1)
    ///     .stack_size(8 << 20)
    ///     .build()
    ///     .unwrap();
    /// // A large stack frame fits comfortably in the blocking thread's 8 MiB.
    /// let sum = pool.spawn_blocking(|| {
    ///     let buf = std::hint::black_box([1u8; 1 << 20]);
    ///     buf.iter().map(|&b| usize::from(b)).sum::<usize>()
    /// });
    /// assert_eq!(sum.join().unwrap(), 1 << 20);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// A context every thread that polls the pool's tasks runs inside, for
    /// its whole life (see [`WorkerContext`]); none by default.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::any::Any;
    /// use std::sync::Arc;
    /// use unirun_threads::{ThreadPool, WorkerContext};
    ///
    /// struct Named;
    /// impl WorkerContext for Named {
    ///     fn run(&self, body: &mut dyn FnMut()) {
    ///         body()
    ///     }
    ///     fn as_any(&self) -> &dyn Any {
    ///         self
    ///     }
    /// }
    ///
    /// let pool = ThreadPool::builder().workers(1).worker_context(Arc::new(Named)).build().unwrap();
    /// assert_eq!(pool.spawn(async { 1 }).join().unwrap(), 1);
    /// ```
    pub fn worker_context(mut self, context: Arc<dyn WorkerContext>) -> Self {
        self.context = Some(ContextSlot(context));
        self
    }
}
