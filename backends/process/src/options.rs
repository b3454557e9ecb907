//! [`ProcessOptions`]: the limits a forked child runs under.

use std::time::Duration;

/// Limits for one forked call: a wall-clock timeout, an address-space cap, a
/// CPU-time cap and a nice increment. All unset by default.
///
/// - **timeout**: past it the child is killed with `SIGKILL`, reaped, and the
///   call fails with [`JoinError::is_timeout`](unirun_core::JoinError::is_timeout).
///   It is also the safety net for a child that deadlocks on a lock another
///   parent thread held at the fork.
/// - **memory limit** (`RLIMIT_AS`, bytes): allocations past it fail in the
///   child; Rust's allocation-failure handler then aborts it, which surfaces
///   as a crash with `SIGABRT`.
/// - **CPU-time limit** (`RLIMIT_CPU`, rounded up to whole seconds): the
///   kernel stops the child with `SIGXCPU` (a crash named `SIGXCPU`).
/// - **nice**: added to the child's niceness (positive yields to others).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use unirun_process::ProcessOptions;
///
/// let options = ProcessOptions::default()
///     .timeout(Duration::from_secs(5))
///     .memory_limit(512 << 20)
///     .cpu_time_limit(Duration::from_secs(2))
///     .nice(5);
/// assert_eq!(options.get_timeout(), Some(Duration::from_secs(5)));
/// assert_eq!(options.get_memory_limit(), Some(512 << 20));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessOptions {
    timeout: Option<Duration>,
    memory_limit: Option<u64>,
    cpu_time_limit: Option<Duration>,
    nice: Option<i32>,
}

impl ProcessOptions {
    /// Kills the child and fails with "timed out" when it runs longer than `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun_process::ProcessOptions::default().timeout(std::time::Duration::from_millis(50));
    /// assert!(o.get_timeout().is_some());
    /// ```
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
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
    /// assert_eq!(unirun_process::ProcessOptions::default().get_timeout(), None);
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
