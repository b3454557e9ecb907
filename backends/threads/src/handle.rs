//! [`Handle`]: a cheap reference to a [`ThreadPool`](crate::ThreadPool) for
//! spawning from anywhere.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use unirun_core::{Executor, JoinHandle, RunQueue, TaskSet};

use crate::pool::Inner;
use crate::LaneStats;

/// A cheap, cloneable reference to a [`ThreadPool`](crate::ThreadPool), usable from any thread
/// and inside its tasks. It does not keep the pool's threads alive: after the
/// pool shuts down, spawns through a handle are cancelled at once.
///
/// # Examples
///
/// ```
/// let pool = unirun_threads::ThreadPool::builder()
///     .workers(2)
///     .name("svc")
///     .max_blocking_threads(8)
///     .build()
///     .unwrap();
/// let handle = pool.handle();
/// assert_eq!(handle.name(), "svc");
/// assert_eq!(handle.num_workers(), 2);
/// assert_eq!(handle.max_blocking_threads(), 8);
///
/// // A handle can be sent to other threads and spawn from there.
/// let remote = handle.clone();
/// let answer = std::thread::spawn(move || remote.spawn(async { 42 }).join().unwrap());
/// assert_eq!(answer.join().unwrap(), 42);
///
/// pool.shutdown();
/// assert!(handle.is_shutdown());
/// assert!(handle.spawn(async {}).join().unwrap_err().is_cancelled());
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Arc<Inner>,
}

impl Handle {
    /// The core scheduler behind the pool's workers: what fork-join
    /// ([`Pool::join`](unirun_core::Pool::join),
    /// [`Pool::scope`](unirun_core::Pool::scope)) runs on.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(2).build().unwrap();
    /// let (a, b) = pool.handle().pool().join(|| 1, || 2);
    /// assert_eq!(a + b, 3);
    /// ```
    pub fn pool(&self) -> &unirun_core::Pool {
        &self.inner.pool
    }

    /// Spawns a future on the pool's workers.
    ///
    /// From one of the pool's worker threads the task goes to that worker's
    /// LIFO slot (it runs next, on the same core); from anywhere else it goes
    /// to the injector and wakes one idle worker.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let handle = pool.handle();
    /// let inner = handle.clone();
    /// let nested = handle.spawn(async move { inner.spawn(async { 5 }).await.unwrap() * 2 });
    /// assert_eq!(nested.join().unwrap(), 10);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.pool.spawn_in(&self.inner.tasks, future)
    }

    /// Runs a blocking closure on the pool's blocking lane.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().name("io").build().unwrap();
    /// let name = pool.handle().spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(name.join().unwrap().unwrap().starts_with("io-blocking-"));
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.lane.spawn_blocking(f)
    }

    /// Spawns a future on the pool's workers as a member of `tasks` instead
    /// of the pool's own set, so a scope that borrows this pool can wait for
    /// or cancel just its own tasks (see [`TaskSet`]).
    ///
    /// The pool's shutdown does not wait for such tasks: whoever owns
    /// `tasks` does, and closes it when done. When the pool stops first,
    /// queued ones are cancelled at once and waiting ones when next woken
    /// (or when `tasks` is closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::TaskSet;
    ///
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let mine = Arc::new(TaskSet::new());
    /// let task = pool.handle().spawn_in(&mine, std::future::pending::<()>());
    /// mine.close(); // cancels this scope's tasks, nobody else's
    /// assert!(task.join().unwrap_err().is_cancelled());
    /// ```
    pub fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.inner.pool.spawn_in(tasks, future)
    }

    /// Runs a blocking closure on the pool's blocking lane as a member of
    /// `tasks`; see [`spawn_in`](Self::spawn_in).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::TaskSet;
    ///
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let mine = Arc::new(TaskSet::new());
    /// let read = pool.handle().spawn_blocking_in(&mine, || 2 + 2);
    /// assert_eq!(read.join().unwrap(), 4);
    /// assert!(mine.is_empty());
    /// ```
    pub fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.inner.lane.spawn_blocking_in(tasks, f)
    }

    /// Whether the calling thread is one of this pool's worker or blocking
    /// threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let handle = pool.handle();
    /// assert!(!handle.is_pool_thread());
    /// let inside = handle.clone();
    /// assert!(pool.spawn(async move { inside.is_pool_thread() }).join().unwrap());
    /// ```
    pub fn is_pool_thread(&self) -> bool {
        self.inner.pool.is_worker_thread() || self.inner.lane.is_lane_thread()
    }

    /// The pool's thread name prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).name("db").build().unwrap();
    /// assert_eq!(pool.handle().name(), "db");
    /// ```
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Number of async worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(2).build().unwrap();
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
    /// let pool = unirun_threads::ThreadPool::builder()
    ///     .workers(1)
    ///     .max_blocking_threads(3)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.handle().max_blocking_threads(), 3);
    /// ```
    pub fn max_blocking_threads(&self) -> usize {
        self.inner.max_blocking
    }

    /// Live tasks (async and blocking) spawned through this pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let handle = pool.handle();
    /// assert_eq!(handle.num_tasks(), 0);
    ///
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let blocked = handle.spawn_blocking(move || rx.recv().is_err());
    /// assert_eq!(handle.num_tasks(), 1);
    /// drop(tx); // lets the closure return
    /// assert!(blocked.join().unwrap());
    /// assert_eq!(handle.num_tasks(), 0);
    /// ```
    pub fn num_tasks(&self) -> usize {
        self.inner.tasks.len()
    }

    /// The blocking lane's current size.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// pool.spawn_blocking(|| ()).join().unwrap();
    /// let stats = pool.handle().blocking_stats();
    /// assert!(stats.threads >= 1); // started for the closure, kept for the keep-alive
    /// assert_eq!(stats.spawn_failures, 0);
    /// ```
    pub fn blocking_stats(&self) -> LaneStats {
        self.inner.lane.stats()
    }

    /// A snapshot of the scheduler: workers, queued tasks, steals, parks.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(2).build().unwrap();
    /// let stats = pool.handle().pool_stats();
    /// assert_eq!(stats.workers(), 2);
    /// ```
    pub fn pool_stats(&self) -> unirun_core::PoolStats {
        self.inner.pool.stats()
    }

    /// What happened so far to the tasks spawned through this handle
    /// (async and blocking; not those spawned into a set of the caller's).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// pool.handle().spawn(async { 1 }).join().unwrap();
    /// assert!(pool.handle().spawn(async { panic!("boom") }).join().is_err());
    /// let counts = pool.handle().task_counts();
    /// assert_eq!((counts.spawned(), counts.completed(), counts.panicked()), (2, 1, 1));
    /// ```
    pub fn task_counts(&self) -> unirun_core::TaskCounts {
        self.inner.tasks.counts()
    }

    /// A new, empty task set whose counters have one shard per worker of
    /// this pool (see [`TaskSet::for_pool`]), for a scope of tasks on it.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let set = std::sync::Arc::new(pool.handle().task_set());
    /// pool.handle().spawn_in(&set, async {}).join().unwrap();
    /// assert_eq!(set.counts().completed(), 1);
    /// ```
    pub fn task_set(&self) -> TaskSet {
        TaskSet::for_pool(&self.inner.pool)
    }

    /// Whether the pool has shut down (spawns are then cancelled at once).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let handle = pool.handle();
    /// assert!(!handle.is_shutdown());
    /// pool.shutdown();
    /// assert!(handle.is_shutdown());
    /// assert!(handle.spawn_blocking(|| ()).join().unwrap_err().is_cancelled());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.inner.pool.is_shutdown() || self.inner.tasks.is_closed()
    }

    /// The context the pool's worker threads run inside, set with
    /// [`Builder::worker_context`](crate::Builder::worker_context).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// assert!(pool.handle().worker_context().is_none());
    /// ```
    pub fn worker_context(&self) -> Option<&Arc<dyn crate::WorkerContext>> {
        self.inner.context.as_ref()
    }

    /// Whether the calling thread is one of this pool's threads (or any
    /// unirun worker), where a shutdown must not wait.
    pub(crate) fn on_own_thread(&self) -> bool {
        unirun_core::on_worker_thread() || self.inner.lane.is_lane_thread()
    }
}

impl Executor for Handle {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        self.inner.clone()
    }

    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        self.inner.lane.run_queue()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("name", &self.inner.name)
            .field("workers", &self.inner.workers)
            .field("max_blocking_threads", &self.inner.max_blocking)
            .field("tasks", &self.inner.tasks.len())
            .finish()
    }
}
