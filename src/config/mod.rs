//! [`RuntimeConfig`]: settings from code, the environment and `.env` files.

mod from_env;
mod layer;
#[cfg(test)]
mod tests;

use std::path::Path;

pub(crate) use self::from_env::{from_env_lenient, parse_vars};
use crate::env::{self, ValueSource, Var};
use crate::error::Error;
use crate::flavor::{CompatMode, Flavor, ThreadMode};

/// Optional settings for scopes and the shared default executor.
///
/// Every field is public and starts unset (`None`: "not set here"). Setters
/// of the same names take and return the config by value
/// (`max_workers(8)`), for building one in an expression; read a setting
/// from its field (`config.max_workers`).
///
/// # Sources and precedence
///
/// [`from_env`](Self::from_env), [`from_env_file`](Self::from_env_file) and
/// [`from_vars`](Self::from_vars) read the `UNIRUN_*` variables below. The
/// scheduler combines the layers in one place, for every scope and the
/// shared default alike: settings made in code (the scope's config, then
/// [`configure`](crate::configure)'s) win, the environment fills what code
/// left unset, defaults fill the rest, and the operator kill switches
/// (`UNIRUN_FORCE_THREADS`, `UNIRUN_FORCE_PROCESS`, `UNIRUN_COMPAT_MODE`)
/// override code always. The trace names every environment value that took
/// effect ([`DecisionTrace::env_applied`](crate::DecisionTrace::env_applied)).
///
/// | variable | setting | values |
/// | --- | --- | --- |
/// | `UNIRUN_MODE` (alias `UNIRUN_FLAVOR`) | `flavor` | auto, threads, processes, smol, tokio, shared, cluster |
/// | `UNIRUN_AUTO` | `auto` | bool |
/// | `UNIRUN_CPU_BOUND` | `cpu_bound` | bool |
/// | `UNIRUN_IO_BOUND` | `io_bound` | bool |
/// | `UNIRUN_MAX_WORKERS` | `max_workers` | integer >= 1 |
/// | `UNIRUN_MAX_BLOCKING` | `max_blocking` | integer >= 1 |
/// | `UNIRUN_THREAD_MODE` | `thread_mode` | auto, gil, nogil |
/// | `UNIRUN_FORCE_THREADS` | `force_threads` | bool |
/// | `UNIRUN_FORCE_PROCESS` | `force_process` | bool |
/// | `UNIRUN_COMPAT_MODE` | `compat_mode` | managed, passthrough |
/// | `UNIRUN_TRACE` | (none) | 0, 1, text, json: print every scheduler decision to stderr |
/// | `UNIRUN_CLUSTER_URL` | (none) | `nats://host:port`: the server of `Flavor::Cluster` scopes and workers |
/// | `UNIRUN_CLUSTER_WORKER` | (none) | bool: `unirun::cluster::serve_if_worker()` serves |
///
/// Bools are `1`/`0`, `true`/`false`, `yes`/`no` or `on`/`off`. Words and
/// bools ignore ASCII case and surrounding whitespace. An empty value counts
/// as unset. Keys are case-sensitive. Other keys are ignored; an unknown
/// `UNIRUN_*` key (a typo such as `UNIRUN_MAX_WORKER`) is ignored too, with
/// a warning on stderr naming the closest known variable, when the shared
/// default reads the environment or a `.env` file is read.
///
/// # Examples
///
/// ```
/// use unirun::{Flavor, RuntimeConfig, ThreadMode};
///
/// let config = RuntimeConfig::default()
///     .io_bound(true)
///     .max_workers(8)
///     .thread_mode(ThreadMode::Gil);
/// assert_eq!(config.max_workers, Some(8));
/// assert_eq!(config.flavor, None);
///
/// let env = RuntimeConfig::from_vars([("UNIRUN_MODE", "threads"), ("UNIRUN_MAX_WORKERS", "2")])?;
/// assert_eq!(env.flavor, Some(Flavor::Threads));
/// assert_eq!(env.max_workers, Some(2));
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// The flavor that `Flavor::Auto` scopes and the helpers use
    /// (`UNIRUN_MODE`).
    pub flavor: Option<Flavor>,
    /// Whether the scheduler's heuristics are on; `false` sends `Auto` to
    /// the shared pool (`UNIRUN_AUTO`).
    pub auto: Option<bool>,
    /// The work is CPU-bound (`UNIRUN_CPU_BOUND`).
    pub cpu_bound: Option<bool>,
    /// The work is I/O-bound: blocking lanes may grow larger
    /// (`UNIRUN_IO_BOUND`).
    pub io_bound: Option<bool>,
    /// Caps the async workers chosen automatically (`UNIRUN_MAX_WORKERS`).
    pub max_workers: Option<usize>,
    /// Caps the blocking lane's threads (`UNIRUN_MAX_BLOCKING`); separate
    /// from `max_workers`, which leaves the lane alone.
    pub max_blocking: Option<usize>,
    /// Serialized ([`ThreadMode::Gil`]) or parallel scopes
    /// (`UNIRUN_THREAD_MODE`).
    pub thread_mode: Option<ThreadMode>,
    /// Kill switch: everything on OS threads (`UNIRUN_FORCE_THREADS`).
    pub force_threads: Option<bool>,
    /// Kill switch: auto and blocking work on processes where compiled in
    /// (`UNIRUN_FORCE_PROCESS`).
    pub force_process: Option<bool>,
    /// Kill switch: the compat modules' mode (`UNIRUN_COMPAT_MODE`).
    pub compat_mode: Option<CompatMode>,
    /// Where the values read from the environment or a `.env` file came
    /// from, for the trace; a setter (code) forgets its field's entry.
    pub(crate) sources: Vec<Sourced>,
}

/// A setting's value as read from a variable, and where it was read.
#[derive(Debug, Clone)]
pub(crate) struct Sourced {
    pub(crate) var: Var,
    pub(crate) value: String,
    pub(crate) source: ValueSource,
}

/// Equal settings compare equal wherever they came from.
impl PartialEq for RuntimeConfig {
    fn eq(&self, other: &Self) -> bool {
        let RuntimeConfig {
            flavor,
            auto,
            cpu_bound,
            io_bound,
            max_workers,
            max_blocking,
            thread_mode,
            force_threads,
            force_process,
            compat_mode,
            sources: _,
        } = self;
        *flavor == other.flavor
            && *auto == other.auto
            && *cpu_bound == other.cpu_bound
            && *io_bound == other.io_bound
            && *max_workers == other.max_workers
            && *max_blocking == other.max_blocking
            && *thread_mode == other.thread_mode
            && *force_threads == other.force_threads
            && *force_process == other.force_process
            && *compat_mode == other.compat_mode
    }
}

impl RuntimeConfig {
    /// Sets the flavor that `Flavor::Auto` scopes and the helpers use.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, RuntimeConfig};
    ///
    /// let config = RuntimeConfig::default().flavor(Flavor::Threads);
    /// assert_eq!(config.flavor, Some(Flavor::Threads));
    /// ```
    #[must_use]
    pub fn flavor(mut self, flavor: Flavor) -> Self {
        self.flavor = Some(flavor);
        self.forget("flavor");
        self
    }

    /// Turns the scheduler's heuristics on or off; `false` sends `Auto` to the
    /// shared pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().auto(false);
    /// assert_eq!(config.auto, Some(false));
    /// ```
    #[must_use]
    pub fn auto(mut self, auto: bool) -> Self {
        self.auto = Some(auto);
        self.forget("auto");
        self
    }

    /// Hints that the work is CPU-bound.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().cpu_bound(true);
    /// assert_eq!(config.cpu_bound, Some(true));
    /// ```
    #[must_use]
    pub fn cpu_bound(mut self, cpu_bound: bool) -> Self {
        self.cpu_bound = Some(cpu_bound);
        self.forget("cpu_bound");
        self
    }

    /// Hints that the work is I/O-bound (blocking lanes may grow larger).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().io_bound(true);
    /// assert_eq!(config.io_bound, Some(true));
    /// ```
    #[must_use]
    pub fn io_bound(mut self, io_bound: bool) -> Self {
        self.io_bound = Some(io_bound);
        self.forget("io_bound");
        self
    }

    /// Caps the async workers chosen automatically (not the blocking lane:
    /// see [`max_blocking`](Self::max_blocking)). `0` is accepted here and
    /// rejected by [`validate`](Self::validate) (and so by building a scope).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().max_workers(4);
    /// assert_eq!(config.max_workers, Some(4));
    /// ```
    #[must_use]
    pub fn max_workers(mut self, max_workers: usize) -> Self {
        self.max_workers = Some(max_workers);
        self.forget("max_workers");
        self
    }

    /// Caps the blocking lane's threads (`spawn_blocking`, `to_thread`).
    /// `0` is accepted here and rejected by [`validate`](Self::validate).
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().max_blocking(16);
    /// assert_eq!(config.max_blocking, Some(16));
    /// assert_eq!(config.max_workers, None);
    /// ```
    #[must_use]
    pub fn max_blocking(mut self, max_blocking: usize) -> Self {
        self.max_blocking = Some(max_blocking);
        self.forget("max_blocking");
        self
    }

    /// Sets whether scopes run serialized ([`ThreadMode::Gil`]) or parallel.
    ///
    /// Set here (in code), `Gil` serializes blocking closures too; read
    /// from `UNIRUN_THREAD_MODE` it serializes async polls only (see
    /// [`ThreadMode`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{RuntimeConfig, ThreadMode};
    ///
    /// let config = RuntimeConfig::default().thread_mode(ThreadMode::Gil);
    /// assert_eq!(config.thread_mode, Some(ThreadMode::Gil));
    /// ```
    #[must_use]
    pub fn thread_mode(mut self, thread_mode: ThreadMode) -> Self {
        self.thread_mode = Some(thread_mode);
        self.forget("thread_mode");
        self
    }

    /// Runs every scope and helper on the OS-threads backend. Beats
    /// `force_process`.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().force_threads(true);
    /// assert_eq!(config.force_threads, Some(true));
    /// ```
    #[must_use]
    pub fn force_threads(mut self, force_threads: bool) -> Self {
        self.force_threads = Some(force_threads);
        self.forget("force_threads");
        self
    }

    /// Makes auto and blocking work prefer processes where compiled in.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = unirun::RuntimeConfig::default().force_process(true);
    /// assert_eq!(config.force_process, Some(true));
    /// ```
    #[must_use]
    pub fn force_process(mut self, force_process: bool) -> Self {
        self.force_process = Some(force_process);
        self.forget("force_process");
        self
    }

    /// Routes the compat modules to unirun's pools or to the original APIs.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{CompatMode, RuntimeConfig};
    ///
    /// let config = RuntimeConfig::default().compat_mode(CompatMode::Passthrough);
    /// assert_eq!(config.compat_mode, Some(CompatMode::Passthrough));
    /// ```
    #[must_use]
    pub fn compat_mode(mut self, compat_mode: CompatMode) -> Self {
        self.compat_mode = Some(compat_mode);
        self.forget("compat_mode");
        self
    }

    /// Drops the recorded source of `field`: code set it.
    pub(crate) fn forget(&mut self, field: &str) {
        self.sources.retain(|s| s.var.field != field);
    }

    /// Whether `field`'s value was read from a variable (the process
    /// environment or a `.env` file) rather than set in code: the
    /// operator's choice, not the program's.
    pub(crate) fn read_from_env(&self, field: &str) -> bool {
        self.sources.iter().any(|s| s.var.field == field)
    }

    /// The flavor the force switches impose, if any: `Threads` when
    /// `force_threads` is true (it beats `force_process`), else `Processes`
    /// when `force_process` is true.
    ///
    /// Availability is not checked here; when the process backend is missing
    /// the scheduler falls back to threads and says so in the trace.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, RuntimeConfig};
    ///
    /// let both = RuntimeConfig::default().force_process(true).force_threads(true);
    /// assert_eq!(both.forced_flavor(), Some(Flavor::Threads));
    /// let process = RuntimeConfig::default().force_process(true);
    /// assert_eq!(process.forced_flavor(), Some(Flavor::Processes));
    /// assert_eq!(RuntimeConfig::default().forced_flavor(), None);
    /// ```
    pub fn forced_flavor(&self) -> Option<Flavor> {
        if self.force_threads == Some(true) {
            Some(Flavor::Threads)
        } else if self.force_process == Some(true) {
            Some(Flavor::Processes)
        } else {
            None
        }
    }

    /// Checks for impossible settings: `max_workers(0)`, `max_blocking(0)`.
    ///
    /// Building a scope calls this, so a bad value fails there with
    /// [`Error::InvalidSetting`].
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::RuntimeConfig;
    ///
    /// assert!(RuntimeConfig::default().max_workers(2).validate().is_ok());
    /// let err = RuntimeConfig::default().max_workers(0).validate().unwrap_err();
    /// assert_eq!(err.to_string(), "invalid max_workers=0: expected an integer >= 1");
    /// ```
    pub fn validate(&self) -> Result<(), Error> {
        for (setting, value) in [
            ("max_workers", self.max_workers),
            ("max_blocking", self.max_blocking),
        ] {
            if value == Some(0) {
                return Err(Error::InvalidSetting {
                    setting,
                    value: "0".into(),
                    expected: env::EXPECTED_WORKERS,
                });
            }
        }
        Ok(())
    }

    /// Reads the `UNIRUN_*` variables of the process environment.
    ///
    /// Fails on the first invalid value (in the table order of
    /// [`RuntimeConfig`]) with [`Error::InvalidEnv`] naming the variable, the
    /// value and the accepted values, or with [`Error::ConflictingEnv`] when
    /// `UNIRUN_MODE` and `UNIRUN_FLAVOR` disagree. A value that is not UTF-8
    /// is invalid.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// // UNIRUN_THREAD_MODE=gli fails with:
    /// // invalid UNIRUN_THREAD_MODE="gli": expected auto, gil or nogil
    /// let env = unirun::RuntimeConfig::from_env()?;
    /// println!("{env:?}");
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn from_env() -> Result<Self, Error> {
        let config = Self::from_vars(env::process_vars())?;
        Ok(config.sourced(|_| ValueSource::Environment))
    }

    /// Reads the same keys as [`from_env`](Self::from_env) from a `.env` file,
    /// so local runs and CI can share one file.
    ///
    /// The file follows the dotenv convention and is parsed by `dotenvy`
    /// (blank lines, `#` comments, `export KEY=value`, single or double
    /// quotes, any number of unrelated keys); it is only read, never copied
    /// into the process environment. A variable also set in the real
    /// environment takes the real environment's value. Bytes that are not
    /// UTF-8 on a line unirun does not read are harmless.
    ///
    /// Every failure is an [`Error::EnvFile`] naming the path: a file that
    /// cannot be read (`line: None`), a syntax error (with its line), or an
    /// invalid `UNIRUN_*` value (with its line).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{RuntimeConfig, ThreadMode};
    ///
    /// let path = std::env::temp_dir().join(format!("unirun-doc-{}.env", std::process::id()));
    /// std::fs::write(&path, "# CI parity\nexport UNIRUN_THREAD_MODE='gil'\nDATABASE_URL=x\n")?;
    /// let config = RuntimeConfig::from_env_file(&path)?;
    /// assert_eq!(config.thread_mode, Some(ThreadMode::Gil));
    /// # std::fs::remove_file(&path)?;
    ///
    /// let err = RuntimeConfig::from_env_file("no/such/.env").unwrap_err();
    /// assert!(err.to_string().contains("no/such/.env"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_env_file(path: impl AsRef<Path>) -> Result<Self, Error> {
        from_env::read_env_file(path.as_ref())
    }

    /// Reads the `UNIRUN_*` keys from any `(key, value)` pairs, with the rules
    /// and errors of [`from_env`](Self::from_env). Other keys are ignored.
    ///
    /// Handy for tests, and for settings from somewhere other than the
    /// process environment.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Flavor, RuntimeConfig};
    ///
    /// let config = RuntimeConfig::from_vars([("UNIRUN_FLAVOR", "Smol"), ("UNIRUN_AUTO", "off")])?;
    /// assert_eq!(config, RuntimeConfig::default().flavor(Flavor::Smol).auto(false));
    ///
    /// let err = RuntimeConfig::from_vars([("UNIRUN_MAX_WORKERS", "0")]).unwrap_err();
    /// assert_eq!(err.to_string(), r#"invalid UNIRUN_MAX_WORKERS="0": expected an integer >= 1"#);
    /// # Ok::<(), unirun::Error>(())
    /// ```
    pub fn from_vars<I, K, V>(vars: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (config, problems) = parse_vars(vars);
        match problems.into_iter().next() {
            Some(problem) => Err(problem.into_error()),
            None => Ok(config),
        }
    }
}
