//! [`Capabilities`]: what this machine and build offer the scheduler.

use crate::flavor::Flavor;

/// I/O-bound lanes: more threads may wait on I/O at once.
const IO_BLOCKING_PER_CPU: usize = 64;

/// What this machine and build offer the scheduler: the CPU budget, the
/// backends compiled in, an ambient runtime, and the pool sizes suggested
/// for each kind of work.
///
/// Detected on first use and cached until [`reset`](crate::reset); get it
/// with [`capabilities`](crate::capabilities).
///
/// # Examples
///
/// ```
/// use unirun::Flavor;
///
/// let caps = unirun::capabilities();
/// assert!(caps.cpu_budget() >= 1);
/// assert!(caps.backends().contains(&Flavor::Threads));
/// assert_eq!(caps.suggested_cpu_workers(), caps.cpu_budget());
/// assert!(caps.suggested_io_workers() > caps.suggested_cpu_workers());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct Capabilities {
    cpu_budget: usize,
    /// (Tests remove one to check the fallbacks, whatever the build.)
    pub(super) backends: Vec<Flavor>,
    ambient_runtime: Option<Flavor>,
    suggested_cpu_workers: usize,
    suggested_io_workers: usize,
    suggested_process_workers: usize,
}

impl Capabilities {
    pub(crate) fn detect() -> Self {
        Self::from_budget(unirun_platform::cpu_budget().available)
    }

    /// `flavor` itself if this build can run it, else
    /// [`Error::BackendUnavailable`](crate::Error::BackendUnavailable)
    /// naming the cargo feature to enable.
    pub(crate) fn ensure(&self, flavor: Flavor) -> Result<Flavor, crate::Error> {
        if flavor == Flavor::Auto || self.backends.contains(&flavor) {
            return Ok(flavor);
        }
        Err(crate::Error::BackendUnavailable {
            flavor,
            feature: flavor.feature().unwrap_or("std"),
        })
    }

    pub(crate) fn from_budget(cpu_budget: usize) -> Self {
        let cpu_budget = cpu_budget.max(1);
        let backends = [
            Flavor::Threads,
            Flavor::Shared,
            Flavor::Processes,
            Flavor::Smol,
            Flavor::Tokio,
            Flavor::Cluster,
        ]
        .into_iter()
        .filter(|f| f.is_available())
        .collect();
        Capabilities {
            cpu_budget,
            backends,
            // Per thread: see `ambient_runtime()`.
            ambient_runtime: None,
            suggested_cpu_workers: cpu_budget,
            suggested_io_workers: (cpu_budget * IO_BLOCKING_PER_CPU)
                .max(unirun_threads::default_blocking_cap(cpu_budget)),
            suggested_process_workers: cpu_budget,
        }
    }

    /// CPUs this process may use: online CPUs, narrowed by the affinity mask
    /// and cgroup v1/v2 CPU quotas (a container limited to 2 CPUs on a
    /// 64-core host gets 2).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun::capabilities().cpu_budget() >= 1);
    /// ```
    pub fn cpu_budget(&self) -> usize {
        self.cpu_budget
    }

    /// The flavors this build can run (`Threads` and `Shared` always, with
    /// the default `std` feature).
    ///
    /// # Examples
    ///
    /// ```
    /// let caps = unirun::capabilities();
    /// assert!(caps.backends().contains(&unirun::Flavor::Shared));
    /// ```
    pub fn backends(&self) -> &[Flavor] {
        &self.backends
    }

    /// The runtime the calling thread runs inside, when unirun can borrow
    /// it: a tokio runtime, with `tokio-backend`. Checked on each call, since
    /// it depends on the calling thread.
    ///
    /// # Examples
    ///
    /// ```
    /// // Outside any runtime:
    /// assert_eq!(unirun::capabilities().ambient_runtime(), None);
    /// ```
    pub fn ambient_runtime(&self) -> Option<Flavor> {
        self.ambient_runtime.or_else(|| {
            crate::backend::ambient_tokio()
                .is_some()
                .then_some(Flavor::Tokio)
        })
    }

    /// Worker threads for CPU-bound work: the CPU budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let caps = unirun::capabilities();
    /// assert_eq!(caps.suggested_cpu_workers(), caps.cpu_budget());
    /// ```
    pub fn suggested_cpu_workers(&self) -> usize {
        self.suggested_cpu_workers
    }

    /// Blocking-lane cap for I/O-bound work: 64 per CPU, and never below
    /// the default cap (512; threads that mostly wait cost little).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(unirun::capabilities().suggested_io_workers() >= 512);
    /// ```
    pub fn suggested_io_workers(&self) -> usize {
        self.suggested_io_workers
    }

    /// Worker processes for a process pool: the CPU budget.
    ///
    /// # Examples
    ///
    /// ```
    /// let caps = unirun::capabilities();
    /// assert_eq!(caps.suggested_process_workers(), caps.cpu_budget());
    /// ```
    pub fn suggested_process_workers(&self) -> usize {
        self.suggested_process_workers
    }

    /// The blocking-lane cap for work with no I/O hint.
    pub(crate) fn default_blocking(&self) -> usize {
        unirun_threads::default_blocking_cap(self.cpu_budget)
    }
}
