//! The shared side of the work-stealing scheduler: [`Pool`], the handle every
//! spawner and waker uses, and the state all workers share (the injector, the
//! stealers of every local queue, the sleep protocol, the parkers' wake-up
//! ends and the shutdown flag).
//!
//! The per-thread side lives in [`worker`](crate::worker) (the run loop and
//! the movable per-worker "core") and [`context`](crate::context) (which core
//! the calling thread holds, and the hand-off when it blocks).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;

use async_task::ScheduleInfo;

use crate::idle::{Idle, MAX_WORKERS};
use crate::park::{Park, Unpark};
use crate::queue::{self, Injector, Stealer};
use crate::sync::{fence, AtomicBool, Ordering};
use crate::task::{spawn_with, Runnable};
use crate::worker::{Core, Worker};
use crate::{barrier, context, Executor, JoinHandle, RunQueue, TaskSet};

/// Starts a thread running `job` for worker `index` (see
/// [`Pool::set_thread_spawner`]).
#[cfg(feature = "std")]
#[cfg_attr(docsrs, doc(cfg(feature = "std")))]
pub type SpawnThread = dyn Fn(usize, Box<dyn FnOnce() + Send>) -> std::io::Result<()> + Send + Sync;

pub(crate) struct Shared {
    pub(crate) injector: Injector,
    pub(crate) stealers: Box<[Stealer]>,
    /// The thieves' ends of every worker's deque of join halves.
    #[cfg(feature = "std")]
    pub(crate) join_stealers: Box<[crate::fork_join::JobStealer]>,
    pub(crate) idle: Idle,
    pub(crate) unparkers: Box<[Arc<dyn Unpark>]>,
    pub(crate) shutdown: AtomicBool,
    /// The fork generation (`crate::fork_generation`) the pool was made
    /// in: in another one it was inherited through a fork, and its workers
    /// are not in this process.
    pub(crate) generation: usize,
    pub(crate) stats: crate::stats::WorkerStats,
    /// Starts the thread that takes over a core when its thread blocks.
    #[cfg(feature = "std")]
    pub(crate) spawner: std::sync::OnceLock<Box<SpawnThread>>,
    /// Worker count (the queues above have one more entry: the guest's).
    pub(crate) workers: usize,
    /// The guest core (index `workers`), while no thread borrows it: a
    /// thread outside the pool that forks work onto it runs as this core
    /// instead of waiting for a worker (see `fork_join::guest`).
    #[cfg(feature = "std")]
    pub(crate) guest: crate::sync::SpinLock<Option<Box<Core>>>,
    /// Whether the guest counts in the idle word now; touched only by the
    /// thread holding the guest core.
    #[cfg(feature = "std")]
    pub(crate) guest_counted: AtomicBool,
}

/// A worker count the pool cannot have.
///
/// # Examples
///
/// ```
/// let err = unirun_core::Pool::try_with_workers(0).unwrap_err();
/// assert_eq!(err.value(), 0);
/// assert!(err.to_string().contains("workers=0"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolError {
    value: usize,
}

impl PoolError {
    pub(crate) fn workers(value: usize) -> Self {
        Self { value }
    }

    /// The rejected worker count.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::Pool::try_with_workers(usize::MAX).unwrap_err();
    /// assert_eq!(err.value(), usize::MAX);
    /// ```
    pub fn value(&self) -> usize {
        self.value
    }

    /// The largest worker count a pool accepts.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun_core::PoolError::MAX_WORKERS >= 1024);
    /// ```
    pub const MAX_WORKERS: usize = MAX_WORKERS;
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid workers={}: expected an integer from 1 to {}",
            self.value, MAX_WORKERS
        )
    }
}

impl core::error::Error for PoolError {}

/// A lock-free work-stealing scheduler shared by a fixed set of [`Worker`]s.
///
/// Cheap to clone (an `Arc`). Tasks spawned from one of its worker threads go
/// to that worker's LIFO slot and local queue; tasks spawned from anywhere
/// else go to the global injector and wake one sleeping worker.
///
/// A task that blocks its thread through [`block_on`](crate::block_on) or
/// [`JoinHandle::join`] hands its worker's queues to a new thread first (see
/// [`worker`](crate::Worker#blocking-on-a-worker)), so the pool keeps its
/// full number of running workers.
///
/// # Examples
///
/// ```
/// use unirun_core::{Executor, Pool};
///
/// let (pool, workers) = Pool::with_workers(2);
/// let threads: Vec<_> = workers
///     .into_iter()
///     .map(|worker| std::thread::spawn(move || worker.run()))
///     .collect();
/// let handle = pool.spawn(async { 21 * 2 });
/// assert_eq!(handle.join().unwrap(), 42);
/// pool.shutdown();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// ```
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<Shared>,
}

impl Pool {
    /// Creates a pool with one worker per parker pair; `parkers[i]` parks
    /// worker `i`. For `no_std` targets, bring your own [`Park`]/[`Unpark`].
    ///
    /// # Panics
    ///
    /// If `parkers` is empty or longer than [`PoolError::MAX_WORKERS`]; see
    /// [`try_new`](Self::try_new) for the form that returns the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{park, Park, Pool, Unpark};
    ///
    /// let parkers = (0..2)
    ///     .map(|_| {
    ///         let (parker, unparker) = park::pair();
    ///         (Box::new(parker) as Box<dyn Park + Send>, Arc::new(unparker) as Arc<dyn Unpark>)
    ///     })
    ///     .collect();
    /// let (pool, workers) = Pool::new(parkers);
    /// assert_eq!(workers.len(), 2);
    ///
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    /// assert_eq!(pool.spawn(async { 3 }).join().unwrap(), 3);
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn new(parkers: Vec<(Box<dyn Park + Send>, Arc<dyn Unpark>)>) -> (Pool, Vec<Worker>) {
        match Self::try_new(parkers) {
            Ok(pool) => pool,
            Err(err) => panic!("{err}"),
        }
    }

    /// Like [`new`](Self::new), but an empty or oversized set of parkers is
    /// an error instead of a panic.
    ///
    /// # Errors
    ///
    /// [`PoolError`] when `parkers` is empty or has more than
    /// [`PoolError::MAX_WORKERS`] entries.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = unirun_core::Pool::try_new(Vec::new()).unwrap_err();
    /// assert_eq!(err.value(), 0);
    /// ```
    pub fn try_new(
        parkers: Vec<(Box<dyn Park + Send>, Arc<dyn Unpark>)>,
    ) -> Result<(Pool, Vec<Worker>), PoolError> {
        let n = parkers.len();
        let idle = Idle::new(n)?;
        // One more queue and deque than workers with `std`: the guest core's.
        let cores = if cfg!(feature = "std") { n + 1 } else { n };
        let (locals, stealers): (Vec<_>, Vec<Stealer>) = (0..cores).map(|_| queue::local()).unzip();
        #[cfg(feature = "std")]
        let mut locals = locals;
        #[cfg(feature = "std")]
        let (join_deques, join_stealers): (Vec<_>, Vec<_>) =
            (0..cores).map(|_| crate::fork_join::deque()).unzip();
        #[cfg(feature = "std")]
        let mut join_deques = join_deques.into_iter();
        let (parks, unparkers): (Vec<_>, Vec<_>) = parkers.into_iter().unzip();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: stealers.into_boxed_slice(),
            #[cfg(feature = "std")]
            join_stealers: join_stealers.into_boxed_slice(),
            idle,
            unparkers: unparkers.into_boxed_slice(),
            shutdown: AtomicBool::new(false),
            generation: crate::fork_generation(),
            stats: crate::stats::WorkerStats::new(cores),
            #[cfg(feature = "std")]
            spawner: std::sync::OnceLock::new(),
            workers: n,
            #[cfg(feature = "std")]
            guest: crate::sync::SpinLock::new(None),
            #[cfg(feature = "std")]
            guest_counted: AtomicBool::new(false),
        });
        #[cfg(feature = "std")]
        {
            let local = locals.pop().expect("the guest's queue");
            let join = join_deques.next_back().expect("the guest's join deque");
            let core = Core::new(n, local, join, Box::new(crate::fork_join::GuestPark));
            shared.guest.with(|guest| *guest = Some(Box::new(core)));
        }
        let workers = locals
            .into_iter()
            .zip(parks)
            .enumerate()
            .map(|(index, (local, park))| Worker {
                shared: shared.clone(),
                core: Box::new(Core::new(
                    index,
                    local,
                    #[cfg(feature = "std")]
                    join_deques.next().expect("one join deque per worker"),
                    park,
                )),
            })
            .collect();
        Ok((Pool { shared }, workers))
    }

    /// Creates a pool of `n` workers with the standard thread parker.
    ///
    /// # Panics
    ///
    /// If `n` is zero or above [`PoolError::MAX_WORKERS`]; see
    /// [`try_with_workers`](Self::try_with_workers).
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(3);
    /// assert_eq!(pool.num_workers(), 3);
    /// let indices: Vec<usize> = workers.iter().map(|w| w.index()).collect();
    /// assert_eq!(indices, [0, 1, 2]);
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn with_workers(n: usize) -> (Pool, Vec<Worker>) {
        match Self::try_with_workers(n) {
            Ok(pool) => pool,
            Err(err) => panic!("{err}"),
        }
    }

    /// Like [`with_workers`](Self::with_workers), but a bad count is an error.
    ///
    /// # Errors
    ///
    /// [`PoolError`] when `n` is zero or above [`PoolError::MAX_WORKERS`]
    /// (checked before anything is allocated).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::Pool;
    ///
    /// assert!(Pool::try_with_workers(2).is_ok());
    /// let err = Pool::try_with_workers(usize::MAX).unwrap_err();
    /// assert!(err.to_string().starts_with("invalid workers="));
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn try_with_workers(n: usize) -> Result<(Pool, Vec<Worker>), PoolError> {
        if n == 0 || n > MAX_WORKERS {
            return Err(PoolError::workers(n));
        }
        Self::try_new(
            (0..n)
                .map(|_| {
                    let (parker, unparker) = crate::park::pair();
                    (
                        Box::new(parker) as Box<dyn Park + Send>,
                        Arc::new(unparker) as Arc<dyn Unpark>,
                    )
                })
                .collect(),
        )
    }

    /// Sets how the pool starts a thread when a task blocks a worker (through
    /// [`block_on`](crate::block_on) or [`JoinHandle::join`]): the blocked
    /// thread gives its worker's queues to a new thread that runs `job`, and
    /// `spawner(index, job)` must start that thread (named and sized as the
    /// owner likes, typically like worker `index`) and keep its
    /// `std::thread::JoinHandle` to join it at shutdown. A job returns once
    /// the pool shuts down (or when its own thread blocks in turn and hands
    /// the worker on).
    ///
    /// Without a spawner, the pool uses `std::thread::Builder` with the
    /// blocked thread's name and detaches the thread. Set it before the
    /// workers run; returns `false` (and keeps the first) if one was set.
    ///
    /// If the spawner fails, the blocking call panics with the error (the
    /// task's `JoinHandle` resolves to that panic) and the worker keeps its
    /// queues: a pool never hangs waiting for a thread it could not start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use unirun_core::Pool;
    ///
    /// let (pool, workers) = Pool::with_workers(1);
    /// let extra = Arc::new(Mutex::new(Vec::new()));
    /// let joins = extra.clone();
    /// pool.set_thread_spawner(move |index, job| {
    ///     let thread = std::thread::Builder::new().name(format!("mine-{index}")).spawn(job)?;
    ///     joins.lock().unwrap().push(thread);
    ///     Ok(())
    /// });
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    ///
    /// // The task blocks its worker on a task queued behind it on the same
    /// // worker; a spawned thread takes the worker's queues over and runs it.
    /// let inner = pool.clone();
    /// let waiter = pool.spawn(async move {
    ///     let queued = inner.spawn(async { 7 });
    ///     unirun_core::block_on(queued).unwrap()
    /// });
    /// assert_eq!(waiter.join().unwrap(), 7);
    /// assert_eq!(extra.lock().unwrap().len(), 1); // one hand-off, one thread
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// for thread in extra.lock().unwrap().drain(..) {
    ///     thread.join().unwrap();
    /// }
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn set_thread_spawner(
        &self,
        spawner: impl Fn(usize, Box<dyn FnOnce() + Send>) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> bool {
        self.shared.spawner.set(Box::new(spawner)).is_ok()
    }

    /// Number of workers.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(4);
    /// assert_eq!(pool.num_workers(), 4);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.shared.workers
    }

    /// Spawns a future on the pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(2);
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    ///
    /// let inner = pool.clone();
    /// // Spawned from a worker, the inner task lands on that worker's own queue.
    /// let outer = pool.spawn(async move { inner.spawn(async { 20 }).await.unwrap() + 1 });
    /// assert_eq!(outer.join().unwrap(), 21);
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_into(None, future)
    }

    /// Spawns a future on the pool as a member of `tasks`, so its owner can
    /// wait for it or cancel it (see [`TaskSet`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::{Pool, TaskSet};
    ///
    /// let (pool, workers) = Pool::with_workers(1);
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    ///
    /// let group = Arc::new(TaskSet::new());
    /// let member = pool.spawn_in(&group, std::future::pending::<()>());
    /// let outsider = pool.spawn(async { "untouched" });
    /// group.close(); // cancels the group's tasks only
    /// assert!(member.join().unwrap_err().is_cancelled());
    /// assert_eq!(outsider.join().unwrap(), "untouched");
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn spawn_in<F>(&self, tasks: &Arc<TaskSet>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_into(Some(tasks), future)
    }

    fn spawn_into<F>(&self, tasks: Option<&Arc<TaskSet>>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = self.shared.clone();
        let (runnable, handle) = spawn_with(future, tasks, move |r, info| shared.schedule(r, info));
        runnable.schedule();
        handle
    }

    /// Queues a runnable (from a task created with [`spawn_with`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_core::{spawn_with, Pool};
    ///
    /// let (pool, workers) = Pool::with_workers(1);
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    ///
    /// // A hand-made task whose schedule function queues it on the pool.
    /// let target = pool.clone();
    /// let (runnable, handle) = spawn_with(async { "scheduled" }, None, move |r, info| {
    ///     target.schedule(r, info)
    /// });
    /// runnable.schedule(); // calls `Pool::schedule`
    /// assert_eq!(handle.join().unwrap(), "scheduled");
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        self.shared.schedule(runnable, info);
    }

    /// Stops the pool: workers return from [`Worker::run`] after their current
    /// task; everything the pool holds is dropped, so those tasks are
    /// cancelled and their `JoinHandle`s resolve: the injector and the local
    /// queues now (including the queue of a worker whose thread is busy,
    /// while another worker is stealing from it: a batch in transit is
    /// cancelled by the thief, which checks for the stop once it has the
    /// batch, or taken here), each worker's LIFO slot and whatever its running task
    /// queues meanwhile when that task returns, or at once if the task blocks
    /// in [`block_on`](crate::block_on)/[`JoinHandle::join`] (so a task that
    /// joins a task queued behind it on its own worker is not left waiting).
    /// Later wake-ups and spawns are cancelled at once.
    ///
    /// Tasks still waiting on something are cancelled when they are next woken;
    /// an executor that must cancel them eagerly keeps their wakers (the
    /// threads backend does) and wakes them after calling this.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(2);
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    /// assert_eq!(pool.spawn(async { 1 }).join().unwrap(), 1);
    ///
    /// pool.shutdown();
    /// // Every worker returns from `run`, so its thread can be joined.
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// // Spawns after shutdown are cancelled at once.
    /// assert!(pool.spawn(async { 2 }).join().unwrap_err().is_cancelled());
    /// ```
    pub fn shutdown(&self) {
        // The queues are read below only after the flag and its fence (see
        // `stop_seen_after_steal`).
        stop(&self.shared.shutdown);
        for unparker in self.shared.unparkers.iter() {
            crate::park::unpark_or_abort(&**unparker);
        }
        // Dropped here, outside any lock: each drop cancels a task.
        self.shared
            .injector
            .close()
            .into_iter()
            .for_each(crate::task::cancel);
        // The local queues of workers whose thread is busy; each owner drops
        // its LIFO slot (which only it may touch) on its way out.
        let inherited = self.is_inherited();
        for stealer in self.shared.stealers.iter() {
            stealer
                .steal_all(inherited)
                .into_iter()
                .for_each(crate::task::cancel);
        }
    }

    /// A snapshot of the scheduler's counters and queue lengths.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(2);
    /// assert_eq!(pool.stats().workers(), 2);
    /// ```
    pub fn stats(&self) -> crate::PoolStats {
        self.shared.stats()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(1);
    /// assert!(!pool.is_shutdown());
    /// pool.shutdown();
    /// assert!(pool.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.shared.shutdown.load(Ordering::Acquire)
    }

    /// The process's pool with no workers, which runs every task it is given
    /// on the calling thread, in a loop rather than one stack frame per
    /// self-wake (see [`fork_generation`](crate::fork_generation)): what an
    /// inherited pool does in a forked child. Backends whose own threads a
    /// forked child lacks run their work through it; it reports
    /// [`is_inherited`](Self::is_inherited) in every process. Made on first
    /// use (a grandchild forked while another thread is making it would wait
    /// for that thread: a fork in the middle of a spawn, which the core's own
    /// pools do not survive either).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = unirun_core::Pool::inline();
    /// assert!(pool.is_inherited());
    /// assert_eq!(pool.spawn(async { 7 }).join().unwrap(), 7);
    /// ```
    #[cfg(feature = "std")]
    #[cfg_attr(docsrs, doc(cfg(feature = "std")))]
    pub fn inline() -> &'static Pool {
        static INLINE: std::sync::OnceLock<Pool> = std::sync::OnceLock::new();
        INLINE.get_or_init(|| {
            let (mut pool, workers) = Pool::with_workers(1);
            drop(workers);
            // No fork reaches this generation (it counts forks from 0): the
            // pool is "inherited" in every process, so it never queues for a
            // worker. The workers were dropped unstarted, so the pool holds
            // the only reference to its state.
            Arc::get_mut(&mut pool.shared)
                .expect("a pool whose workers were dropped is its state's only owner")
                .generation = usize::MAX;
            pool
        })
    }

    /// Whether this pool was made in an ancestor process and inherited
    /// through a unirun fork (its [`fork_generation`](crate::fork_generation)
    /// is not this process's): its workers are not in this process, so it
    /// runs what it is given inline on the calling thread, and whoever owns
    /// its threads must not wait for them. A pool made in a forked child is
    /// that child's own: its workers run.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(1);
    /// assert!(!pool.is_inherited());
    /// ```
    #[inline]
    pub fn is_inherited(&self) -> bool {
        self.shared.generation != crate::fork_generation()
    }

    /// Whether the calling thread is running one of this pool's workers
    /// (including a thread whose task blocks and handed its worker on).
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, workers) = unirun_core::Pool::with_workers(1);
    /// let threads: Vec<_> = workers
    ///     .into_iter()
    ///     .map(|w| std::thread::spawn(move || w.run()))
    ///     .collect();
    ///
    /// assert!(!pool.is_worker_thread());
    /// let inside = pool.clone();
    /// assert!(pool.spawn(async move { inside.is_worker_thread() }).join().unwrap());
    ///
    /// pool.shutdown();
    /// threads.into_iter().for_each(|t| t.join().unwrap());
    /// ```
    pub fn is_worker_thread(&self) -> bool {
        context::with_current(|cx| cx.is_some_and(|cx| Arc::ptr_eq(cx.shared(), &self.shared)))
    }
}

impl Executor for Pool {
    fn run_queue(&self) -> Arc<dyn RunQueue> {
        self.shared.clone()
    }

    /// Blocking closures run on the workers themselves: a bare pool has no
    /// other threads. The threads backend adds a separate blocking lane.
    fn blocking_run_queue(&self) -> Arc<dyn RunQueue> {
        self.shared.clone()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.num_workers())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

impl RunQueue for Shared {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        Shared::schedule(self, runnable, info);
    }
}

impl Shared {
    pub(crate) fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        if self.generation != crate::fork_generation() {
            // Inherited through a fork (a pool made in this process, a
            // forked child's own, has its workers): the workers were not
            // copied by `fork`: run the task here, in a loop rather than one
            // stack frame per self-wake, or, on a driver thread, on a runner
            // thread (see `fork`'s docs).
            crate::fork::run_here(runnable, info);
            return;
        }
        if self.shutdown.load(Ordering::Acquire) {
            // Cancels the task; its JoinHandle resolves to `cancelled`.
            crate::task::cancel(runnable);
            return;
        }
        if let Some(runnable) = context::schedule_local(self, runnable, info.woken_while_running) {
            self.injector.push(runnable);
            self.notify_parked();
        }
    }

    /// After a push to the calling worker's own queue: the push side's fence
    /// (`barrier::store_load`), then the wake-up only when the word says a
    /// sleeper might need waking (see `idle`).
    #[inline]
    pub(crate) fn notify_parked_local(&self) {
        barrier::store_load();
        if self.idle.may_need_notify() {
            self.notify_parked();
        }
    }

    /// Wakes one sleeping worker if nobody is searching (see `idle`).
    pub(crate) fn notify_parked(&self) {
        fence(Ordering::SeqCst);
        if let Some(index) = self.idle.worker_to_notify() {
            crate::park::unpark_or_abort(&*self.unparkers[index]);
        }
    }

    /// See [`stop_seen_after_steal`].
    #[inline]
    pub(crate) fn stop_seen_after_steal(&self) -> bool {
        stop_seen_after_steal(&self.shutdown)
    }

    pub(crate) fn has_stealable_work(&self) -> bool {
        #[cfg(feature = "std")]
        if self.join_stealers.iter().any(|s| !s.is_empty()) {
            return true;
        }
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }
}

/// Sets a pool's shutdown `flag`, then fences: whoever reads the queues
/// after this (shutdown itself) pairs with [`stop_seen_after_steal`].
pub(crate) fn stop(flag: &AtomicBool) {
    flag.store(true, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// Called by a thief once a stolen batch is published in its own queue:
/// whether the pool stopped (`flag`), in which case the thief cancels what
/// it took instead of running it.
///
/// A batch is in neither queue while it is copied, so [`Pool::shutdown`]
/// can miss it there; this closes the window. Shutdown stores the flag,
/// fences ([`stop`]), then reads every queue; the thief publishes the
/// batch, fences, then reads the flag. Of the two `SeqCst` fences one comes
/// first: if shutdown's, the thief sees the flag; if the thief's, shutdown
/// sees the batch in the thief's queue. Either way every runnable is
/// cancelled now, not when a busy worker comes back (loom model
/// `shutdown_vs_steal_in_transit`). Costs one fence per successful steal,
/// not per task.
#[inline]
pub(crate) fn stop_seen_after_steal(flag: &AtomicBool) -> bool {
    fence(Ordering::SeqCst);
    flag.load(Ordering::Relaxed)
}
