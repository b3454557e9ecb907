//! Integration tests: cgroup quota discovery on fake `/proc` and
//! `/sys/fs/cgroup` trees, and the process-level helpers.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;

use unirun_platform::{
    cgroup_quota, cpu_budget, cpu_budget_with_root, thread_count, CgroupQuota, CgroupVersion,
};

/// A unique fake root under the temporary directory, removed on drop.
struct FakeRoot {
    dir: PathBuf,
}

impl FakeRoot {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "unirun-platform-it-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create fake root");
        Self { dir }
    }

    fn path(&self) -> &Path {
        &self.dir
    }

    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.dir.join(rel);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create parent");
        fs::write(path, contents).expect("write fake file");
        self
    }

    fn mkdir(&self, rel: &str) -> &Self {
        fs::create_dir_all(self.dir.join(rel)).expect("create dir");
        self
    }

    /// A cgroup v2 tree where the process is in `/app`.
    fn v2_with_cpu_max(name: &str, cpu_max: impl AsRef<[u8]>) -> Self {
        let root = Self::new(name);
        root.write("proc/self/cgroup", "0::/app\n")
            .write("sys/fs/cgroup/app/cpu.max", cpu_max);
        root
    }

    /// A cgroup v1 tree where the process is in `/docker/abc`.
    fn v1_with_files(name: &str, quota: impl AsRef<[u8]>, period: impl AsRef<[u8]>) -> Self {
        let root = Self::new(name);
        root.write(
            "proc/self/cgroup",
            "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n",
        )
        .write(
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
            quota,
        )
        .write(
            "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
            period,
        );
        root
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn assert_quota(q: Option<CgroupQuota>, version: CgroupVersion, quota: u64, period: u64) {
    let q = q.expect("a quota");
    assert_eq!(q.version, version);
    assert_eq!((q.quota_us, q.period_us), (quota, period));
}

#[test]
fn v2_limited_to_two_cpus() {
    let root = FakeRoot::v2_with_cpu_max("v2-two", "200000 100000\n");
    let q = cgroup_quota(root.path());
    assert_quota(q, CgroupVersion::V2, 200_000, 100_000);
    assert_eq!(q.map(|q| q.cpus()), Some(2));
}

#[test]
fn v2_fractional_rounds_up() {
    let root = FakeRoot::v2_with_cpu_max("v2-frac", "150000 100000\n");
    assert_eq!(cgroup_quota(root.path()).map(|q| q.cpus()), Some(2));
}

#[test]
fn v2_max_is_unlimited() {
    let root = FakeRoot::v2_with_cpu_max("v2-max", "max 100000\n");
    assert_eq!(cgroup_quota(root.path()), None);
}

#[test]
fn v2_nested_parent_is_tighter() {
    let root = FakeRoot::new("v2-nested");
    root.write("proc/self/cgroup", "0::/parent/child\n")
        .write("sys/fs/cgroup/parent/cpu.max", "100000 100000\n")
        .write("sys/fs/cgroup/parent/child/cpu.max", "400000 100000\n");
    let q = cgroup_quota(root.path());
    assert_quota(q, CgroupVersion::V2, 100_000, 100_000);
    assert_eq!(q.map(|q| q.cpus()), Some(1));
}

#[test]
fn v2_nested_child_is_tighter() {
    let root = FakeRoot::new("v2-nested-child");
    root.write("proc/self/cgroup", "0::/parent/child\n")
        .write("sys/fs/cgroup/parent/cpu.max", "max 100000\n")
        .write("sys/fs/cgroup/parent/child/cpu.max", "300000 100000\n");
    assert_eq!(cgroup_quota(root.path()).map(|q| q.cpus()), Some(3));
}

#[test]
fn v2_container_sees_own_group_at_mount_root() {
    let root = FakeRoot::new("v2-ns-root");
    root.write("proc/self/cgroup", "0::/\n")
        .write("sys/fs/cgroup/cpu.max", "250000 100000\n");
    assert_eq!(cgroup_quota(root.path()).map(|q| q.cpus()), Some(3));
}

#[test]
fn v2_missing_group_dir_falls_back_to_mount_root() {
    let root = FakeRoot::new("v2-missing-dir");
    root.write("proc/self/cgroup", "0::/system.slice/docker-abc.scope\n")
        .write("sys/fs/cgroup/cpu.max", "200000 100000\n");
    assert_eq!(cgroup_quota(root.path()).map(|q| q.cpus()), Some(2));
}

#[test]
fn v1_quota() {
    let root = FakeRoot::v1_with_files("v1-quota", "300000\n", "100000\n");
    let q = cgroup_quota(root.path());
    assert_quota(q, CgroupVersion::V1, 300_000, 100_000);
    assert_eq!(q.map(|q| q.cpus()), Some(3));
}

#[test]
fn v1_minus_one_is_unlimited() {
    let root = FakeRoot::v1_with_files("v1-unlimited", "-1\n", "100000\n");
    assert_eq!(cgroup_quota(root.path()), None);
}

#[test]
fn v1_mounted_at_own_root() {
    let root = FakeRoot::new("v1-root");
    root.write("proc/self/cgroup", "4:cpu,cpuacct:/docker/abc\n")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n")
        .write("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    let q = cgroup_quota(root.path());
    assert_quota(q, CgroupVersion::V1, 50_000, 100_000);
    assert_eq!(q.map(|q| q.cpus()), Some(1));
}

#[test]
fn v1_plain_cpu_mount() {
    let root = FakeRoot::new("v1-cpu-mount");
    root.write("proc/self/cgroup", "3:cpu:/job\n")
        .write("sys/fs/cgroup/cpu/job/cpu.cfs_quota_us", "400000\n")
        .write("sys/fs/cgroup/cpu/job/cpu.cfs_period_us", "100000\n");
    assert_eq!(cgroup_quota(root.path()).map(|q| q.cpus()), Some(4));
}

#[test]
fn v1_nested_parent_is_tighter() {
    let root = FakeRoot::v1_with_files("v1-nested", "800000\n", "100000\n");
    root.write(
        "sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us",
        "200000\n",
    )
    .write(
        "sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us",
        "100000\n",
    );
    assert_eq!(cgroup_quota(root.path()).map(|q| q.cpus()), Some(2));
}

#[test]
fn v1_missing_period_is_unlimited() {
    let root = FakeRoot::new("v1-no-period");
    root.write("proc/self/cgroup", "4:cpu,cpuacct:/g\n")
        .write("sys/fs/cgroup/cpu,cpuacct/g/cpu.cfs_quota_us", "100000\n");
    assert_eq!(cgroup_quota(root.path()), None);
}

#[test]
fn v2_malformed_cpu_max_is_no_limit() {
    let huge = "9".repeat(1 << 20);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"garbage\n".to_vec()),
        ("empty", Vec::new()),
        ("abc", b"abc 100000\n".to_vec()),
        ("zero-period", b"100000 0\n".to_vec()),
        ("zero-quota", b"0 100000\n".to_vec()),
        ("negative", b"-200000 100000\n".to_vec()),
        ("negative-period", b"200000 -100000\n".to_vec()),
        ("overflow", b"18446744073709551616 100000\n".to_vec()),
        ("three-fields", b"1 2 3\n".to_vec()),
        ("non-utf8", vec![0xff, 0xfe, b' ', b'1']),
        ("huge-file", format!("{huge} 100000").into_bytes()),
    ];
    for (name, contents) in cases {
        let root = FakeRoot::v2_with_cpu_max(name, contents);
        assert_eq!(cgroup_quota(root.path()), None, "case {name}");
        let b = cpu_budget_with_root(root.path());
        assert_eq!(b.quota, None, "case {name}");
        assert!(b.available >= 1);
    }
}

#[test]
fn v1_malformed_files_are_no_limit() {
    let cases: [(&str, &[u8], &[u8]); 9] = [
        ("garbage", b"garbage", b"100000"),
        ("empty-quota", b"", b"100000"),
        ("empty-period", b"100000", b""),
        ("zero-period", b"100000", b"0"),
        ("zero-quota", b"0", b"100000"),
        ("negative", b"-5", b"100000"),
        ("negative-period", b"100000", b"-100000"),
        ("overflow", b"100000", b"18446744073709551616"),
        ("non-utf8", &[0xc3, 0x28], b"100000"),
    ];
    for (name, quota, period) in cases {
        let root = FakeRoot::v1_with_files(name, quota, period);
        assert_eq!(cgroup_quota(root.path()), None, "case {name}");
    }
}

#[test]
fn malformed_proc_self_cgroup_is_no_limit() {
    for (name, contents) in [
        ("empty", &b""[..]),
        ("garbage", b"not a cgroup file"),
        ("non-utf8", &[0x30, 0x3a, 0x3a, 0x2f, 0xff]),
        ("relative", b"0::app\n"),
        ("escape", b"0::/../../etc\n"),
    ] {
        let root = FakeRoot::new(name);
        root.write("proc/self/cgroup", contents)
            .write("sys/fs/cgroup/cpu.max", "100000 100000\n")
            .write("sys/fs/cgroup/app/cpu.max", "100000 100000\n");
        assert_eq!(cgroup_quota(root.path()), None, "case {name}");
    }
}

#[test]
fn missing_proc_self_cgroup_is_no_limit() {
    let root = FakeRoot::new("no-proc");
    root.write("sys/fs/cgroup/cpu.max", "100000 100000\n");
    assert_eq!(cgroup_quota(root.path()), None);
    let b = cpu_budget_with_root(root.path());
    assert_eq!(b.quota, None);
    assert!(b.available >= 1 && b.available <= b.online);
}

#[test]
fn missing_cgroup_fs_is_no_limit() {
    let root = FakeRoot::new("no-sys");
    root.write("proc/self/cgroup", "0::/app\n4:cpu,cpuacct:/app\n")
        .mkdir("sys");
    assert_eq!(cgroup_quota(root.path()), None);
}

#[test]
fn budget_applies_quota() {
    let root = FakeRoot::v2_with_cpu_max("budget", "100000 100000\n");
    let b = cpu_budget_with_root(root.path());
    assert_eq!(b.available, 1);
    assert_eq!(b.quota.map(|q| q.cpus()), Some(1));
    assert!(b.online >= 1);
}

#[test]
fn budget_is_min_of_sources() {
    let root = FakeRoot::v2_with_cpu_max("budget-min", "300000 100000\n");
    let b = cpu_budget_with_root(root.path());
    let mut expected = b.online.min(3);
    if let Some(a) = b.affinity {
        expected = expected.min(a);
    }
    assert_eq!(b.available, expected.max(1));
}

#[test]
fn real_budget_is_sane() {
    let b = cpu_budget();
    assert!(b.available >= 1);
    assert!(b.available <= b.online);
    if cfg!(target_os = "linux") {
        assert!(b.affinity.is_some());
    }
}

#[test]
fn thread_count_sees_held_thread() {
    if !cfg!(target_os = "linux") {
        assert_eq!(thread_count(), None);
        return;
    }
    let before = thread_count().expect("thread count on Linux");
    assert!(before >= 1);

    let barrier = std::sync::Arc::new(Barrier::new(2));
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let held = {
        let barrier = barrier.clone();
        thread::spawn(move || {
            barrier.wait();
            let _ = stop_rx.recv();
        })
    };
    barrier.wait();
    let during = thread_count().expect("thread count on Linux");
    assert!(during >= 2, "during = {during}");

    drop(stop_tx);
    held.join().expect("join held thread");
    assert!(thread_count().is_some_and(|n| n >= 1));
}
