//! The parts of a [`DecisionTrace`](super::DecisionTrace): the reasons,
//! the sizes, the hints and the fallbacks.

use std::fmt;

use super::OneLine;
use crate::flavor::Flavor;

/// One step of the scheduler's resolution order that applied to a decision.
///
/// Prints in plain words: `forced threads by UNIRUN_FORCE_THREADS`,
/// `provided executor`, `ambient tokio runtime`, `fallback to threads
/// (process backend unavailable)`, `explicit flavor smol`, `auto disabled
/// (shared pool)`, and for [`Default`](Reason::Default) the checks that
/// did not apply (`auto: no flavor set (code or UNIRUN_MODE), no tokio
/// runtime to borrow, no cpu-bound gil work`).
///
/// # Examples
///
/// ```
/// use unirun::trace::Reason;
///
/// let reason = Reason::ForcedThreads { var: Some("UNIRUN_FORCE_THREADS") };
/// assert_eq!(reason.to_string(), "forced threads by UNIRUN_FORCE_THREADS");
/// assert!(Reason::Default.to_string().starts_with("auto: no flavor set"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// The caller supplied an executor; the scope borrows it.
    Provided,
    /// `force_threads` sent the work to the threads backend.
    ForcedThreads {
        /// The variable that set the switch, or `None` if code did.
        var: Option<&'static str>,
    },
    /// `force_process` sent the work to the process backend.
    ForcedProcess {
        /// The variable that set the switch, or `None` if code did.
        var: Option<&'static str>,
    },
    /// Processes were forced but are not available here; threads run instead.
    ForcedProcessFallback,
    /// The scope asked for this flavor by name.
    Explicit {
        /// The flavor asked for.
        flavor: Flavor,
    },
    /// Heuristics are off (`auto = false`): the shared pool.
    AutoDisabled,
    /// An `Auto` scope took the flavor from configuration.
    ConfigFlavor {
        /// The configured flavor.
        flavor: Flavor,
        /// Whether it came from `UNIRUN_MODE`/`UNIRUN_FLAVOR` rather than code.
        from_env: bool,
    },
    /// Running inside a tokio runtime, which the scope borrows.
    AmbientTokio,
    /// CPU-bound work in `Gil` thread mode goes to processes.
    CpuBoundGil,
    /// Nothing else applied: the threads backend. Prints the checks that
    /// did not apply, so a reader knows what would have changed it.
    Default,
    /// A nested scope with compatible settings reuses its parent's backend.
    ReusedParent,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Provided => f.write_str("provided executor"),
            Reason::ForcedThreads { var } => {
                write!(f, "forced threads by {}", var.unwrap_or("config"))
            }
            Reason::ForcedProcess { var } => {
                write!(f, "forced processes by {}", var.unwrap_or("config"))
            }
            Reason::ForcedProcessFallback => {
                f.write_str("fallback to threads (process backend unavailable)")
            }
            Reason::Explicit { flavor } => write!(f, "explicit flavor {flavor}"),
            Reason::AutoDisabled => f.write_str("auto disabled (shared pool)"),
            Reason::ConfigFlavor { flavor, from_env } => {
                let source = if *from_env { "env" } else { "config" };
                write!(f, "{source} flavor {flavor}")
            }
            Reason::AmbientTokio => f.write_str("ambient tokio runtime"),
            Reason::CpuBoundGil => f.write_str("cpu-bound work in gil mode (processes)"),
            Reason::Default => f.write_str(
                "auto: no flavor set (code or UNIRUN_MODE), no tokio runtime to borrow, no cpu-bound gil work",
            ),
            Reason::ReusedParent => f.write_str("reused parent scope"),
        }
    }
}

/// Pool sizes chosen for a decision.
///
/// Prints as `workers=2 blocking<=64`, plus ` processes=4` when a process
/// pool is part of the decision.
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, Run};
///
/// let run = Run::builder().flavor(Flavor::Threads).max_workers(1).build()?;
/// let workers = run.trace().workers().unwrap();
/// assert_eq!(workers.cpu(), 1);
/// assert_eq!(workers.processes(), None);
/// assert_eq!(workers.to_string(), format!("workers=1 blocking<={}", workers.blocking_cap()));
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Workers {
    cpu: usize,
    blocking_cap: usize,
    processes: Option<usize>,
}

impl Workers {
    /// `cpu` async/compute workers and a blocking lane of at most
    /// `blocking_cap` threads.
    pub(crate) fn new(cpu: usize, blocking_cap: usize) -> Self {
        Workers {
            cpu,
            blocking_cap,
            processes: None,
        }
    }

    /// Adds the number of process workers (no decision sets it yet: the
    /// trace's tests check how it prints).
    #[must_use]
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn with_processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Number of worker threads running tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(1).build()?;
    /// assert_eq!(run.trace().workers().unwrap().cpu(), 1);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Most threads the blocking lane may grow to.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_blocking(9).build()?;
    /// assert_eq!(run.trace().workers().unwrap().blocking_cap(), 9);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn blocking_cap(&self) -> usize {
        self.blocking_cap
    }

    /// Number of process workers, when processes are involved.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().flavor(unirun::Flavor::Threads).build()?;
    /// assert_eq!(run.trace().workers().unwrap().processes(), None);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn processes(&self) -> Option<usize> {
        self.processes
    }
}

impl fmt::Display for Workers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "workers={} blocking<={}", self.cpu, self.blocking_cap)?;
        if let Some(processes) = self.processes {
            write!(f, " processes={processes}")?;
        }
        Ok(())
    }
}

/// Workload hints in effect for a decision (`None`: not given).
///
/// # Examples
///
/// ```
/// use unirun::{trace::Hints, Run, RuntimeConfig};
///
/// let run = Run::builder().config(RuntimeConfig::default().cpu_bound(true)).build()?;
/// let hints = run.trace().hints();
/// assert_eq!(hints.cpu_bound(), Some(true));
/// assert_eq!(hints.io_bound(), None);
/// assert_eq!(Run::builder().build()?.trace().hints(), Hints::default());
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Hints {
    cpu_bound: Option<bool>,
    io_bound: Option<bool>,
}

impl Hints {
    /// Hints with the given values.
    pub(crate) fn new(cpu_bound: Option<bool>, io_bound: Option<bool>) -> Self {
        Hints {
            cpu_bound,
            io_bound,
        }
    }

    /// The CPU-bound hint.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::trace::Hints::default().cpu_bound(), None);
    /// ```
    pub fn cpu_bound(&self) -> Option<bool> {
        self.cpu_bound
    }

    /// The I/O-bound hint.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::trace::Hints::default().io_bound(), None);
    /// ```
    pub fn io_bound(&self) -> Option<bool> {
        self.io_bound
    }
}

/// A place where the decision settled for less than was asked, e.g.
/// processes wanted, threads used.
///
/// Prints as `fallback processes->threads (process backend unavailable)`.
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, Run, RuntimeConfig, ThreadMode};
///
/// // CPU-bound work in gil mode wants processes; a build without the
/// // process backend falls back to threads and says so.
/// let config = RuntimeConfig::default().cpu_bound(true).thread_mode(ThreadMode::Gil);
/// let run = Run::builder().config(config).build()?;
/// match run.trace().fallbacks() {
///     [] => assert_eq!(run.trace().resolved(), Flavor::Processes),
///     [fallback] => {
///         assert_eq!((fallback.from(), fallback.to()), (Flavor::Processes, Flavor::Threads));
///         assert!(fallback.to_string().starts_with("fallback processes->threads ("));
///         assert!(!fallback.cause().is_empty());
///     }
///     more => panic!("one fallback at most: {more:?}"),
/// }
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Fallback {
    from: Flavor,
    to: Flavor,
    cause: String,
}

impl Fallback {
    /// Wanted `from`, used `to`, because of `cause`.
    pub(crate) fn new(from: Flavor, to: Flavor, cause: impl Into<String>) -> Self {
        Fallback {
            from,
            to,
            cause: cause.into(),
        }
    }

    /// What was wanted.
    pub fn from(&self) -> Flavor {
        self.from
    }

    /// What is used instead.
    pub fn to(&self) -> Flavor {
        self.to
    }

    /// Why, in words.
    pub fn cause(&self) -> &str {
        &self.cause
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "fallback {}->{} ({})",
            self.from,
            self.to,
            OneLine(&self.cause)
        )
    }
}
