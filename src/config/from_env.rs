//! Building a [`RuntimeConfig`] from `UNIRUN_*` variables: the process
//! environment, a list of pairs, or a `.env` file (the vocabulary, the value
//! parsers and the `.env` syntax live in `env`).

use std::path::Path;

use super::RuntimeConfig;
use crate::env::{
    parse_bool, parse_compat_mode, parse_flavor, parse_thread_mode, parse_workers, process_vars,
    Problem, RejectedVar, ValueSource, Var, AUTO, COMPAT_MODE, CPU_BOUND, FLAVOR, FORCE_PROCESS,
    FORCE_THREADS, IO_BOUND, KNOWN, MAX_BLOCKING, MAX_WORKERS, MODE, THREAD_MODE, TRACE,
};
use crate::env::{CLUSTER_URL, CLUSTER_WORKER};
use crate::error::Error;

/// Reads the process environment leniently: invalid values are skipped
/// and returned, for the implicit paths that must keep running (they put
/// the rejected variables in their trace).
pub(crate) fn from_env_lenient() -> (RuntimeConfig, Vec<RejectedVar>) {
    let (config, rejected) = from_vars_lenient(process_vars());
    (
        config.sourced(|_| crate::env::ValueSource::Environment),
        rejected,
    )
}

/// Like [`RuntimeConfig::from_vars`], but skips invalid values and returns
/// them instead of failing.
pub(crate) fn from_vars_lenient<I, K, V>(vars: I) -> (RuntimeConfig, Vec<RejectedVar>)
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let (config, problems) = parse_vars(vars);
    let mut rejected = Vec::new();
    for problem in problems {
        problem.into_rejected(&mut rejected);
    }
    (config, rejected)
}

/// Reads the known `UNIRUN_*` keys out of `vars`; other keys are ignored.
///
/// A key given twice keeps its last value, as a shell would. Values are
/// trimmed; an empty value leaves the setting unset. Invalid values are left
/// unset and reported, in the fixed order of [`KNOWN`].
pub(crate) fn parse_vars<I, K, V>(vars: I) -> (RuntimeConfig, Vec<Problem>)
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut p = Parser {
        found: Vec::new(),
        problems: Vec::new(),
    };
    for (key, value) in vars {
        if let Some(var) = KNOWN.iter().find(|k| k.name == key.as_ref()) {
            p.found.retain(|(v, _)| v != var);
            p.found.push((*var, value.as_ref().to_owned()));
        }
    }

    let mut config = RuntimeConfig::default();
    let mode = p.get(MODE, parse_flavor);
    let alias = p.get(FLAVOR, parse_flavor);
    match (mode, alias) {
        (Some(m), Some(a)) if m != a => {
            let mode = p.raw(MODE).unwrap_or_default().to_owned();
            let flavor = p.raw(FLAVOR).unwrap_or_default().to_owned();
            p.problems.push(Problem::Conflict { mode, flavor });
        }
        (Some(f), _) | (None, Some(f)) => config = config.flavor(f),
        (None, None) => {}
    }
    if let Some(v) = p.get(AUTO, parse_bool) {
        config = config.auto(v);
    }
    if let Some(v) = p.get(CPU_BOUND, parse_bool) {
        config = config.cpu_bound(v);
    }
    if let Some(v) = p.get(IO_BOUND, parse_bool) {
        config = config.io_bound(v);
    }
    if let Some(v) = p.get(MAX_WORKERS, parse_workers) {
        config = config.max_workers(v);
    }
    if let Some(v) = p.get(MAX_BLOCKING, parse_workers) {
        config = config.max_blocking(v);
    }
    if let Some(v) = p.get(THREAD_MODE, parse_thread_mode) {
        config = config.thread_mode(v);
    }
    if let Some(v) = p.get(FORCE_THREADS, parse_bool) {
        config = config.force_threads(v);
    }
    if let Some(v) = p.get(FORCE_PROCESS, parse_bool) {
        config = config.force_process(v);
    }
    if let Some(v) = p.get(COMPAT_MODE, parse_compat_mode) {
        config = config.compat_mode(v);
    }
    // Read where it is used (`observe`); only checked here, so a bad value
    // is reported like any other.
    let _ = p.get(TRACE, crate::observe::parse_trace);
    let _ = p.get(CLUSTER_URL, crate::env::parse_cluster_url);
    let _ = p.get(CLUSTER_WORKER, parse_bool);
    (config, p.problems)
}

struct Parser {
    /// The last value of each known variable present.
    found: Vec<(Var, String)>,
    problems: Vec<Problem>,
}

impl Parser {
    fn raw(&self, var: Var) -> Option<&str> {
        self.found
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, raw)| raw.as_str())
    }

    /// Parses `var` if it is present and not blank; records a problem if it
    /// does not parse.
    fn get<T>(&mut self, var: Var, parse: fn(&str) -> Result<T, &'static str>) -> Option<T> {
        let raw = self.raw(var)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return None;
        }
        match parse(trimmed) {
            Ok(v) => Some(v),
            Err(expected) => {
                let value = raw.to_owned();
                self.problems.push(Problem::Invalid {
                    var: var.name,
                    value,
                    expected,
                });
                None
            }
        }
    }
}

/// One `KEY=value` entry of a `.env` file.
struct Entry {
    key: String,
    value: String,
    /// The real environment's value replaced the file's.
    from_real_env: bool,
}

/// Reads a `.env` file the dotenv way, then its `UNIRUN_*` keys.
///
/// The file is split by `dotenvy` (iterated: the process environment is
/// never written). A variable also set in the real environment takes the
/// real environment's value, as dotenv does. Bytes that are not UTF-8 are
/// replaced, so they only matter on a line unirun reads (where the value
/// then fails to parse and is reported). Every failure is an
/// [`Error::EnvFile`] naming `path`, and the line when there is one.
///
/// Linear in the file's size: each entry costs a constant amount of work
/// (one lookup in the real environment, a bounded scan of the known keys),
/// and a line number, which needs a scan of the text, is looked up once,
/// for the one error reported, never per entry.
pub(crate) fn read_env_file(path: &Path) -> Result<RuntimeConfig, Error> {
    let file_error = |line: Option<usize>, reason: String| Error::EnvFile {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| file_error(None, e.to_string()))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut entries: Vec<Entry> = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok((key, value)) => entries.push(Entry {
                key,
                value,
                from_real_env: false,
            }),
            Err(dotenvy::Error::LineParse(bad, at)) => {
                let first = bad.lines().next().unwrap_or_default().trim_end();
                let line = text
                    .lines()
                    .position(|l| l.trim_end() == first)
                    .map(|i| i + 1);
                let reason = format!(
                    "cannot parse {} (at character {at})",
                    crate::error::Quoted(first)
                );
                return Err(file_error(line, reason));
            }
            Err(err) => return Err(file_error(None, err.to_string())),
        }
    }
    // The real environment wins over the file for the keys both define.
    for entry in &mut entries {
        if let Some(real) = std::env::var_os(&entry.key) {
            entry.value = real.to_string_lossy().into_owned();
            entry.from_real_env = true;
        }
    }
    for warning in crate::env::unknown_vars(entries.iter().map(|e| &e.key)) {
        crate::observe::env_warning(&format!("{warning} (in {})", path.display()));
    }
    let (config, problems) = parse_vars(entries.iter().map(|e| (&e.key, &e.value)));
    match problems.into_iter().next() {
        None => Ok(config.sourced(|field| {
            // The last definition of a variable feeding `field` decides.
            let real = entries
                .iter()
                .rev()
                .find(|e| KNOWN.iter().any(|v| v.field == field && v.name == e.key))
                .is_some_and(|e| e.from_real_env);
            if real {
                ValueSource::Environment
            } else {
                ValueSource::EnvFile(path.to_path_buf())
            }
        })),
        Some(problem) => {
            // Point at the last definition of the variable(s) involved
            // (one scan of the text, on this error path only).
            let line = entries
                .iter()
                .rev()
                .find(|e| problem.vars().iter().any(|v| v.name == e.key))
                .and_then(|e| definition_line(text, &e.key));
            Err(file_error(line, problem.into_error().to_string()))
        }
    }
}

/// The 1-based line of the last definition of `key` in a `.env` text.
fn definition_line(text: &str, key: &str) -> Option<usize> {
    if cfg!(test) {
        LINES_SCANNED.with(|n| n.set(n.get() + text.lines().count()));
    }
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim_start();
            let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|(i, _)| i + 1)
        .last()
}

thread_local! {
    /// How many lines [`definition_line`] scanned on this thread: the test
    /// of the reader's linear cost counts them (only test builds count).
    pub(super) static LINES_SCANNED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
