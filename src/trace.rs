//! Why the scheduler chose a backend: [`DecisionTrace`] and its parts.
//!
//! A trace is plain data. The scheduler fills one for every decision; scopes
//! and listeners hand it out. It prints as one line that uses words a person
//! would grep for (`forced`, `provided`, `ambient`, `fallback`, `default`) and
//! names every `UNIRUN_*` variable that was applied or rejected, and it
//! serializes with serde (`Flavor` and `ThreadMode` as their lowercase
//! names, each [`Reason`] as an object with a snake_case `kind`).

use std::fmt;

use crate::env::{EnvOverride, RejectedVar};
use crate::flavor::{Flavor, ThreadMode};

/// One step of the scheduler's resolution order that applied to a decision.
///
/// Prints in plain words: `forced threads by UNIRUN_FORCE_THREADS`,
/// `provided executor`, `ambient tokio runtime`, `fallback to threads
/// (process backend unavailable)`, `explicit flavor smol`, `auto disabled
/// (shared pool)`, `default`.
///
/// # Examples
///
/// ```
/// use unirun::trace::Reason;
///
/// let reason = Reason::ForcedThreads { var: Some("UNIRUN_FORCE_THREADS") };
/// assert_eq!(reason.to_string(), "forced threads by UNIRUN_FORCE_THREADS");
/// assert_eq!(Reason::Default.to_string(), "default");
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
    /// Nothing else applied: the threads backend.
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
            Reason::Default => f.write_str("default"),
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
/// use unirun::trace::Workers;
///
/// let workers = Workers::new(2, 64).with_processes(4);
/// assert_eq!(workers.cpu(), 2);
/// assert_eq!(workers.blocking_cap(), 64);
/// assert_eq!(workers.processes(), Some(4));
/// assert_eq!(workers.to_string(), "workers=2 blocking<=64 processes=4");
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
    ///
    /// # Examples
    ///
    /// ```
    /// let workers = unirun::trace::Workers::new(4, 128);
    /// assert_eq!(workers.processes(), None);
    /// ```
    pub fn new(cpu: usize, blocking_cap: usize) -> Self {
        Workers {
            cpu,
            blocking_cap,
            processes: None,
        }
    }

    /// Adds the number of process workers.
    ///
    /// # Examples
    ///
    /// ```
    /// let workers = unirun::trace::Workers::new(1, 8).with_processes(2);
    /// assert_eq!(workers.processes(), Some(2));
    /// ```
    #[must_use]
    pub fn with_processes(mut self, processes: usize) -> Self {
        self.processes = Some(processes);
        self
    }

    /// Number of worker threads running tasks.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::trace::Workers::new(3, 9).cpu(), 3);
    /// ```
    pub fn cpu(&self) -> usize {
        self.cpu
    }

    /// Most threads the blocking lane may grow to.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::trace::Workers::new(3, 9).blocking_cap(), 9);
    /// ```
    pub fn blocking_cap(&self) -> usize {
        self.blocking_cap
    }

    /// Number of process workers, when processes are involved.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::trace::Workers::new(3, 9).processes(), None);
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
/// use unirun::trace::Hints;
///
/// let hints = Hints::new(Some(true), None);
/// assert_eq!(hints.cpu_bound(), Some(true));
/// assert_eq!(hints.io_bound(), None);
/// assert_eq!(Hints::default(), Hints::new(None, None));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Hints {
    cpu_bound: Option<bool>,
    io_bound: Option<bool>,
}

impl Hints {
    /// Hints with the given values.
    ///
    /// # Examples
    ///
    /// ```
    /// let hints = unirun::trace::Hints::new(None, Some(true));
    /// assert_eq!(hints.io_bound(), Some(true));
    /// ```
    pub fn new(cpu_bound: Option<bool>, io_bound: Option<bool>) -> Self {
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
/// use unirun::{trace::Fallback, Flavor};
///
/// let fallback = Fallback::new(Flavor::Processes, Flavor::Threads, "process backend unavailable");
/// assert_eq!(fallback.from(), Flavor::Processes);
/// assert_eq!(fallback.to(), Flavor::Threads);
/// assert_eq!(fallback.cause(), "process backend unavailable");
/// assert_eq!(fallback.to_string(), "fallback processes->threads (process backend unavailable)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Fallback {
    from: Flavor,
    to: Flavor,
    cause: String,
}

impl Fallback {
    /// Wanted `from`, used `to`, because of `cause`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Fallback, Flavor};
    ///
    /// let fallback = Fallback::new(Flavor::Tokio, Flavor::Threads, "no runtime");
    /// assert_eq!(fallback.to(), Flavor::Threads);
    /// ```
    pub fn new(from: Flavor, to: Flavor, cause: impl Into<String>) -> Self {
        Fallback {
            from,
            to,
            cause: cause.into(),
        }
    }

    /// What was wanted.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Fallback, Flavor};
    ///
    /// assert_eq!(Fallback::new(Flavor::Smol, Flavor::Threads, "x").from(), Flavor::Smol);
    /// ```
    pub fn from(&self) -> Flavor {
        self.from
    }

    /// What is used instead.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Fallback, Flavor};
    ///
    /// assert_eq!(Fallback::new(Flavor::Smol, Flavor::Threads, "x").to(), Flavor::Threads);
    /// ```
    pub fn to(&self) -> Flavor {
        self.to
    }

    /// Why, in words.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Fallback, Flavor};
    ///
    /// assert_eq!(Fallback::new(Flavor::Smol, Flavor::Threads, "x").cause(), "x");
    /// ```
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

/// Why the scheduler ran a scope or helper where it did.
///
/// Accessors give every part; [`Display`](fmt::Display) gives one line,
/// for example:
///
/// ```text
/// unirun: threads (requested auto) because default; workers=2 blocking<=64; mode=nogil; env applied UNIRUN_MAX_WORKERS=2; env rejected UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)
/// ```
///
/// and `serde::Serialize` gives an object with the keys `requested`,
/// `resolved`, `reasons`, `thread_mode`, `workers`, `name`, `hints`,
/// `env_applied`, `env_rejected`, `fallbacks`, `parent_threads` and
/// `process_pool`.
///
/// The scheduler builds traces; [`new`](Self::new) and the `with_*` methods
/// are public so that tests of decision listeners can build them too.
///
/// # Examples
///
/// ```
/// use unirun::trace::{Reason, Workers};
/// use unirun::{DecisionTrace, Flavor, RejectedVar, ThreadMode};
///
/// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
///     .with_workers(Workers::new(2, 64))
///     .with_thread_mode(ThreadMode::Nogil)
///     .with_env_rejected(vec![RejectedVar::new("UNIRUN_THREAD_MODE", "gli", "auto, gil or nogil")]);
/// assert_eq!(trace.resolved(), Flavor::Threads);
/// assert_eq!(trace.reason(), &Reason::Default);
/// let line = trace.to_string();
/// assert!(line.starts_with("unirun: threads (requested auto) because default;"));
/// assert!(line.contains(r#"env rejected UNIRUN_THREAD_MODE="gli""#));
/// ```
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DecisionTrace {
    requested: Flavor,
    resolved: Flavor,
    /// Never empty; the last one decided.
    reasons: Vec<Reason>,
    thread_mode: ThreadMode,
    workers: Option<Workers>,
    name: Option<String>,
    hints: Hints,
    env_applied: Vec<EnvOverride>,
    env_rejected: Vec<RejectedVar>,
    fallbacks: Vec<Fallback>,
    parent_threads: Option<usize>,
    process_pool: Option<String>,
}

impl DecisionTrace {
    /// A trace of `requested` resolving to `resolved` because of `reason`.
    /// Everything else starts empty: thread mode `Auto`, no worker counts,
    /// no name, no hints, no env records, no fallbacks.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Tokio, Flavor::Tokio, Reason::AmbientTokio);
    /// assert_eq!(trace.to_string(), "unirun: tokio (requested tokio) because ambient tokio runtime; mode=auto");
    /// ```
    pub fn new(requested: Flavor, resolved: Flavor, reason: Reason) -> Self {
        DecisionTrace {
            requested,
            resolved,
            reasons: vec![reason],
            thread_mode: ThreadMode::Auto,
            workers: None,
            name: None,
            hints: Hints::default(),
            env_applied: Vec::new(),
            env_rejected: Vec::new(),
            fallbacks: Vec::new(),
            parent_threads: None,
            process_pool: None,
        }
    }

    /// Appends a reason; the last one appended is the deciding
    /// [`reason`](Self::reason), earlier ones are the steps that led there.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::ForcedProcess { var: None })
    ///     .with_reason(Reason::ForcedProcessFallback);
    /// assert_eq!(trace.reason(), &Reason::ForcedProcessFallback);
    /// assert_eq!(trace.reasons().len(), 2);
    /// ```
    #[must_use]
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.reasons.push(reason);
        self
    }

    /// Sets the thread mode in effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor, ThreadMode};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
    ///     .with_thread_mode(ThreadMode::Gil);
    /// assert_eq!(trace.thread_mode(), ThreadMode::Gil);
    /// ```
    #[must_use]
    pub fn with_thread_mode(mut self, thread_mode: ThreadMode) -> Self {
        self.thread_mode = thread_mode;
        self
    }

    /// Sets the pool sizes chosen.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::trace::{Reason, Workers};
    /// use unirun::{DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
    ///     .with_workers(Workers::new(2, 64));
    /// assert_eq!(trace.workers().map(|w| w.cpu()), Some(2));
    /// ```
    #[must_use]
    pub fn with_workers(mut self, workers: Workers) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Sets the scope's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default).with_name("ingest");
    /// assert_eq!(trace.name(), Some("ingest"));
    /// ```
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the workload hints in effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::trace::{Hints, Reason};
    /// use unirun::{DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
    ///     .with_hints(Hints::new(None, Some(true)));
    /// assert_eq!(trace.hints().io_bound(), Some(true));
    /// ```
    #[must_use]
    pub fn with_hints(mut self, hints: Hints) -> Self {
        self.hints = hints;
        self
    }

    /// Sets the environment values that took effect (see
    /// [`RuntimeConfig::apply_env`](crate::RuntimeConfig::apply_env)).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, EnvOverride, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
    ///     .with_env_applied(vec![EnvOverride::new("UNIRUN_MAX_WORKERS", "2", "max_workers")]);
    /// assert_eq!(trace.env_applied()[0].var(), "UNIRUN_MAX_WORKERS");
    /// ```
    #[must_use]
    pub fn with_env_applied(mut self, applied: Vec<EnvOverride>) -> Self {
        self.env_applied = applied;
        self
    }

    /// Sets the environment values that were skipped as invalid (see
    /// [`RuntimeConfig::from_env_lenient`](crate::RuntimeConfig::from_env_lenient)).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor, RejectedVar};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
    ///     .with_env_rejected(vec![RejectedVar::new("UNIRUN_AUTO", "perhaps", "a boolean")]);
    /// assert_eq!(trace.env_rejected()[0].value(), "perhaps");
    /// ```
    #[must_use]
    pub fn with_env_rejected(mut self, rejected: Vec<RejectedVar>) -> Self {
        self.env_rejected = rejected;
        self
    }

    /// Appends a fallback.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::trace::{Fallback, Reason};
    /// use unirun::{DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Processes, Flavor::Threads, Reason::Default)
    ///     .with_fallback(Fallback::new(Flavor::Processes, Flavor::Threads, "not unix"));
    /// assert_eq!(trace.fallbacks().len(), 1);
    /// ```
    #[must_use]
    pub fn with_fallback(mut self, fallback: Fallback) -> Self {
        self.fallbacks.push(fallback);
        self
    }

    /// Sets how many threads the parent process had when it forked (process
    /// decisions only; locks held by the other threads stay held in the child).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Processes, Flavor::Processes, Reason::Explicit { flavor: Flavor::Processes })
    ///     .with_parent_threads(3);
    /// assert_eq!(trace.parent_threads(), Some(3));
    /// ```
    #[must_use]
    pub fn with_parent_threads(mut self, threads: usize) -> Self {
        self.parent_threads = Some(threads);
        self
    }

    /// The flavor the caller asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.requested(), Flavor::Auto);
    /// ```
    pub fn requested(&self) -> Flavor {
        self.requested
    }

    /// The flavor the work runs on.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Shared, Reason::AutoDisabled);
    /// assert_eq!(trace.resolved(), Flavor::Shared);
    /// ```
    pub fn resolved(&self) -> Flavor {
        self.resolved
    }

    /// The deciding reason: the last of [`reasons`](Self::reasons).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Provided);
    /// assert_eq!(trace.reason(), &Reason::Provided);
    /// ```
    pub fn reason(&self) -> &Reason {
        // `new` puts one reason in and nothing takes one out.
        self.reasons.last().unwrap_or(&Reason::Default)
    }

    /// Every reason, in the order the steps applied; never empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.reasons(), &[Reason::Default]);
    /// ```
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons
    }

    /// The thread mode in effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor, ThreadMode};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.thread_mode(), ThreadMode::Auto);
    /// ```
    pub fn thread_mode(&self) -> ThreadMode {
        self.thread_mode
    }

    /// The pool sizes chosen; `None` when unirun does not size the backend
    /// (a provided executor, an ambient runtime).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Provided);
    /// assert_eq!(trace.workers(), None);
    /// ```
    pub fn workers(&self) -> Option<Workers> {
        self.workers
    }

    /// The scope's name, if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.name(), None);
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The workload hints in effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.hints().cpu_bound(), None);
    /// ```
    pub fn hints(&self) -> Hints {
        self.hints
    }

    /// The environment values that took effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert!(trace.env_applied().is_empty());
    /// ```
    pub fn env_applied(&self) -> &[EnvOverride] {
        &self.env_applied
    }

    /// The environment values skipped as invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert!(trace.env_rejected().is_empty());
    /// ```
    pub fn env_rejected(&self) -> &[RejectedVar] {
        &self.env_rejected
    }

    /// The fallbacks taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert!(trace.fallbacks().is_empty());
    /// ```
    pub fn fallbacks(&self) -> &[Fallback] {
        &self.fallbacks
    }

    /// How many threads the parent had when it forked, for process decisions.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.parent_threads(), None);
    /// ```
    pub fn parent_threads(&self) -> Option<usize> {
        self.parent_threads
    }

    /// How the scope's process pool gets its workers, in plain words: from
    /// the fork server started by `unirun::process::init()`, or forked
    /// directly because `init` was not called (with how many threads the
    /// parent had). Set for scopes that resolved to
    /// [`Flavor::Processes`]; `None` otherwise. Prints as `process pool:
    /// …` and serializes as `process_pool`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default);
    /// assert_eq!(trace.process_pool(), None);
    /// ```
    pub fn process_pool(&self) -> Option<&str> {
        self.process_pool.as_deref()
    }

    /// Sets how the scope's process pool gets its workers (see
    /// [`process_pool`](Self::process_pool)).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, DecisionTrace, Flavor};
    ///
    /// let trace = DecisionTrace::new(Flavor::Processes, Flavor::Processes, Reason::Explicit { flavor: Flavor::Processes })
    ///     .with_process_pool("forked directly (no unirun::process::init; the parent had 3 threads)");
    /// assert!(trace.to_string().contains("; process pool: forked directly (no unirun::process::init;"));
    /// ```
    #[must_use]
    pub fn with_process_pool(mut self, origin: impl Into<String>) -> Self {
        self.process_pool = Some(origin.into());
        self
    }
}

impl fmt::Display for DecisionTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unirun: {} (requested {}) because ",
            self.resolved, self.requested
        )?;
        write_list(f, &self.reasons, ", then ")?;
        if let Some(name) = &self.name {
            write!(f, "; name={name:?}")?;
        }
        if let Some(workers) = &self.workers {
            write!(f, "; {workers}")?;
        }
        write!(f, "; mode={}", self.thread_mode)?;
        if let Some(cpu_bound) = self.hints.cpu_bound {
            write!(f, "; cpu_bound={cpu_bound}")?;
        }
        if let Some(io_bound) = self.hints.io_bound {
            write!(f, "; io_bound={io_bound}")?;
        }
        if let Some(threads) = self.parent_threads {
            write!(f, "; parent threads={threads}")?;
        }
        if let Some(origin) = &self.process_pool {
            write!(f, "; process pool: {}", OneLine(origin))?;
        }
        if !self.fallbacks.is_empty() {
            f.write_str("; ")?;
            write_list(f, &self.fallbacks, ", ")?;
        }
        if !self.env_applied.is_empty() {
            f.write_str("; env applied ")?;
            write_list(f, &self.env_applied, ", ")?;
        }
        if !self.env_rejected.is_empty() {
            f.write_str("; env rejected ")?;
            write_list(f, &self.env_rejected, ", ")?;
        }
        Ok(())
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T], sep: &str) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

/// Displays a string with control characters escaped, so it cannot break the
/// trace's single line.
struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_debug())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn assert_one_line(line: &str) {
        assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
    }

    #[test]
    fn display_example_from_the_design() {
        let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
            .with_workers(Workers::new(2, 64))
            .with_thread_mode(ThreadMode::Nogil)
            .with_env_applied(vec![EnvOverride::new(
                "UNIRUN_MAX_WORKERS",
                "2",
                "max_workers",
            )])
            .with_env_rejected(vec![RejectedVar::new(
                "UNIRUN_THREAD_MODE",
                "gli",
                "auto, gil or nogil",
            )]);
        assert_eq!(
            trace.to_string(),
            "unirun: threads (requested auto) because default; workers=2 blocking<=64; mode=nogil; \
             env applied UNIRUN_MAX_WORKERS=2; \
             env rejected UNIRUN_THREAD_MODE=\"gli\" (expected auto, gil or nogil)"
        );
    }

    #[test]
    fn display_uses_plain_words() {
        let forced = DecisionTrace::new(
            Flavor::Auto,
            Flavor::Threads,
            Reason::ForcedThreads {
                var: Some("UNIRUN_FORCE_THREADS"),
            },
        )
        .with_env_applied(vec![EnvOverride::new(
            "UNIRUN_FORCE_THREADS",
            "true",
            "force_threads",
        )]);
        let line = forced.to_string();
        assert!(
            line.contains("forced threads by UNIRUN_FORCE_THREADS"),
            "{line}"
        );
        assert!(
            line.contains("env applied UNIRUN_FORCE_THREADS=true"),
            "{line}"
        );

        let line =
            DecisionTrace::new(Flavor::Threads, Flavor::Threads, Reason::Provided).to_string();
        assert!(line.contains("provided"), "{line}");

        let line =
            DecisionTrace::new(Flavor::Tokio, Flavor::Tokio, Reason::AmbientTokio).to_string();
        assert!(line.contains("ambient"), "{line}");

        let line = DecisionTrace::new(
            Flavor::Auto,
            Flavor::Threads,
            Reason::ForcedProcess {
                var: Some("UNIRUN_FORCE_PROCESS"),
            },
        )
        .with_reason(Reason::ForcedProcessFallback)
        .with_fallback(Fallback::new(
            Flavor::Processes,
            Flavor::Threads,
            "process backend unavailable",
        ))
        .to_string();
        assert!(
            line.contains("forced processes by UNIRUN_FORCE_PROCESS, then fallback to threads"),
            "{line}"
        );
        assert!(line.contains("fallback processes->threads"), "{line}");

        let line =
            DecisionTrace::new(Flavor::Auto, Flavor::Shared, Reason::AutoDisabled).to_string();
        assert!(line.contains("auto disabled"), "{line}");
        let line = DecisionTrace::new(
            Flavor::Smol,
            Flavor::Smol,
            Reason::Explicit {
                flavor: Flavor::Smol,
            },
        )
        .to_string();
        assert!(line.contains("explicit"), "{line}");
    }

    #[test]
    fn display_is_one_line_whatever_the_input() {
        let trace = DecisionTrace::new(Flavor::Auto, Flavor::Threads, Reason::Default)
            .with_name("bad\nname")
            .with_hints(Hints::new(Some(true), Some(false)))
            .with_parent_threads(3)
            .with_process_pool("fork\nserver")
            .with_workers(Workers::new(1, 2).with_processes(4))
            .with_fallback(Fallback::new(
                Flavor::Processes,
                Flavor::Threads,
                "two\nlines",
            ))
            .with_env_rejected(vec![RejectedVar::new("UNIRUN_MODE", "a\r\nb", "x")]);
        let line = trace.to_string();
        assert_one_line(&line);
        for part in [
            "name=\"bad\\nname\"",
            "workers=1 blocking<=2 processes=4",
            "cpu_bound=true",
            "io_bound=false",
            "parent threads=3",
            "process pool: fork\\nserver",
            "(two\\nlines)",
            "UNIRUN_MODE=\"a\\r\\nb\"",
        ] {
            assert!(line.contains(part), "{part} not in {line}");
        }
    }

    #[test]
    fn every_reason_displays_on_one_line() {
        for reason in [
            Reason::Provided,
            Reason::ForcedThreads { var: None },
            Reason::ForcedProcess { var: None },
            Reason::ForcedProcessFallback,
            Reason::Explicit {
                flavor: Flavor::Tokio,
            },
            Reason::AutoDisabled,
            Reason::ConfigFlavor {
                flavor: Flavor::Smol,
                from_env: true,
            },
            Reason::AmbientTokio,
            Reason::CpuBoundGil,
            Reason::Default,
            Reason::ReusedParent,
        ] {
            let text = reason.to_string();
            assert!(!text.is_empty());
            assert_one_line(&text);
        }
        assert_eq!(
            Reason::ConfigFlavor {
                flavor: Flavor::Smol,
                from_env: true
            }
            .to_string(),
            "env flavor smol"
        );
    }

    #[test]
    fn json_has_every_key() {
        let trace = DecisionTrace::new(
            Flavor::Auto,
            Flavor::Threads,
            Reason::ForcedProcess {
                var: Some("UNIRUN_FORCE_PROCESS"),
            },
        )
        .with_reason(Reason::ForcedProcessFallback)
        .with_name("ingest")
        .with_thread_mode(ThreadMode::Gil)
        .with_workers(Workers::new(2, 64))
        .with_hints(Hints::new(Some(true), None))
        .with_env_applied(vec![EnvOverride::new(
            "UNIRUN_FORCE_PROCESS",
            "true",
            "force_process",
        )])
        .with_env_rejected(vec![RejectedVar::new(
            "UNIRUN_THREAD_MODE",
            "gli",
            "auto, gil or nogil",
        )])
        .with_fallback(Fallback::new(
            Flavor::Processes,
            Flavor::Threads,
            "not compiled in",
        ))
        .with_parent_threads(5)
        .with_process_pool("fork server (unirun::process::init)");

        let json = serde_json::to_string(&trace).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for key in [
            "requested",
            "resolved",
            "reasons",
            "thread_mode",
            "workers",
            "name",
            "hints",
            "env_applied",
            "env_rejected",
            "fallbacks",
            "parent_threads",
            "process_pool",
        ] {
            assert!(keys.contains(&key), "{key} missing from {json}");
        }
        assert_eq!(v["requested"], "auto");
        assert_eq!(v["resolved"], "threads");
        assert_eq!(v["thread_mode"], "gil");
        assert_eq!(v["name"], "ingest");
        assert_eq!(v["reasons"][0]["kind"], "forced_process");
        assert_eq!(v["reasons"][0]["var"], "UNIRUN_FORCE_PROCESS");
        assert_eq!(v["reasons"][1]["kind"], "forced_process_fallback");
        assert_eq!(v["workers"]["cpu"], 2);
        assert_eq!(v["workers"]["blocking_cap"], 64);
        assert_eq!(v["workers"]["processes"], Value::Null);
        assert_eq!(v["hints"]["cpu_bound"], true);
        assert_eq!(v["env_applied"][0]["var"], "UNIRUN_FORCE_PROCESS");
        assert_eq!(v["env_applied"][0]["value"], "true");
        assert_eq!(v["env_applied"][0]["field"], "force_process");
        assert_eq!(v["env_rejected"][0]["var"], "UNIRUN_THREAD_MODE");
        assert_eq!(v["env_rejected"][0]["value"], "gli");
        assert_eq!(v["env_rejected"][0]["expected"], "auto, gil or nogil");
        assert_eq!(v["fallbacks"][0]["from"], "processes");
        assert_eq!(v["fallbacks"][0]["to"], "threads");
        assert_eq!(v["parent_threads"], 5);
        assert_eq!(v["process_pool"], "fork server (unirun::process::init)");

        let explicit = serde_json::to_value(Reason::Explicit {
            flavor: Flavor::Smol,
        })
        .unwrap();
        assert_eq!(
            explicit,
            serde_json::json!({"kind": "explicit", "flavor": "smol"})
        );
    }
}
