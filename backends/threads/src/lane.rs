//! The elastic blocking lane: threads for closures that may block.
//!
//! The lane starts with no thread and grows while queued closures outnumber
//! five times the idle threads (threads starting or waiting count as idle),
//! up to the cap. Sleeping threads are woken one at a time: a push wakes one
//! only when no awake thread is free to take the closure, and every thread
//! that takes a closure does the same check (and the growth check) before
//! running it. A closure may block for good (closures can wait on each
//! other), so no thread ever leaves queued work behind without another
//! thread awake or coming for it; and a burst of tiny closures wakes only as
//! many threads as it needs. Idle threads retire after the keep-alive. When the OS refuses a thread, the cap shrinks to what the lane
//! has and it keeps serving with those; with no thread at all the closure runs
//! on the caller instead of waiting forever.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use unirun_core::{spawn_blocking_with, JoinHandle, Runnable, Schedule, ScheduleInfo, TaskSet};

thread_local! {
    /// The address of the lane whose loop this thread runs, or 0.
    static CURRENT_LANE: Cell<usize> = const { Cell::new(0) };
}

/// The lane grows while queued closures outnumber idle threads this many times over.
const GROWTH_FACTOR: usize = 5;

pub(crate) struct Lane {
    state: Mutex<State>,
    work: Condvar,
    /// Signalled when a reserved thread has been started (or failed to).
    spawned: Condvar,
    name: String,
    keep_alive: Duration,
    stack_size: Option<usize>,
    tasks: Arc<TaskSet>,
}

struct State {
    queue: VecDeque<Runnable>,
    /// Threads alive or starting.
    threads: usize,
    /// Threads not running a closure: starting, waiting, or woken.
    idle: usize,
    /// Threads blocked on `work`.
    waiting: usize,
    /// Wake-ups sent to waiting threads and not yet taken; `notified <= waiting`.
    notified: usize,
    /// Most threads the lane may have; shrinks when the OS refuses one.
    cap: usize,
    next_id: usize,
    shutdown: bool,
    /// Every thread not joined yet, retired ones included.
    handles: Vec<thread::JoinHandle<()>>,
    /// Threads reserved by `grow` whose handle is not in `handles` yet.
    spawning: usize,
    /// Times the OS refused a thread.
    spawn_failures: usize,
}

impl State {
    /// Awake threads that will look at the queue without being woken:
    /// starting, between closures, or notified and on their way.
    fn free_awake(&self) -> usize {
        self.idle - self.waiting + self.notified
    }
}

/// A snapshot of the lane's sizing, for traces and tests.
///
/// # Examples
///
/// ```
/// let pool = unirun_threads::ThreadPool::builder()
///     .workers(1)
///     .max_blocking_threads(4)
///     .build()
///     .unwrap();
/// let before = pool.handle().blocking_stats();
/// assert_eq!(before.threads, 0); // the lane starts empty and grows on demand
///
/// pool.spawn_blocking(|| ()).join().unwrap();
/// let after = pool.handle().blocking_stats();
/// assert!(after.threads >= 1 && after.threads <= after.cap);
/// assert_eq!(after.cap, 4);
/// assert_eq!(after.queued, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaneStats {
    /// Threads alive now.
    pub threads: usize,
    /// Threads waiting for work now.
    pub idle: usize,
    /// The current cap (lower than configured after the OS refused a thread).
    pub cap: usize,
    /// Closures queued and not started.
    pub queued: usize,
    /// Times the OS refused to start a thread.
    pub spawn_failures: usize,
}

impl Lane {
    pub(crate) fn new(
        name: String,
        cap: usize,
        keep_alive: Duration,
        stack_size: Option<usize>,
        tasks: Arc<TaskSet>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                threads: 0,
                idle: 0,
                waiting: 0,
                notified: 0,
                cap,
                next_id: 0,
                shutdown: false,
                handles: Vec::new(),
                spawning: 0,
                spawn_failures: 0,
            }),
            work: Condvar::new(),
            spawned: Condvar::new(),
            name,
            keep_alive,
            stack_size,
            tasks,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> LaneStats {
        let state = self.lock();
        LaneStats {
            threads: state.threads,
            idle: state.waiting,
            cap: state.cap,
            queued: state.queue.len(),
            spawn_failures: state.spawn_failures,
        }
    }

    fn push(self: &Arc<Self>, runnable: Runnable) {
        if unirun_core::in_forked_child() {
            // The lane's threads were not copied by `fork` (and its lock may
            // have been held by one of them): run the closure here.
            runnable.run();
            return;
        }
        let mut state = self.lock();
        if state.shutdown {
            drop(state);
            // The lane is gone: dropping the runnable cancels its task.
            drop(runnable);
            return;
        }
        state.queue.push_back(runnable);
        self.hand_on(state);
    }

    /// Makes sure queued work has a thread coming for it: when no awake
    /// thread is free, wakes one sleeper (one at a time: the woken thread
    /// repeats this when it takes a closure), and grows the lane while the
    /// queue outruns the idle threads. Releases the lock.
    fn hand_on(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        let wake =
            !state.queue.is_empty() && state.free_awake() == 0 && state.waiting > state.notified;
        if wake {
            state.notified += 1;
        }
        let start = self.grow(&mut state);
        drop(state);
        if wake {
            self.work.notify_one();
        }
        self.start_threads(start);
    }

    /// Reserves new threads while the queue outruns the idle ones; returns the
    /// ids to start once the lock is released.
    fn grow(&self, state: &mut State) -> Vec<usize> {
        let mut start = Vec::new();
        if state.shutdown {
            return start;
        }
        while state.threads < state.cap && state.queue.len() > state.idle * GROWTH_FACTOR {
            state.threads += 1;
            state.idle += 1;
            state.spawning += 1;
            start.push(state.next_id);
            state.next_id += 1;
        }
        start
    }

    fn start_threads(self: &Arc<Self>, ids: Vec<usize>) {
        if ids.is_empty() {
            return;
        }
        // Reap retired threads while we are here, so `handles` stays small.
        let finished = extract_finished(&mut self.lock().handles);
        for handle in finished {
            let _ = handle.join();
        }
        for id in ids {
            self.start_thread(id);
        }
    }

    fn start_thread(self: &Arc<Self>, id: usize) {
        let mut builder = thread::Builder::new().name(format!("{}-blocking-{id}", self.name));
        if let Some(size) = self.stack_size {
            builder = builder.stack_size(size);
        }
        let lane = self.clone();
        match builder.spawn(move || lane.serve()) {
            Ok(handle) => {
                let mut state = self.lock();
                state.handles.push(handle);
                state.spawning -= 1;
                drop(state);
                self.spawned.notify_all();
            }
            Err(_) => {
                let mut state = self.lock();
                state.spawning -= 1;
                self.spawned.notify_all();
                state.threads -= 1;
                state.idle -= 1;
                state.spawn_failures += 1;
                state.cap = state.threads.max(1);
                if state.threads == 0 {
                    // Nobody will come for the queue: serve it here.
                    let queued: Vec<_> = state.queue.drain(..).collect();
                    drop(state);
                    for runnable in queued {
                        runnable.run();
                    }
                }
            }
        }
    }

    /// A lane thread's loop. The thread starts out counted as idle.
    fn serve(self: &Arc<Self>) {
        // The lane outlives this loop (the thread holds an `Arc` to it), so
        // the address cannot name another lane while it is set.
        CURRENT_LANE.with(|current| current.set(Arc::as_ptr(self) as usize));
        let mut state = self.lock();
        loop {
            if let Some(runnable) = state.queue.pop_front() {
                state.idle -= 1;
                // This closure may block for good: leave a thread for the rest.
                self.hand_on(state);
                runnable.run();
                state = self.lock();
                state.idle += 1;
                continue;
            }
            if state.shutdown {
                break;
            }
            state.waiting += 1;
            let (guard, timeout) = self
                .work
                .wait_timeout(state, self.keep_alive)
                .unwrap_or_else(PoisonError::into_inner);
            state = guard;
            state.waiting -= 1;
            if state.notified > 0 {
                state.notified -= 1;
            }
            if timeout.timed_out() && state.queue.is_empty() && !state.shutdown {
                break;
            }
        }
        state.idle -= 1;
        state.threads -= 1;
        drop(state);
        CURRENT_LANE.with(|current| current.set(0));
    }

    /// Stops the lane: queued closures still run (they are cancelled already
    /// if the task set was closed), then every thread is joined. Closures
    /// scheduled afterwards are cancelled.
    pub(crate) fn shutdown(&self) {
        let handles = {
            let mut state = self.lock();
            state.shutdown = true;
            // A thread reserved just before may not have its handle filed yet.
            while state.spawning > 0 {
                state = self
                    .spawned
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            std::mem::take(&mut state.handles)
        };
        self.work.notify_all();
        let me = thread::current().id();
        for handle in handles {
            // A lane shut down from one of its own closures cannot join
            // itself: that thread leaves once the closure returns.
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }

    /// Whether the calling thread is one of this lane's threads. A thread
    /// marks itself when it starts serving, so this holds from its first
    /// closure on, even before its spawner has filed its handle.
    pub(crate) fn is_lane_thread(&self) -> bool {
        CURRENT_LANE.with(Cell::get) == self as *const Lane as usize
    }
}

fn extract_finished(handles: &mut Vec<thread::JoinHandle<()>>) -> Vec<thread::JoinHandle<()>> {
    let mut finished = Vec::new();
    let mut i = 0;
    while i < handles.len() {
        if handles[i].is_finished() {
            finished.push(handles.swap_remove(i));
        } else {
            i += 1;
        }
    }
    finished
}

/// The lane seen as a schedule hook: blocking tasks are polled once, on a lane thread.
pub(crate) struct LaneHook(pub(crate) Arc<Lane>);

impl Schedule for LaneHook {
    fn schedule(&self, runnable: Runnable, _info: ScheduleInfo) {
        self.0.push(runnable);
    }

    fn task_set(&self) -> Option<&Arc<TaskSet>> {
        Some(&self.0.tasks)
    }
}

/// Default cap of a lane: enough for I/O-bound closures on a small machine
/// without tokio's 512 threads for CPU work.
const MIN_CAP: usize = 64;
const CAP_PER_CPU: usize = 16;
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The default cap of a [`BlockingLane`]: 16 per CPU of the process's
/// budget, at least 64.
pub(crate) fn default_cap() -> usize {
    default_blocking_cap(unirun_platform::cpu_budget().available)
}

/// The default cap of a blocking lane on a machine with `cpus` CPUs: 16 per
/// CPU, at least 64. Schedulers that size lanes from a cached budget use
/// this so their figure matches the lane's own default.
///
/// # Examples
///
/// ```
/// assert_eq!(unirun_threads::default_blocking_cap(2), 64);
/// assert_eq!(unirun_threads::default_blocking_cap(8), 128);
/// ```
pub fn default_blocking_cap(cpus: usize) -> usize {
    (cpus * CAP_PER_CPU).max(MIN_CAP)
}

/// The default keep-alive of an idle lane thread.
pub(crate) const fn default_keep_alive() -> Duration {
    DEFAULT_KEEP_ALIVE
}

/// Configures a [`BlockingLane`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let lane = unirun_threads::BlockingLane::builder()
///     .name("files")
///     .max_threads(4)
///     .keep_alive(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// assert_eq!(lane.stats().cap, 4);
/// lane.shutdown();
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct BlockingLaneBuilder {
    name: String,
    cap: Option<usize>,
    keep_alive: Duration,
    stack_size: Option<usize>,
}

impl BlockingLaneBuilder {
    /// Thread name prefix: threads are `{name}-blocking-{i}` (default
    /// `unirun`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().name("db").build().unwrap();
    /// let name = lane.spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(name.join().unwrap().unwrap().starts_with("db-blocking-"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Most threads the lane grows to; defaults to 16 per CPU, at least 64.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().max_threads(2).build().unwrap();
    /// assert_eq!(lane.stats().cap, 2);
    /// ```
    pub fn max_threads(mut self, n: usize) -> Self {
        self.cap = Some(n);
        self
    }

    /// How long an idle thread waits for work before it exits (default 10 s).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lane = unirun_threads::BlockingLane::builder()
    ///     .keep_alive(Duration::from_millis(100))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(lane.spawn_blocking(|| 1).join().unwrap(), 1);
    /// ```
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Stack size of the lane's threads, in bytes (default: the standard
    /// library's).
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder()
    ///     .stack_size(512 * 1024)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(lane.spawn_blocking(|| 2).join().unwrap(), 2);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Creates the lane. No thread starts until the first closure arrives.
    ///
    /// # Errors
    ///
    /// `InvalidInput` when `max_threads` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().build().unwrap();
    /// assert_eq!(lane.stats().threads, 0);
    /// let err = unirun_threads::BlockingLane::builder().max_threads(0).build().unwrap_err();
    /// assert!(err.to_string().contains("max_threads"));
    /// ```
    pub fn build(self) -> std::io::Result<BlockingLane> {
        let cap = match self.cap {
            Some(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "invalid max_threads=0: expected an integer >= 1",
                ))
            }
            Some(n) => n,
            None => default_cap(),
        };
        Ok(BlockingLane::with_tasks(
            self.name,
            cap,
            self.keep_alive,
            self.stack_size,
            Arc::new(TaskSet::new()),
        ))
    }
}

/// unirun's elastic blocking lane as a value: threads named
/// `{name}-blocking-{i}` for closures that may block, started on demand up
/// to a cap and retired after a keep-alive (see the [crate docs](crate)).
///
/// [`ThreadPool`](crate::ThreadPool) runs its blocking closures on one, and
/// the smol backend owns one per executor. Whoever owns the lane joins its
/// threads: [`shutdown`](Self::shutdown), or dropping the lane, lets queued
/// closures run, then joins every thread; closures submitted afterwards are
/// cancelled.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::TaskSet;
///
/// let lane = unirun_threads::BlockingLane::builder().name("io").build().unwrap();
/// assert_eq!(lane.spawn_blocking(|| 6 * 7).join().unwrap(), 42);
///
/// // A closure can belong to a caller's task set, to be waited for or cancelled there.
/// let mine = Arc::new(TaskSet::new());
/// assert_eq!(lane.spawn_blocking_in(&mine, || 3).join().unwrap(), 3);
///
/// lane.shutdown();
/// ```
pub struct BlockingLane {
    lane: Arc<Lane>,
    hook: Arc<LaneHook>,
}

impl BlockingLane {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().max_threads(1).build().unwrap();
    /// assert_eq!(lane.stats().cap, 1);
    /// ```
    pub fn builder() -> BlockingLaneBuilder {
        BlockingLaneBuilder {
            name: "unirun".into(),
            cap: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            stack_size: None,
        }
    }

    /// A lane whose closures without a set of their own join `tasks`.
    pub(crate) fn with_tasks(
        name: String,
        cap: usize,
        keep_alive: Duration,
        stack_size: Option<usize>,
        tasks: Arc<TaskSet>,
    ) -> Self {
        let lane = Arc::new(Lane::new(name, cap, keep_alive, stack_size, tasks));
        BlockingLane {
            hook: Arc::new(LaneHook(lane.clone())),
            lane,
        }
    }

    /// Runs a blocking closure on the lane, as a member of the lane's own
    /// task set.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().build().unwrap();
    /// let read = lane.spawn_blocking(|| std::fs::metadata(".").is_ok());
    /// assert!(read.join().unwrap());
    /// ```
    pub fn spawn_blocking<F, R>(&self, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        self.spawn_blocking_in(&self.lane.tasks, f)
    }

    /// Runs a blocking closure on the lane as a member of `tasks`, so
    /// their owner can wait for it or cancel it (a closure not started yet
    /// is cancelled when `tasks` is closed).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::TaskSet;
    ///
    /// let lane = unirun_threads::BlockingLane::builder().build().unwrap();
    /// let mine = Arc::new(TaskSet::new());
    /// assert_eq!(lane.spawn_blocking_in(&mine, || 2 + 2).join().unwrap(), 4);
    /// assert!(mine.is_empty());
    /// ```
    pub fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let hook = self.hook.clone();
        let (runnable, handle) =
            spawn_blocking_with(f, Some(tasks), move |r, info| hook.schedule(r, info));
        runnable.schedule();
        handle
    }

    /// The lane as a schedule hook, for an
    /// [`Executor::blocking_scheduler`](unirun_core::Executor::blocking_scheduler):
    /// each runnable it receives is run once on a lane thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().build().unwrap();
    /// let hook = lane.scheduler();
    /// assert!(hook.task_set().is_some());
    /// ```
    pub fn scheduler(&self) -> Arc<dyn Schedule> {
        self.hook.clone()
    }

    /// A snapshot of the lane's sizing.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().max_threads(3).build().unwrap();
    /// assert_eq!(lane.stats().threads, 0);
    /// lane.spawn_blocking(|| ()).join().unwrap();
    /// let stats = lane.stats();
    /// assert!(stats.threads >= 1 && stats.threads <= 3);
    /// ```
    pub fn stats(&self) -> LaneStats {
        self.lane.stats()
    }

    /// Whether the calling thread is one of this lane's threads.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let lane = Arc::new(unirun_threads::BlockingLane::builder().build().unwrap());
    /// assert!(!lane.is_lane_thread());
    /// let inner = lane.clone();
    /// assert!(lane.spawn_blocking(move || inner.is_lane_thread()).join().unwrap());
    /// ```
    pub fn is_lane_thread(&self) -> bool {
        self.lane.is_lane_thread()
    }

    /// Stops the lane: closures already queued still run, then every lane
    /// thread is joined (from one of its own closures, that thread is left
    /// to exit by itself). Closures submitted afterwards are cancelled. The
    /// same as dropping the lane; calling it again does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_threads::BlockingLane::builder().build().unwrap();
    /// lane.spawn_blocking(|| ()).join().unwrap();
    /// lane.shutdown();
    /// ```
    pub fn shutdown(&self) {
        self.lane.shutdown();
    }
}

impl Drop for BlockingLane {
    fn drop(&mut self) {
        self.lane.shutdown();
    }
}

impl std::fmt::Debug for BlockingLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingLane")
            .field("name", &self.lane.name)
            .field("stats", &self.stats())
            .finish()
    }
}
