//! Platform layer of unirun: how many CPUs this process may really use, and
//! thread naming helpers.
//!
//! An executor that sizes its worker pool from the number of CPUs in the
//! machine oversubscribes badly inside containers and under `taskset`: a
//! 64-core host running a container limited to two CPUs would start 64
//! workers that fight over two CPUs worth of time. [`cpu_budget`] combines
//! three sources and keeps the smallest:
//!
//! * the number of online CPUs ([`CpuBudget::online`]),
//! * the CPU affinity mask of the process ([`affinity_cpus`], Linux
//!   `sched_getaffinity`, which reflects `taskset` and cpusets),
//! * the cgroup CPU bandwidth quota ([`cgroup_quota`], cgroup v2 `cpu.max` or
//!   cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up to whole
//!   CPUs.
//!
//! The result, [`CpuBudget::available`], is always at least one. Every field
//! records where a limit came from, which helps when logging why a pool has
//! the size it has.
//!
//! The cgroup lookup only reads files. [`cpu_budget_with_root`] and
//! [`cgroup_quota`] resolve every path under a caller-given root directory,
//! so tests can build fake `/proc` and `/sys/fs/cgroup` trees. Missing,
//! empty, malformed or oversized files never panic; they simply mean "no
//! limit found".
//!
//! The thread helpers are small conveniences for worker pools:
//! [`set_current_thread_name`] renames the calling thread at the OS level,
//! [`current_thread_name`] reports the name given through
//! [`std::thread::Builder::name`], and [`thread_count`] counts the threads of
//! the process so tests can check that pools shut down cleanly.
//!
//! [`fork_guard`] keeps unirun's own locks free across unirun's forks: a
//! forked child never finds one of them held by a thread that `fork` did
//! not copy. Every lock on process-wide state a child may reach outside
//! `unirun-core` takes it (the list is in the process backend's docs).
//!
//! On unix, [`process`] wraps what the forked-process backend needs:
//! `fork`, close-on-exec pipes, `waitpid`, `kill`, resource limits, nice,
//! the parent-death signal and signal names.
//!
//! On platforms other than Linux, affinity and thread counting report `None`,
//! renaming is a no-op and the budget falls back to
//! [`std::thread::available_parallelism`].
//!
//! # Example
//!
//! ```
//! let b = unirun_platform::cpu_budget();
//! assert!(b.available >= 1);
//! assert!(b.available <= b.online);
//! println!("using {} worker threads ({b:?})", b.available);
//! ```

mod budget;
pub mod build_id;
mod cgroup;
pub mod fork_guard;
#[cfg(unix)]
pub mod process;
mod quota;

cfg_if::cfg_if! {
    if #[cfg(target_os = "linux")] {
        mod linux;
        use linux as sys;
    } else {
        mod other;
        use other as sys;
    }
}

use std::path::Path;

pub use budget::CpuBudget;
pub use cgroup::cgroup_quota;
pub use quota::{CgroupQuota, CgroupVersion};

/// Returns the CPU budget of this process on the real machine.
///
/// Combines the online CPU count, the affinity mask and the cgroup quota
/// found under `/proc/self/cgroup` and `/sys/fs/cgroup`. Equivalent to
/// `cpu_budget_with_root(Path::new("/"))`.
///
/// # Examples
///
/// ```
/// use std::path::Path;
///
/// let budget = unirun_platform::cpu_budget();
/// assert!(budget.available >= 1);
/// assert_eq!(budget, unirun_platform::cpu_budget_with_root(Path::new("/")));
/// ```
pub fn cpu_budget() -> CpuBudget {
    cpu_budget_with_root(Path::new("/"))
}

/// Returns the CPU budget with every cgroup-related path resolved under
/// `root`.
///
/// `root/proc/self/cgroup` and `root/sys/fs/cgroup/...` are read instead of
/// the real files, which lets tests feed fake trees. The online CPU count and
/// the affinity mask always come from the running system.
///
/// # Examples
///
/// ```
/// use std::fs;
/// use unirun_platform::{cpu_budget_with_root, CgroupQuota, CgroupVersion};
///
/// // A fake tree: a cgroup v2 group limited to 1.5 CPUs.
/// let root = std::env::temp_dir().join(format!("unirun-doc-budget-{}", std::process::id()));
/// fs::create_dir_all(root.join("proc/self")).unwrap();
/// fs::create_dir_all(root.join("sys/fs/cgroup")).unwrap();
/// fs::write(root.join("proc/self/cgroup"), "0::/\n").unwrap();
/// fs::write(root.join("sys/fs/cgroup/cpu.max"), "150000 100000\n").unwrap();
///
/// let budget = cpu_budget_with_root(&root);
/// assert_eq!(budget.quota, CgroupQuota::new(CgroupVersion::V2, 150_000, 100_000));
/// assert!(budget.available <= 2); // 1.5 CPUs round up to 2
/// # fs::remove_dir_all(&root).unwrap();
/// ```
pub fn cpu_budget_with_root(root: &Path) -> CpuBudget {
    CpuBudget::from_parts(sys::online_cpus(), sys::affinity_cpus(), cgroup_quota(root))
}

/// Returns the number of CPUs in the affinity mask of the calling thread.
///
/// On Linux this is `sched_getaffinity`, retried with larger masks on
/// machines with more than 1024 CPUs. Returns `None` on other platforms or if
/// the call fails.
///
/// # Examples
///
/// ```
/// match unirun_platform::affinity_cpus() {
///     Some(cpus) => assert!(cpus >= 1),
///     None => assert!(cfg!(not(target_os = "linux"))),
/// }
/// ```
pub fn affinity_cpus() -> Option<usize> {
    sys::affinity_cpus()
}

/// Sets the OS-level name of the calling thread, on a best-effort basis.
///
/// On Linux the name is cut at the first NUL byte and truncated to 15 bytes
/// on a character boundary (the kernel limit), then applied with
/// `pthread_setname_np`. Errors are ignored. On other platforms this is a
/// no-op.
///
/// Threads spawned with [`std::thread::Builder::name`] are already named;
/// this function is for renaming an existing thread. It does not change what
/// [`current_thread_name`] reports.
///
/// # Examples
///
/// ```
/// let os_name = std::thread::spawn(|| {
///     unirun_platform::set_current_thread_name("a-rather-long-thread-name");
///     // The standard library's view is unchanged...
///     assert_eq!(unirun_platform::current_thread_name(), None);
///     // ...while the OS sees the name, cut to the kernel's 15 bytes.
///     std::fs::read_to_string("/proc/thread-self/comm").ok()
/// })
/// .join()
/// .unwrap();
/// if cfg!(target_os = "linux") {
///     assert_eq!(os_name.unwrap().trim_end(), "a-rather-long-t");
/// }
/// ```
pub fn set_current_thread_name(name: &str) {
    sys::set_current_thread_name(name);
}

/// Returns the name of the calling thread as known to the standard library.
///
/// This is the name given through [`std::thread::Builder::name`] (or `"main"`
/// for the main thread), not the OS-level name set by
/// [`set_current_thread_name`]. Returns `None` for unnamed threads.
///
/// # Examples
///
/// ```
/// use unirun_platform::current_thread_name;
///
/// let named = std::thread::Builder::new()
///     .name("loader".into())
///     .spawn(current_thread_name)
///     .unwrap();
/// assert_eq!(named.join().unwrap().as_deref(), Some("loader"));
///
/// let unnamed = std::thread::spawn(current_thread_name);
/// assert_eq!(unnamed.join().unwrap(), None);
/// ```
pub fn current_thread_name() -> Option<String> {
    std::thread::current().name().map(str::to_owned)
}

/// Returns the number of threads of this process.
///
/// On Linux this counts the entries of `/proc/self/task`. Returns `None` on
/// other platforms or if the directory cannot be read. The value is a
/// snapshot: other threads may start or stop at any time.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
///
/// let (stop, wait) = mpsc::channel::<()>();
/// let extra = std::thread::spawn(move || wait.recv().ok());
/// match unirun_platform::thread_count() {
///     // At least this thread and the one just started.
///     Some(n) => assert!(n >= 2),
///     None => assert!(cfg!(not(target_os = "linux"))),
/// }
/// drop(stop);
/// extra.join().unwrap();
/// ```
pub fn thread_count() -> Option<usize> {
    sys::thread_count()
}

/// Returns the OS-level names of this process's threads (at most 15 bytes
/// each on Linux, where they come from `/proc/self/task/*/comm`), so tests
/// can check that a named thread is gone. `None` on other platforms or if
/// the directory cannot be read; like [`thread_count`], a snapshot.
///
/// # Examples
///
/// ```
/// let named = std::thread::Builder::new()
///     .name("doc-lister".into())
///     .spawn(|| unirun_platform::thread_names())
///     .unwrap();
/// match named.join().unwrap() {
///     Some(names) => assert!(names.iter().any(|n| n == "doc-lister")),
///     None => assert!(cfg!(not(target_os = "linux"))),
/// }
/// ```
pub fn thread_names() -> Option<Vec<String>> {
    sys::thread_names()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_budget_is_within_bounds() {
        let b = cpu_budget();
        assert!(b.available >= 1);
        assert!(b.online >= 1);
        assert!(b.available <= b.online);
        if let Some(a) = b.affinity {
            assert!(b.available <= a.max(1));
        }
        if let Some(q) = b.quota {
            assert!(b.available <= q.cpus());
        }
    }

    #[test]
    fn current_thread_name_of_named_thread() {
        let name = std::thread::Builder::new()
            .name("unirun-name-test".into())
            .spawn(current_thread_name)
            .expect("spawn test thread")
            .join()
            .expect("join test thread");
        assert_eq!(name.as_deref(), Some("unirun-name-test"));
    }

    #[test]
    fn current_thread_name_of_unnamed_thread() {
        let name = std::thread::Builder::new()
            .spawn(current_thread_name)
            .expect("spawn test thread")
            .join()
            .expect("join test thread");
        assert_eq!(name, None);
    }

    #[test]
    fn set_current_thread_name_never_panics() {
        std::thread::spawn(|| {
            set_current_thread_name("");
            set_current_thread_name("short");
            set_current_thread_name("a-very-long-thread-name-that-exceeds-limits");
            set_current_thread_name("nul\0inside");
            set_current_thread_name("ééééééééééé");
        })
        .join()
        .expect("join test thread");
    }
}
