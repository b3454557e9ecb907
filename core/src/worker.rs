//! The work-stealing pool: [`Pool`] is the shared side, each [`Worker`] is one
//! thread's side. The pool owns no threads; whoever has threads (the threads
//! backend, or an embedded loop) calls [`Worker::run`] on each worker.
//!
//! A worker looks for its next task in this order: every 61st tick the
//! injector first (so remote work is not starved by a busy local queue), then
//! its LIFO slot (at most [`MAX_LIFO_POLLS`] in a row), its local queue, the
//! injector, and finally half of a random victim's queue. With nothing found
//! it parks following the protocol in [`idle`](crate::idle).

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::Cell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use async_task::ScheduleInfo;

use crate::idle::Idle;
use crate::park::{Park, Unpark};
use crate::queue::{self, Injector, Local, Stealer};
use crate::sync::{fence, AtomicBool, Ordering};
use crate::task::{spawn_with, Runnable};
use crate::{Executor, JoinHandle, Schedule, TaskSet};

/// How often (in tasks run) a worker checks the injector before its own queue.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// How many tasks in a row may run from the LIFO slot before the slot's task
/// goes to the back of the queue: message-passing tasks ping-ponging through
/// the slot must not starve the rest of the queue.
pub const MAX_LIFO_POLLS: u32 = 3;

pub(crate) struct Shared {
    injector: Injector,
    stealers: Box<[Stealer]>,
    idle: Idle,
    unparkers: Box<[Arc<dyn Unpark>]>,
    shutdown: AtomicBool,
}

/// A lock-free work-stealing scheduler shared by a fixed set of [`Worker`]s.
///
/// Cheap to clone (an `Arc`). Tasks spawned from one of its worker threads go
/// to that worker's LIFO slot and local queue; tasks spawned from anywhere
/// else go to the global injector and wake one sleeping worker.
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
    shared: Arc<Shared>,
}

/// One thread's share of a [`Pool`]: its local queue, LIFO slot and parker.
///
/// `Send` but not `Sync`: move it to the thread that drives it, then call
/// [`run`](Self::run) there. Sharing one between threads does not compile:
///
/// ```compile_fail
/// fn shared<T: Sync>(_: &T) {}
/// let (_pool, workers) = unirun_core::Pool::with_workers(1);
/// shared(&workers[0]);
/// ```
pub struct Worker {
    shared: Arc<Shared>,
    index: usize,
    local: Local,
    /// The task to run next (woken by the running task). Not stealable.
    lifo: Cell<Option<Runnable>>,
    tick: Cell<u32>,
    /// Whether this worker counts itself in `Idle`'s searching count.
    searching: Cell<bool>,
    rng: Cell<u32>,
    park: Box<dyn Park + Send>,
}

impl Pool {
    /// Creates a pool with one worker per parker pair; `parkers[i]` parks
    /// worker `i`. For `no_std` targets, bring your own [`Park`]/[`Unpark`].
    ///
    /// # Panics
    ///
    /// If `parkers` is empty.
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
        assert!(!parkers.is_empty(), "a pool needs at least one worker");
        let n = parkers.len();
        let (locals, stealers): (Vec<Local>, Vec<Stealer>) = (0..n).map(|_| queue::local()).unzip();
        let (parks, unparkers): (Vec<_>, Vec<_>) = parkers.into_iter().unzip();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: stealers.into_boxed_slice(),
            idle: Idle::new(n),
            unparkers: unparkers.into_boxed_slice(),
            shutdown: AtomicBool::new(false),
        });
        let workers = locals
            .into_iter()
            .zip(parks)
            .enumerate()
            .map(|(index, (local, park))| Worker {
                shared: shared.clone(),
                index,
                local,
                lifo: Cell::new(None),
                tick: Cell::new(0),
                searching: Cell::new(false),
                rng: Cell::new(0x9E37_79B9 ^ (index as u32).wrapping_mul(0x85EB_CA6B) | 1),
                park,
            })
            .collect();
        (Pool { shared }, workers)
    }

    /// Creates a pool of `n` workers with the standard thread parker.
    ///
    /// # Panics
    ///
    /// If `n` is zero.
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
    pub fn with_workers(n: usize) -> (Pool, Vec<Worker>) {
        Self::new(
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

    /// Number of workers.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, _workers) = unirun_core::Pool::with_workers(4);
    /// assert_eq!(pool.num_workers(), 4);
    /// ```
    pub fn num_workers(&self) -> usize {
        self.shared.stealers.len()
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
    /// task, queued and future wake-ups are dropped, so their tasks are
    /// cancelled and every `JoinHandle` resolves.
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
        self.shared.shutdown.store(true, Ordering::SeqCst);
        for unparker in self.shared.unparkers.iter() {
            unparker.unpark();
        }
        // Dropped here, outside any lock: each drop cancels a task.
        drop(self.shared.injector.close());
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

    /// Whether the calling thread is running one of this pool's workers.
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
        context::with_current(|worker| worker.is_some_and(|w| Arc::ptr_eq(&w.shared, &self.shared)))
    }
}

impl Executor for Pool {
    fn scheduler(&self) -> Arc<dyn Schedule> {
        self.shared.clone()
    }

    /// Blocking closures run on the workers themselves: a bare pool has no
    /// other threads. The threads backend adds a separate blocking lane.
    fn blocking_scheduler(&self) -> Arc<dyn Schedule> {
        self.shared.clone()
    }
}

impl core::fmt::Debug for Pool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Pool")
            .field("workers", &self.num_workers())
            .field("shutdown", &self.is_shutdown())
            .finish()
    }
}

impl Schedule for Shared {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        Shared::schedule(self, runnable, info);
    }
}

impl Shared {
    fn schedule(&self, runnable: Runnable, info: ScheduleInfo) {
        if crate::in_forked_child() {
            // The workers were not copied by `fork`: run the task here.
            runnable.run();
            return;
        }
        if self.shutdown.load(Ordering::Acquire) {
            // Cancels the task; its JoinHandle resolves to `cancelled`.
            drop(runnable);
            return;
        }
        let runnable = context::with_current(|worker| match worker {
            Some(worker) if core::ptr::eq(&*worker.shared, self) => {
                worker.schedule_local(runnable, info.woken_while_running);
                None
            }
            _ => Some(runnable),
        });
        if let Some(runnable) = runnable {
            self.injector.push(runnable);
            self.notify_parked();
        }
    }

    /// After a push to the calling worker's own queue: the fenced protocol
    /// only when a cheap look says a sleeper might need waking (see `idle`).
    fn notify_parked_local(&self) {
        if self.idle.may_need_notify() {
            self.notify_parked();
        }
    }

    /// Wakes one sleeping worker if nobody is searching (see `idle`).
    fn notify_parked(&self) {
        fence(Ordering::SeqCst);
        if let Some(index) = self.idle.worker_to_notify() {
            self.unparkers[index].unpark();
        }
    }

    fn has_stealable_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }
}

impl Worker {
    /// This worker's index in its pool, from 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let (_pool, workers) = unirun_core::Pool::with_workers(2);
    /// assert_eq!(workers[0].index(), 0);
    /// assert_eq!(workers[1].index(), 1);
    /// ```
    pub fn index(&self) -> usize {
        self.index
    }

    /// Runs tasks until the pool shuts down.
    ///
    /// # Examples
    ///
    /// ```
    /// let (pool, mut workers) = unirun_core::Pool::with_workers(1);
    /// let worker = workers.pop().unwrap();
    /// let thread = std::thread::Builder::new()
    ///     .name("my-worker".into())
    ///     .spawn(move || worker.run())
    ///     .unwrap();
    ///
    /// // Tasks run on the thread that called `run`.
    /// let name = pool.spawn(async { std::thread::current().name().map(String::from) });
    /// assert_eq!(name.join().unwrap().as_deref(), Some("my-worker"));
    ///
    /// pool.shutdown();
    /// thread.join().unwrap(); // `run` returned
    /// ```
    pub fn run(&self) {
        self.drive::<core::future::Pending<()>>(None);
    }

    /// Runs this pool's tasks until `future` completes, then returns its output;
    /// `None` when the pool shut down first.
    pub(crate) fn drive<F: Future>(&self, mut blocker: Option<Pin<&mut F>>) -> Option<F::Output> {
        let _enter = context::enter(self);
        let wake = Arc::new(BlockerWake {
            notified: AtomicBool::new(true),
            unparker: self.shared.unparkers[self.index].clone(),
        });
        let waker = Waker::from(wake.clone());
        // Only a blocked caller waits; `run` holds nothing to release.
        let mut waiting = blocker.is_some().then(crate::wait::Waiting::new);
        loop {
            if let Some(future) = blocker.as_mut() {
                if wake.notified.swap(false, Ordering::Acquire) {
                    if let Some(waiting) = waiting.as_mut() {
                        waiting.reacquire();
                    }
                    if let Poll::Ready(output) =
                        future.as_mut().poll(&mut Context::from_waker(&waker))
                    {
                        return Some(output);
                    }
                }
                // Released while other tasks run and while parked.
                if let Some(waiting) = waiting.as_mut() {
                    waiting.release();
                }
            }
            if self.shared.shutdown.load(Ordering::Acquire) {
                return None;
            }
            if let Some(task) = self.next_task().or_else(|| self.steal_work()) {
                self.run_task(task);
                continue;
            }
            self.park(blocker.is_some().then_some(&*wake));
        }
    }

    fn next_task(&self) -> Option<Runnable> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_QUEUE_INTERVAL == 0 {
            if let Some(task) = self.shared.injector.pop() {
                return Some(task);
            }
        }
        self.lifo
            .take()
            .or_else(|| self.local.pop())
            .or_else(|| self.shared.injector.pop())
    }

    fn steal_work(&self) -> Option<Runnable> {
        if !self.searching.get() {
            if !self.shared.idle.transition_worker_to_searching() {
                return None;
            }
            self.searching.set(true);
        }
        let stealers = &self.shared.stealers;
        let n = stealers.len();
        let start = self.next_random() as usize % n;
        for i in 0..n {
            let victim = (start + i) % n;
            if victim == self.index {
                continue;
            }
            if let Some(task) = stealers[victim].steal_into(&self.local) {
                return Some(task);
            }
        }
        self.shared.injector.pop()
    }

    fn run_task(&self, task: Runnable) {
        if self.searching.replace(false) && self.shared.idle.transition_worker_from_searching() {
            // The last searcher found work: there may be more, so hand the
            // search on to one sleeper.
            self.shared.notify_parked();
        }
        task.run();
        for _ in 0..MAX_LIFO_POLLS {
            match self.lifo.take() {
                Some(next) => {
                    next.run();
                }
                None => return,
            }
        }
        // The LIFO slot had its turn; its task queues behind the others.
        if let Some(next) = self.lifo.take() {
            self.local.push_back(next, &self.shared.injector);
            self.shared.notify_parked_local();
        }
    }

    /// Called through the thread-local context while this worker is running.
    fn schedule_local(&self, runnable: Runnable, is_yield: bool) {
        if is_yield {
            self.local.push_back(runnable, &self.shared.injector);
        } else {
            match self.lifo.replace(Some(runnable)) {
                None => return,
                Some(previous) => self.local.push_back(previous, &self.shared.injector),
            }
        }
        // The local queue grew: let a sleeper come and steal.
        self.shared.notify_parked_local();
    }

    fn park(&self, blocker: Option<&BlockerWake>) {
        let idle = &self.shared.idle;
        let was_searching = self.searching.replace(false);
        if idle.transition_worker_to_parked(self.index, was_searching)
            && self.shared.has_stealable_work()
        {
            self.shared.notify_parked();
        }
        loop {
            if blocker.is_some_and(|b| b.notified.load(Ordering::Acquire))
                || self.shared.shutdown.load(Ordering::Acquire)
            {
                // Not woken by the protocol: leave the sleeper list ourselves,
                // or, if a producer popped us already, take its search on.
                if !idle.unpark_worker_by_id(self.index) {
                    self.searching.set(true);
                }
                return;
            }
            self.park.park();
            if !idle.is_parked(self.index) {
                // A producer popped us and counted us as searching.
                self.searching.set(true);
                return;
            }
        }
    }

    fn next_random(&self) -> u32 {
        // xorshift32: enough to spread victims.
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Cancel what is left; the pool has shut down or is being dropped.
        drop(self.lifo.take());
        while let Some(task) = self.local.pop() {
            drop(task);
        }
    }
}

impl core::fmt::Debug for Worker {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// Wakes a worker that is running other tasks while it blocks on a future.
struct BlockerWake {
    notified: AtomicBool,
    unparker: Arc<dyn Unpark>,
}

impl Wake for BlockerWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notified.store(true, Ordering::Release);
        self.unparker.unpark();
    }
}

/// Whether the calling thread is running a worker of any [`Pool`].
///
/// # Examples
///
/// ```
/// assert!(!unirun_core::on_worker_thread());
/// ```
pub fn on_worker_thread() -> bool {
    context::with_current(|worker| worker.is_some())
}

/// Runs `future` to completion on the current worker thread, running the
/// pool's other tasks while it waits. Gives the future back when the thread is
/// not a worker (or its pool shut down).
#[cfg(feature = "std")]
pub(crate) fn block_on_worker<F: Future>(
    mut future: Pin<&mut F>,
) -> Result<F::Output, Pin<&mut F>> {
    let worker = context::with_current(|worker| worker.map(|w| w as *const Worker));
    let Some(worker) = worker else {
        return Err(future);
    };
    // SAFETY: the context pointer is set only while that worker's `drive` is on
    // this thread's stack, and we are called from inside it, so it is live.
    let worker = unsafe { &*worker };
    match worker.drive(Some(future.as_mut())) {
        Some(output) => Ok(output),
        None => Err(future),
    }
}

/// The thread-local "which worker am I" pointer.
mod context {
    use super::Worker;

    #[cfg(feature = "std")]
    std::thread_local! {
        static CURRENT: core::cell::Cell<*const Worker> = const { core::cell::Cell::new(core::ptr::null()) };
    }

    /// Restores the previous worker when dropped.
    pub(super) struct Enter {
        #[cfg(feature = "std")]
        previous: *const Worker,
    }

    #[cfg(feature = "std")]
    pub(super) fn enter(worker: &Worker) -> Enter {
        Enter {
            previous: CURRENT.with(|c| c.replace(worker)),
        }
    }

    #[cfg(feature = "std")]
    impl Drop for Enter {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(self.previous));
        }
    }

    #[cfg(feature = "std")]
    pub(super) fn with_current<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
        let ptr = CURRENT.try_with(|c| c.get()).unwrap_or(core::ptr::null());
        // SAFETY: `CURRENT` is non-null only while an `Enter` guard for that
        // worker lives on this thread's stack (inside `Worker::drive`), and the
        // worker outlives its `drive` call.
        f(unsafe { ptr.as_ref() })
    }

    /// Without `std` there are no thread-locals: every spawn goes through the
    /// injector, which is correct, just not as fast.
    #[cfg(not(feature = "std"))]
    pub(super) fn enter(_worker: &Worker) -> Enter {
        Enter {}
    }

    #[cfg(not(feature = "std"))]
    pub(super) fn with_current<R>(f: impl FnOnce(Option<&Worker>) -> R) -> R {
        f(None)
    }
}
