//! Reading `UNIRUN_*` values, from the process environment, from `.env`
//! files, or from any list of `(key, value)` pairs.
//!
//! Parsing is split in two so every entry point shares one set of rules:
//! [`parse_vars`] turns pairs into a [`RuntimeConfig`] plus a list of
//! problems, and each caller decides whether a problem is an error (strict
//! readers) or a [`RejectedVar`] (lenient readers). [`parse_dotenv`] only
//! splits a `.env` file into entries; it knows nothing about unirun's keys.

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

/// Every variable unirun reads, in the order they are checked (so the first
/// error reported does not depend on the environment's iteration order).
pub(crate) static KNOWN: [Var; 11] = [
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
    for key in keys {
        let key = key.as_ref();
        if !key.starts_with("UNIRUN_") || KNOWN.iter().any(|v| v.name == key) {
            continue;
        }
        // Variables of unirun's own tooling, not settings.
        if key.starts_with("UNIRUN_TEST") || key.starts_with("UNIRUN_BENCH") {
            continue;
        }
        let closest = KNOWN
            .iter()
            .min_by_key(|v| edit_distance(v.name, key))
            .map_or("", |v| v.name);
        let warning = format!("unirun: unknown variable {key} is ignored; did you mean {closest}?");
        if !out.contains(&warning) {
            out.push(warning);
        }
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
/// `UNIRUN_MAX_WORKERS=2`.
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
/// assert_eq!(applied.to_string(), "UNIRUN_MAX_WORKERS=2");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct EnvOverride {
    var: String,
    value: String,
    field: &'static str,
}

impl EnvOverride {
    /// A record that `var` set `field` to `value`.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = unirun::EnvOverride::new("UNIRUN_FORCE_THREADS", "true", "force_threads");
    /// assert_eq!(o.to_string(), "UNIRUN_FORCE_THREADS=true");
    /// ```
    pub fn new(var: impl Into<String>, value: impl Into<String>, field: &'static str) -> Self {
        EnvOverride {
            var: var.into(),
            value: value.into(),
            field,
        }
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

    /// The [`RuntimeConfig`] setting it affected, e.g. `max_workers`.
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
        write!(f, "{}={}", self.var, self.value)
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

/// One `KEY=value` line of a `.env` file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: String,
    pub(crate) value: String,
    /// 1-based.
    pub(crate) line: usize,
}

/// Splits a `.env` file into entries, or returns the 1-based line number and
/// reason of the first syntax error.
///
/// Accepted: blank lines; `#` comment lines; `KEY=value` with an optional
/// `export ` prefix; values unquoted (an inline comment starts at a `#` that
/// follows whitespace, surrounding whitespace is dropped), in single quotes
/// (literal) or in double quotes (`\"`, `\\`, `\n`, `\r`, `\t` escapes). A
/// quoted value must close on its own line. `${VAR}` is not expanded.
pub(crate) fn parse_dotenv(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut rest = raw.trim_start();
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if let Some(after) = rest.strip_prefix("export") {
            if after.starts_with(char::is_whitespace) {
                rest = after.trim_start();
            }
        }
        let Some((key, value)) = rest.split_once('=') else {
            return Err((line, format!("expected KEY=value, found {:?}", raw.trim())));
        };
        let key = key.trim_end();
        if !is_valid_key(key) {
            return Err((
                line,
                format!("invalid key {key:?}: expected letters, digits, '_' and '.'"),
            ));
        }
        let value = parse_value(value.trim_start()).map_err(|reason| (line, reason))?;
        entries.push(Entry {
            key: key.to_owned(),
            value,
            line,
        });
    }
    Ok(entries)
}

fn is_valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn parse_value(s: &str) -> Result<String, String> {
    let mut chars = s.char_indices();
    let (value, after) = match chars.next() {
        Some((_, '\'')) => match s[1..].find('\'') {
            Some(end) => (s[1..1 + end].to_owned(), &s[end + 2..]),
            None => return Err("unterminated single quote".to_owned()),
        },
        Some((_, '"')) => {
            let mut value = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, c @ ('"' | '\\'))) => value.push(c),
                        Some((_, c)) => {
                            value.push('\\');
                            value.push(c);
                        }
                        None => value.push('\\'),
                    },
                    c => value.push(c),
                }
            }
            match end {
                Some(end) => (value, &s[end..]),
                None => return Err("unterminated double quote".to_owned()),
            }
        }
        _ => {
            let mut prev_space = true;
            let mut cut = s.len();
            for (i, c) in s.char_indices() {
                if c == '#' && prev_space {
                    cut = i;
                    break;
                }
                prev_space = c.is_whitespace();
            }
            return Ok(s[..cut].trim_end().to_owned());
        }
    };
    let after = after.trim_start();
    if after.is_empty() || after.starts_with('#') {
        Ok(value)
    } else {
        Err(format!(
            "unexpected {after:?} after the closing quote; put a comment after ' #'"
        ))
    }
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

    fn entries(text: &str) -> Vec<(String, String)> {
        parse_dotenv(text)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    #[test]
    fn dotenv_values() {
        let text = concat!(
            "\u{feff}# top\n",
            "\n",
            "  A=1\n",
            "export B = two words  # note\r\n",
            "C='x # y'\n",
            "D=\"q \\\"z\\\" \\n\" # c\n",
            "E=a#b\n",
            "F=\n",
            "G= # only comment\n",
            "export=3\n",
        );
        assert_eq!(
            entries(text),
            vec![
                pair("A", "1"),
                pair("B", "two words"),
                pair("C", "x # y"),
                pair("D", "q \"z\" \n"),
                pair("E", "a#b"),
                pair("F", ""),
                pair("G", ""),
                pair("export", "3"),
            ]
        );
    }

    #[test]
    fn dotenv_errors_name_the_line() {
        assert_eq!(parse_dotenv("A=1\nB\n").unwrap_err().0, 2);
        assert_eq!(parse_dotenv("A=\"open\n").unwrap_err().0, 1);
        assert_eq!(parse_dotenv("\nA='open\n").unwrap_err().0, 2);
        assert_eq!(parse_dotenv("A=\"x\" y\n").unwrap_err().0, 1);
        assert_eq!(parse_dotenv("1A=x\n").unwrap_err().0, 1);
        assert_eq!(parse_dotenv("MY KEY=x\n").unwrap_err().0, 1);
        assert_eq!(parse_dotenv("=x\n").unwrap_err().0, 1);
    }

    #[test]
    fn bools() {
        for t in ["1", "true", "TRUE", "Yes", "on"] {
            assert_eq!(parse_bool(t), Ok(true));
        }
        for f in ["0", "false", "No", "OFF"] {
            assert_eq!(parse_bool(f), Ok(false));
        }
        for bad in ["2", "y", "perhaps", "enabled"] {
            assert_eq!(parse_bool(bad), Err(EXPECTED_BOOL));
        }
    }

    #[test]
    fn workers() {
        assert_eq!(parse_workers("8"), Ok(8));
        for bad in ["0", "-1", "abc", "1.5", "99999999999999999999999"] {
            assert_eq!(parse_workers(bad), Err(EXPECTED_WORKERS));
        }
    }
}
