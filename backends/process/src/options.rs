//! [`ProcessOptions`]: the limits a forked child runs under.

use std::time::Duration;

/// Limits for one forked call: a wall-clock timeout, an address-space cap, a
/// CPU-time cap and a nice increment. By default only the timeout is set,
/// to [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT) (one hour).
///
/// - **timeout**: past it the child is killed with `SIGKILL`, reaped, and the
///   call fails with [`JoinError::is_timeout`](unirun_core::JoinError::is_timeout).
///   It is also the safety net for a child that deadlocks on a lock another
///   parent thread held at the fork, so a handle never waits forever: the
///   default is a generous hour; set a tighter one, or `timeout(None)` to
///   wait without limit.
/// - **memory limit** (`RLIMIT_AS`, bytes): caps the child's *whole* address
///   space, and a forked child starts with the parent's: everything the
///   parent had mapped at the fork (heap, thread stacks, the binary) counts
///   against it. A limit below the parent's current size makes every
///   allocation in the child fail at once. Allocations past the limit fail;
///   Rust's allocation-failure handler then aborts the child, which surfaces
///   as a crash with `SIGABRT`. To give a closure a budget of `n` bytes, set
///   the parent's current virtual size plus `n` (on Linux, the first field
///   of `/proc/self/statm` times the page size).
/// - **CPU-time limit** (`RLIMIT_CPU`, rounded up to whole seconds): the soft
///   limit is set there and the hard limit one second later, so the kernel
///   stops the child with `SIGXCPU` (a crash named `SIGXCPU`; no core file
///   is written), and `SIGKILL` follows only if the child ignores it. For a
///   pool worker the limit covers the worker's whole life, not one call.
/// - **nice**: added to the child's niceness (positive yields to others).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unirun_process::ProcessOptions;
///
/// assert_eq!(ProcessOptions::default().get_timeout(), Some(ProcessOptions::DEFAULT_TIMEOUT));
/// let options = ProcessOptions::default()
///     .timeout(Duration::from_secs(5))
///     .memory_limit(512 << 20)
///     .cpu_time_limit(Duration::from_secs(2))
///     .nice(5);
/// assert_eq!(options.get_timeout(), Some(Duration::from_secs(5)));
/// assert_eq!(options.get_memory_limit(), Some(512 << 20));
/// assert_eq!(options.timeout(None).get_timeout(), None); // no limit at all
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessOptions {
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    cpu_time_limit: Option<Duration>,
    nice: Option<i32>,
}

impl Default for ProcessOptions {
    /// Only the timeout set, to [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    fn default() -> Self {
        Self {
            timeout: Some(Self::DEFAULT_TIMEOUT),
            memory_limit: None,
            cpu_time_limit: None,
            nice: None,
        }
    }
}

impl ProcessOptions {
    /// The timeout of [`ProcessOptions::default`]: one hour. Long enough
    /// for any call meant to finish, short enough that a child deadlocked on
    /// a lock inherited through the fork does not hold its handle forever.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60 * 60);

    /// Kills the child and fails with "timed out" when it runs longer than
    /// `timeout`; `None` removes the limit (the default is
    /// [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT)).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let o = unirun_process::ProcessOptions::default().timeout(Duration::from_millis(50));
    /// assert_eq!(o.get_timeout(), Some(Duration::from_millis(50)));
    /// assert_eq!(o.timeout(None).get_timeout(), None);
    /// ```
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.timeout = timeout.into();
        self
    }

    /// Caps the child's address space at `bytes` (`RLIMIT_AS`).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().memory_limit(1 << 30);
    /// assert_eq!(o.get_memory_limit(), Some(1 << 30));
    /// ```
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = Some(bytes);
        self
    }

    /// Caps the child's CPU time (`RLIMIT_CPU`, whole seconds, rounded up).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().cpu_time_limit(std::time::Duration::from_secs(1));
    /// assert!(o.get_cpu_time_limit().is_some());
    /// ```
    pub fn cpu_time_limit(mut self, limit: Duration) -> Self {
        self.cpu_time_limit = Some(limit);
        self
    }

    /// Adds `increment` to the child's nice value (clamped to -20..=19).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().nice(10);
    /// assert_eq!(o.get_nice(), Some(10));
    /// ```
    pub fn nice(mut self, increment: i32) -> Self {
        self.nice = Some(increment);
        self
    }

    /// The timeout, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_process::ProcessOptions;
    ///
    /// assert_eq!(ProcessOptions::default().get_timeout(), Some(ProcessOptions::DEFAULT_TIMEOUT));
    /// ```
    pub fn get_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// The address-space cap in bytes, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessOptions::default().get_memory_limit(), None);
    /// ```
    pub fn get_memory_limit(&self) -> Option<u64> {
        self.memory_limit
    }

    /// The CPU-time cap, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessOptions::default().get_cpu_time_limit(), None);
    /// ```
    pub fn get_cpu_time_limit(&self) -> Option<Duration> {
        self.cpu_time_limit
    }

    /// The nice increment, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun_process::ProcessOptions::default().get_nice(), None);
    /// ```
    pub fn get_nice(&self) -> Option<i32> {
        self.nice
    }

    /// The CPU-time cap in whole seconds, rounded up, at least 1.
    pub(crate) fn cpu_seconds(&self) -> Option<u64> {
        self.cpu_time_limit.map(|d| {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            secs.max(1)
        })
    }
}
