//! The small setting enums: [`Flavor`], [`ThreadMode`] and [`CompatMode`].
//!
//! They exist in every build (`no_std` included), parse case-insensitively
//! from the words that `UNIRUN_*` variables use, and print as those same
//! lowercase words.

use alloc::string::ToString;
use core::fmt;
use core::str::FromStr;

use crate::error::Error;

/// Which execution model a scope runs on.
///
/// Every variant exists in every build; asking for one whose cargo feature is
/// off fails with [`Error::BackendUnavailable`] naming the feature, never a
/// silent downgrade. [`Flavor::feature`] and [`Flavor::is_available`] tell in
/// advance.
///
/// Parses (case-insensitive, surrounding whitespace ignored) from exactly
/// `auto`, `threads`, `processes`, `smol`, `tokio`, `shared` and `cluster`, and prints as
/// those lowercase words.
///
/// # Examples
///
/// ```
/// use unirun::Flavor;
///
/// let flavor: Flavor = " Threads ".parse()?;
/// assert_eq!(flavor, Flavor::Threads);
/// assert_eq!(flavor.to_string(), "threads");
/// assert_eq!(Flavor::default(), Flavor::Auto);
/// assert!("fibers".parse::<Flavor>().is_err());
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum Flavor {
    /// Let the scheduler decide (the default).
    #[default]
    Auto,
    /// unirun's own work-stealing pool on OS threads.
    Threads,
    /// Forked processes (unix, cargo feature `process-backend`).
    Processes,
    /// An async-executor driven by threads (cargo feature `smol-backend`).
    Smol,
    /// A tokio runtime, ambient or owned (cargo feature `tokio-backend`).
    Tokio,
    /// The shared default pool used by the top-level helpers.
    Shared,
    /// `Run::call` carried to worker processes on other machines by NATS
    /// JetStream (cargo feature `cluster-backend`, which needs Rust 1.89;
    /// see `unirun::cluster`). Its `spawn`/`spawn_blocking` tasks run on a
    /// thread pool of its own.
    Cluster,
}

impl Flavor {
    /// The accepted spellings, as error messages quote them.
    pub(crate) const EXPECTED: &'static str =
        "auto, threads, processes, smol, tokio, shared or cluster";

    /// The lowercase name, as [`Display`](fmt::Display) prints it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::Flavor::Smol.as_str(), "smol");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Flavor::Auto => "auto",
            Flavor::Threads => "threads",
            Flavor::Processes => "processes",
            Flavor::Smol => "smol",
            Flavor::Tokio => "tokio",
            Flavor::Shared => "shared",
            Flavor::Cluster => "cluster",
        }
    }

    /// The optional cargo feature of `unirun` that provides this flavor, or
    /// `None` for the flavors that come with the default `std` feature.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::Flavor;
    ///
    /// assert_eq!(Flavor::Tokio.feature(), Some("tokio-backend"));
    /// assert_eq!(Flavor::Threads.feature(), None);
    /// ```
    pub const fn feature(self) -> Option<&'static str> {
        match self {
            Flavor::Processes => Some("process-backend"),
            Flavor::Smol => Some("smol-backend"),
            Flavor::Tokio => Some("tokio-backend"),
            Flavor::Cluster => Some("cluster-backend"),
            Flavor::Auto | Flavor::Threads | Flavor::Shared => None,
        }
    }

    /// Whether this build can run the flavor.
    ///
    /// `Auto`, `Threads` and `Shared` are available whenever the `std` feature
    /// is on (the default); the others when their [`feature`](Self::feature)
    /// is.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::Flavor;
    ///
    /// let flavor = Flavor::Smol;
    /// if !flavor.is_available() {
    ///     println!("rebuild with the {:?} feature of unirun", flavor.feature());
    /// }
    /// ```
    pub const fn is_available(self) -> bool {
        match self {
            Flavor::Auto | Flavor::Threads | Flavor::Shared => cfg!(feature = "std"),
            Flavor::Processes => cfg!(all(unix, feature = "process-backend")),
            Flavor::Smol => cfg!(feature = "smol-backend"),
            Flavor::Tokio => cfg!(feature = "tokio-backend"),
            Flavor::Cluster => cfg!(all(unix, feature = "cluster-backend")),
        }
    }

    /// Returns the flavor itself if this build can run it, else
    /// [`Error::BackendUnavailable`] naming the cargo feature to enable.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::{Error, Flavor};
    ///
    /// match Flavor::Smol.ensure_available() {
    ///     Ok(flavor) => assert_eq!(flavor, Flavor::Smol),
    ///     Err(err) => {
    ///         assert!(matches!(err, Error::BackendUnavailable { feature: "smol-backend", .. }));
    ///         assert_eq!(
    ///             err.to_string(),
    ///             r#"the smol backend is not compiled in: enable the cargo feature "smol-backend" of unirun"#,
    ///         );
    ///     }
    /// }
    /// ```
    pub fn ensure_available(self) -> Result<Flavor, Error> {
        match (self.is_available(), self.feature()) {
            (true, _) => Ok(self),
            (false, Some(feature)) => Err(Error::BackendUnavailable {
                flavor: self,
                feature,
            }),
            (false, None) => Err(Error::BackendUnavailable {
                flavor: self,
                feature: "std",
            }),
        }
    }
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Flavor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            Flavor::Auto,
            Flavor::Threads,
            Flavor::Processes,
            Flavor::Smol,
            Flavor::Tokio,
            Flavor::Shared,
            Flavor::Cluster,
        ];
        parse_word(s, &all, Flavor::as_str).ok_or_else(|| invalid("flavor", s, Flavor::EXPECTED))
    }
}

/// How many of a scope's tasks may run at the same instant.
///
/// Rust has no GIL; this maps the Python toggle to its observable meaning.
/// `Gil` runs the scope serialized: at most one of its tasks runs at any
/// instant. `Nogil` is fully parallel.
/// `Auto` (the default) means `Nogil`.
///
/// Chosen in code, `Gil` serializes the scope's async polls and its
/// blocking closures ([`allow_threads`](crate::allow_threads) lets the
/// others in at once around a wait), and never lets another in while one
/// sleeps elsewhere. Chosen by the operator (`UNIRUN_THREAD_MODE=gil`), it
/// serializes the async polls only, and a poll asleep in a blocking call
/// lets the next in (as CPython's GIL is released around blocking calls),
/// so the switch never turns a working program into a deadlock; the compat modules'
/// threads are never serialized. The `gil` rules and why they cannot
/// deadlock are in the docs of [`allow_threads`](crate::allow_threads).
///
/// Parses (case-insensitive, trimmed) from `auto`, `gil` and `nogil`.
///
/// # Examples
///
/// ```
/// use unirun::ThreadMode;
///
/// let mode: ThreadMode = "GIL".parse()?;
/// assert!(mode.is_serialized());
/// assert!(!ThreadMode::default().is_serialized());
/// assert_eq!(ThreadMode::Nogil.to_string(), "nogil");
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum ThreadMode {
    /// Let unirun decide; today that is `Nogil`.
    #[default]
    Auto,
    /// Serialized: one task of the scope at a time.
    Gil,
    /// Fully parallel.
    Nogil,
}

impl ThreadMode {
    pub(crate) const EXPECTED: &'static str = "auto, gil or nogil";

    /// The lowercase name, as [`Display`](fmt::Display) prints it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::ThreadMode::Gil.as_str(), "gil");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            ThreadMode::Auto => "auto",
            ThreadMode::Gil => "gil",
            ThreadMode::Nogil => "nogil",
        }
    }

    /// Whether a scope in this mode runs at most one task at a time
    /// (true only for `Gil`).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun::ThreadMode;
    ///
    /// assert!(ThreadMode::Gil.is_serialized());
    /// assert!(!ThreadMode::Auto.is_serialized());
    /// ```
    pub const fn is_serialized(self) -> bool {
        matches!(self, ThreadMode::Gil)
    }
}

impl fmt::Display for ThreadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ThreadMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [ThreadMode::Auto, ThreadMode::Gil, ThreadMode::Nogil];
        parse_word(s, &all, ThreadMode::as_str)
            .ok_or_else(|| invalid("thread_mode", s, ThreadMode::EXPECTED))
    }
}

/// Where the compat modules send work.
///
/// `Managed` (the default) routes `compat::*` calls to unirun's pools;
/// `Passthrough` sends them straight to the original API.
///
/// Parses (case-insensitive, trimmed) from `managed` and `passthrough`.
///
/// # Examples
///
/// ```
/// use unirun::CompatMode;
///
/// assert_eq!("passthrough".parse::<CompatMode>()?, CompatMode::Passthrough);
/// assert_eq!(CompatMode::default(), CompatMode::Managed);
/// assert_eq!(CompatMode::Managed.to_string(), "managed");
/// # Ok::<(), unirun::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(
    feature = "std",
    derive(serde::Serialize),
    serde(rename_all = "lowercase")
)]
#[non_exhaustive]
pub enum CompatMode {
    /// Compat calls run on unirun's pools.
    #[default]
    Managed,
    /// Compat calls go to the original library unchanged.
    Passthrough,
}

impl CompatMode {
    pub(crate) const EXPECTED: &'static str = "managed or passthrough";

    /// The lowercase name, as [`Display`](fmt::Display) prints it.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(unirun::CompatMode::Passthrough.as_str(), "passthrough");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            CompatMode::Managed => "managed",
            CompatMode::Passthrough => "passthrough",
        }
    }
}

impl fmt::Display for CompatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [CompatMode::Managed, CompatMode::Passthrough];
        parse_word(s, &all, CompatMode::as_str)
            .ok_or_else(|| invalid("compat_mode", s, CompatMode::EXPECTED))
    }
}

/// Finds the variant whose name equals `s`, ignoring ASCII case and
/// surrounding whitespace.
fn parse_word<T: Copy>(s: &str, all: &[T], name: fn(T) -> &'static str) -> Option<T> {
    let s = s.trim();
    all.iter()
        .copied()
        .find(|&v| name(v).eq_ignore_ascii_case(s))
}

fn invalid(setting: &'static str, value: &str, expected: &'static str) -> Error {
    Error::InvalidSetting {
        setting,
        value: value.to_string(),
        expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn flavor_round_trips_through_display() {
        for flavor in [
            Flavor::Auto,
            Flavor::Threads,
            Flavor::Processes,
            Flavor::Smol,
            Flavor::Tokio,
            Flavor::Shared,
            Flavor::Cluster,
        ] {
            assert_eq!(flavor.to_string().parse::<Flavor>().unwrap(), flavor);
            assert_eq!(
                flavor.to_string().to_uppercase().parse::<Flavor>().unwrap(),
                flavor
            );
        }
    }

    #[test]
    fn near_misses_are_rejected() {
        for bad in ["thread", "process", "", "auto threads", "tokio1"] {
            let err = bad.parse::<Flavor>().unwrap_err();
            assert!(err.to_string().contains(Flavor::EXPECTED), "{err}");
        }
        assert!("gli".parse::<ThreadMode>().is_err());
        assert!("maybe".parse::<CompatMode>().is_err());
    }

    #[cfg(not(all(unix, feature = "cluster-backend")))]
    #[test]
    fn cluster_without_its_feature_names_it() {
        let err = Flavor::Cluster.ensure_available().unwrap_err();
        assert!(matches!(
            err,
            Error::BackendUnavailable {
                flavor: Flavor::Cluster,
                feature: "cluster-backend"
            }
        ));
        assert_eq!(
            err.to_string(),
            r#"the cluster backend is not compiled in: enable the cargo feature "cluster-backend" of unirun"#
        );
    }

    #[cfg(feature = "std")]
    #[test]
    fn std_flavors_are_available() {
        for flavor in [Flavor::Auto, Flavor::Threads, Flavor::Shared] {
            assert_eq!(flavor.ensure_available().unwrap(), flavor);
        }
    }

    /// Built only where tokio is compiled out (`.ci/run` tests the crate
    /// with default features too), so it always reaches its assertion.
    #[cfg(not(feature = "tokio-backend"))]
    #[test]
    fn unavailable_flavor_names_its_feature() {
        assert!(!Flavor::Tokio.is_available());
        let err = Flavor::Tokio.ensure_available().unwrap_err();
        assert_eq!(
            err.to_string(),
            "the tokio backend is not compiled in: enable the cargo feature \"tokio-backend\" of unirun"
        );
    }
}
