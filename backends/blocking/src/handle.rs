//! [`BlockingLane`]: the lane as a value its owner spawns on and shuts down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use unirun_core::{spawn_blocking_with, JoinHandle, RunQueue, TaskSet};

use crate::lane::{Lane, LaneHook, LaneStats};
use crate::BlockingLaneBuilder;

/// unirun's elastic blocking lane: threads named `{name}-blocking-{i}` for
/// closures that may block, started on demand up to a cap and retired after
/// a keep-alive (see the [crate docs](crate)).
///
/// The threads backend runs its blocking closures on one, and the smol
/// backend owns one per executor. Whoever owns the lane joins its threads:
/// [`shutdown`](Self::shutdown), or dropping the lane, lets queued closures
/// run, then joins every thread; [`shutdown_timeout`](Self::shutdown_timeout)
/// is the bounded form. Closures submitted afterwards are cancelled.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use unirun_core::TaskSet;
///
/// let lane = unirun_blocking::BlockingLane::builder().name("io").build().unwrap();
/// assert_eq!(lane.spawn_blocking(|| 6 * 7).join().unwrap(), 42);
///
/// // A closure can belong to a caller's task set, to be waited for or cancelled there.
/// let mine = Arc::new(TaskSet::new());
/// assert_eq!(lane.spawn_blocking_in(&mine, || 3).join().unwrap(), 3);
///
/// lane.shutdown();
/// ```
pub struct BlockingLane {
    pub(crate) lane: Arc<Lane>,
    hook: Arc<LaneHook>,
}

impl BlockingLane {
    /// A builder with default settings.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().max_threads(1).build().unwrap();
    /// assert_eq!(lane.stats().cap, 1);
    /// ```
    pub fn builder() -> BlockingLaneBuilder {
        BlockingLaneBuilder::default()
    }

    pub(crate) fn new(
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

    /// Runs a blocking closure on the lane, as a member of the lane's
    /// default task set (see [`BlockingLaneBuilder::task_set`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().build().unwrap();
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
    /// let lane = unirun_blocking::BlockingLane::builder().build().unwrap();
    /// let mine = Arc::new(TaskSet::new());
    /// assert_eq!(lane.spawn_blocking_in(&mine, || 2 + 2).join().unwrap(), 4);
    /// assert!(mine.is_empty());
    /// ```
    pub fn spawn_blocking_in<F, R>(&self, tasks: &Arc<TaskSet>, f: F) -> JoinHandle<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let lane = self.lane.clone();
        let (runnable, handle) =
            spawn_blocking_with(f, Some(tasks), move |runnable, _| lane.push(runnable));
        runnable.schedule();
        handle
    }

    /// The lane as a run queue, for an
    /// [`Executor::blocking_run_queue`](unirun_core::Executor::blocking_run_queue):
    /// each runnable it receives is run once on a lane thread.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().build().unwrap();
    /// let hook = lane.run_queue();
    /// assert!(hook.task_set().is_some());
    /// ```
    pub fn run_queue(&self) -> Arc<dyn RunQueue> {
        self.hook.clone()
    }

    /// A snapshot of the lane's sizing.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().max_threads(3).build().unwrap();
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
    /// let lane = Arc::new(unirun_blocking::BlockingLane::builder().build().unwrap());
    /// assert!(!lane.is_lane_thread());
    /// let inner = lane.clone();
    /// assert!(lane.spawn_blocking(move || inner.is_lane_thread()).join().unwrap());
    /// ```
    pub fn is_lane_thread(&self) -> bool {
        self.lane.is_lane_thread()
    }

    /// Stops the lane: closures already queued still run, then every lane
    /// thread is joined. Closures submitted afterwards are cancelled. The
    /// same as dropping the lane; calling it again does nothing.
    ///
    /// Called on one of the lane's own threads (inside a closure), it returns
    /// at once: the joins move to a helper thread (`{name}-blocking-stop`),
    /// since a sibling thread may be waiting for the very closure that calls
    /// it. If that helper cannot start, the threads are left to exit on
    /// their own.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().build().unwrap();
    /// lane.spawn_blocking(|| ()).join().unwrap();
    /// lane.shutdown();
    /// assert_eq!(lane.stats().threads, 0);
    /// ```
    pub fn shutdown(&self) {
        self.lane.shutdown();
    }

    /// Stops the lane within `timeout`: queued closures that have not started
    /// are cancelled, idle threads are joined at once, and threads running a
    /// closure are waited for until `timeout` has passed. A thread whose
    /// closure is still running then is left behind, detached: it exits as
    /// soon as its closure returns (a thread cannot be interrupted). Returns
    /// whether every thread was joined (the caller's own thread, when called
    /// from a closure on this lane, is not counted and is left to exit).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let lane = unirun_blocking::BlockingLane::builder().build().unwrap();
    /// let (release, stuck) = std::sync::mpsc::channel::<()>();
    /// let (started_tx, started) = std::sync::mpsc::channel();
    /// let waiting = lane.spawn_blocking(move || {
    ///     started_tx.send(()).unwrap();
    ///     stuck.recv().is_ok()
    /// });
    /// started.recv().unwrap();
    /// // The closure is stuck: the lane gives up on it after the timeout.
    /// assert!(!lane.shutdown_timeout(Duration::from_millis(10)));
    /// release.send(()).unwrap();
    /// assert!(waiting.join().unwrap()); // it still finishes, on its detached thread
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> bool {
        // A timeout too far to represent waits a century instead.
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
        let now = Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or(now + CENTURY);
        self.lane.shutdown_until(deadline)
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
