//! Reading the setting words into [`Flavor`], [`ThreadMode`] and
//! [`CompatMode`], and checking a flavor is compiled in: each failure is an
//! [`Error`] naming the setting, the value and what is accepted. Apart from
//! `flavor.rs` so that the enums and the error type (which names a
//! flavor) do not import each other.

use alloc::string::ToString;
use core::str::FromStr;

use crate::error::Error;
use crate::flavor::{CompatMode, Flavor, ThreadMode};

impl Flavor {
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

impl FromStr for ThreadMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [ThreadMode::Auto, ThreadMode::Gil, ThreadMode::Nogil];
        parse_word(s, &all, ThreadMode::as_str)
            .ok_or_else(|| invalid("thread_mode", s, ThreadMode::EXPECTED))
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
    use crate::flavor::{CompatMode, Flavor, ThreadMode};
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

    /// Whatever the build's features, each flavor reaches one of the two
    /// assertions: an available flavor comes back as itself, a missing one
    /// names its feature (`.ci/run` tests with default features, where the
    /// tokio, smol, process and cluster flavors are missing, and with all).
    #[test]
    fn each_flavor_is_available_or_names_its_feature() {
        let flavors = [
            (Flavor::Auto, cfg!(feature = "std"), "auto", "std"),
            (Flavor::Threads, cfg!(feature = "std"), "threads", "std"),
            (Flavor::Shared, cfg!(feature = "std"), "shared", "std"),
            (
                Flavor::Processes,
                cfg!(all(unix, feature = "process-backend")),
                "process",
                "process-backend",
            ),
            (
                Flavor::Smol,
                cfg!(feature = "smol-backend"),
                "smol",
                "smol-backend",
            ),
            (
                Flavor::Tokio,
                cfg!(feature = "tokio-backend"),
                "tokio",
                "tokio-backend",
            ),
            (
                Flavor::Cluster,
                cfg!(all(unix, feature = "cluster-backend")),
                "cluster",
                "cluster-backend",
            ),
        ];
        for (flavor, compiled_in, backend, feature) in flavors {
            assert_eq!(flavor.is_available(), compiled_in, "{flavor}");
            match flavor.ensure_available() {
                Ok(available) => assert_eq!(available, flavor),
                Err(err) => {
                    assert!(matches!(
                        err,
                        crate::Error::BackendUnavailable { flavor: f, feature: named }
                            if f == flavor && named == feature
                    ));
                    assert_eq!(
                        err.to_string(),
                        alloc::format!(
                            "the {backend} backend is not compiled in: \
                             enable the cargo feature \"{feature}\" of unirun"
                        )
                    );
                }
            }
        }
    }
}
