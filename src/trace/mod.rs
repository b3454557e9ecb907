//! Why the scheduler chose a backend: [`DecisionTrace`] and its parts.
//!
//! A trace is plain data. The scheduler fills one for every decision; scopes
//! and listeners hand it out. It prints as one line that uses words a person
//! would grep for (`forced`, `provided`, `ambient`, `fallback`, `default`) and
//! names every `UNIRUN_*` variable that was applied or rejected, and it
//! serializes with serde (`Flavor` and `ThreadMode` as their lowercase
//! names, each [`Reason`] as an object with a snake_case `kind`).

mod parts;
#[cfg(test)]
mod tests;

use std::fmt;

pub use self::parts::{Fallback, Hints, Reason, Workers};
use crate::env::{EnvOverride, RejectedVar};
use crate::flavor::{Flavor, ThreadMode};

/// Why the scheduler ran a scope or helper where it did.
///
/// Accessors give every part; [`Display`](fmt::Display) gives one line,
/// for example:
///
/// ```text
/// unirun: threads (requested auto) because auto: no flavor set (code or UNIRUN_MODE), no tokio runtime to borrow, no cpu-bound gil work; workers=2 blocking<=64; mode=nogil; env applied UNIRUN_MAX_WORKERS=2 from the environment; env rejected UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)
/// ```
///
/// and `serde::Serialize` gives an object with the keys `requested`,
/// `resolved`, `reasons`, `thread_mode`, `workers`, `name`, `hints`,
/// `env_applied`, `env_rejected`, `fallbacks`, `parent_threads`,
/// `process_pool`, `reactor` and `cluster`.
///
/// The scheduler builds traces; a program reads them from
/// [`Run::trace`](crate::Run::trace), [`last_decision`](crate::last_decision)
/// and the decision listeners.
///
/// # Examples
///
/// ```
/// use unirun::{trace::Reason, Flavor, Run, RuntimeConfig, ThreadMode};
///
/// let config = RuntimeConfig::default().thread_mode(ThreadMode::Nogil);
/// let run = Run::builder().max_workers(1).config(config).build()?;
/// let trace = run.trace();
/// assert_eq!(trace.resolved(), Flavor::Threads);
/// assert_eq!(trace.reason(), &Reason::Default);
/// let line = trace.to_string();
/// assert!(line.starts_with("unirun: threads (requested auto) because auto: no flavor set (code or UNIRUN_MODE), no tokio runtime to borrow, no cpu-bound gil work;"));
/// assert!(line.contains("workers=1 blocking<="));
/// assert!(line.contains("; mode=nogil"));
/// # Ok::<(), unirun::Error>(())
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
    reactor: Option<String>,
    map: Option<&'static str>,
    cluster: Option<String>,
}

impl DecisionTrace {
    /// A trace of `requested` resolving to `resolved` because of `reason`.
    /// Everything else starts empty: thread mode `Auto`, no worker counts,
    /// no name, no hints, no env records, no fallbacks.
    pub(crate) fn new(requested: Flavor, resolved: Flavor, reason: Reason) -> Self {
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
            reactor: None,
            map: None,
            cluster: None,
        }
    }

    /// Appends a reason; the last one appended is the deciding
    /// [`reason`](Self::reason), earlier ones are the steps that led there.
    #[must_use]
    pub(crate) fn with_reason(mut self, reason: Reason) -> Self {
        self.reasons.push(reason);
        self
    }

    /// Sets the thread mode in effect.
    #[must_use]
    pub(crate) fn with_thread_mode(mut self, thread_mode: ThreadMode) -> Self {
        self.thread_mode = thread_mode;
        self
    }

    /// Sets the pool sizes chosen.
    #[must_use]
    pub(crate) fn with_workers(mut self, workers: Workers) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Sets the scope's name.
    #[must_use]
    pub(crate) fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets the workload hints in effect.
    #[must_use]
    pub(crate) fn with_hints(mut self, hints: Hints) -> Self {
        self.hints = hints;
        self
    }

    /// Sets the environment values that took effect (see
    /// [`DecisionTrace::env_applied`]).
    #[must_use]
    pub(crate) fn with_env_applied(mut self, applied: Vec<EnvOverride>) -> Self {
        self.env_applied = applied;
        self
    }

    /// Sets the environment values that were skipped as invalid (see
    /// [`DecisionTrace::env_rejected`]).
    #[must_use]
    pub(crate) fn with_env_rejected(mut self, rejected: Vec<RejectedVar>) -> Self {
        self.env_rejected = rejected;
        self
    }

    /// Appends a fallback.
    #[must_use]
    pub(crate) fn with_fallback(mut self, fallback: Fallback) -> Self {
        self.fallbacks.push(fallback);
        self
    }

    /// Sets how many threads the parent process had when it forked (process
    /// decisions only; locks held by the other threads stay held in the child).
    #[must_use]
    pub(crate) fn with_parent_threads(mut self, threads: usize) -> Self {
        self.parent_threads = Some(threads);
        self
    }

    /// The flavor the caller asked for.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).build()?;
    /// assert_eq!(run.trace().requested(), Flavor::Threads);
    /// assert_eq!(Run::builder().build()?.trace().requested(), Flavor::Auto);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn requested(&self) -> Flavor {
        self.requested
    }

    /// The flavor the work runs on.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Shared).build()?;
    /// assert_eq!(run.trace().resolved(), Flavor::Shared);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn resolved(&self) -> Flavor {
        self.resolved
    }

    /// The deciding reason: the last of [`reasons`](Self::reasons).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{trace::Reason, Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).build()?;
    /// assert_eq!(run.trace().reason(), &Reason::Explicit { flavor: Flavor::Threads });
    /// # Ok::<(), unirun::Error>(())
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
    /// use unirun::{trace::Reason, Run};
    ///
    /// // A scope built inside another reuses its backend: two steps.
    /// let parent = Run::builder().build()?;
    /// let nested = parent.block_on(async { Run::builder().build() })?;
    /// assert_eq!(nested.trace().reasons(), [Reason::Default, Reason::ReusedParent]);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons
    }

    /// The thread mode in effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Run, RuntimeConfig, ThreadMode};
    ///
    /// let gil = RuntimeConfig::default().thread_mode(ThreadMode::Gil);
    /// let run = Run::builder().config(gil).build()?;
    /// assert_eq!(run.trace().thread_mode(), ThreadMode::Gil);
    /// # Ok::<(), unirun::Error>(())
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
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).max_workers(1).build()?;
    /// assert_eq!(run.trace().workers().map(|w| w.cpu()), Some(1));
    /// // A provided executor is not sized by unirun.
    /// let provided = Run::builder().executor(run.handle()).build()?;
    /// assert_eq!(provided.trace().workers(), None);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn workers(&self) -> Option<Workers> {
        self.workers
    }

    /// The scope's name, if it has one.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().name("ingest").build()?;
    /// assert_eq!(run.trace().name(), Some("ingest"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The workload hints in effect.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Run, RuntimeConfig};
    ///
    /// let run = Run::builder().config(RuntimeConfig::default().io_bound(true)).build()?;
    /// assert_eq!(run.trace().hints().io_bound(), Some(true));
    /// assert_eq!(run.trace().hints().cpu_bound(), None);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn hints(&self) -> Hints {
        self.hints
    }

    /// The environment values that took effect.
    ///
    /// # Examples
    ///
    /// ```
    /// // Settings made in code are not environment values.
    /// let run = unirun::Run::builder().max_workers(2).build()?;
    /// assert!(run.trace().env_applied().iter().all(|o| o.field() != "max_workers"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn env_applied(&self) -> &[EnvOverride] {
        &self.env_applied
    }

    /// The environment values skipped as invalid.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().build()?;
    /// for rejected in run.trace().env_rejected() {
    ///     eprintln!("{rejected}"); // e.g. UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)
    /// }
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn env_rejected(&self) -> &[RejectedVar] {
        &self.env_rejected
    }

    /// The fallbacks taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).build()?;
    /// assert!(run.trace().fallbacks().is_empty());
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn fallbacks(&self) -> &[Fallback] {
        &self.fallbacks
    }

    /// How many threads the parent had when it forked, for process decisions.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).build()?;
    /// assert_eq!(run.trace().parent_threads(), None);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn parent_threads(&self) -> Option<usize> {
        self.parent_threads
    }

    /// Where the scope's [`Run::map`](crate::Run::map) runs its items, and
    /// why: `map on the workers (...)` or `map on the blocking lane (...)`.
    /// Set for scopes built by [`Run::builder`](crate::Run::builder);
    /// prints as `; map on ...` and serializes as `map`.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::builder().max_workers(1).build()?;
    /// assert!(run.trace().map_path().unwrap().starts_with("map on the blocking lane"));
    /// let cpu = unirun::RuntimeConfig::default().cpu_bound(true);
    /// let run = unirun::Run::builder().max_workers(1).config(cpu).build()?;
    /// assert!(run.trace().map_path().unwrap().starts_with("map on the workers"));
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn map_path(&self) -> Option<&str> {
        self.map
    }

    /// Sets [`map_path`](Self::map_path).
    pub(crate) fn with_map_path(mut self, path: &'static str) -> Self {
        self.map = Some(path);
        self
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
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).build()?;
    /// assert_eq!(run.trace().process_pool(), None);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn process_pool(&self) -> Option<&str> {
        self.process_pool.as_deref()
    }

    /// Where a [`Flavor::Cluster`] scope's calls go: the server, the
    /// stream, and how many workers were waiting for jobs when it was
    /// built. `None` for other scopes. Prints as `cluster: …` and
    /// serializes as `cluster`.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, Run};
    ///
    /// let run = Run::builder().flavor(Flavor::Threads).build()?;
    /// assert_eq!(run.trace().cluster(), None);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn cluster(&self) -> Option<&str> {
        self.cluster.as_deref()
    }

    /// Sets where a cluster scope's calls go (see [`cluster`](Self::cluster)).
    #[must_use]
    #[cfg_attr(not(feature = "cluster-backend"), allow(dead_code))]
    pub(crate) fn with_cluster(mut self, cluster: impl Into<String>) -> Self {
        self.cluster = Some(cluster.into());
        self
    }

    /// Sets how the scope's process pool gets its workers (see
    /// [`process_pool`](Self::process_pool)).
    #[must_use]
    pub(crate) fn with_process_pool(mut self, origin: impl Into<String>) -> Self {
        self.process_pool = Some(origin.into());
        self
    }

    /// Which tokio runtime's I/O and timer drivers serve the scope's tasks
    /// (feature `tokio-backend`, see [`crate::io`]): the scope's own tokio
    /// runtime, the ambient one, or `unirun-io` (unirun's own). `None`
    /// without the feature. Prints as `reactor: …` and serializes as
    /// `reactor`.
    ///
    /// # Examples
    ///
    /// ```
    /// let run = unirun::Run::new(unirun::Flavor::Threads)?;
    /// if cfg!(feature = "tokio-backend") {
    ///     assert!(run.trace().reactor().unwrap().contains("unirun-io"));
    /// }
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn reactor(&self) -> Option<&str> {
        self.reactor.as_deref()
    }

    /// Sets which reactor the scope's tasks use (see
    /// [`reactor`](Self::reactor)).
    #[must_use]
    pub(crate) fn with_reactor(mut self, reactor: impl Into<String>) -> Self {
        self.reactor = Some(reactor.into());
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
        if self.resolved == Flavor::Processes {
            // What a reader would otherwise get wrong: only some calls fork.
            f.write_str(
                "; call/to_process fork worker processes, spawn and spawn_blocking stay on threads",
            )?;
        }
        if let Some(name) = &self.name {
            write!(f, "; name={name:?}")?;
        }
        if let Some(workers) = &self.workers {
            write!(f, "; {workers}")?;
        }
        write!(f, "; mode={}", self.thread_mode)?;
        if let Some(cpu_bound) = self.hints.cpu_bound() {
            write!(f, "; cpu_bound={cpu_bound}")?;
        }
        if let Some(io_bound) = self.hints.io_bound() {
            write!(f, "; io_bound={io_bound}")?;
        }
        if let Some(threads) = self.parent_threads {
            write!(f, "; parent threads={threads}")?;
        }
        if let Some(origin) = &self.process_pool {
            write!(f, "; process pool: {}", OneLine(origin))?;
        }
        if let Some(reactor) = &self.reactor {
            write!(f, "; reactor: {}", OneLine(reactor))?;
        }
        if let Some(cluster) = &self.cluster {
            write!(f, "; cluster: {}", OneLine(cluster))?;
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
        if let Some(map) = self.map {
            write!(f, "; {map}")?;
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
pub(crate) struct OneLine<'a>(pub(crate) &'a str);

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
