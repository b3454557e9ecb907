//! [`ThreadPool`], its [`Builder`] and its [`Handle`].

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use unirun_core::{Executor, JoinHandle, Pool, Runnable, Schedule, ScheduleInfo, TaskSet};

use crate::lane::{BlockingLane, LaneStats};

/// Configures a [`ThreadPool`].
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
    workers: Option<usize>,
    name: String,
    max_blocking: Option<usize>,
    keep_alive: Duration,
    stack_size: Option<usize>,
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            workers: None,
            name: "unirun".into(),
            max_blocking: None,
            keep_alive: crate::lane::default_keep_alive(),
            stack_size: None,
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

    /// Most threads of the blocking lane; defaults to 16 per CPU, at least 64.
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

    /// Starts the worker threads.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the setting when `workers` or
    /// `max_blocking_threads` is 0; the OS error when a worker thread cannot
    /// be started (the threads started so far are stopped and joined).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().workers(2).build().unwrap();
    /// assert_eq!(pool.spawn(async { 1 + 1 }).join().unwrap(), 2);
    ///
    /// // Invalid settings are reported, not panicked on.
    /// let err = ThreadPool::builder().workers(0).build().unwrap_err();
    /// assert!(err.to_string().contains("workers"));
    /// ```
    pub fn build(self) -> io::Result<ThreadPool> {
        let cpus = unirun_platform::cpu_budget().available;
        let workers = match self.workers {
            Some(0) => return Err(invalid("workers", 0)),
            Some(n) => n,
            None => cpus,
        };
        let max_blocking = match self.max_blocking {
            Some(0) => return Err(invalid("max_blocking_threads", 0)),
            Some(n) => n,
            None => crate::lane::default_cap(),
        };
        let tasks = Arc::new(TaskSet::new());
        let lane = BlockingLane::with_tasks(
            self.name.clone(),
            max_blocking,
            self.keep_alive,
            self.stack_size,
            tasks.clone(),
        );
        let (pool, pool_workers) = Pool::try_with_workers(workers)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
        // Threads started when a task blocks a worker take its queues over;
        // named like the worker, joined at shutdown like the workers.
        let handoff = Arc::new(HandoffThreads::default());
        let threads_of = handoff.clone();
        let (prefix, stack_size) = (self.name.clone(), self.stack_size);
        pool.set_thread_spawner(move |index, job| {
            let mut builder = thread::Builder::new().name(format!("{prefix}-{index}"));
            if let Some(size) = stack_size {
                builder = builder.stack_size(size);
            }
            threads_of.push(builder.spawn(job)?);
            Ok(())
        });
        let inner = Arc::new(Inner {
            pool,
            tasks,
            lane,
            handoff,
            name: self.name,
            workers,
            max_blocking,
        });
        let mut threads = Vec::with_capacity(workers);
        for worker in pool_workers {
            let mut builder =
                thread::Builder::new().name(format!("{}-{}", inner.name, worker.index()));
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            match builder.spawn(move || worker.run()) {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    let pool = ThreadPool {
                        handle: Handle { inner },
                        threads,
                    };
                    pool.stop();
                    return Err(err);
                }
            }
        }
        Ok(ThreadPool {
            handle: Handle { inner },
            threads,
        })
    }
}

fn invalid(setting: &str, value: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("invalid {setting}={value}: expected an integer >= 1"),
    )
}

struct Inner {
    pool: Pool,
    /// Every task spawned through this pool, async and blocking.
    tasks: Arc<TaskSet>,
    /// Blocking closures; its default task set is `tasks`.
    lane: BlockingLane,
    /// Threads that took a worker over from a blocked one.
    handoff: Arc<HandoffThreads>,
    name: String,
    workers: usize,
    max_blocking: usize,
}

impl Schedule for Inner {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        self.pool.schedule(runnable, info);
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.tasks)
    }
}

/// A pool of named OS threads: `workers` threads run async tasks on the
/// work-stealing scheduler, and an elastic lane runs blocking closures.
///
/// Dropping the pool (or [`shutdown`](Self::shutdown)) waits for every task
/// spawned on it to finish, then joins all its threads; see
/// [`shutdown_now`](Self::shutdown_now) and
/// [`shutdown_timeout`](Self::shutdown_timeout) for the bounded forms.
/// Dropped on one of its own threads (or any unirun worker), the wait moves
/// to a helper thread so the caller never blocks or deadlocks.
///
/// # Examples
///
/// ```
/// let pool = unirun_threads::ThreadPool::builder().workers(2).build().unwrap();
/// let sum = pool.spawn(async { 1 + 2 });
/// let read = pool.spawn_blocking(|| std::fs::metadata(".").is_ok());
/// assert_eq!(pool.block_on(sum).unwrap(), 3);
/// assert!(read.join().unwrap());
/// pool.shutdown();
/// ```
pub struct ThreadPool {
    handle: Handle,
    threads: Vec<thread::JoinHandle<()>>,
}

/// A cheap, cloneable reference to a [`ThreadPool`], usable from any thread
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
    inner: Arc<Inner>,
}

impl ThreadPool {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// assert_eq!(pool.handle().name(), "unirun"); // the default prefix
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A pool with default settings.
    ///
    /// # Errors
    ///
    /// When the OS refuses to start a worker thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::new().unwrap();
    /// // One worker per CPU of the process's budget.
    /// assert_eq!(pool.num_workers(), unirun_platform::cpu_budget().available);
    /// ```
    pub fn new() -> io::Result<Self> {
        Builder::default().build()
    }

    /// A handle to this pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let handle = pool.handle();
    /// let task = std::thread::spawn(move || handle.spawn(async { "spawned elsewhere" }));
    /// assert_eq!(pool.block_on(task.join().unwrap()).unwrap(), "spawned elsewhere");
    /// ```
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Number of async worker threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(2).build().unwrap();
    /// assert_eq!(pool.num_workers(), 2);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.handle.inner.workers
    }

    /// Spawns a future; see [`Handle::spawn`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(2).build().unwrap();
    /// let tasks: Vec<_> = (1..=3u32).map(|i| pool.spawn(async move { i * i })).collect();
    /// let squares: Vec<u32> = tasks.into_iter().map(|t| t.join().unwrap()).collect();
    /// assert_eq!(squares, [1, 4, 9]);
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }

    /// Runs a blocking closure on the blocking lane; see [`Handle::spawn_blocking`].
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let waiter = pool.spawn_blocking(move || rx.recv().unwrap());
    /// // The closure blocks its own lane thread, so the only worker stays free.
    /// pool.spawn(async move { tx.send("from a worker").unwrap() }).join().unwrap();
    /// assert_eq!(waiter.join().unwrap(), "from a worker");
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.handle.spawn_blocking(f)
    }

    /// Drives `future` to completion on the calling thread (see
    /// [`unirun_core::block_on`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let doubled = pool.block_on(async {
    ///     let n = pool.spawn(async { 21 }).await.unwrap();
    ///     n * 2
    /// });
    /// assert_eq!(doubled, 42);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        unirun_core::block_on(future)
    }

    /// Waits until every task spawned on the pool has finished, then joins
    /// its threads. The same as dropping the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let done = Arc::new(AtomicBool::new(false));
    /// let flag = done.clone();
    /// pool.spawn_blocking(move || {
    ///     std::thread::sleep(Duration::from_millis(20));
    ///     flag.store(true, Ordering::SeqCst);
    /// })
    /// .detach();
    /// pool.shutdown(); // waits for the detached closure too
    /// assert!(done.load(Ordering::SeqCst));
    /// ```
    pub fn shutdown(self) {
        drop(self);
    }

    /// Cancels every task that has not finished: waiting and queued tasks
    /// resolve to `Err(cancelled)`, blocking closures that already started run
    /// to completion (threads cannot be interrupted). Then joins the threads.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_threads::ThreadPool::builder().workers(1).build().unwrap();
    /// let waiting = pool.spawn(std::future::pending::<()>());
    /// pool.shutdown_now(); // returns although the task would never finish
    /// assert!(waiting.join().unwrap_err().is_cancelled());
    /// ```
    pub fn shutdown_now(mut self) {
        self.handle.inner.tasks.close();
        self.finish(None);
    }

    /// Waits up to `timeout` for the tasks to finish, then cancels the rest as
    /// [`shutdown_now`](Self::shutdown_now) does. Returns whether everything
    /// finished in time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use unirun_threads::ThreadPool;
    ///
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let quick = pool.spawn(async { 1 });
    /// assert!(pool.shutdown_timeout(Duration::from_secs(3600)));
    /// assert_eq!(quick.join().unwrap(), 1);
    ///
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let stuck = pool.spawn(std::future::pending::<()>());
    /// assert!(!pool.shutdown_timeout(Duration::from_millis(20)));
    /// assert!(stuck.join().unwrap_err().is_cancelled());
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        let in_time = wait_empty(&self.handle.inner.tasks, Some(Instant::now() + timeout));
        if !in_time {
            self.handle.inner.tasks.close();
        }
        self.finish(None);
        in_time
    }

    /// Waits for the task set to empty (unless `deadline` passes), then stops.
    fn finish(&mut self, deadline: Option<Instant>) {
        let threads = std::mem::take(&mut self.threads);
        if unirun_core::in_forked_child() {
            // A pool inherited through `fork`: its threads do not exist here,
            // so there is nothing to wait for or join (joining would hang).
            std::mem::forget(threads);
            return;
        }
        let pool = ThreadPool {
            handle: self.handle.clone(),
            threads,
        };
        if pool.handle.on_own_thread() {
            // Waiting here could deadlock (we may be the task it waits for) or
            // stall a worker: move the whole teardown to a helper thread.
            let name = format!("{}-shutdown", pool.handle.inner.name);
            let spawned = thread::Builder::new()
                .name(name)
                .spawn(move || pool.finish_here(deadline));
            if let Err(err) = spawned {
                // No thread for the teardown: stop without waiting rather than hang.
                eprintln!("unirun: could not start a thread to shut the pool down ({err}); cancelling its tasks");
            }
            return;
        }
        pool.finish_here(deadline);
    }

    fn finish_here(self, deadline: Option<Instant>) {
        if !wait_empty(&self.handle.inner.tasks, deadline) {
            self.handle.inner.tasks.close();
            wait_empty(&self.handle.inner.tasks, None);
        }
        self.stop();
    }

    /// Stops without waiting: closes the task set, the lane and the workers,
    /// then joins every thread.
    fn stop(mut self) {
        let inner = &self.handle.inner;
        inner.tasks.close();
        inner.lane.shutdown();
        inner.pool.shutdown();
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
        inner.handoff.join_all();
    }
}

/// The hand-off threads a pool started (see `Pool::set_thread_spawner`).
#[derive(Default)]
struct HandoffThreads(std::sync::Mutex<Vec<thread::JoinHandle<()>>>);

impl HandoffThreads {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<thread::JoinHandle<()>>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a new thread; joins the ones that finished, so the list stays
    /// as long as the number of live threads.
    fn push(&self, thread: thread::JoinHandle<()>) {
        let finished: Vec<_> = {
            let mut threads = self.lock();
            let (done, live) = std::mem::take(&mut *threads)
                .into_iter()
                .partition(thread::JoinHandle::is_finished);
            *threads = live;
            threads.push(thread);
            done
        };
        for thread in finished {
            let _ = thread.join();
        }
    }

    /// Joins every hand-off thread, including those started while joining:
    /// each thread is recorded by its starter before the starter exits, so
    /// once a round finds the list empty, none is left.
    fn join_all(&self) {
        loop {
            let threads = std::mem::take(&mut *self.lock());
            if threads.is_empty() {
                return;
            }
            for thread in threads {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.finish(None);
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle, f)
    }
}

impl Handle {
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

    /// Whether the calling thread is one of this pool's threads.
    fn on_own_thread(&self) -> bool {
        unirun_core::on_worker_thread() || self.inner.lane.is_lane_thread()
    }
}

impl Executor for Handle {
    fn scheduler(&self) -> Arc<dyn Schedule> {
        self.inner.clone()
    }

    fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        self.inner.lane.scheduler()
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

/// Parks the calling thread until `tasks` is empty or `deadline` passes;
/// returns whether it emptied.
fn wait_empty(tasks: &TaskSet, deadline: Option<Instant>) -> bool {
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    loop {
        if tasks.notify_when_empty(&waker) {
            return true;
        }
        match deadline {
            None => thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                thread::park_timeout(deadline - now);
            }
        }
    }
}

struct ThreadWaker(thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}
