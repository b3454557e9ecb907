//! Reading `UNIRUN_*` values, from the process environment, from `.env`
//! files, or from any list of `(key, value)` pairs.
//!
//! Parsing is split in two so every entry point shares one set of rules:
//! [`parse_vars`] turns pairs into a [`RuntimeConfig`] plus a list of
//! problems, and each caller decides whether a problem is an error (strict
//! readers) or a [`RejectedVar`] (lenient readers). `.env` files are split
//! into entries by `dotenvy` (see `config::from_env`).

use std::fmt;

use crate::error::Error;
use crate::flavor::{CompatMode, Flavor, ThreadMode};

/// A variable and the [`RuntimeConfig`] setting it feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Var {
    pub(crate) name: &'static str,
    pub(crate) field: &'static str,
}

const fn var(name: &'static str, field: &'static str) -> Var {
    Var { name, field }
}

pub(crate) const MODE: Var = var("UNIRUN_MODE", "flavor");
pub(crate) const FLAVOR: Var = var("UNIRUN_FLAVOR", "flavor");
pub(crate) const AUTO: Var = var("UNIRUN_AUTO", "auto");
pub(crate) const CPU_BOUND: Var = var("UNIRUN_CPU_BOUND", "cpu_bound");
pub(crate) const IO_BOUND: Var = var("UNIRUN_IO_BOUND", "io_bound");
pub(crate) const MAX_WORKERS: Var = var("UNIRUN_MAX_WORKERS", "max_workers");
pub(crate) const MAX_BLOCKING: Var = var("UNIRUN_MAX_BLOCKING", "max_blocking");
pub(crate) const THREAD_MODE: Var = var("UNIRUN_THREAD_MODE", "thread_mode");
pub(crate) const FORCE_THREADS: Var = var("UNIRUN_FORCE_THREADS", "force_threads");
pub(crate) const FORCE_PROCESS: Var = var("UNIRUN_FORCE_PROCESS", "force_process");
pub(crate) const COMPAT_MODE: Var = var("UNIRUN_COMPAT_MODE", "compat_mode");
/// Not a setting: what the scheduler prints as it decides (see `observe`).
pub(crate) const TRACE: Var = var("UNIRUN_TRACE", "trace");
/// The NATS server of `Flavor::Cluster` scopes (read by `unirun::cluster`).
pub(crate) const CLUSTER_URL: Var = var("UNIRUN_CLUSTER_URL", "cluster_url");
/// Makes `unirun::cluster::serve_if_worker` serve (read there).
pub(crate) const CLUSTER_WORKER: Var = var("UNIRUN_CLUSTER_WORKER", "cluster_worker");

/// Every variable unirun reads, in the order they are checked (so the first
/// error reported does not depend on the environment's iteration order).
pub(crate) static KNOWN: [Var; 14] = [
    MODE,
    FLAVOR,
    AUTO,
    CPU_BOUND,
    IO_BOUND,
    MAX_WORKERS,
    MAX_BLOCKING,
    THREAD_MODE,
    FORCE_THREADS,
    FORCE_PROCESS,
    COMPAT_MODE,
    TRACE,
    CLUSTER_URL,
    CLUSTER_WORKER,
];

/// The warnings for `UNIRUN_*` keys unirun does not know (a typo such as
/// `UNIRUN_MAX_WORKER` would otherwise be silently ignored), each naming
/// the closest known variable.
pub(crate) fn unknown_vars<I, K>(keys: I) -> Vec<String>
where
    I: IntoIterator<Item = K>,
    K: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    // Warned keys, so a repeated key is warned once at a constant cost
    // (a `.env` file may hold tens of thousands of lines).
    let mut seen = std::collections::HashSet::new();
    for key in keys {
        let key = key.as_ref();
        if !key.starts_with("UNIRUN_") || KNOWN.iter().any(|v| v.name == key) {
            continue;
        }
        // Variables of unirun's own tooling, not settings.
        if key.starts_with("UNIRUN_TEST")
            || key.starts_with("UNIRUN_BENCH")
            || key == "UNIRUN_NATS_SERVER"
        {
            continue;
        }
        if !seen.insert(key.to_owned()) {
            continue;
        }
        let closest = KNOWN
            .iter()
            .min_by_key(|v| edit_distance(v.name, key))
            .map_or("", |v| v.name);
        out.push(format!(
            "unirun: unknown variable {key} is ignored; did you mean {closest}?"
        ));
    }
    out
}

/// Levenshtein distance over bytes (the names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

pub(crate) const EXPECTED_BOOL: &str = "one of 1, 0, true, false, yes, no, on, off";
pub(crate) const EXPECTED_WORKERS: &str = "an integer >= 1";
const EXPECTED_SAME_AS_FLAVOR: &str = "the same value as UNIRUN_FLAVOR, or only one of the two";
const EXPECTED_SAME_AS_MODE: &str = "the same value as UNIRUN_MODE, or only one of the two";

/// An environment value that took effect: it filled a setting the code left
/// unset, or it is a kill switch (`UNIRUN_FORCE_THREADS`,
/// `UNIRUN_FORCE_PROCESS`, `UNIRUN_COMPAT_MODE`) that overrides code.
///
/// Produced by the scheduler when it layers the environment under code;
/// carried by [`DecisionTrace::env_applied`](crate::DecisionTrace::env_applied). Prints as
/// `UNIRUN_MAX_WORKERS=2 from the environment`, or with the `.env` file's
/// path when the value came from
/// [`RuntimeConfig::from_env_file`](crate::RuntimeConfig::from_env_file).
///
/// # Examples
///
/// ```
/// use unirun::EnvOverride;
///
/// let applied = EnvOverride::new("UNIRUN_MAX_WORKERS", "2", "max_workers");
/// assert_eq!(applied.var(), "UNIRUN_MAX_WORKERS");
/// assert_eq!(applied.value(), "2");
/// assert_eq!(applied.field(), "max_workers");
/// assert_eq!(applied.to_string(), "UNIRUN_MAX_WORKERS=2 from the environment");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EnvOverride {
    var: String,
    value: String,
    field: &'static str,
    source: ValueSource,
}

/// Where an `UNIRUN_*` value came from.
///
/// Serializes as `"environment"` or `{"env_file": "<path>"}`.
///
/// # Examples
///
/// ```
/// use unirun::ValueSource;
///
/// assert_eq!(ValueSource::Environment.to_string(), "the environment");
/// assert_eq!(ValueSource::EnvFile("ci/.env".into()).to_string(), "ci/.env");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueSource {
    /// The process environment.
    Environment,
    /// A `.env` file read by
    /// [`RuntimeConfig::from_env_file`](crate::RuntimeConfig::from_env_file).
    EnvFile(std::path::PathBuf),
}

impl fmt::Display for ValueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueSource::Environment => f.write_str("the environment"),
            ValueSource::EnvFile(path) => write!(f, "{}", path.display()),
        }
    }
}

impl EnvOverride {
    /// A record that `var` set `field` to `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun::EnvOverride::new("UNIRUN_FORCE_THREADS", "true", "force_threads");
    /// assert_eq!(o.to_string(), "UNIRUN_FORCE_THREADS=true from the environment");
    /// ```
    pub fn new(var: impl Into<String>, value: impl Into<String>, field: &'static str) -> Self {
        EnvOverride {
            var: var.into(),
            value: value.into(),
            field,
            source: ValueSource::Environment,
        }
    }

    /// The same record with another source.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{EnvOverride, ValueSource};
    ///
    /// let o = EnvOverride::new("UNIRUN_MAX_WORKERS", "1", "max_workers")
    ///     .with_source(ValueSource::EnvFile(".env".into()));
    /// assert_eq!(o.to_string(), "UNIRUN_MAX_WORKERS=1 from .env");
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: ValueSource) -> Self {
        self.source = source;
        self
    }

    /// Where the value came from: the environment or a `.env` file.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{EnvOverride, ValueSource};
    ///
    /// let o = EnvOverride::new("UNIRUN_MODE", "threads", "flavor");
    /// assert_eq!(o.source(), &ValueSource::Environment);
    /// ```
    pub fn source(&self) -> &ValueSource {
        &self.source
    }

    /// The variable's name. A flavor from `UNIRUN_FLAVOR` is reported under
    /// its primary name `UNIRUN_MODE`.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun::EnvOverride::new("UNIRUN_MODE", "threads", "flavor");
    /// assert_eq!(o.var(), "UNIRUN_MODE");
    /// ```
    pub fn var(&self) -> &str {
        &self.var
    }

    /// The value that took effect, normalized (`true`, not `YES`).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun::EnvOverride::new("UNIRUN_MODE", "threads", "flavor");
    /// assert_eq!(o.value(), "threads");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The [`RuntimeConfig`](crate::RuntimeConfig) setting it affected, e.g. `max_workers`.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun::EnvOverride::new("UNIRUN_MODE", "threads", "flavor");
    /// assert_eq!(o.field(), "flavor");
    /// ```
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for EnvOverride {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} from {}", self.var, self.value, self.source)
    }
}

/// An `UNIRUN_*` value that a lenient reader skipped because it was invalid.
///
/// Produced when the implicit paths (the shared default executor, the
/// compat modules) read the environment, which must never fail; carried by
/// [`DecisionTrace::env_rejected`](crate::DecisionTrace::env_rejected). Prints
/// as `UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)`.
///
/// # Examples
///
/// ```
/// use unirun::RejectedVar;
///
/// let rejected = RejectedVar::new("UNIRUN_THREAD_MODE", "gli", "auto, gil or nogil");
/// assert_eq!(rejected.var(), "UNIRUN_THREAD_MODE");
/// assert_eq!(rejected.value(), "gli");
/// assert_eq!(rejected.expected(), "auto, gil or nogil");
/// assert_eq!(
///     rejected.to_string(),
///     r#"UNIRUN_THREAD_MODE="gli" (expected auto, gil or nogil)"#,
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct RejectedVar {
    var: String,
    value: String,
    expected: &'static str,
}

impl RejectedVar {
    /// A record that `var` held `value`, which is not `expected`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = unirun::RejectedVar::new("UNIRUN_MAX_WORKERS", "0", "an integer >= 1");
    /// assert_eq!(r.to_string(), r#"UNIRUN_MAX_WORKERS="0" (expected an integer >= 1)"#);
    /// ```
    pub fn new(var: impl Into<String>, value: impl Into<String>, expected: &'static str) -> Self {
        RejectedVar {
            var: var.into(),
            value: value.into(),
            expected,
        }
    }

    /// The variable's name.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = unirun::RejectedVar::new("UNIRUN_AUTO", "perhaps", "a boolean");
    /// assert_eq!(r.var(), "UNIRUN_AUTO");
    /// ```
    pub fn var(&self) -> &str {
        &self.var
    }

    /// The value as found, untrimmed.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = unirun::RejectedVar::new("UNIRUN_AUTO", "perhaps", "a boolean");
    /// assert_eq!(r.value(), "perhaps");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The accepted values, in words.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = unirun::RejectedVar::new("UNIRUN_AUTO", "perhaps", "a boolean");
    /// assert_eq!(r.expected(), "a boolean");
    /// ```
    pub fn expected(&self) -> &'static str {
        self.expected
    }
}

impl fmt::Display for RejectedVar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} (expected {})",
            self.var,
            crate::error::Quoted(&self.value),
            self.expected
        )
    }
}

/// Something wrong with one or two variables.
#[derive(Debug)]
pub(crate) enum Problem {
    Invalid {
        var: &'static str,
        value: String,
        expected: &'static str,
    },
    /// `UNIRUN_MODE` and `UNIRUN_FLAVOR` disagree; both are dropped.
    Conflict { mode: String, flavor: String },
}

impl Problem {
    /// The variables involved, for finding their lines in a `.env` file.
    pub(crate) fn vars(&self) -> &'static [Var] {
        match self {
            Problem::Invalid { var, .. } => match KNOWN.iter().position(|k| k.name == *var) {
                Some(i) => &KNOWN[i..=i],
                None => &[],
            },
            Problem::Conflict { .. } => &KNOWN[0..2],
        }
    }

    pub(crate) fn into_error(self) -> Error {
        match self {
            Problem::Invalid {
                var,
                value,
                expected,
            } => Error::InvalidEnv {
                var: var.into(),
                value,
                expected,
            },
            Problem::Conflict { mode, flavor } => Error::ConflictingEnv {
                var: MODE.name.into(),
                value: mode,
                other_var: FLAVOR.name.into(),
                other_value: flavor,
            },
        }
    }

    pub(crate) fn into_rejected(self, out: &mut Vec<RejectedVar>) {
        match self {
            Problem::Invalid {
                var,
                value,
                expected,
            } => out.push(RejectedVar::new(var, value, expected)),
            Problem::Conflict { mode, flavor } => {
                out.push(RejectedVar::new(MODE.name, mode, EXPECTED_SAME_AS_FLAVOR));
                out.push(RejectedVar::new(FLAVOR.name, flavor, EXPECTED_SAME_AS_MODE));
            }
        }
    }
}

/// `1/0`, `true/false`, `yes/no`, `on/off`, any ASCII case.
pub(crate) fn parse_bool(s: &str) -> Result<bool, &'static str> {
    const TRUE: [&str; 4] = ["1", "true", "yes", "on"];
    const FALSE: [&str; 4] = ["0", "false", "no", "off"];
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Ok(true)
    } else if FALSE.iter().any(|t| t.eq_ignore_ascii_case(s)) {
        Ok(false)
    } else {
        Err(EXPECTED_BOOL)
    }
}

/// What `UNIRUN_CLUSTER_URL` accepts.
pub(crate) const EXPECTED_CLUSTER_URL: &str =
    "a NATS server address such as nats://127.0.0.1:4222 (nats:// or tls://, host, numeric port)";

/// A NATS server address: `[nats://|tls://]host[:port]`, no whitespace.
pub(crate) fn parse_cluster_url(s: &str) -> Result<String, &'static str> {
    let rest = s
        .strip_prefix("nats://")
        .or_else(|| s.strip_prefix("tls://"))
        .unwrap_or(s);
    let valid = !rest.is_empty()
        && !rest.contains("://")
        && !rest.contains(char::is_whitespace)
        && rest
            .rsplit_once(':')
            .is_none_or(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if valid {
        Ok(s.to_string())
    } else {
        Err(EXPECTED_CLUSTER_URL)
    }
}

/// A decimal integer >= 1.
pub(crate) fn parse_workers(s: &str) -> Result<usize, &'static str> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(EXPECTED_WORKERS),
    }
}

pub(crate) fn parse_flavor(s: &str) -> Result<Flavor, &'static str> {
    s.parse().map_err(|_| Flavor::EXPECTED)
}

pub(crate) fn parse_thread_mode(s: &str) -> Result<ThreadMode, &'static str> {
    s.parse().map_err(|_| ThreadMode::EXPECTED)
}

pub(crate) fn parse_compat_mode(s: &str) -> Result<CompatMode, &'static str> {
    s.parse().map_err(|_| CompatMode::EXPECTED)
}

/// The `(key, value)` pairs of the process environment whose key starts with
/// `UNIRUN_`. A value that is not UTF-8 is passed on lossily converted, so it
/// fails to parse and is reported rather than skipped.
pub(crate) fn process_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(key, value)| {
            let key = key.into_string().ok()?;
            key.starts_with("UNIRUN_")
                .then(|| (key, value.to_string_lossy().into_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_unirun_vars_are_warned_with_the_closest_known_one() {
        let warnings = unknown_vars([
            "UNIRUN_MAX_WORKER",
            "UNIRUN_MAX_WORKERS",
            "PATH",
            "UNIRUN_THREADMODE",
        ]);
        assert_eq!(
            warnings,
            [
                "unirun: unknown variable UNIRUN_MAX_WORKER is ignored; did you mean UNIRUN_MAX_WORKERS?",
                "unirun: unknown variable UNIRUN_THREADMODE is ignored; did you mean UNIRUN_THREAD_MODE?",
            ]
        );
        assert!(unknown_vars(["UNIRUN_MODE", "HOME"]).is_empty());
    }
}
