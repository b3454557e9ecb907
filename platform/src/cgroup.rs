//! cgroup CPU quota discovery.
//!
//! The parsing functions work on plain strings and are OS-independent; the
//! file-reading part resolves every path under a caller-given root so tests
//! can point it at a fake tree. Anything unexpected (missing, empty,
//! oversized, non-UTF-8 or malformed files, `..` in a cgroup path) means "no
//! limit found" and never panics.
//!
//! The cgroup file systems are expected at their standard location,
//! `sys/fs/cgroup`: the unified (v2) hierarchy directly there, the v1 `cpu`
//! controller in `sys/fs/cgroup/cpu,cpuacct` or `sys/fs/cgroup/cpu`.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::quota::{CgroupQuota, CgroupVersion};

/// Membership file of the current process, relative to the root.
const PROC_SELF_CGROUP: &str = "proc/self/cgroup";
/// Mount point of the cgroup file systems, relative to the root.
const CGROUP_MOUNT: &str = "sys/fs/cgroup";
/// Directories under [`CGROUP_MOUNT`] where the v1 `cpu` controller may be
/// mounted. They are often symlinks to each other, which is harmless.
const V1_CPU_MOUNTS: [&str; 3] = ["cpu,cpuacct", "cpu", "cpuacct,cpu"];
/// Upper bound for `/proc/self/cgroup`; larger files are not trusted.
const MAX_MEMBERSHIP_BYTES: u64 = 64 * 1024;
/// Upper bound for the single-line limit files.
const MAX_LIMIT_FILE_BYTES: u64 = 4 * 1024;

/// Returns the tightest cgroup CPU bandwidth limit of this process, reading
/// `root/proc/self/cgroup` and `root/sys/fs/cgroup/...`.
///
/// For cgroup v2 the `0::<path>` entry is looked up and `cpu.max` is read in
/// that directory and every parent up to the hierarchy root, so a tighter
/// limit on an enclosing group wins. For cgroup v1 the entry whose controller
/// list contains `cpu` is used with `cpu.cfs_quota_us` and
/// `cpu.cfs_period_us`, walking up the same way. When the group directory
/// does not exist (a container that sees its own group mounted as the root)
/// the walk reaches the mount root, which is then the container's group.
///
/// Returns `None` when no limit is set or nothing usable was found.
///
/// ```
/// // A root without any cgroup files has no limit.
/// let missing = std::env::temp_dir().join("unirun-no-such-root");
/// assert_eq!(unirun_platform::cgroup_quota(&missing), None);
/// ```
pub fn cgroup_quota(root: &Path) -> Option<CgroupQuota> {
    let membership_file = read_bounded(&root.join(PROC_SELF_CGROUP), MAX_MEMBERSHIP_BYTES)?;
    let membership = parse_membership(&membership_file);
    let mount = root.join(CGROUP_MOUNT);

    let v2 = membership
        .v2
        .and_then(relative_parts)
        .and_then(|parts| tightest_up_to_root(&mount, &parts, read_v2_limit));
    let v1 = membership
        .v1_cpu
        .and_then(relative_parts)
        .and_then(|parts| {
            V1_CPU_MOUNTS
                .iter()
                .map(|dir| mount.join(dir))
                .filter(|dir| dir.is_dir())
                .map(|dir| tightest_up_to_root(&dir, &parts, read_v1_limit))
                .fold(None, CgroupQuota::tighter)
        });
    CgroupQuota::tighter(v2, v1)
}

/// The cgroup paths of the current process, as listed in `/proc/self/cgroup`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Membership<'a> {
    /// Path in the unified hierarchy (`0::<path>`).
    pub(crate) v2: Option<&'a str>,
    /// Path in the v1 hierarchy that has the `cpu` controller.
    pub(crate) v1_cpu: Option<&'a str>,
}

/// Parses `/proc/self/cgroup`: lines of `id:controllers:path`.
///
/// Lines that do not have three fields or whose path is not absolute are
/// skipped. The first matching line of each kind wins.
pub(crate) fn parse_membership(contents: &str) -> Membership<'_> {
    let mut found = Membership::default();
    for line in contents.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !path.starts_with('/') {
            continue;
        }
        if id == "0" && controllers.is_empty() {
            found.v2.get_or_insert(path);
        } else if controllers.split(',').any(|c| c == "cpu") {
            found.v1_cpu.get_or_insert(path);
        }
    }
    found
}

/// Parses a v2 `cpu.max` file: `"<quota> <period>"` or `"max <period>"`.
///
/// Returns `None` for "max" (unlimited) and for anything malformed: wrong
/// number of fields, non-numeric or negative values, values that overflow
/// `u64`, or a zero quota or period.
pub(crate) fn parse_cpu_max(contents: &str) -> Option<CgroupQuota> {
    let mut fields = contents.split_whitespace();
    let (quota, period) = (fields.next()?, fields.next()?);
    if fields.next().is_some() || quota == "max" {
        return None;
    }
    CgroupQuota::new(CgroupVersion::V2, quota.parse().ok()?, period.parse().ok()?)
}

/// Parses a v1 `cpu.cfs_quota_us` file. `-1` (unlimited), any other
/// non-positive value and malformed contents give `None`.
pub(crate) fn parse_cfs_quota(contents: &str) -> Option<u64> {
    let quota: i64 = contents.trim().parse().ok()?;
    u64::try_from(quota).ok().filter(|&q| q > 0)
}

/// Parses a v1 `cpu.cfs_period_us` file. Zero and malformed contents give
/// `None`.
pub(crate) fn parse_cfs_period(contents: &str) -> Option<u64> {
    contents.trim().parse().ok().filter(|&p: &u64| p > 0)
}

/// Splits an absolute cgroup path into its components. Returns `None` if it
/// contains `..`, which could escape the mount point.
pub(crate) fn relative_parts(path: &str) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    Some(parts)
}

/// Reads the limit in `mount/parts...` and every ancestor up to `mount`,
/// returning the tightest one.
fn tightest_up_to_root(
    mount: &Path,
    parts: &[&str],
    read_limit: fn(&Path) -> Option<CgroupQuota>,
) -> Option<CgroupQuota> {
    (0..=parts.len())
        .rev()
        .map(|depth| group_dir(mount, &parts[..depth]))
        .map(|dir| read_limit(&dir))
        .fold(None, CgroupQuota::tighter)
}

/// Joins cgroup path components onto a mount point.
fn group_dir(mount: &Path, parts: &[&str]) -> PathBuf {
    let mut dir = mount.to_path_buf();
    dir.extend(parts);
    dir
}

/// Reads the v2 limit of one group directory.
fn read_v2_limit(dir: &Path) -> Option<CgroupQuota> {
    parse_cpu_max(&read_bounded(&dir.join("cpu.max"), MAX_LIMIT_FILE_BYTES)?)
}

/// Reads the v1 limit of one group directory.
fn read_v1_limit(dir: &Path) -> Option<CgroupQuota> {
    let quota = parse_cfs_quota(&read_bounded(
        &dir.join("cpu.cfs_quota_us"),
        MAX_LIMIT_FILE_BYTES,
    )?)?;
    let period = parse_cfs_period(&read_bounded(
        &dir.join("cpu.cfs_period_us"),
        MAX_LIMIT_FILE_BYTES,
    )?)?;
    CgroupQuota::new(CgroupVersion::V1, quota, period)
}

/// Reads a UTF-8 file of at most `max` bytes. Missing, unreadable, larger or
/// non-UTF-8 files give `None`.
fn read_bounded(path: &Path, max: u64) -> Option<String> {
    let file = File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() > usize::try_from(max).unwrap_or(usize::MAX) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn v2(quota: u64, period: u64) -> Option<CgroupQuota> {
        CgroupQuota::new(CgroupVersion::V2, quota, period)
    }

    /// A unique temporary directory, removed on drop.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new() -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "unirun-platform-unit-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create fake root");
            Self(dir)
        }

        fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
            let path = self.0.join(rel);
            fs::create_dir_all(path.parent().expect("file has a parent")).expect("create parent");
            fs::write(path, contents).expect("write fake file");
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn membership_v2() {
        let m = parse_membership("0::/user.slice/app.scope\n");
        assert_eq!(m.v2, Some("/user.slice/app.scope"));
        assert_eq!(m.v1_cpu, None);
    }

    #[test]
    fn membership_v1() {
        let m = parse_membership(
            "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n3:cpuset:/docker/abc\n",
        );
        assert_eq!(m.v2, None);
        assert_eq!(m.v1_cpu, Some("/docker/abc"));
    }

    #[test]
    fn membership_does_not_confuse_cpuacct_or_cpuset_with_cpu() {
        let m = parse_membership("3:cpuset:/a\n5:cpuacct:/b\n");
        assert_eq!(m.v1_cpu, None);
    }

    #[test]
    fn membership_hybrid() {
        let m = parse_membership("4:cpu,cpuacct:/x\n0::/y\n");
        assert_eq!(m.v1_cpu, Some("/x"));
        assert_eq!(m.v2, Some("/y"));
    }

    #[test]
    fn membership_path_may_contain_colons() {
        let m = parse_membership("0::/a:b\n");
        assert_eq!(m.v2, Some("/a:b"));
    }

    #[test]
    fn membership_skips_garbage() {
        assert_eq!(parse_membership(""), Membership::default());
        assert_eq!(
            parse_membership("garbage\n::\n0:\n0::relative\n"),
            Membership::default()
        );
    }

    #[test]
    fn cpu_max_values() {
        assert_eq!(parse_cpu_max("200000 100000\n"), v2(200_000, 100_000));
        assert_eq!(parse_cpu_max("150000 100000"), v2(150_000, 100_000));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
    }

    #[test]
    fn cpu_max_malformed() {
        for bad in [
            "",
            "\n",
            "garbage",
            "abc 100000",
            "100000 abc",
            "100000 0",
            "0 100000",
            "-100000 100000",
            "100000 -1",
            "100000",
            "max",
            "1 2 3",
            "18446744073709551616 100000",
            "100000 18446744073709551616",
        ] {
            assert_eq!(parse_cpu_max(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cfs_quota_values() {
        assert_eq!(parse_cfs_quota("50000\n"), Some(50_000));
        assert_eq!(parse_cfs_quota("-1\n"), None);
        assert_eq!(parse_cfs_quota("-5"), None);
        assert_eq!(parse_cfs_quota("0"), None);
        assert_eq!(parse_cfs_quota(""), None);
        assert_eq!(parse_cfs_quota("lots"), None);
        assert_eq!(parse_cfs_quota("99999999999999999999999"), None);
    }

    #[test]
    fn cfs_period_values() {
        assert_eq!(parse_cfs_period("100000\n"), Some(100_000));
        assert_eq!(parse_cfs_period("0"), None);
        assert_eq!(parse_cfs_period("-100000"), None);
        assert_eq!(parse_cfs_period(""), None);
        assert_eq!(parse_cfs_period("18446744073709551616"), None);
    }

    #[test]
    fn relative_parts_of_paths() {
        assert_eq!(relative_parts("/"), Some(vec![]));
        assert_eq!(relative_parts("/a/b/"), Some(vec!["a", "b"]));
        assert_eq!(relative_parts("/a/./b"), Some(vec!["a", "b"]));
        assert_eq!(relative_parts("/a/../../etc"), None);
    }

    #[test]
    fn read_bounded_limits() {
        let root = FakeRoot::new();
        root.write("small", "12345");
        root.write("big", vec![b'1'; 100]);
        root.write("binary", [0xff, 0xfe, 0x00]);
        assert_eq!(
            read_bounded(&root.0.join("small"), 5).as_deref(),
            Some("12345")
        );
        assert_eq!(read_bounded(&root.0.join("big"), 99), None);
        assert_eq!(read_bounded(&root.0.join("binary"), 99), None);
        assert_eq!(read_bounded(&root.0.join("missing"), 99), None);
        assert_eq!(read_bounded(&root.0, 99), None);
    }

    #[test]
    fn walk_takes_tightest_ancestor() {
        let root = FakeRoot::new();
        root.write("proc/self/cgroup", "0::/a/b/c\n");
        root.write("sys/fs/cgroup/a/b/c/cpu.max", "400000 100000\n");
        root.write("sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
        root.write("sys/fs/cgroup/a/cpu.max", "300000 100000\n");
        assert_eq!(cgroup_quota(&root.0), v2(300_000, 100_000));
    }

    #[test]
    fn dotdot_path_is_ignored() {
        let root = FakeRoot::new();
        root.write("proc/self/cgroup", "0::/../escape\n");
        root.write("sys/fs/cgroup/cpu.max", "100000 100000\n");
        assert_eq!(cgroup_quota(&root.0), None);
    }

    #[test]
    fn hybrid_uses_v1_when_v2_has_no_cpu_controller() {
        let root = FakeRoot::new();
        root.write("proc/self/cgroup", "4:cpu,cpuacct:/g\n0::/g\n");
        root.write("sys/fs/cgroup/cpu,cpuacct/g/cpu.cfs_quota_us", "300000\n");
        root.write("sys/fs/cgroup/cpu,cpuacct/g/cpu.cfs_period_us", "100000\n");
        let q = cgroup_quota(&root.0).expect("v1 limit");
        assert_eq!((q.version, q.cpus()), (CgroupVersion::V1, 3));
    }
}
