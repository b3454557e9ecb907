//! [`BlockingLaneBuilder`] and the lane's defaults.

use std::sync::Arc;
use std::time::Duration;

use unirun_core::TaskSet;

use crate::BlockingLane;

/// The default cap never goes below this: closures that wait for each other
/// (a barrier of N) deadlock once N exceeds the cap, and tokio's default is
/// 512, so code moved from tokio keeps working.
const MIN_CAP: usize = 512;
/// Above 32 CPUs the default grows with the machine.
const CAP_PER_CPU: usize = 16;
const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The default cap of a blocking lane on a machine with `cpus` CPUs: 512,
/// or 16 per CPU where that is more. Idle threads retire after the
/// keep-alive, so a high cap costs nothing until closures need it. This is
/// the one source of the figure: schedulers that size lanes from a cached
/// CPU budget call it so their number matches the lane's own default.
///
/// # Examples
///
/// ```
/// assert_eq!(unirun_blocking::default_blocking_cap(2), 512);
/// assert_eq!(unirun_blocking::default_blocking_cap(64), 1024);
/// ```
pub fn default_blocking_cap(cpus: usize) -> usize {
    cpus.saturating_mul(CAP_PER_CPU).max(MIN_CAP)
}

/// How long an idle lane thread waits for work before it exits, unless
/// configured: 10 seconds.
///
/// # Examples
///
/// ```
/// assert_eq!(unirun_blocking::default_keep_alive(), std::time::Duration::from_secs(10));
/// ```
pub const fn default_keep_alive() -> Duration {
    DEFAULT_KEEP_ALIVE
}

/// Configures a [`BlockingLane`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let lane = unirun_blocking::BlockingLane::builder()
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
    pub(crate) name: String,
    pub(crate) cap: Option<usize>,
    pub(crate) keep_alive: Duration,
    pub(crate) stack_size: Option<usize>,
    pub(crate) tasks: Option<Arc<TaskSet>>,
}

impl Default for BlockingLaneBuilder {
    fn default() -> Self {
        Self {
            name: "unirun".into(),
            cap: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
            stack_size: None,
            tasks: None,
        }
    }
}

impl BlockingLaneBuilder {
    /// Thread name prefix: threads are `{name}-blocking-{i}` (default
    /// `unirun`).
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().name("db").build().unwrap();
    /// let name = lane.spawn_blocking(|| std::thread::current().name().map(String::from));
    /// assert!(name.join().unwrap().unwrap().starts_with("db-blocking-"));
    /// ```
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Most threads the lane grows to; defaults to
    /// [`default_blocking_cap`] of the process's CPU budget (at least 512).
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().max_threads(2).build().unwrap();
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
    /// let lane = unirun_blocking::BlockingLane::builder()
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
    /// let lane = unirun_blocking::BlockingLane::builder()
    ///     .stack_size(512 * 1024)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(lane.spawn_blocking(|| 2).join().unwrap(), 2);
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// The task set that closures spawned without one of their own
    /// ([`BlockingLane::spawn_blocking`], the [`run_queue`](BlockingLane::run_queue)
    /// hook) join; by default the lane has a set of its own. A pool passes
    /// its own set here, so its shutdown waits for (or cancels) its blocking
    /// closures with its async tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use unirun_core::TaskSet;
    ///
    /// let pool_tasks = Arc::new(TaskSet::new());
    /// let lane = unirun_blocking::BlockingLane::builder()
    ///     .task_set(pool_tasks.clone())
    ///     .build()
    ///     .unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let waiting = lane.spawn_blocking(move || rx.recv().is_err());
    /// assert_eq!(pool_tasks.len(), 1);
    /// drop(tx);
    /// assert!(waiting.join().unwrap());
    /// ```
    pub fn task_set(mut self, tasks: Arc<TaskSet>) -> Self {
        self.tasks = Some(tasks);
        self
    }

    /// Creates the lane. No thread starts until the first closure arrives.
    ///
    /// # Errors
    ///
    /// `InvalidInput` naming the setting when `max_threads` is 0.
    ///
    /// # Examples
    ///
    /// ```
    /// let lane = unirun_blocking::BlockingLane::builder().build().unwrap();
    /// assert_eq!(lane.stats().threads, 0);
    /// let err = unirun_blocking::BlockingLane::builder().max_threads(0).build().unwrap_err();
    /// assert!(err.to_string().contains("max_threads=0"));
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
            None => default_blocking_cap(unirun_platform::cpu_budget().available),
        };
        let tasks = self.tasks.unwrap_or_else(|| Arc::new(TaskSet::new()));
        Ok(BlockingLane::new(
            self.name,
            cap,
            self.keep_alive,
            self.stack_size,
            tasks,
        ))
    }
}
