//! The cgroup CPU bandwidth limit type.

use std::cmp::Ordering;

/// Which cgroup hierarchy a quota was read from.
///
/// # Examples
///
/// ```
/// use unirun_platform::{CgroupQuota, CgroupVersion};
///
/// let v1 = CgroupQuota::new(CgroupVersion::V1, 50_000, 100_000).unwrap();
/// assert_eq!(v1.version, CgroupVersion::V1);
/// assert_ne!(v1.version, CgroupVersion::V2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// Legacy hierarchy: `cpu.cfs_quota_us` and `cpu.cfs_period_us` under a
    /// `cpu` controller mount.
    V1,
    /// Unified hierarchy: `cpu.max`.
    V2,
}

/// A cgroup CPU bandwidth limit: the group may run for `quota_us`
/// microseconds of CPU time every `period_us` microseconds.
///
/// Values produced by this crate always have a non-zero quota and period.
///
/// # Examples
///
/// ```
/// use unirun_platform::{CgroupQuota, CgroupVersion};
///
/// // `cpu.max` containing "250000 100000": 2.5 CPUs' worth of time.
/// let quota = CgroupQuota::new(CgroupVersion::V2, 250_000, 100_000).unwrap();
/// assert_eq!((quota.quota_us, quota.period_us), (250_000, 100_000));
/// assert_eq!(quota.cpus(), 3);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CgroupQuota {
    /// The hierarchy the limit was read from.
    pub version: CgroupVersion,
    /// CPU time allowed per period, in microseconds. Never zero.
    pub quota_us: u64,
    /// Length of the accounting period, in microseconds. Never zero.
    pub period_us: u64,
}

impl CgroupQuota {
    /// Creates a quota, or returns `None` if `quota_us` or `period_us` is
    /// zero (neither is a meaningful limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_platform::{CgroupQuota, CgroupVersion};
    ///
    /// assert!(CgroupQuota::new(CgroupVersion::V2, 100_000, 100_000).is_some());
    /// assert_eq!(CgroupQuota::new(CgroupVersion::V2, 0, 100_000), None);
    /// assert_eq!(CgroupQuota::new(CgroupVersion::V1, 100_000, 0), None);
    /// ```
    pub fn new(version: CgroupVersion, quota_us: u64, period_us: u64) -> Option<Self> {
        (quota_us > 0 && period_us > 0).then_some(Self {
            version,
            quota_us,
            period_us,
        })
    }

    /// The number of whole CPUs this quota amounts to: `quota / period`
    /// rounded up, at least 1. Saturates at `usize::MAX`.
    ///
    /// A quota of 150 ms per 100 ms period gives 2: a pool of two threads can
    /// use the whole allowance, one thread could not.
    ///
    /// # Examples
    ///
    /// ```
    /// use unirun_platform::{CgroupQuota, CgroupVersion};
    ///
    /// let cpus = |quota, period| {
    ///     CgroupQuota::new(CgroupVersion::V2, quota, period).unwrap().cpus()
    /// };
    /// assert_eq!(cpus(150_000, 100_000), 2); // rounded up
    /// assert_eq!(cpus(200_000, 100_000), 2);
    /// assert_eq!(cpus(10_000, 100_000), 1); // never below one
    /// ```
    pub fn cpus(&self) -> usize {
        match self.quota_us.checked_div(self.period_us) {
            Some(whole) => {
                let cpus = whole + u64::from(self.quota_us % self.period_us != 0);
                usize::try_from(cpus).unwrap_or(usize::MAX).max(1)
            }
            // Only reachable if a zero period is constructed inside this
            // crate, which `new` prevents: treat it as no limit.
            None => usize::MAX,
        }
    }

    /// Compares the CPU share (`quota / period`) of two limits exactly.
    pub(crate) fn cmp_share(&self, other: &Self) -> Ordering {
        let lhs = u128::from(self.quota_us) * u128::from(other.period_us);
        let rhs = u128::from(other.quota_us) * u128::from(self.period_us);
        lhs.cmp(&rhs)
    }

    /// Returns the tighter of two optional limits; on a tie, the first one.
    pub(crate) fn tighter(a: Option<Self>, b: Option<Self>) -> Option<Self> {
        match (a, b) {
            (Some(a), Some(b)) if b.cmp_share(&a) == Ordering::Less => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(quota: u64, period: u64) -> CgroupQuota {
        CgroupQuota::new(CgroupVersion::V2, quota, period).expect("valid quota")
    }

    #[test]
    fn new_rejects_zero() {
        assert_eq!(CgroupQuota::new(CgroupVersion::V1, 0, 100_000), None);
        assert_eq!(CgroupQuota::new(CgroupVersion::V1, 100_000, 0), None);
    }

    #[test]
    fn cpus_rounds_up() {
        assert_eq!(q(200_000, 100_000).cpus(), 2);
        assert_eq!(q(150_000, 100_000).cpus(), 2);
        assert_eq!(q(100_000, 100_000).cpus(), 1);
        assert_eq!(q(100_001, 100_000).cpus(), 2);
    }

    #[test]
    fn cpus_is_at_least_one() {
        assert_eq!(q(1, 100_000).cpus(), 1);
        assert_eq!(q(50_000, 100_000).cpus(), 1);
    }

    #[test]
    fn cpus_does_not_overflow() {
        assert!(q(u64::MAX, 1).cpus() >= 1);
        assert_eq!(q(u64::MAX, u64::MAX).cpus(), 1);
        assert_eq!(q(u64::MAX, u64::MAX - 1).cpus(), 2);
    }

    #[test]
    fn zero_period_means_unlimited() {
        let odd = CgroupQuota {
            version: CgroupVersion::V2,
            quota_us: 1,
            period_us: 0,
        };
        assert_eq!(odd.cpus(), usize::MAX);
    }

    #[test]
    fn tighter_picks_smaller_share() {
        let wide = q(400_000, 100_000);
        let narrow = q(50_000, 50_000);
        assert_eq!(CgroupQuota::tighter(Some(wide), Some(narrow)), Some(narrow));
        assert_eq!(CgroupQuota::tighter(Some(narrow), Some(wide)), Some(narrow));
        assert_eq!(CgroupQuota::tighter(None, Some(wide)), Some(wide));
        assert_eq!(CgroupQuota::tighter(Some(wide), None), Some(wide));
        assert_eq!(CgroupQuota::tighter(None, None), None);
    }

    #[test]
    fn tighter_keeps_first_on_tie() {
        let a = q(100_000, 100_000);
        let b = q(200_000, 200_000);
        assert_eq!(CgroupQuota::tighter(Some(a), Some(b)), Some(a));
    }

    #[test]
    fn share_comparison_is_exact_for_huge_values() {
        let a = q(u64::MAX, u64::MAX - 1);
        let b = q(u64::MAX - 1, u64::MAX - 2);
        // (2^64-1)/(2^64-2) < (2^64-2)/(2^64-3)
        assert_eq!(a.cmp_share(&b), Ordering::Less);
    }
}
