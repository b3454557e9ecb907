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
///     "invalid flavor=fibers: expected auto, threads, processes, smol, tokio, shared or cluster",
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
    /// Two `#[unirun::remote]` functions of this build share a name or an
    /// address, so a call of one could run the other: a cluster scope or
    /// worker refuses to start.
    ///
    /// Displays as ``two #[unirun::remote] functions share one address:
    /// `app::a:3` and `app::b:9` (...)``.
    #[cfg(feature = "cluster-backend")]
    RemoteConflict(unirun_cluster::registry::Conflict),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidEnv {
                var,
                value,
                expected,
            } => write!(f, "invalid {var}={}: expected {expected}", Quoted(value)),
            Error::ConflictingEnv {
                var,
                value,
                other_var,
                other_value,
            } => write!(
                f,
                "conflicting {var}={} and {other_var}={}: \
                 {other_var} is an alias of {var}; set only one of them, or both to the same value",
                Quoted(value),
                Quoted(other_value),
            ),
            Error::InvalidSetting {
                setting,
                value,
                expected,
            } => {
                if is_plain(value) && value.len() <= QUOTE_LIMIT {
                    write!(f, "invalid {setting}={value}: expected {expected}")
                } else {
                    write!(
                        f,
                        "invalid {setting}={}: expected {expected}",
                        Quoted(value)
                    )
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
            Error::EnvFile { .. } | Error::Io(_) => self.fmt_std(f),
            #[cfg(feature = "cluster-backend")]
            Error::RemoteConflict(conflict) => write!(f, "{conflict}"),
        }
    }
}

/// How many characters of a rejected value a message quotes.
pub(crate) const QUOTE_LIMIT: usize = 64;

/// A rejected value in a message: quoted and escaped, and cut after
/// [`QUOTE_LIMIT`] characters with the full length said, so a huge value
/// (a 50 MB `.env` line) cannot make a huge message.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0;
        match value.char_indices().nth(QUOTE_LIMIT) {
            None => write!(f, "{value:?}"),
            Some((cut, _)) => write!(f, "{:?}... ({} bytes)", &value[..cut], value.len()),
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

/// What only a `std` build has: the variants that carry `std` types, and
/// the conversions from and to `io::Error`.
#[cfg(feature = "std")]
mod with_std {
    use core::fmt;

    use super::Error;

    impl Error {
        /// Displays the variants that exist only with `std`.
        pub(super) fn fmt_std(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Error::EnvFile {
                    path,
                    line: Some(line),
                    reason,
                } => write!(
                    f,
                    "invalid env file {} at line {line}: {reason}",
                    path.display()
                ),
                Error::EnvFile {
                    path,
                    line: None,
                    reason,
                } => write!(f, "cannot read env file {}: {reason}", path.display()),
                Error::Io(err) => write!(f, "I/O error: {err}"),
                _ => unreachable!("fmt_std is called for the std variants only"),
            }
        }
    }

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

    impl From<Error> for std::io::Error {
        /// Turns a unirun error into an `io::Error` for functions that return
        /// `io::Result` (`?` works): OS errors come back as they were, invalid
        /// settings and env files are `InvalidInput`, a missing backend is
        /// `Unsupported`.
        ///
        /// # Examples
        ///
        /// ```
        /// fn start() -> std::io::Result<unirun::Run> {
        ///     Ok(unirun::Run::builder().max_workers(0).build()?)
        /// }
        /// let err = start().unwrap_err();
        /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        /// assert!(err.to_string().contains("max_workers"));
        /// ```
        fn from(err: Error) -> Self {
            use std::io::ErrorKind;
            let kind = match &err {
                Error::Io(_) => {
                    let Error::Io(io) = err else { unreachable!() };
                    return io;
                }
                Error::BackendUnavailable { .. } => ErrorKind::Unsupported,
                _ => ErrorKind::InvalidInput,
            };
            std::io::Error::new(kind, err)
        }
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

    #[test]
    fn huge_values_are_elided_in_messages() {
        let huge = "x".repeat(50 * 1024 * 1024);
        let err = Error::InvalidEnv {
            var: "UNIRUN_MAX_WORKERS".into(),
            value: huge.clone(),
            expected: "an integer >= 1",
        };
        let msg = err.to_string();
        assert!(msg.len() < 200, "{} bytes", msg.len());
        assert!(msg.contains(&"x".repeat(64)));
        assert!(msg.contains("52428800 bytes"), "{msg}");
        let setting = Error::InvalidSetting {
            setting: "flavor",
            value: huge,
            expected: "a flavor",
        };
        assert!(setting.to_string().len() < 200);
        // Short values are quoted whole.
        let short = Error::InvalidEnv {
            var: "UNIRUN_AUTO".into(),
            value: "perhaps".into(),
            expected: "a bool",
        };
        assert_eq!(
            short.to_string(),
            r#"invalid UNIRUN_AUTO="perhaps": expected a bool"#
        );
    }

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

    #[test]
    fn io_errors_round_trip_and_settings_are_invalid_input() {
        let io: std::io::Error = Error::from(std::io::Error::other("refused")).into();
        assert_eq!(io.to_string(), "refused");
        let unavailable: std::io::Error = Error::BackendUnavailable {
            flavor: Flavor::Smol,
            feature: "smol-backend",
        }
        .into();
        assert_eq!(unavailable.kind(), std::io::ErrorKind::Unsupported);
    }
}
