//! [`ThreadPool`]: starting its worker threads and blocking lane, and
//! stopping them.
//!
//! # Shutdown
//!
//! Every form first waits for (or cancels) the pool's [`TaskSet`], then
//! stops the lane and the workers. `shutdown` and `shutdown_now` join every
//! thread. `shutdown_timeout(d)` is bounded by one deadline `d` from the
//! call: it waits for the tasks until then, cancels the rest, and waits for
//! threads that are still inside user code (a blocking closure, or a task's
//! poll that blocks) only until the deadline; those are left detached and
//! exit as soon as that code returns. Threads with nothing to run are
//! joined. From one of the pool's own threads no form waits: the teardown
//! moves to a helper thread (`{name}-shutdown`), and if that thread cannot
//! start the pool is stopped without waiting, never recursively.

use std::fmt;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use unirun_blocking::BlockingLane;
use unirun_core::{JoinHandle, Pool, RunQueue, Runnable, ScheduleInfo, TaskSet};

use crate::context::run_inside;
use crate::shutdown::{wait_empty, Exits, HandoffThreads};
use crate::{Builder, Handle, WorkerContext};

impl Builder {
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
        watch_forks();
        let cpus = unirun_platform::cpu_budget().available;
        let workers = match self.workers {
            Some(0) => return Err(invalid("workers", 0)),
            Some(n) => n,
            None => cpus,
        };
        let max_blocking = match self.max_blocking {
            Some(0) => return Err(invalid("max_blocking_threads", 0)),
            Some(n) => n,
            None => unirun_blocking::default_blocking_cap(cpus),
        };
        let max_handoff = match self.max_handoff {
            Some(0) => return Err(invalid("max_handoff_threads", 0)),
            Some(n) => n,
            None => crate::DEFAULT_MAX_HANDOFF_THREADS,
        };
        let (pool, pool_workers) = Pool::try_with_workers(workers)
            .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err.to_string()))?;
        // Counted per worker of this pool (see `Handle::task_counts`).
        let tasks = Arc::new(TaskSet::for_pool(&pool));
        let mut lane = BlockingLane::builder()
            .name(self.name.clone())
            .max_threads(max_blocking)
            .keep_alive(self.keep_alive)
            .task_set(tasks.clone());
        if let Some(size) = self.stack_size {
            lane = lane.stack_size(size);
        }
        let lane = lane.build()?;
        let exits = Arc::<Exits>::default();
        // Threads started when a task blocks a worker take its core over:
        // named like the worker, counted and joined like the workers.
        // At most `max_handoff` live at once: past it (or when the OS
        // refuses a thread) the spawner's error makes the blocking call
        // panic inside its task, and the worker keeps its queue.
        let handoff = Arc::new(HandoffThreads::new(max_handoff, workers));
        let (threads_of, exits_of) = (handoff.clone(), exits.clone());
        let (prefix, stack_size) = (self.name.clone(), self.stack_size);
        let context = self.context.map(|slot| slot.0);
        let context_of = context.clone();
        pool.set_thread_spawner(move |index, job| {
            let slot = threads_of.reserve(&prefix)?;
            let mut builder = thread::Builder::new().name(format!("{prefix}-{index}"));
            if let Some(size) = stack_size {
                builder = builder.stack_size(size);
            }
            let exit = exits_of.enter();
            let context = context_of.clone();
            // A refused spawn drops the closure: the slot and the exit
            // count are given back with it.
            threads_of.push(builder.spawn(move || {
                let _exit = exit;
                let _slot = slot;
                run_inside(context.as_ref(), job);
            })?);
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
            stack_size: self.stack_size,
            exits,
            context,
        });
        let mut threads = Vec::with_capacity(workers);
        for worker in pool_workers {
            let mut builder =
                thread::Builder::new().name(format!("{}-{}", inner.name, worker.index()));
            if let Some(size) = self.stack_size {
                builder = builder.stack_size(size);
            }
            let exit = inner.exits.enter();
            let context = inner.context.clone();
            match builder.spawn(move || {
                let _exit = exit;
                run_inside(context.as_ref(), || worker.run());
            }) {
                Ok(thread) => threads.push(thread),
                Err(err) => {
                    let handle = Handle { inner };
                    Teardown { handle, threads }.stop();
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

pub(crate) struct Inner {
    pub(crate) pool: Pool,
    /// Every task spawned through this pool, async and blocking.
    pub(crate) tasks: Arc<TaskSet>,
    /// Blocking closures; its default task set is `tasks`.
    pub(crate) lane: BlockingLane,
    /// Threads that took a worker's core over from a blocked one.
    handoff: Arc<HandoffThreads>,
    pub(crate) name: String,
    pub(crate) workers: usize,
    pub(crate) max_blocking: usize,
    /// Of every thread the pool starts, the shutdown helper included.
    stack_size: Option<usize>,
    /// Worker threads that have not left their loop yet.
    exits: Arc<Exits>,
    /// What every thread polling tasks runs inside (`Builder::worker_context`).
    pub(crate) context: Option<Arc<dyn WorkerContext>>,
}

impl RunQueue for Inner {
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
    pub fn shutdown(mut self) {
        self.finish(Stop::Wait);
    }

    /// Cancels every task that has not finished: waiting and queued tasks
    /// resolve to `Err(cancelled)`, blocking closures that already started run
    /// to completion (threads cannot be interrupted) and are waited for. Then
    /// joins the threads. Called on one of the pool's own threads, it
    /// cancels at once and leaves the waiting to a helper thread.
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
        self.finish(Stop::Now);
    }

    /// Waits up to `timeout` for the tasks to finish, then cancels the rest as
    /// [`shutdown_now`](Self::shutdown_now) does, and returns about `timeout`
    /// after the call at the latest. Returns whether everything finished in
    /// time.
    ///
    /// Threads still inside user code at the deadline (a blocking closure
    /// that waits for something, or a task whose poll blocks) cannot be
    /// interrupted: they are left behind, detached, and each exits as soon as
    /// that code returns, so the process's thread count returns to what it
    /// was once they have. Threads with nothing to run are joined before this
    /// returns. The handle of a closure left running still resolves to its
    /// result.
    ///
    /// Called on one of the pool's own threads (inside one of its tasks or
    /// blocking closures), it cannot wait for the caller itself nor hold up
    /// a worker: it returns `false` at once, since the calling task has not
    /// finished, and a helper thread (`{name}-shutdown`) does the bounded
    /// wait and the teardown.
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
    ///
    /// // A blocking closure stuck past the deadline does not hold the call up.
    /// let pool = ThreadPool::builder().workers(1).build().unwrap();
    /// let (release, gate) = std::sync::mpsc::channel::<()>();
    /// let (started, running) = std::sync::mpsc::channel::<()>();
    /// let stuck = pool.spawn_blocking(move || {
    ///     started.send(()).unwrap();
    ///     gate.recv().is_ok()
    /// });
    /// running.recv().unwrap(); // running, not merely queued (queued work is cancelled)
    /// assert!(!pool.shutdown_timeout(Duration::from_millis(20)));
    /// release.send(()).unwrap();
    /// assert!(stuck.join().unwrap()); // it finished later, on its detached thread
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> bool {
        let now = Instant::now();
        // A timeout too far to represent waits a century instead.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(100 * 365 * 24 * 3600));
        self.finish(Stop::Until(deadline))
    }

    /// Stops the pool as `stop` says, here or, on one of the pool's own
    /// threads, on a helper thread (then returns `false`).
    fn finish(&mut self, stop: Stop) -> bool {
        let teardown = Teardown {
            handle: self.handle.clone(),
            threads: std::mem::take(&mut self.threads),
        };
        if self.handle.inner.pool.is_inherited() {
            // A pool inherited through `fork`: its threads do not exist here,
            // so there is nothing to wait for or join (joining would hang).
            // (A pool made in a forked child has threads, joined below.)
            std::mem::forget(teardown.threads);
            return false;
        }
        if self.handle.on_own_thread() {
            // Waiting here could deadlock (we may be the task it waits for) or
            // stall a worker: move the whole teardown to a helper thread.
            teardown.off_thread(stop);
            return false;
        }
        teardown.run(stop)
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.finish(Stop::Wait);
        }
    }
}

/// How a pool stops.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// Wait for every task, then join every thread.
    Wait,
    /// The tasks were cancelled; wait for blocking closures already running.
    Now,
    /// Wait for the tasks until the deadline, then cancel; give up on stuck
    /// threads at the deadline.
    Until(Instant),
}

/// What stopping a pool needs, taken out of the [`ThreadPool`]. It has no
/// `Drop`: dropping it (a helper thread that could not start) detaches the
/// threads instead of starting another teardown.
struct Teardown {
    handle: Handle,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Teardown {
    fn run(self, stop: Stop) -> bool {
        let tasks = &self.handle.inner.tasks;
        match stop {
            Stop::Wait => {
                wait_empty(tasks, None);
                self.stop();
                true
            }
            Stop::Now => {
                tasks.close();
                wait_empty(tasks, None);
                self.stop();
                false
            }
            Stop::Until(deadline) => {
                let in_time = wait_empty(tasks, Some(deadline));
                self.stop_until(deadline);
                in_time
            }
        }
    }

    /// Runs the teardown on a helper thread. When the OS refuses one, stops
    /// without waiting here instead: a thread of the pool must not wait for
    /// the pool.
    fn off_thread(self, stop: Stop) {
        let inner = &self.handle.inner;
        let mut helper = thread::Builder::new().name(format!("{}-shutdown", inner.name));
        if let Some(size) = inner.stack_size {
            helper = helper.stack_size(size);
        }
        let slot = Arc::new(Mutex::new(Some(self)));
        let mine = slot.clone();
        let spawned = helper.spawn(move || {
            if let Some(teardown) = take(&mine) {
                teardown.run(stop);
            }
        });
        if let Err(err) = spawned {
            // The closure was dropped unrun; the teardown is still in the slot.
            if let Some(teardown) = take(&slot) {
                eprintln!(
                    "unirun: could not start a thread to shut pool `{}` down ({err}); \
                     cancelling its tasks and leaving its threads to exit on their own",
                    teardown.handle.inner.name
                );
                teardown.abandon();
            }
        }
    }

    /// Stops without waiting for anything: cancels every task, signals the
    /// lane and the workers, and leaves their threads to exit on their own.
    fn abandon(self) {
        let inner = &self.handle.inner;
        inner.tasks.close();
        inner.pool.shutdown();
        // Joins only lane threads that have nothing to run (they leave at once).
        inner.lane.shutdown_timeout(Duration::ZERO);
        drop(self.threads);
    }

    /// Stops without waiting for the tasks: closes the task set, the lane and
    /// the workers, then joins every thread.
    fn stop(self) {
        let inner = &self.handle.inner;
        inner.tasks.close();
        inner.lane.shutdown();
        inner.pool.shutdown();
        for thread in self.threads {
            let _ = thread.join();
        }
        inner.handoff.join_all();
    }

    /// [`stop`](Self::stop) bounded by `deadline`: threads still busy then
    /// are detached.
    fn stop_until(self, deadline: Instant) {
        let inner = &self.handle.inner;
        inner.tasks.close();
        inner.pool.shutdown();
        inner
            .lane
            .shutdown_timeout(deadline.saturating_duration_since(Instant::now()));
        let all_left = inner.exits.wait_until(deadline);
        for thread in self.threads {
            if all_left || thread.is_finished() {
                let _ = thread.join();
            }
            // Otherwise dropped: detached, it exits when its poll returns.
        }
        inner.handoff.join_finished(all_left);
    }
}

fn take(slot: &Mutex<Option<Teardown>>) -> Option<Teardown> {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle, f)
    }
}

/// Makes every fork of this process from now on, by whatever code,
/// mark the child ([`unirun_core::mark_forked_child`]), as unirun's own
/// forks do: the child has none of the pools' threads, and a child that
/// did not know it would queue tasks for them, join them, or (shutting
/// down) wait out a queue claim one of them held at the fork, forever.
/// Registered once, when the first pool starts (the facade also calls it
/// before it starts any backend, so a smol or tokio scope's threads are
/// covered too): a process that forks before it ever started a pool has
/// no pool threads to miss. Idempotent and cheap after the first call.
///
/// A unirun fork marks its child itself too: the generation then rises by
/// two, which is still "another generation" to everything that reads it.
///
/// # Examples
///
/// ```
/// unirun_threads::watch_forks();
/// unirun_threads::watch_forks(); // once is enough; again is harmless
/// ```
pub fn watch_forks() {
    #[cfg(unix)]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        /// Runs in the child right after `fork`: one atomic add, which is
        /// async-signal-safe.
        extern "C" fn in_child() {
            unirun_core::mark_forked_child();
        }
        ONCE.call_once(|| {
            // A failure (ENOMEM) leaves forks by other code unmarked, as
            // before. Handlers cannot be unregistered.
            // SAFETY: `in_child` is a plain `extern "C" fn` that lives for the
            // whole program and does only an atomic add (async-signal-safe).
            let _ = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        });
    }
}
