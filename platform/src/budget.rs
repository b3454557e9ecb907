//! Combining the individual CPU limits into one budget.

use crate::quota::CgroupQuota;

/// CPU budget of this process, with where each limit came from.
///
/// Obtained from [`cpu_budget`](crate::cpu_budget) or
/// [`cpu_budget_with_root`](crate::cpu_budget_with_root).
///
/// # Examples
///
/// ```
/// let budget = unirun_platform::cpu_budget();
/// assert!(budget.available >= 1 && budget.available <= budget.online);
/// if let Some(affinity) = budget.affinity {
///     assert!(budget.available <= affinity.max(1));
/// }
/// if let Some(quota) = budget.quota {
///     assert!(budget.available <= quota.cpus());
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CpuBudget {
    /// The number of CPUs this process should plan to use: the minimum of
    /// `online`, `affinity` and the quota's [`CgroupQuota::cpus`]. At least 1.
    pub available: usize,
    /// The number of online CPUs in the machine. At least 1.
    pub online: usize,
    /// The number of CPUs in the affinity mask, if it could be read.
    pub affinity: Option<usize>,
    /// The tightest cgroup CPU bandwidth limit found, if any.
    pub quota: Option<CgroupQuota>,
}

impl CpuBudget {
    /// Builds a budget from its sources, computing `available`.
    pub(crate) fn from_parts(
        online: usize,
        affinity: Option<usize>,
        quota: Option<CgroupQuota>,
    ) -> Self {
        let online = online.max(1);
        let available = [affinity, quota.map(|q| q.cpus())]
            .into_iter()
            .flatten()
            .fold(online, usize::min)
            .max(1);
        Self {
            available,
            online,
            affinity,
            quota,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quota::CgroupVersion;

    fn q(quota: u64, period: u64) -> Option<CgroupQuota> {
        CgroupQuota::new(CgroupVersion::V2, quota, period)
    }

    #[test]
    fn online_only() {
        let b = CpuBudget::from_parts(8, None, None);
        assert_eq!((b.available, b.online), (8, 8));
    }

    #[test]
    fn affinity_limits() {
        assert_eq!(CpuBudget::from_parts(8, Some(3), None).available, 3);
    }

    #[test]
    fn quota_limits() {
        assert_eq!(
            CpuBudget::from_parts(8, Some(6), q(150_000, 100_000)).available,
            2
        );
    }

    #[test]
    fn online_limits() {
        assert_eq!(
            CpuBudget::from_parts(2, Some(6), q(800_000, 100_000)).available,
            2
        );
    }

    #[test]
    fn never_below_one() {
        let b = CpuBudget::from_parts(0, Some(0), None);
        assert_eq!((b.available, b.online), (1, 1));
        assert_eq!(b.affinity, Some(0));
    }

    #[test]
    fn keeps_sources() {
        let b = CpuBudget::from_parts(4, Some(4), q(100_000, 100_000));
        assert_eq!(b.affinity, Some(4));
        assert_eq!(b.quota, q(100_000, 100_000));
        assert_eq!(b.available, 1);
    }
}
