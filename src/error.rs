//! The facade's error type.

use alloc::string::String;
use core::fmt;

use crate::flavor::Flavor;

/// Everything that can go wrong while configuring or building a unirun scope.
///
/// Each message is a sentence that names what is wrong and what would be
/// accepted instead, e.g. `invalid UNIRUN_THREAD_MODE="gli": expected auto,
/// gil or nogil`. `Error` is `Send + Sync + 'static`, so it fits in
/// `Box<dyn std::error::Error + Send + Sync>` and `anyhow`-style wrappers.
///
/// Errors from tasks themselves are not here: a task's panic, cancellation or
/// crash is reported through its `JoinHandle`.
///
/// # Examples
///
/// ```
/// use unirun::{Error, Flavor};
///
/// let err = "fibers".parse::<Flavor>().unwrap_err();
/// assert!(matches!(err, Error::InvalidSetting { setting: "flavor", .. }));
/// assert_eq!(
///     err.to_string(),
///     "invalid flavor=fibers: expected auto, threads, processes, smol, tokio or shared",
/// );
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An `UNIRUN_*` environment variable (or `.env` entry) has a value
    /// outside its accepted set.
    ///
    /// Displays as `invalid UNIRUN_THREAD_MODE="gli": expected auto, gil or
    /// nogil`.
    InvalidEnv {
        /// The variable's name, e.g. `UNIRUN_THREAD_MODE`.
        var: String,
        /// The value as found (before trimming).
        value: String,
        /// The accepted values, in words.
        expected: &'static str,
    },
    /// Two variables that name the same setting (`UNIRUN_MODE` and its alias
    /// `UNIRUN_FLAVOR`) are both set, to different values.
    ConflictingEnv {
        /// The primary variable, e.g. `UNIRUN_MODE`.
        var: String,
        /// Its value.
        value: String,
        /// The alias, e.g. `UNIRUN_FLAVOR`.
        other_var: String,
        /// The alias's value.
        other_value: String,
    },
    /// A setting made in code, or a string parsed with `FromStr`, is
    /// impossible.
    ///
    /// Displays as `invalid max_workers=0: expected an integer >= 1`.
    InvalidSetting {
        /// The setting's name, e.g. `max_workers`.
        setting: &'static str,
        /// The rejected value.
        value: String,
        /// The accepted values, in words.
        expected: &'static str,
    },
    /// The requested flavor's backend is not compiled into this build.
    ///
    /// Displays as `the smol backend is not compiled in: enable the cargo
    /// feature "smol-backend" of unirun`.
    BackendUnavailable {
        /// The flavor that was asked for.
        flavor: Flavor,
        /// The cargo feature of `unirun` that provides it.
        feature: &'static str,
    },
    /// A `.env` file could not be read, has a syntax error, or holds an
    /// invalid `UNIRUN_*` value.
    #[cfg(feature = "std")]
    EnvFile {
        /// The file, as given.
        path: std::path::PathBuf,
        /// The 1-based line of the problem; `None` when the file could not be
        /// read at all.
        line: Option<usize>,
        /// What is wrong, in words.
        reason: String,
    },
    /// The operating system refused something unirun needed, such as a new
    /// thread. The `io::Error` is the [`source`](std::error::Error::source).
    #[cfg(feature = "std")]
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidEnv {
                var,
                value,
                expected,
            } => write!(f, "invalid {var}={value:?}: expected {expected}"),
            Error::ConflictingEnv {
                var,
                value,
                other_var,
                other_value,
            } => write!(
                f,
                "conflicting {var}={value:?} and {other_var}={other_value:?}: \
                 {other_var} is an alias of {var}; set only one of them, or both to the same value"
            ),
            Error::InvalidSetting {
                setting,
                value,
                expected,
            } => {
                if is_plain(value) {
                    write!(f, "invalid {setting}={value}: expected {expected}")
                } else {
                    write!(f, "invalid {setting}={value:?}: expected {expected}")
                }
            }
            Error::BackendUnavailable { flavor, feature } => {
                let backend = match flavor {
                    Flavor::Processes => "process",
                    other => other.as_str(),
                };
                write!(
                    f,
                    "the {backend} backend is not compiled in: \
                     enable the cargo feature \"{feature}\" of unirun"
                )
            }
            #[cfg(feature = "std")]
            Error::EnvFile {
                path,
                line: Some(line),
                reason,
            } => write!(
                f,
                "invalid env file {} at line {line}: {reason}",
                path.display()
            ),
            #[cfg(feature = "std")]
            Error::EnvFile {
                path,
                line: None,
                reason,
            } => write!(f, "cannot read env file {}: {reason}", path.display()),
            #[cfg(feature = "std")]
            Error::Io(err) => write!(f, "I/O error: {err}"),
        }
    }
}

/// Whether a value reads unambiguously without quotes.
fn is_plain(value: &str) -> bool {
    !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            #[cfg(feature = "std")]
            Error::Io(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(feature = "std")]
impl From<std::io::Error> for Error {
    /// Wraps an OS error as [`Error::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    /// use std::io;
    ///
    /// let err = unirun::Error::from(io::Error::from(io::ErrorKind::WouldBlock));
    /// assert!(matches!(err, unirun::Error::Io(_)));
    /// assert!(err.source().is_some());
    /// ```
    fn from(err: std::io::Error) -> Self {
        Error::Io(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn is_send_sync_static() {
        assert_send_sync_static::<Error>();
    }

    #[test]
    fn messages_name_what_is_wrong() {
        let err = Error::InvalidEnv {
            var: "UNIRUN_THREAD_MODE".into(),
            value: "gli".into(),
            expected: "auto, gil or nogil",
        };
        assert_eq!(
            err.to_string(),
            r#"invalid UNIRUN_THREAD_MODE="gli": expected auto, gil or nogil"#
        );

        let err = Error::InvalidSetting {
            setting: "max_workers",
            value: "0".into(),
            expected: "an integer >= 1",
        };
        assert_eq!(
            err.to_string(),
            "invalid max_workers=0: expected an integer >= 1"
        );

        let err = Error::InvalidSetting {
            setting: "flavor",
            value: " ".into(),
            expected: "x",
        };
        assert_eq!(err.to_string(), r#"invalid flavor=" ": expected x"#);

        let err = Error::BackendUnavailable {
            flavor: Flavor::Smol,
            feature: "smol-backend",
        };
        assert_eq!(
            err.to_string(),
            r#"the smol backend is not compiled in: enable the cargo feature "smol-backend" of unirun"#
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn env_file_messages_name_path_and_line() {
        let err = Error::EnvFile {
            path: "conf/.env".into(),
            line: Some(3),
            reason: "expected KEY=value".into(),
        };
        assert_eq!(
            err.to_string(),
            "invalid env file conf/.env at line 3: expected KEY=value"
        );
        let err = Error::EnvFile {
            path: "conf/.env".into(),
            line: None,
            reason: "no such file".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot read env file conf/.env: no such file"
        );
    }
}
